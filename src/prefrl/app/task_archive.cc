// Task files in runs (see task_archive.h).
#include "prefrl/app/task_archive.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <vector>

#include "prefrl/app/checkpoint.h"
#include "prefrl/core/error.h"
#include "prefrl/envs/atari_env.h"
#include "prefrl/envs/external_env.h"
#include "prefrl/envs/task_file.h"
#include "prefrl/tracking/tensorboard.h"

namespace prefrl {

namespace fs = std::filesystem;

namespace {
// Size and CRC-32C of a file (as the checkpoints' manifests record them).
nlohmann::json file_record(const fs::path& p) {
  const std::string bytes = read_file_bytes(p.string());
  return {{"bytes", bytes.size()}, {"crc32c", crc32c(bytes.data(), bytes.size())}};
}

// RUN/task/manifest.json: each archived file's size and CRC-32C. A file that no longer matches
// is refused: the run's results were computed with the recorded one.
void check_archive(const fs::path& task_dir) {
  const fs::path manifest = task_dir / "manifest.json";
  if (!fs::exists(manifest)) return;
  const nlohmann::json files = nlohmann::json::parse(read_file_bytes(manifest.string())).at("files");
  for (const auto& [name, want] : files.items()) {
    const fs::path p = task_dir / name;
    if (!fs::exists(p)) throw UsageError("the run's archived task file '" + p.string() + "' is missing");
    if (file_record(p) != want)
      throw UsageError("the run's archived task file '" + p.string() + "' has changed since the run archived it (" +
                       file_record(p).dump() + ", recorded " + want.dump() + "); restore it to use the run");
  }
}
}  // namespace

namespace {
// An external env's options as a config's env group holds them (defaults where absent).
ExternalEnvOptions external_options(const nlohmann::json& env) {
  ExternalEnvOptions o;
  o.cmd = env.value("cmd", std::string());
  o.dir = env.value("cmd_dir", std::string());
  if (env.contains("num_workers") && env["num_workers"].is_number_integer()) o.num_workers = env["num_workers"].get<int>();
  if (env.contains("step_timeout_s") && env["step_timeout_s"].is_number()) o.step_timeout_s = env["step_timeout_s"].get<double>();
  return o;
}
// The model file and every file it names: <include>s (relative to the main model's directory,
// recursively), and the files of meshes, height fields, skins and textures (relative to the
// compiler's meshdir / texturedir / assetdir, themselves relative to that directory).
std::vector<fs::path> model_files(const fs::path& model) {
  const fs::path root = model.parent_path();
  std::vector<fs::path> files = {model}, unread = {model};  // unread: XML files still to scan
  std::string meshdir, texturedir, assetdir;
  const std::regex tag(R"(<\s*(include|compiler|mesh|hfield|skin|texture)\b([^>]*)>)");
  const std::regex attr(R"re(\b(file|fileright|fileleft|fileup|filedown|filefront|fileback|meshdir|texturedir|assetdir)\s*=\s*"([^"]*)")re");
  std::vector<std::pair<std::string, std::string>> assets;  // (tag, file)
  while (!unread.empty()) {
    const fs::path xml = unread.back();
    unread.pop_back();
    const std::string text = read_file_bytes(xml.string());
    for (std::sregex_iterator t(text.begin(), text.end(), tag), end; t != end; ++t) {
      const std::string name = (*t)[1], attrs = (*t)[2];
      for (std::sregex_iterator a(attrs.begin(), attrs.end(), attr); a != end; ++a) {
        const std::string key = (*a)[1], value = (*a)[2];
        if (name == "compiler") {
          if (key == "meshdir") meshdir = value;
          if (key == "texturedir") texturedir = value;
          if (key == "assetdir") assetdir = value;
        } else if (name == "include" && key == "file") {
          const fs::path inc = (root / value).lexically_normal();
          if (std::find(files.begin(), files.end(), inc) == files.end()) {
            files.push_back(inc);
            unread.push_back(inc);
          }
        } else if (key.rfind("file", 0) == 0) {
          assets.emplace_back(name, value);
        }
      }
    }
  }
  for (const auto& [name, file] : assets) {
    const std::string& dir = name == "texture" ? (texturedir.empty() ? assetdir : texturedir)
                                               : (meshdir.empty() ? assetdir : meshdir);
    const fs::path p = (root / dir / file).lexically_normal();
    if (std::find(files.begin(), files.end(), p) == files.end()) files.push_back(p);
  }
  return files;
}

}  // namespace

nlohmann::json with_task_registered(nlohmann::json config, const std::string& base_dir) {
  if (config.is_object() && config.contains("atari") && config["atari"].is_object()) {
    AtariConfig atari;  // the run's Atari preprocessing, for the games' registrations
    config_from_json(atari, config["atari"]);
    configure_atari_envs(atari);
  }
  if (!config.is_object() || !config.contains("env") || !config["env"].is_object()) return config;
  const nlohmann::json& cmd = config["env"].value("cmd", nlohmann::json(""));
  if (cmd.is_string() && !cmd.get<std::string>().empty()) {
    const std::string name = register_external_env(external_options(config["env"]));
    if (!config["env"].contains("name")) config["env"]["name"] = name;
  }
  const nlohmann::json& t = config["env"].value("task", nlohmann::json(""));
  if (!t.is_string() || t.get<std::string>().empty()) return config;
  fs::path p = t.get<std::string>();
  if (p.is_relative()) p = fs::path(base_dir) / p;
  p = fs::absolute(p).lexically_normal();
  check_archive(p.parent_path());
  TaskOptions options;
  if (config.contains("teacher") && config["teacher"].is_object()) {
    const nlohmann::json& t = config["teacher"];
    options.judge_by_score = t.value("kind", nlohmann::json("")) == nlohmann::json("script");
    if (t.contains("score") && t["score"].is_string()) options.score = t["score"].get<std::string>();
  }
  const std::string name = register_task_file(p.string(), options);
  config["env"]["task"] = p.string();
  if (!config["env"].contains("name")) config["env"]["name"] = name;
  return config;
}

void register_task_for(const TrainConfig& cfg) {
  configure_atari_envs(cfg.atari);
  if (!cfg.env.cmd.empty()) {
    ExternalEnvOptions o;
    o.cmd = cfg.env.cmd;
    o.dir = cfg.env.cmd_dir;
    o.num_workers = cfg.env.num_workers;
    o.step_timeout_s = cfg.env.step_timeout_s;
    (void)register_external_env(o);
  }
  if (cfg.env.task.empty()) return;
  TaskOptions options;
  options.judge_by_score = cfg.teacher.kind == "script";
  options.score = cfg.teacher.score;
  (void)register_task_file(cfg.env.task, options);
}

nlohmann::json migrated_config(nlohmann::json config) {
  // Before B-Pref's teachers (a config without teacher.beta), teacher.error_rate was read by the
  // noisy teacher alone, whose answers are today's oracle with that error_rate.
  auto t = config.find("teacher");
  if (t != config.end() && t->is_object() && !t->contains("beta") && t->contains("error_rate")) {
    if (t->value("kind", "") == "noisy") (*t)["kind"] = "oracle";
    else (*t)["error_rate"] = 0.0;
  }
  return config;
}

nlohmann::json read_run_config(const RunDir& run) {
  return with_task_registered(migrated_config(run.read_json("config.json")), run.path());
}

nlohmann::json archive_task(const TrainConfig& cfg, const RunDir& run) {
  TrainConfig copy = cfg;  // the visitor reads through non-const references
  nlohmann::json j = config_to_json(copy);
  if (cfg.env.task.empty()) return j;
  const fs::path task = cfg.env.task;
  const TaskSpec spec = load_task_file(task.string());
  const fs::path dir = fs::path(run.path()) / "task";
  auto copy_into = [](const fs::path& from, const fs::path& to) {  // a resumed run's task is its archive already
    std::error_code ec;
    if (fs::exists(to) && fs::equivalent(from, to, ec)) return;
    fs::create_directories(to.parent_path());
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  };
  copy_into(task, dir / task.filename());
  nlohmann::json files = {{task.filename().string(), file_record(dir / task.filename())}};
  for (const fs::path& f : model_files(spec.model)) {  // the model with its includes, meshes and textures
    const fs::path rel = f.lexically_relative(task.parent_path());
    if (rel.empty() || *rel.begin() == "..")
      throw UsageError(task.string() + ": the model's file '" + f.string() + "' is outside the task file's directory; "
                       "keep the model and its files in that directory (or below) so that the run can archive them");
    if (!fs::is_regular_file(f)) throw UsageError(task.string() + ": the model's file '" + f.string() + "' is missing");
    copy_into(f, dir / rel);
    files[rel.string()] = file_record(dir / rel);
  }
  write_file_synced((dir / "manifest.json").string(), nlohmann::json{{"files", files}}.dump(1) + "\n");
  j["env"]["task"] = (fs::path("task") / task.filename()).string();
  return j;
}

}  // namespace prefrl
