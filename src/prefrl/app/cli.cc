#include "prefrl/app/cli.h"

#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <torch/torch.h>
#include <torch/version.h>
#include <csignal>
#include <mujoco/mujoco.h>
#include <pthread.h>
#include <unistd.h>

#include "prefrl/app/artifacts.h"
#include "prefrl/app/checkpoint.h"
#include "prefrl/app/dataset.h"
#include "prefrl/app/evaluate.h"
#include "prefrl/app/export.h"
#include "prefrl/app/render_video.h"
#include "prefrl/app/reward_reuse.h"
#include "prefrl/app/task_archive.h"
#include "prefrl/app/train_config.h"
#include "prefrl/app/trainer.h"
#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/external_env.h"
#include "prefrl/envs/task_file.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/server/label_server.h"
#include "prefrl/tracking/metrics.h"
#include "prefrl/tracking/progress.h"
#include "prefrl/tracking/report.h"
#include "prefrl/tracking/run_dir.h"
#include "prefrl/tracking/runs.h"
#include "prefrl/tracking/sweep.h"
#include "prefrl_version.h"

namespace prefrl {

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

std::string space_str(const Space& s) {
  if (s.discrete) return fmt::format("Discrete({})", s.n);
  std::string lo = s.low.empty() ? "" : fmt::format("{:g}", s.low[0]);
  std::string hi = s.high.empty() ? "" : fmt::format("{:g}", s.high[0]);
  return fmt::format("Box({}, [{}, {}])", shape_str(s.shape), lo, hi);
}

double machine_memory_gb() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  long kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit) if (key == "MemTotal:") return kb / (1024.0 * 1024.0);
  return 0.0;
}

nlohmann::json build_meta(uint64_t seed) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return {{"prefrl_version", PREFRL_VERSION},
          {"git_commit", PREFRL_GIT_COMMIT},
          {"git_dirty", PREFRL_GIT_DIRTY},
          {"build_type", PREFRL_BUILD_TYPE},
          {"libtorch_version", TORCH_VERSION},
          {"mujoco_version", mj_versionString()},
          {"machine", {{"hostname", host}, {"cores", std::thread::hardware_concurrency()},
                       {"memory_gb", machine_memory_gb()}}},
          {"seed", seed},
          {"started_at", utc_now()}};
}

std::string quote_args(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    bool plain = !a.empty() && a.find_first_of(" \t\"'$\\") == std::string::npos;
    s += (i ? " " : "") + (plain ? a : "'" + a + "'");
  }
  return s;
}

// Settings shared by `train` and `config`: how a TrainConfig is resolved.
struct ConfigFlags {
  std::string env, task, env_cmd, preset, config_file;
  std::vector<std::string> sets;
  // Dedicated flags, kept as text and validated by the config's own ranges.
  std::string teacher, labels, steps, seed, threads, host, port, token;
  std::string prefs_from;  // a preference dataset the new run starts with (prefs.import_from)
  std::string reward_from;  // a reward model the new run starts from (run.reward_from)

  enum Flags { kConfigOnly, kTrain, kSweep };  // kSweep: no --seed (the sweep sets it) and no server flags
  void add_to(CLI::App* cmd, Flags which) {
    cmd->add_option("--env", env, which == kTrain && cmd->get_name() == "train"
                                      ? "environment (see `prefrl env list`); this or --task, unless --resume"
                                      : "environment (see `prefrl env list`); this or --task");
    cmd->add_option("--task", task, "a MuJoCo task file (docs/tasks.md) instead of --env: the environment it describes");
    cmd->add_option("--env-cmd", env_cmd,
                    "instead of --env: an external environment's worker command, e.g. 'python3 my_env.py' "
                    "(docs/env_protocol.md; env.num_workers workers, run in this directory)");
    cmd->add_option("--preset", preset, "preset (see `prefrl presets`); default: the environment's own");
    cmd->add_option("--config", config_file, "TOML (or .json) file of config keys");
    cmd->add_option("--set", sets, "override one config key: --set ppo.lr=0.001 (repeatable)");
    if (which == kConfigOnly) return;
    cmd->add_option("--teacher", teacher, "who answers queries: oracle | B-Pref's mistake, noisy, skip, myopic, equal (teacher.* knobs) | script (a task file's score) | human (a browser page)");
    cmd->add_option("--labels", labels, "label budget (prefs.total_labels)");
    cmd->add_option("--steps", steps, "environment steps (run.total_steps)");
    cmd->add_option("--threads", threads, "LibTorch intra-op threads (run.threads)");
    cmd->add_option("--prefs-from", prefs_from,
                    "start with the answers of this preference dataset (prefrl prefs export; prefs.import_from), "
                    "counted apart from the run's new labels");
    cmd->add_option("--reward-from", reward_from,
                    "train the policy on this reward model (a run directory, an export bundle or a prefrl reward train "
                    "bundle; run.reward_from): no labels are asked unless --labels N, and then the model trains on");
    if (which == kSweep) return;
    cmd->add_option("--seed", seed, "seed (run.seed)");
    cmd->add_option("--host", host, "--teacher human: address of the labeling page (server.host; default 127.0.0.1)");
    cmd->add_option("--port", port, "--teacher human: port of the labeling page (server.port; 0 = any free port)");
    cmd->add_option("--token", token, "--teacher human: access token (server.token; generated when the host is not loopback)");
  }

  // The flags as given, for a child `prefrl train` (the sweep's seeds).
  std::vector<std::string> forwarded() const {
    std::vector<std::string> out;
    auto add = [&](const char* flag, const std::string& v) {
      if (!v.empty()) { out.push_back(flag); out.push_back(v); }
    };
    add("--preset", preset);
    add("--task", task.empty() ? "" : std::filesystem::absolute(task).string());
    add("--env-cmd", env_cmd);
    add("--config", config_file.empty() ? "" : std::filesystem::absolute(config_file).string());
    for (const auto& s : sets) add("--set", s);
    add("--teacher", teacher);
    add("--labels", labels);
    add("--steps", steps);
    add("--threads", threads);
    add("--prefs-from", prefs_from.empty() ? "" : std::filesystem::absolute(prefs_from).string());
    add("--reward-from", reward_from.empty() ? "" : std::filesystem::absolute(reward_from).string());
    return out;
  }

  // The environment's name: --env, the name of the --task file's environment, or the name the
  // --env-cmd worker's SPEC gives (registered).
  std::string env_name() const {
    if ((!task.empty()) + (!env.empty()) + (!env_cmd.empty()) > 1)
      throw UsageError("give one of --env, --task and --env-cmd; a task file and an external env name their own environment");
    if (task.empty() && env.empty() && env_cmd.empty()) throw UsageError("--env, --task or --env-cmd is required");
    if (!env_cmd.empty()) {
      ExternalEnvOptions o;
      o.cmd = env_cmd;
      o.dir = std::filesystem::current_path().string();
      return register_external_env(o);
    }
    return task.empty() ? env : register_task_file(task);  // an [external] one registers its command
  }

  TrainConfig resolve() const {
    TrainConfig cfg;
    // The environment must exist before anything else is looked at.
    const std::string env = env_name();
    (void)env_spec(env);
    std::string preset_name = preset;
    if (preset_name.empty()) {
      for (const auto& p : presets()) if (p.name == env) preset_name = env;
    }
    if (!preset_name.empty()) {
      const Preset& p = find_preset(preset_name);
      if (p.env != env) {
        throw UsageError("preset '" + p.name + "' is for environment '" + p.env + "', not '" + env + "'");
      }
      apply_preset(cfg, p);
    }
    cfg.env.name = env;
    if (const std::optional<ExternalEnvOptions> x = task.empty() ? std::nullopt : external_task(task)) {
      // An external env's task file is its command: the run records that (env.cmd, env.cmd_dir).
      cfg.env.cmd = x->cmd;
      cfg.env.cmd_dir = x->dir;
      cfg.env.num_workers = x->num_workers;
      cfg.env.step_timeout_s = x->step_timeout_s;
    } else if (!task.empty()) {
      cfg.env.task = std::filesystem::absolute(task).lexically_normal().string();
    }
    if (!env_cmd.empty()) {
      cfg.env.cmd = env_cmd;
      cfg.env.cmd_dir = std::filesystem::current_path().string();
    }
    if (!config_file.empty())
      config_from_json(cfg, with_task_registered(read_config_file(config_file),
                                                 std::filesystem::absolute(config_file).parent_path().string()));
    for (const auto& s : sets) config_assign(cfg, s);
    if (!teacher.empty()) config_set(cfg, "teacher.kind", teacher);
    if (!labels.empty()) config_set(cfg, "prefs.total_labels", labels);
    if (!steps.empty()) config_set(cfg, "run.total_steps", steps);
    if (!seed.empty()) config_set(cfg, "run.seed", seed);
    if (!threads.empty()) config_set(cfg, "run.threads", threads);
    if (!prefs_from.empty())
      config_set(cfg, "prefs.import_from", std::filesystem::absolute(prefs_from).lexically_normal().string());
    if (!host.empty()) config_set(cfg, "server.host", host);
    if (!port.empty()) config_set(cfg, "server.port", port);
    if (!token.empty()) config_set(cfg, "server.token", token);
    if (cfg.env.name != env) throw UsageError("env.name '" + cfg.env.name + "' contradicts --env '" + env + "'");
    register_task_for(cfg);
    if (!reward_from.empty()) {
      const RewardSource src = resolve_reward_source(reward_from);
      adopt_reward_source(cfg, src);
      config_set(cfg, "run.reward_from", std::filesystem::absolute(reward_from).lexically_normal().string());
      bool budget_given = !labels.empty();
      for (const auto& s : sets) budget_given |= s.rfind("prefs.total_labels=", 0) == 0;
      if (!budget_given) config_set(cfg, "prefs.total_labels", "0");  // a fixed reward: no labels asked
    }
    cfg.validate();
    return cfg;
  }
};

void print_config(const TrainConfig& cfg_in, std::ostream& out) {
  TrainConfig cfg = cfg_in;
  for (const auto& e : config_list(cfg)) {
    out << fmt::format("  {:<32} = {:<16} # {}{}\n", e.key, e.value, e.doc, e.range.empty() ? "" : " " + e.range);
  }
}

// SIGINT / SIGTERM during training: the first asks the trainer to stop at the end of its
// iteration (checkpoint, summary, a line saying where); a second one ends the process at once.
extern "C" void on_stop_signal(int sig) {
  if (stop_requested() != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  request_stop(sig);
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A file-size limit (ulimit -f) makes writes fail with EFBIG, reported by name, instead of
  // killing the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
}

// Trains in the prepared run directory => the exit code: 0 finished, 1 failed (summary.json
// says why), 130 / 143 stopped by SIGINT / SIGTERM (resumable).
int run_training(const TrainConfig& cfg, const RunDir& run, RunLog& log, bool resume) {
  install_stop_handlers();
  if (!cfg.env.cmd.empty()) set_external_env_log_dir(run.file("workers"));  // worker-W.log
  try {
    TrainResult r = train(cfg, run, log, resume);
    if (r.status == "stopped") return 128 + stop_requested();
    return r.status == "finished" ? 0 : 1;
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    log.line(std::string("prefrl: training failed: ") + e.what());
    const std::vector<std::string> ckpts = list_checkpoints(run.file("checkpoints"));
    if (!ckpts.empty())
      log.line("prefrl: the last checkpoint is " + ckpts.back() + "; after fixing the cause, continue with: prefrl "
               "train --resume " + run.path());
    TrainResult failed;
    failed.status = "failed";
    failed.total_steps = cfg.run.total_steps;
    nlohmann::json j = failed.to_json();
    j["error"] = e.what();
    j["process"] = process_identity();
    j["process"]["heartbeat"] = unix_time_now();
    try {
      run.write_json("summary.json", j);
    } catch (const std::exception& e2) {  // e.g. the disk that stopped the run is still full
      log.line(std::string("prefrl: cannot record the failure in summary.json: ") + e2.what());
    }
    return 1;
  }
}

// Creates the run directory at `path`, records the config, command and build, and trains.
int start_run(TrainConfig cfg, const std::string& path, const std::string& command) {
  // A dataset to start with is read and checked against the task before anything is written.
  std::optional<Dataset> start_with;
  if (!cfg.prefs.import_from.empty()) {
    start_with = read_dataset(cfg.prefs.import_from);
    check_compatible(*start_with, task_spec(cfg), cfg.prefs.import_from);
  }
  RunDir run = RunDir::create(path);
  run.write_json("config.json", archive_task(cfg, run));  // a task file: with its copy under task/
  run.write_text("command.txt", command + "\n");
  run.write_json("meta.json", build_meta(cfg.run.seed));
  RunLog log;
  log.open(run.file("log.txt"));
  std::ostringstream cfgtext;
  print_config(cfg, cfgtext);
  log.line("resolved config:\n" + cfgtext.str());
  if (start_with) {
    const std::unique_ptr<PrefStore> store = open_pref_store(sqlite_store_url(run.file("prefs.db")));
    const ImportResult r = import_dataset(*start_with, *store, cfg.prefs.import_from);
    log.line(fmt::format("started with {} answers ({} clips) of {}: counted apart from new labels (prefs/labels_imported)",
                         r.answers, r.clips, cfg.prefs.import_from));
  }
  return run_training(cfg, run, log, false);
}

// `prefrl train --resume RUN_DIR`: the archived config, changed only with --override (each
// change recorded in resumes.jsonl and the log); every check before anything is touched.
int cmd_resume(const ConfigFlags& flags, const std::string& dir, bool override_config, const std::string& command) {
  if (!std::filesystem::is_directory(dir)) throw UsageError("--resume: '" + dir + "' is not a run directory");
  RunDir run = RunDir::open(dir);
  TrainConfig archived;
  try {
    config_from_json(archived, read_run_config(run));
  } catch (const UsageError& e) {
    throw UsageError("--resume: the archived config of '" + dir + "' is unusable: " + e.what());
  }
  TrainConfig cfg = archived;
  if (!flags.preset.empty()) throw UsageError("--resume: --preset cannot be applied to a run that has started");
  if (!flags.reward_from.empty())
    throw UsageError("--resume: --reward-from applies to a new run (the run keeps the reward model it has)");
  if (!flags.prefs_from.empty())
    throw UsageError("--resume: --prefs-from starts a new run with a dataset's answers; add them to this one with "
                     "prefrl prefs import DATASET --into " + dir);
  if (!flags.env.empty() && flags.env != archived.env.name)
    throw UsageError("--resume: --env " + flags.env + " contradicts the run's environment '" + archived.env.name + "'");
  if (!flags.config_file.empty()) config_from_json(cfg, read_config_file(flags.config_file));
  for (const auto& s : flags.sets) config_assign(cfg, s);
  const std::pair<const char*, const std::string*> dedicated[] = {
      {"teacher.kind", &flags.teacher}, {"prefs.total_labels", &flags.labels}, {"run.total_steps", &flags.steps},
      {"run.seed", &flags.seed}, {"run.threads", &flags.threads}, {"server.host", &flags.host},
      {"server.port", &flags.port}, {"server.token", &flags.token}};
  for (const auto& [key, value] : dedicated) if (!value->empty()) config_set(cfg, key, *value);
  register_task_for(cfg);
  cfg.validate();
  // What would change.
  nlohmann::json changes = nlohmann::json::object();
  {
    const auto before = config_list(archived), after = config_list(cfg);
    for (size_t i = 0; i < before.size() && i < after.size(); ++i) {
      if (before[i].value == after[i].value) continue;
      if (before[i].key == "env.name" || before[i].key == "env.num_envs")
        throw UsageError("--resume: " + before[i].key + " cannot change when resuming (it is " + before[i].value +
                         " in the checkpoints)");
      if (!override_config)
        throw UsageError("--resume: " + before[i].key + " would change from " + before[i].value + " to " +
                         after[i].value + "; the archived config is used unless --override is given");
      changes[before[i].key] = {{"from", before[i].value}, {"to", after[i].value}};
    }
  }
  // Refuse before touching anything: a run still running, a finished one, a foreign database.
  const RunInfo info = load_run(dir);
  if (info.status == "running")
    throw UsageError("--resume: run '" + dir + "' is still running (" +
                     info.summary.value("process", nlohmann::json::object()).value("pid", nlohmann::json(0)).dump() +
                     "); stop it first");
  if (info.status == "finished" && changes.empty())
    throw UsageError("--resume: run '" + dir + "' has finished; nothing to resume (a larger budget needs --steps N "
                     "--override)");
  if (std::filesystem::exists(run.file("prefs.db"))) {
    // A foreign file is refused by the store (UsageError); a damaged one here, before any write.
    std::string verdict;
    try {
      verdict = open_pref_store(sqlite_store_url(run.file("prefs.db")))->integrity_check();
    } catch (const RuntimeError& e) {
      verdict = e.what();
    }
    if (verdict != "ok") {
      for (char& c : verdict) if (c == '\n') c = ';';
      throw UsageError("--resume: preference database '" + run.file("prefs.db") + "' is corrupt (" + verdict +
                       "); it is left as it is: restore it from a backup, or move it away to resume without its labels");
    }
  }
  // Record, then train.
  nlohmann::json record = {{"at", utc_now()}, {"command", command}, {"previous_status", info.status},
                           {"overrides", changes}};
  {
    std::ofstream f(run.file("resumes.jsonl"), std::ios::app);
    f << record.dump() << "\n";
    if (!f.flush()) throw RuntimeError("cannot write '" + run.file("resumes.jsonl") + "'");
  }
  if (!changes.empty()) run.write_json("config.json", archive_task(cfg, run));
  RunLog log;
  log.open(run.file("log.txt"));
  log.line("prefrl: resuming " + dir + " (was " + info.status + ")" + (changes.empty() ? "" : "; overrides: " + changes.dump()));
  return run_training(cfg, run, log, true);
}

int cmd_train(const ConfigFlags& flags, const std::string& run_dir_flag, const std::string& runs_root,
              int argc, char** argv) {
  if (flags.env.empty() && flags.task.empty() && flags.env_cmd.empty())
    throw UsageError("--env, --task or --env-cmd is required (or --resume RUN_DIR)");
  TrainConfig cfg = flags.resolve();
  const std::string path = !run_dir_flag.empty()
                               ? run_dir_flag
                               : runs_root + "/" + default_run_name(cfg.env.name, cfg.teacher.kind, cfg.run.seed);
  return start_run(cfg, path, quote_args(argc, argv));
}

// Re-runs an archived run (same config, same seed) into a new directory and compares the two
// metrics files, as the determinism test does.
int cmd_reproduce(const std::string& run_arg, const std::string& root, const std::string& run_dir_flag, int argc,
                  char** argv) {
  const RunInfo orig = resolve_run(run_arg, root);
  TrainConfig cfg;
  config_from_json(cfg, with_task_registered(migrated_config(orig.config), orig.path));
  if (cfg.teacher.kind == "human")
    throw UsageError("run '" + orig.path + "' was labeled by people (teacher.kind=human); only runs with a scripted "
                     "teacher (oracle, B-Pref's, script) can be reproduced");
  cfg.validate();
  const std::string parent = std::filesystem::path(orig.path).parent_path().string();
  const std::string path = !run_dir_flag.empty()
                               ? run_dir_flag
                               : (parent.empty() ? "." : parent) + "/" + std::filesystem::path(orig.path).filename().string() +
                                     "-repro-" + utc_now("%Y%m%d-%H%M%S");
  std::vector<std::string> notes;
  const std::string commit = orig.meta.value("git_commit", std::string("?"));
  if (commit != PREFRL_GIT_COMMIT || orig.meta.value("git_dirty", false) || PREFRL_GIT_DIRTY)
    notes.push_back(fmt::format("the run was built from commit {}{}, this prefrl from {}{}: metrics may differ",
                                commit, orig.meta.value("git_dirty", false) ? " (dirty)" : "", PREFRL_GIT_COMMIT,
                                PREFRL_GIT_DIRTY ? " (dirty)" : ""));
  if (cfg.run.threads > 1)
    notes.push_back(fmt::format("run.threads = {}: LibTorch's parallel reductions need not be bit-identical", cfg.run.threads));
  if (orig.status != "finished") notes.push_back("the original run is " + orig.status + ", not finished");
  for (const auto& n : notes) std::cout << "prefrl reproduce: note: " << n << "\n";
  std::cout << "prefrl reproduce: re-running " << orig.path << " (" << cfg.env.name << ", seed " << cfg.run.seed
            << ") into " << path << std::endl;
  const int rc = start_run(cfg, path, quote_args(argc, argv));
  const MetricsComparison c = compare_metrics(orig.path + "/metrics.jsonl", path + "/metrics.jsonl");
  const RunInfo again = load_run(path);
  std::cout << fmt::format("prefrl reproduce: final return {} (original {}), labels {} (original {})\n",
                           fmt_num(again.final_return()), fmt_num(orig.final_return()), again.labels(), orig.labels());
  if (c.agree) {
    std::cout << fmt::format("prefrl reproduce: metrics agree: all {} lines identical (wall-clock fields and "
                             "machine-measuring series excluded)\n", c.lines_a);
    return rc;
  }
  std::cout << fmt::format("prefrl reproduce: metrics DIFFER at line {} of {} / {} compared:\n  original:     {}\n"
                           "  reproduction: {}\n",
                           c.first_difference + 1, c.lines_a, c.lines_b, c.line_a.empty() ? "(end)" : c.line_a,
                           c.line_b.empty() ? "(end)" : c.line_b);
  return 1;
}

std::string self_binary() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw RuntimeError("cannot find the prefrl binary (/proc/self/exe): " + ec.message());
  return p.string();
}

int cmd_sweep(const ConfigFlags& flags, int seeds, int64_t seed_start, int jobs, double threshold_flag,
              const std::string& sweep_dir_flag, const std::string& runs_root, int argc, char** argv) {
  // Resolve (and so validate) the config of every seed before any work.
  TrainConfig cfg;
  for (int k = 0; k < seeds; ++k) {
    ConfigFlags f = flags;
    f.seed = std::to_string(seed_start + k);
    cfg = f.resolve();
  }
  if (cfg.teacher.kind == "human")
    throw UsageError("a sweep needs a scripted teacher (oracle, one of B-Pref's, or script), not --teacher human");
  if (!env_spec(cfg.env.name).has_true_reward && !std::isnan(threshold_flag))
    throw UsageError("--threshold: task '" + cfg.env.name + "' has no true reward, so no seed has a return to pass it");
  const double threshold = std::isnan(threshold_flag) ? default_pass_threshold(cfg.env.name) : threshold_flag;
  SweepPlan plan;
  plan.binary = self_binary();
  plan.dir = !sweep_dir_flag.empty() ? sweep_dir_flag : runs_root + "/" + default_sweep_name(cfg.env.name, cfg.teacher.kind);
  plan.env = cfg.env.name;
  plan.task = cfg.env.task;
  plan.env_cmd = cfg.env.cmd;
  for (int k = 0; k < seeds; ++k) plan.seeds.push_back(seed_start + k);
  plan.jobs = jobs;
  plan.threshold = threshold;
  plan.train_args = flags.forwarded();
  plan.command = quote_args(argc, argv);
  std::cout << fmt::format("prefrl sweep: {} seeds of {} ({}..{}), {} at a time, into {}", seeds, cfg.env.name,
                           seed_start, seed_start + seeds - 1, jobs, plan.dir)
            << std::endl;
  const nlohmann::json record = run_sweep(plan);
  std::cout << sweep_summary_text(record["figures"]);
  std::cout << "prefrl sweep: " << plan.dir << "/sweep.json, report " << plan.dir << "/report.html\n";
  return record["figures"]["n_finished"].get<int>() == seeds ? 0 : 1;
}

int cmd_report(const std::string& target, const std::string& root, const std::string& out_flag) {
  std::string dir = target;
  if (!std::filesystem::is_directory(dir) && std::filesystem::is_directory(root + "/" + target)) dir = root + "/" + target;
  if (!std::filesystem::is_directory(dir))
    throw UsageError("no run or sweep '" + target + "' (neither a directory nor one under '" + root + "')");
  const std::string out = out_flag.empty() ? dir + "/report.html" : out_flag;
  write_report(dir, out);
  std::cout << "prefrl report: wrote " << out << "\n";
  return 0;
}

TrainConfig load_run_config(const RunDir& run) {
  TrainConfig cfg;
  config_from_json(cfg, read_run_config(run));
  return cfg;
}

// Mean r̂ per step over all evaluated steps (episodes of different lengths weighted by length).
double predicted_per_step(const EvalResult& r) {
  double sum = 0, steps = 0;
  for (size_t e = 0; e < r.predicted_returns.size(); ++e) {
    sum += r.predicted_returns[e];
    steps += r.lengths[e];
  }
  return steps > 0 ? sum / steps : std::nan("");
}

int cmd_eval(const std::string& run_path, const std::string& exported, int episodes, int64_t seed, bool json,
             bool stochastic, const std::string& trace_path, const std::string& reward_from) {
  if (run_path.empty() == exported.empty()) throw UsageError("give a run directory or --exported BUNDLE (one of them)");
  TrainConfig cfg;
  std::unique_ptr<ActingPolicy> agent;
  std::unique_ptr<RewardModel> reward_model;
  StepReward reward;
  if (!exported.empty()) {  // the bundle's TorchScript modules, not the training code
    const Bundle b = load_bundle(exported);
    config_from_json(cfg, migrated_config(b.card.at("config")));
    register_task_for(cfg);
    agent = bundle_policy(b);
    reward = bundle_reward(b);
  } else {
    std::unique_ptr<Agent> a = load_run_policy(run_path, std::min(episodes, 8), &cfg);
    // LibTorch's operators, as an exported policy computes (the same returns as eval --exported).
    if (auto* p = dynamic_cast<PPOAgent*>(a.get())) p->use_libtorch_ops();
    agent = std::move(a);
    TrainConfig libtorch = cfg;  // r̂ through LibTorch's operators too, as the exported reward module
    libtorch.reward.fast_mlp = false;
    reward_model = load_run_reward(run_path, libtorch);
  }
  std::ofstream trace;
  if (!trace_path.empty()) {
    trace.open(trace_path);
    if (!trace) throw UsageError("cannot write trace file '" + trace_path + "'");
  }
  // r̂ of the run's own reward model, or of another run's (how a reward model ranks policies
  // it was not trained beside: an expert's episodes against its own run's).
  if (!reward_from.empty()) {
    reward_model = load_other_run_reward(reward_from, cfg.env.name);
    reward = nullptr;
  }
  if (reward_model) {
    RewardModel* m = reward_model.get();
    reward = [m](const float* obs, const float* act, int64_t n, float* out) { m->predict(obs, act, n, out); };
  }
  EvalResult r = evaluate_policy(*agent, cfg.env.name, episodes, static_cast<uint64_t>(seed), !stochastic,
                                 trace_path.empty() ? nullptr : &trace, reward);
  if (!trace_path.empty()) {
    trace.close();
    if (!trace) throw UsageError("writing trace file '" + trace_path + "' failed");
  }
  const double mean_length = r.mean_length();
  const std::string no_return = "the task has no true reward";
  if (json) {
    nlohmann::json j = {{"episodes", r.episodes}, {"mean_length", mean_length}, {"lengths", r.lengths}};
    if (r.has_true_reward) {
      j["mean_return"] = r.mean_return;
      j["std_return"] = r.std_return;
      j["returns"] = r.returns;
    } else {
      j["mean_return"] = nullptr;
      j["undefined"] = {{"mean_return", no_return}};
    }
    if (r.has_success) j["success_rate"] = r.success_rate;
    if (!r.predicted_returns.empty()) {
      j["predicted_returns"] = r.predicted_returns;
      j["mean_predicted_return"] = EvalResult::mean(r.predicted_returns);
      j["predicted_per_step"] = predicted_per_step(r);
    }
    for (size_t k = 0; k < r.metric_names.size(); ++k)
      j["metrics"][r.metric_names[k]] = {{"mean", EvalResult::mean(r.metrics[k])},
                                         {"std", EvalResult::stddev(r.metrics[k])}, {"episodes", r.metrics[k]}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << fmt::format("{}: {} episodes, ", cfg.env.name, r.episodes);
    if (r.has_true_reward) std::cout << fmt::format("return {:.2f} ± {:.2f}, ", r.mean_return, r.std_return);
    else std::cout << "no return (" << no_return << "), ";
    std::cout << fmt::format("mean length {:.1f}", mean_length);
    if (r.has_success) std::cout << fmt::format(", success rate {:.2f}", r.success_rate);
    if (!r.predicted_returns.empty())
      std::cout << fmt::format(", predicted return {:.3f} ± {:.3f} ({:.4f} per step{})", EvalResult::mean(r.predicted_returns),
                               EvalResult::stddev(r.predicted_returns), predicted_per_step(r),
                               reward_from.empty() ? "" : ", r̂ of " + reward_from);
    for (size_t k = 0; k < r.metric_names.size(); ++k)
      std::cout << fmt::format(", {} {:.3f} ± {:.3f}", r.metric_names[k], EvalResult::mean(r.metrics[k]),
                               EvalResult::stddev(r.metrics[k]));
    std::cout << "\n";
  }
  return 0;
}

// `prefrl runs verify RUN [--against REF]`: what a crash could have broken, checked.
int cmd_runs_verify(const std::string& run_arg, const std::string& root, const std::string& against) {
  const RunInfo info = resolve_run(run_arg, root);
  TrainConfig cfg;
  config_from_json(cfg, with_task_registered(migrated_config(info.config), info.path));
  int problems = 0;
  auto problem = [&](const std::string& what) {
    std::cout << "PROBLEM: " << what << "\n";
    ++problems;
  };
  // Checkpoints: each file against the manifest, then loaded as a resume loads it.
  const std::vector<std::string> dirs = list_checkpoints(info.path + "/checkpoints");
  int loaded = 0;
  for (const auto& d : dirs) {
    std::string why;
    const std::optional<Checkpoint> c = verify_checkpoint(d, &why);
    if (!c) { problem("checkpoint " + why); continue; }
    try {
      check_checkpoint(cfg, *c);
      ++loaded;
    } catch (const std::exception& e) {
      problem(std::string("checkpoint does not load: ") + e.what());
    }
  }
  std::cout << fmt::format("checkpoints: {} of {} load", loaded, dirs.size());
  if (!dirs.empty())
    std::cout << fmt::format(" ({} .. {})", std::filesystem::path(dirs.front()).filename().string(),
                             std::filesystem::path(dirs.back()).filename().string());
  std::cout << "\n";
  // The database.
  auto db_counts = [&](const std::string& db_path, bool report) {
    const std::unique_ptr<PrefStore> db = open_pref_store(sqlite_store_url(db_path));
    // The run's store: every problem verify() finds; the reference's: only a damaged file.
    if (report) {
      for (const std::string& p : db->verify()) problem(p);
    } else if (const std::string integrity = db->integrity_check(); integrity != "ok") {
      problem("PRAGMA integrity_check of " + db_path + ": " + integrity);
    }
    const PrefStore::Counts c = db->counts();
    std::map<std::string, int64_t> counts;
    counts["labels"] = c.labels;
    counts["queries"] = c.queries;
    counts["clips"] = c.segments;
    // Query selection may pick a pair again in a later round (uninterrupted runs do too): only a
    // difference from --against counts as a problem.
    counts["pairs asked twice"] = c.pairs_asked_twice;
    if (report) {
      std::cout << fmt::format("database: integrity_check {}; {} labels, {} queries, {} clips; {} queries over-answered, "
                               "{} pairs asked twice\n", db->integrity_check(), counts["labels"], counts["queries"],
                               counts["clips"], c.over_answered, counts["pairs asked twice"]);
    }
    return counts;
  };
  const std::string db_path = info.path + "/prefs.db";
  std::map<std::string, int64_t> counts;
  if (!std::filesystem::exists(db_path)) problem("no preference database " + db_path);
  else counts = db_counts(db_path, true);
  // Metric steps: one charts/SPS line per training iteration, every num_envs x num_steps steps.
  const MetricSeries series = read_metrics(info.path + "/metrics.jsonl");
  const auto it = series.find("charts/SPS");
  const int64_t every = static_cast<int64_t>(cfg.env.num_envs) * cfg.rollout_steps();
  if (it == series.end() || it->second.empty()) {
    problem("metrics.jsonl has no training iterations");
  } else {
    const auto& pts = it->second;
    int64_t bad = 0;
    for (size_t k = 1; k < pts.size(); ++k) {
      if (pts[k].step - pts[k - 1].step != every) {
        if (bad++ == 0)
          problem(fmt::format("metric steps jump from {} to {} (iterations are {} steps apart)", pts[k - 1].step,
                              pts[k].step, every));
      }
    }
    std::cout << fmt::format("metrics: {} iterations at steps {}..{}, every {} steps: {}\n", pts.size(),
                             pts.front().step, pts.back().step, every, bad == 0 ? "continuous" : "NOT continuous");
  }
  if (!against.empty()) {
    const RunInfo ref = resolve_run(against, root);
    const MetricsComparison c = compare_metrics(ref.path + "/metrics.jsonl", info.path + "/metrics.jsonl");
    if (std::filesystem::exists(ref.path + "/prefs.db") && !counts.empty()) {
      const auto theirs = db_counts(ref.path + "/prefs.db", false);
      for (const auto& [what, n] : counts) {
        if (theirs.at(what) != n) problem(fmt::format("{} {}, {} has {}", n, what, ref.path, theirs.at(what)));
      }
      if (theirs == counts) std::cout << fmt::format("against {}: the same numbers of labels, queries and clips\n", ref.path);
    }
    if (c.agree) {
      std::cout << fmt::format("against {}: metrics agree: all {} lines identical (wall-clock fields and "
                               "machine-measuring series excluded)\n", ref.path, c.lines_a);
    } else {
      problem(fmt::format("metrics differ from {} at line {} of {} / {}:\n  {}\n  {}", ref.path,
                          c.first_difference + 1, c.lines_a, c.lines_b, c.line_a, c.line_b));
    }
  }
  std::cout << (problems == 0 ? "verify: ok\n" : fmt::format("verify: {} problems\n", problems));
  return problems == 0 ? 0 : 1;
}

// Blocks SIGINT and SIGTERM (call before any thread starts) => the set, for wait_for_stop.
sigset_t block_stop_signals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  return stop;
}

// Waits for one of the blocked stop signals, or until done() (polled every 200 ms).
template <class Done>
void wait_for_stop(const sigset_t& stop, Done done) {
  const timespec poll = {0, 200 * 1000 * 1000};
  while (sigtimedwait(&stop, nullptr, &poll) <= 0 && !done()) {}
}

// Serves the run dashboard for every run and sweep under root until SIGINT/SIGTERM.
int cmd_runs_serve(const std::string& root, const std::string& host, const std::string& port, const std::string& token) {
  TrainConfig cfg;
  if (!host.empty()) config_set(cfg, "server.host", host);
  if (!port.empty()) config_set(cfg, "server.port", port);
  if (!token.empty()) config_set(cfg, "server.token", token);
  if (!std::filesystem::is_directory(root)) throw UsageError("runs root '" + root + "' is not a directory");
  const sigset_t stop = block_stop_signals();
  LabelServer server(cfg.server, "", "", "", std::filesystem::absolute(root).string());
  server.start();
  std::cout << "prefrl runs serve: the runs under " << root << " at " << server.runs_url() << std::endl;
  wait_for_stop(stop, [] { return false; });
  server.stop();
  return 0;
}

// Serves a run's pending queries to people, with no training, until SIGINT/SIGTERM (or, with
// --exit-when-done, until no query is pending).
int cmd_label(const std::string& run_path, const std::string& host, const std::string& port,
              const std::string& token, bool exit_when_done) {
  RunDir run = RunDir::open(run_path);
  TrainConfig cfg = load_run_config(run);
  if (!host.empty()) config_set(cfg, "server.host", host);
  if (!port.empty()) config_set(cfg, "server.port", port);
  if (!token.empty()) config_set(cfg, "server.token", token);
  const std::string db_path = run.file("prefs.db");
  if (!std::filesystem::exists(db_path)) throw UsageError("run '" + run_path + "' has no preference database (" + db_path + ")");
  const sigset_t stop = block_stop_signals();  // before any thread starts
  const std::filesystem::path run_abs = std::filesystem::absolute(run.path());
  LabelServer server(cfg.server, sqlite_store_url(db_path), cfg.env.name, run_abs.filename().string(), run_abs.parent_path().string());
  server.start();
  const std::unique_ptr<PrefStore> store = open_pref_store(sqlite_store_url(db_path));
  PrefStore& db = *store;
  server.publish({{"phase", "labeling only"}});
  std::cout << fmt::format("prefrl label: {} pending queries of run {} ({}); labeling page: {}", db.count_pending(),
                           run.path(), cfg.env.name, server.url())
            << std::endl;
  wait_for_stop(stop, [&] { return exit_when_done && db.count_pending() == 0; });
  server.stop();
  std::cout << fmt::format("prefrl label: stopped; {} labels in {}, {} queries pending", db.count_labels(), db_path,
                           db.count_pending())
            << std::endl;
  return 0;
}

int cmd_env_list() {
  std::cout << fmt::format("{:<24} {:<34} {:<20} {:<22} {}\n", "name", "reference", "observation", "action", "time limit");
  for (const auto& name : env_names()) {
    EnvSpec s = env_spec(name);
    std::cout << fmt::format("{:<24} {:<34} {:<20} {:<22} {}\n", name, s.reference,
                             (s.pixels ? "pixels " : "") + shape_str(s.observation.shape), space_str(s.action),
                             s.max_episode_steps);
  }
  return 0;
}

nlohmann::json obs_json(const std::vector<float>& obs) {
  nlohmann::json a = nlohmann::json::array();
  for (float x : obs) a.push_back(x);
  return a;
}

int cmd_env_replay(const std::string& env_name, const std::string& state_json, const std::string& actions_file,
                   int elapsed) {
  auto env = make_env(env_name);
  const EnvSpec& spec = env->spec();
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(state_json);
  } catch (const std::exception&) {
    throw UsageError("--state must be a JSON array of " + std::to_string(spec.state_size) + " numbers, got '" +
                     state_json + "'");
  }
  if (!state.is_array() || static_cast<int>(state.size()) != spec.state_size) {
    throw UsageError("--state for " + env_name + " must be a JSON array of " + std::to_string(spec.state_size) +
                     " numbers, got " + state.dump());
  }
  std::vector<double> s;
  for (const auto& x : state) {
    if (!x.is_number()) throw UsageError("--state entries must be numbers, got " + x.dump());
    s.push_back(x.get<double>());
  }
  std::ifstream f(actions_file);
  if (!f) throw UsageError("cannot read actions file '" + actions_file + "'");
  nlohmann::json actions;
  try {
    actions = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw UsageError("actions file '" + actions_file + "' is not valid JSON: " + e.what());
  }
  if (!actions.is_array()) throw UsageError("actions file '" + actions_file + "' must hold a JSON array of actions");
  const int64_t A = spec.action.discrete ? 1 : spec.action.numel();
  std::vector<float> obs(spec.observation.numel()), act(A);
  // Validate every action before stepping, so a bad file prints nothing but the error.
  for (size_t k = 0; k < actions.size(); ++k) {
    const auto& a = actions[k];
    const bool ok = a.is_number() ? A == 1
                                  : a.is_array() && static_cast<int64_t>(a.size()) == A &&
                                        std::all_of(a.begin(), a.end(), [](const auto& x) { return x.is_number(); });
    if (!ok) {
      throw UsageError(fmt::format("action {} in '{}' is {}; expected {}", k, actions_file, a.dump(),
                                   spec.action.discrete ? fmt::format("an integer in [0, {})", spec.action.n)
                                                        : fmt::format("an array of {} numbers", A)));
    }
    if (spec.action.discrete) {
      const double v = a.is_number() ? a.get<double>() : a[0].get<double>();
      if (v != std::floor(v) || v < 0 || v >= spec.action.n) {
        throw UsageError(fmt::format("action {} in '{}' is {}; expected an integer in [0, {})", k, actions_file,
                                     a.dump(), spec.action.n));
      }
    }
  }
  env->set_state(s, obs.data());
  env->set_elapsed_steps(elapsed);
  for (const auto& a : actions) {
    if (a.is_number()) act[0] = a.get<float>();
    else for (int64_t j = 0; j < A; ++j) act[j] = a[j].get<float>();
    StepResult r = env->step(act.data(), obs.data());
    nlohmann::ordered_json line;
    line["obs"] = obs_json(obs);
    line["reward"] = r.reward;
    line["terminated"] = r.terminated;
    line["truncated"] = r.truncated;
    std::cout << line.dump() << "\n";
  }
  return 0;
}

int cmd_env_render(RenderVideoOptions opts, const std::string& size) {
  parse_size(size, &opts.width, &opts.height);
  const RenderVideoResult r = render_video(opts);
  std::cout << fmt::format("{}: {} frames at {:g} fps ({} episode{}, {}) => {}\n", opts.env, r.frames, r.fps,
                           r.episodes, r.episodes == 1 ? "" : "s", r.codec, opts.out);
  return 0;
}

int cmd_presets() {
  for (const auto& p : presets()) {
    std::cout << fmt::format("{}  (env {})\n  {}\n", p.name, p.env, p.description);
    for (const auto& s : p.settings) std::cout << "    " << s << "\n";
  }
  return 0;
}

}  // namespace

namespace {

// A subcommand's action, run when the command line chose it.
using Commands = std::vector<std::pair<CLI::App*, std::function<int()>>>;

// `train` (and `train --resume`).
void add_train_command(CLI::App& app, Commands& cmds, int argc, char** argv) {
  struct State {
    ConfigFlags flags;
    std::string run_dir, runs_root = "runs", resume_dir;
    bool resume_override = false;
  };
  auto st = std::make_shared<State>();
  auto* cmd = app.add_subcommand("train", "train a policy from preferences (scripted teacher or people in a browser)");
  st->flags.add_to(cmd, ConfigFlags::kTrain);
  auto* rd = cmd->add_option("--run-dir", st->run_dir, "directory for this run (must not hold a run)");
  auto* rr = cmd->add_option("--runs-root", st->runs_root, "parent of a new, named run directory (default: runs)");
  rd->excludes(rr);
  cmd->footer(
      "Ctrl-C (SIGINT) or SIGTERM: the run checkpoints at the end of its iteration, says where, and exits 130 / 143; "
      "a second signal ends it at once. Killed runs (SIGKILL, power loss) continue from their newest good "
      "checkpoint: prefrl train --resume RUN_DIR. Checkpoints: run.checkpoint_every_s (120), run.checkpoint_every, "
      "run.checkpoint_keep (2).");
  auto* rs = cmd->add_option("--resume", st->resume_dir,
                             "continue a stopped, killed or failed run from its newest good checkpoint, with "
                             "its archived config (checkpoints: docs/run_dir.md)");
  rs->excludes(rd)->excludes(rr);
  cmd->add_flag("--override", st->resume_override,
                "with --resume: let --set, --config and the dedicated flags change the archived config "
                "(recorded in resumes.jsonl)");
  cmds.emplace_back(cmd, [st, argc, argv] {
    if (!st->resume_dir.empty()) return cmd_resume(st->flags, st->resume_dir, st->resume_override, quote_args(argc, argv));
    if (st->resume_override) throw UsageError("--override applies only with --resume RUN_DIR");
    return cmd_train(st->flags, st->run_dir, st->runs_root, argc, argv);
  });
}

// `eval`, `presets`, `label`, `config`.
void add_run_commands(CLI::App& app, Commands& cmds) {
  struct State {
    std::string eval_run, eval_exported, eval_trace, eval_reward_from;
    int eval_episodes = 20;
    int64_t eval_seed = 1000;
    bool eval_json = false, eval_stochastic = false;
    std::string label_run, label_host, label_port, label_token;
    bool label_exit_when_done = false;
    ConfigFlags config_flags;
  };
  auto st = std::make_shared<State>();
  auto* eval_cmd = app.add_subcommand("eval", "evaluate a run's final policy on fresh episodes");
  eval_cmd->add_option("RUN_DIR", st->eval_run, "run directory");
  eval_cmd->add_option("--exported", st->eval_exported,
                       "evaluate an exported bundle (prefrl export) through LibTorch's TorchScript loader instead of "
                       "a run: the same returns as evaluating its run");
  eval_cmd->add_option("--episodes", st->eval_episodes, "episodes")->check(CLI::Range(1, 1000000));
  eval_cmd->add_option("--seed", st->eval_seed, "seed of the evaluation environments")->check(CLI::NonNegativeNumber);
  eval_cmd->add_flag("--json", st->eval_json, "print {\"mean_return\", \"std_return\", \"episodes\", ...} as JSON");
  eval_cmd->add_flag("--stochastic", st->eval_stochastic, "sample actions instead of acting deterministically");
  eval_cmd->add_option("--trace", st->eval_trace,
                       "write one JSON line per step to this file: episode, t, obs, action (as executed), reward, "
                       "terminated, truncated, and predicted (r̂ for the step: the run's learned reward, or --reward-from's)");
  eval_cmd->add_option("--reward-from", st->eval_reward_from,
                       "judge the episodes by this run's final reward model instead of RUN_DIR's own (same "
                       "environment; e.g. an expert policy's episodes by the reward model of a run that failed)");
  cmds.emplace_back(eval_cmd, [st] {
    return cmd_eval(st->eval_run, st->eval_exported, st->eval_episodes, st->eval_seed, st->eval_json,
                    st->eval_stochastic, st->eval_trace, st->eval_reward_from);
  });

  auto ex = std::make_shared<ExportOptions>();
  auto* export_cmd = app.add_subcommand(
      "export", "write a run's policy and reward model as a checked, self-contained bundle (TorchScript, model card)");
  export_cmd->add_option("RUN_DIR", ex->run, "run directory")->required();
  export_cmd->add_option("--out", ex->out, "bundle directory to create (default RUN_DIR/export)");
  export_cmd->add_option("--checkpoint", ex->checkpoint, "export this checkpoint (ckpt-<step>, or latest) instead of the final files");
  export_cmd->add_flag("--force", ex->force, "write the bundle even if a sanity check fails (the card records which)");
  export_cmd->add_option("--min-val-accuracy", ex->min_val_accuracy, "the reward model's held-out accuracy must exceed this")
      ->check(CLI::Range(0.0, 1.0));
  export_cmd->add_option("--check-episodes", ex->check_episodes, "episodes of the final and the initial policy compared")
      ->check(CLI::Range(1, 10000));
  export_cmd->add_option("--parity-steps", ex->parity_steps, "recorded observations the modules are compared on")
      ->check(CLI::Range(1, 1000000));
  cmds.emplace_back(export_cmd, [ex] {
    export_run(*ex, std::cout);
    return 0;
  });

  cmds.emplace_back(app.add_subcommand("presets", "list the tuned presets and their settings"), [] { return cmd_presets(); });

  auto* label_cmd = app.add_subcommand("label", "serve a run's pending queries to people in a browser, without training");
  label_cmd->add_option("RUN_DIR", st->label_run, "run directory")->required();
  label_cmd->add_option("--host", st->label_host, "address to bind (default: the run's server.host)");
  label_cmd->add_option("--port", st->label_port, "port (default: the run's server.port; 0 = any free port)");
  label_cmd->add_option("--token", st->label_token, "access token (generated when the host is not loopback)");
  label_cmd->add_flag("--exit-when-done", st->label_exit_when_done, "stop when no query is pending");
  cmds.emplace_back(label_cmd, [st] {
    return cmd_label(st->label_run, st->label_host, st->label_port, st->label_token, st->label_exit_when_done);
  });

  auto* config_cmd = app.add_subcommand("config", "print every config key: resolved value, doc, range");
  st->config_flags.add_to(config_cmd, ConfigFlags::kTrain);
  cmds.emplace_back(config_cmd, [st] {
    print_config(st->config_flags.resolve(), std::cout);
    return 0;
  });
}

// `runs list|show|compare|verify|serve`, `reproduce`, `report`: the run archive.
void add_archive_commands(CLI::App& app, Commands& cmds, int argc, char** argv) {
  struct State {
    std::string list_root = "runs", show_run, compare_root = "runs", verify_run, verify_against;
    std::vector<std::string> compare_runs;
    bool compare_diff = false;
    std::string serve_root = "runs", serve_host, serve_port, serve_token;
    std::string repro_run, repro_root = "runs", repro_dir;
    std::string report_target, report_root = "runs", report_out;
  };
  auto st = std::make_shared<State>();
  auto* runs_cmd = app.add_subcommand("runs", "archived runs: list, show, compare");
  runs_cmd->require_subcommand(1);
  auto* runs_list = runs_cmd->add_subcommand("list", "table of runs: run, env, teacher, seed, steps, labels, final return, status");
  runs_list->add_option("--root", st->list_root, "directory holding runs and sweeps (default: runs)");
  cmds.emplace_back(runs_list, [st] {
    std::cout << runs_list_text(find_runs(st->list_root));
    return 0;
  });
  auto* runs_show = runs_cmd->add_subcommand("show", "everything about one run: command, build, machine, result, health");
  runs_show->add_option("RUN", st->show_run, "run directory (or its name under --root)")->required();
  runs_show->add_option("--root", st->list_root, "where to look for RUN by name (default: runs)");
  cmds.emplace_back(runs_show, [st] {
    std::cout << run_show_text(resolve_run(st->show_run, st->list_root));
    return 0;
  });
  auto* runs_compare = runs_cmd->add_subcommand("compare", "configs side by side (differing keys marked) and final figures");
  runs_compare->add_option("RUNS", st->compare_runs, "two or more run directories (or names under --root)")->required()->expected(2, -1);
  runs_compare->add_option("--root", st->compare_root, "where to look for runs by name (default: runs)");
  runs_compare->add_flag("--diff", st->compare_diff, "only the keys that differ");
  cmds.emplace_back(runs_compare, [st] {
    std::vector<RunInfo> runs;
    for (const auto& r : st->compare_runs) runs.push_back(resolve_run(r, st->compare_root));
    std::cout << runs_compare_text(runs, st->compare_diff, stdout_is_terminal());
    return 0;
  });
  auto* runs_verify = runs_cmd->add_subcommand(
      "verify", "check what a crash could break: every checkpoint loads, the database is intact with no label "
                "stored twice, metric steps are continuous; --against REF: metrics equal REF's");
  runs_verify->add_option("RUN", st->verify_run, "run directory (or its name under --root)")->required();
  runs_verify->add_option("--against", st->verify_against, "a run whose metrics this one's must equal (same seed, uninterrupted)");
  runs_verify->add_option("--root", st->list_root, "where to look for runs by name (default: runs)");
  cmds.emplace_back(runs_verify, [st] { return cmd_runs_verify(st->verify_run, st->list_root, st->verify_against); });
  auto* runs_serve = runs_cmd->add_subcommand("serve", "serve the run dashboard (/runs: live reports of every run and sweep)");
  runs_serve->add_option("--root", st->serve_root, "directory holding runs and sweeps (default: runs)");
  runs_serve->add_option("--host", st->serve_host, "address to bind (default 127.0.0.1; others need a token)");
  runs_serve->add_option("--port", st->serve_port, "port (default 8765; 0 = any free port)");
  runs_serve->add_option("--token", st->serve_token, "access token (generated when the host is not loopback)");
  cmds.emplace_back(runs_serve, [st] { return cmd_runs_serve(st->serve_root, st->serve_host, st->serve_port, st->serve_token); });

  auto* repro_cmd = app.add_subcommand("reproduce", "re-run an archived run (same config and seed) and check the metrics agree");
  repro_cmd->add_option("RUN", st->repro_run, "run directory (or its name under --root)")->required();
  repro_cmd->add_option("--root", st->repro_root, "where to look for RUN by name (default: runs)");
  repro_cmd->add_option("--run-dir", st->repro_dir, "directory of the new run (default: RUN-repro-<time> beside RUN)");
  cmds.emplace_back(repro_cmd, [st, argc, argv] { return cmd_reproduce(st->repro_run, st->repro_root, st->repro_dir, argc, argv); });

  auto* report_cmd = app.add_subcommand("report", "write a self-contained HTML report of a run or a sweep");
  report_cmd->add_option("RUN_OR_SWEEP", st->report_target, "run or sweep directory (or its name under --root)")->required();
  report_cmd->add_option("--out", st->report_out, "HTML file to write (default: RUN_OR_SWEEP/report.html)");
  report_cmd->add_option("--root", st->report_root, "where to look by name (default: runs)");
  cmds.emplace_back(report_cmd, [st] { return cmd_report(st->report_target, st->report_root, st->report_out); });
}

// `sweep`.
void add_sweep_command(CLI::App& app, Commands& cmds, int argc, char** argv) {
  struct State {
    ConfigFlags flags;
    int seeds = 5, jobs = 1;
    int64_t seed_start = 1;
    double threshold = std::nan("");
    std::string dir, root = "runs";
  };
  auto st = std::make_shared<State>();
  auto* cmd = app.add_subcommand("sweep", "train several seeds (separate processes) and aggregate them into one report");
  st->flags.add_to(cmd, ConfigFlags::kSweep);
  cmd->add_option("--seeds", st->seeds, "number of seeds")->required()->check(CLI::Range(1, 10000));
  cmd->add_option("--seed-start", st->seed_start, "first seed (default 1); seeds are consecutive")
      ->check(CLI::Range(int64_t{0}, int64_t{9000000000000000}));
  cmd->add_option("--jobs", st->jobs, "seeds run at once (default 1)")->check(CLI::Range(1, 256));
  cmd->add_option("--threshold", st->threshold,
                  "a seed passes when its final return reaches this (default: the environment's, e.g. cartpole 475)");
  auto* sd = cmd->add_option("--sweep-dir", st->dir, "directory of the sweep (must not hold one)");
  auto* sr = cmd->add_option("--runs-root", st->root, "parent of a new, named sweep directory (default: runs)");
  sd->excludes(sr);
  cmds.emplace_back(cmd, [st, argc, argv] {
    return cmd_sweep(st->flags, st->seeds, st->seed_start, st->jobs, st->threshold, st->dir, st->root, argc, argv);
  });
}

// `env list|replay|render`.
void add_env_commands(CLI::App& app, Commands& cmds) {
  struct State {
    std::string replay_env, replay_task, replay_cmd, replay_state, replay_actions, render_task, render_cmd;
    int replay_elapsed = 0;
    RenderVideoOptions render_opts;
    std::string render_size = "128x128";
  };
  auto st = std::make_shared<State>();
  auto* env_cmd = app.add_subcommand("env", "environments");
  env_cmd->require_subcommand(1);
  cmds.emplace_back(env_cmd->add_subcommand("list", "list environments with their spaces"), [] { return cmd_env_list(); });
  auto* env_replay = env_cmd->add_subcommand("replay", "set a physical state, apply actions, print one JSON line per step");
  env_replay->add_option("--env", st->replay_env, "environment (or --task)");
  env_replay->add_option("--task", st->replay_task, "a MuJoCo task file (docs/tasks.md) instead of --env");
  env_replay->add_option("--env-cmd", st->replay_cmd, "an external environment's worker command (docs/env_protocol.md) instead of --env");
  env_replay->add_option("--state", st->replay_state,
                         "physical state as a JSON array (MuJoCo environments: qpos ++ qvel)")->required();
  env_replay->add_option("--actions", st->replay_actions, "file holding a JSON array of actions")->required();
  env_replay->add_option("--elapsed", st->replay_elapsed, "steps already taken in the episode (for the time limit)")
      ->check(CLI::NonNegativeNumber);
  cmds.emplace_back(env_replay, [st] {
    ConfigFlags which;
    which.env = st->replay_env;
    which.task = st->replay_task;
    which.env_cmd = st->replay_cmd;
    return cmd_env_replay(which.env_name(), st->replay_state, st->replay_actions, st->replay_elapsed);
  });
  RenderVideoOptions& ro = st->render_opts;
  auto* env_render = env_cmd->add_subcommand("render", "write a video of an environment (a run's policy acting, or random actions)");
  env_render->add_option("--env", ro.env, "environment (or --task, --env-cmd; with --policy, default: the run's)");
  env_render->add_option("--task", st->render_task, "a MuJoCo task file (docs/tasks.md) instead of --env");
  env_render->add_option("--env-cmd", st->render_cmd, "an external environment's worker command (docs/env_protocol.md) instead of --env");
  env_render->add_option("--policy", ro.policy_run, "run directory whose final policy acts (default: random actions)");
  env_render->add_option("--steps", ro.steps, "environment steps; the video has steps + 1 frames")
      ->required()->check(CLI::Range(0, 1000000));
  env_render->add_option("--out", ro.out, "video file: .webm (VP8) or .mp4 (H.264); .png: a contact sheet of 16 frames")->required();
  env_render->add_option("--size", st->render_size, "frame size WIDTHxHEIGHT, even numbers (default 128x128)");
  env_render->add_option("--seed", ro.seed, "seed of the environment and the random actions (default 0)");
  cmds.emplace_back(env_render, [st] {
    ConfigFlags which;
    which.env = st->render_opts.env;
    which.task = st->render_task;
    which.env_cmd = st->render_cmd;
    if (which.env.empty() && which.task.empty() && which.env_cmd.empty() && !st->render_opts.policy_run.empty()) {
      // The run's own environment (its archived task file, or its worker command).
      TrainConfig cfg;
      config_from_json(cfg, read_run_config(RunDir::open(st->render_opts.policy_run)));
      st->render_opts.env = cfg.env.name;
    } else {
      st->render_opts.env = which.env_name();
    }
    return cmd_env_render(st->render_opts, st->render_size);
  });
}

}  // namespace

// `prefs export|import|merge|show`: preference datasets (docs/dataset.md).
void add_prefs_commands(CLI::App& app, Commands& cmds) {
  struct State {
    std::string run, out, dataset, into;
    std::vector<std::string> inputs;
    int frames = 0;
  };
  auto st = std::make_shared<State>();
  auto* prefs = app.add_subcommand("prefs", "preference datasets: a run's clips and answers, to keep, share and reuse");
  prefs->require_subcommand(1);
  auto* ex = prefs->add_subcommand("export", "write a run's clips and answers as a dataset (NumPy .npy + JSON lines)");
  ex->add_option("RUN_DIR", st->run, "run directory")->required();
  ex->add_option("--out", st->out, "dataset directory to create (default RUN_DIR/prefs)");
  ex->add_option("--frames", st->frames, "also write every clip rendered as the labeling page shows it, SIZE x SIZE "
                                         "pixels per frame (clips/frames.npy)")->check(CLI::Range(8, 1024));
  cmds.emplace_back(ex, [st] {
    export_run_prefs(st->run, st->out, std::cout, st->frames);
    return 0;
  });
  auto* im = prefs->add_subcommand("import", "add a dataset's answers (and their clips) to a run's store");
  im->add_option("DATASET", st->dataset, "dataset directory")->required();
  im->add_option("--into", st->into, "run directory (its task must match the dataset's)")->required();
  cmds.emplace_back(im, [st] {
    import_into_run(st->dataset, st->into, std::cout);
    return 0;
  });
  auto* mg = prefs->add_subcommand("merge", "combine datasets of one task (clips by content, answers once each)");
  mg->add_option("DATASETS", st->inputs, "dataset directories")->required()->expected(2, 1000);
  mg->add_option("--out", st->out, "dataset directory to create")->required();
  cmds.emplace_back(mg, [st] {
    std::vector<Dataset> ds;
    for (const std::string& in : st->inputs) ds.push_back(read_dataset(in));
    std::vector<std::string> names;
    for (const std::string& in : st->inputs) names.push_back(std::filesystem::absolute(in).lexically_normal().string());
    Dataset m = merge_datasets(ds, names);
    write_dataset(m, st->out);
    size_t total = 0;
    for (const Dataset& d : ds) total += d.answers.size();
    std::cout << fmt::format("wrote {}: {} answers ({} duplicates left out) about {} clips\n", st->out,
                             m.answers.size(), total - m.answers.size(), m.clip_count());
    return 0;
  });
  auto* sh = prefs->add_subcommand("show", "summarise a dataset: counts, labelers, agreement between labelers");
  sh->add_option("DATASET", st->dataset, "dataset directory")->required();
  cmds.emplace_back(sh, [st] {
    std::cout << describe_dataset(read_dataset(st->dataset));
    return 0;
  });
}

// `reward train`: a reward model trained offline from a preference dataset, as a bundle.
void add_reward_commands(CLI::App& app, Commands& cmds) {
  struct State {
    ConfigFlags flags;
    OfflineRewardOptions o;
    std::string seed;
  };
  auto st = std::make_shared<State>();
  auto* reward = app.add_subcommand("reward", "reward models apart from training a policy");
  reward->require_subcommand(1);
  auto* tr = reward->add_subcommand("train", "train a reward model offline from a preference dataset into a reward bundle "
                                             "(prefrl train --reward-from takes it)");
  tr->add_option("--prefs", st->o.prefs, "the preference dataset (prefrl prefs export)")->required();
  tr->add_option("--out", st->o.out, "the reward bundle directory to create")->required();
  tr->add_option("--rounds", st->o.rounds, "training rounds (each reward.epochs_per_round passes, at most "
                                           "reward.max_updates_per_round updates; default 20)")->check(CLI::Range(1, 100000));
  tr->add_option("--seed", st->seed, "seed of the model's initialisation, split and minibatches (run.seed)");
  st->flags.add_to(tr, ConfigFlags::kConfigOnly);
  tr->footer("The reward.* settings are the environment's preset's (or --preset's), changed by --config and --set; "
             "--env defaults to the dataset's environment.");
  cmds.emplace_back(tr, [st] {
    ConfigFlags flags = st->flags;
    if (flags.env.empty() && flags.task.empty() && flags.env_cmd.empty()) {
      const nlohmann::json meta = read_json_object(st->o.prefs + "/dataset.json", "not a prefrl preference dataset");
      if (!meta.contains("spec") || !meta["spec"].contains("env"))
        throw UsageError(st->o.prefs + "/dataset.json: lacks 'spec'");
      flags.env = meta["spec"]["env"].value("name", "");
    }
    TrainConfig cfg = flags.resolve();
    if (!st->seed.empty()) config_set(cfg, "run.seed", st->seed);
    train_reward_offline(cfg, st->o, std::cout);
    return 0;
  });
}

int cli_main(int argc, char** argv) {
  torch::set_num_threads(1);
  CLI::App app{"prefrl: reinforcement learning from pairwise preferences (Christiano et al. 2017)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(PREFRL_VERSION) + " (" + PREFRL_GIT_COMMIT + ")");
  Commands cmds;
  add_train_command(app, cmds, argc, argv);
  add_run_commands(app, cmds);
  add_archive_commands(app, cmds, argc, argv);
  add_sweep_command(app, cmds, argc, argv);
  add_env_commands(app, cmds);
  add_prefs_commands(app, cmds);
  add_reward_commands(app, cmds);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "prefrl: " << e.what() << " (see --help)\n";
    return 2;
  }

  try {
    for (const auto& [cmd, run] : cmds) {
      if (*cmd) return run();
    }
  } catch (const UsageError& e) {
    std::cerr << "prefrl: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "prefrl: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace prefrl
