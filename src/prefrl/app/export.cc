#include "prefrl/app/export.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <torch/script.h>

#include "prefrl/app/artifacts.h"
#include "prefrl/app/checkpoint.h"
#include "prefrl/app/evaluate.h"
#include "prefrl/app/task_archive.h"
#include "prefrl/app/torchscript.h"
#include "prefrl/app/train_config.h"
#include "prefrl/app/trainer.h"
#include "prefrl/core/error.h"
#include "prefrl/core/npy.h"
#include "prefrl/prefs/sqlite_pref_store.h"
#include "prefrl/rl/policy.h"
#include "prefrl/tracking/run_dir.h"
#include "prefrl/tracking/runs.h"
#include "prefrl/tracking/tensorboard.h"

namespace prefrl {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kCheckSeedOffset = 7919;  // the checks' episodes: apart from training's and eval's seeds

// What is exported: the run's config and the policy and reward files (final, or a checkpoint's).
struct Source {
  RunInfo info;
  TrainConfig cfg;
  std::string policy_file, reward_file;  // reward_file empty: no learned reward model
  std::string from = "final";           // "final" or the checkpoint's directory name
  int64_t step = -1;                    // environment steps of the exported state (-1: unknown)
};

Source resolve_source(const ExportOptions& o) {
  Source s;
  s.info = load_run(o.run);
  if (s.info.status == "running")
    throw UsageError("run '" + o.run + "' is still running" +
                     (s.info.status_detail.empty() ? "" : " (" + s.info.status_detail + ")") +
                     "; export it once it has ended");
  const RunDir run = RunDir::open(o.run);
  config_from_json(s.cfg, read_run_config(run));
  register_task_for(s.cfg);
  const bool learned = s.cfg.run.policy_reward == "learned";
  if (o.checkpoint.empty()) {
    s.policy_file = run.file("checkpoints/policy.pt");
    if (!fs::exists(s.policy_file)) {
      const std::vector<std::string> ckpts = list_checkpoints(run.file("checkpoints"));
      throw UsageError("run '" + o.run + "' has no final policy (" + s.policy_file + ", status " + s.info.status + ")" +
                       (ckpts.empty() ? std::string("and no checkpoint: nothing to export")
                                      : "; export a checkpoint: --checkpoint latest (newest: " +
                                            fs::path(ckpts.back()).filename().string() + ")"));
    }
    if (learned) {
      s.reward_file = run.file("checkpoints/reward.pt");
      if (!fs::exists(s.reward_file)) throw UsageError("run '" + o.run + "' has no final reward model (" + s.reward_file + ")");
    }
    if (s.info.summary.contains("env_steps") && s.info.summary["env_steps"].is_number())
      s.step = s.info.summary["env_steps"].get<int64_t>();
    return s;
  }
  std::string name = o.checkpoint;
  if (name == "latest") {
    const std::string latest = run.file("checkpoints/latest");
    if (!fs::exists(latest)) throw UsageError("run '" + o.run + "' has no checkpoint (" + latest + " is missing)");
    std::ifstream in(latest);
    std::getline(in, name);
  }
  const std::string dir = fs::path(name).is_absolute() ? name : run.file("checkpoints/" + name);
  if (!fs::is_directory(dir)) throw UsageError("checkpoint '" + dir + "' does not exist");
  std::string problem;
  const std::optional<Checkpoint> c = verify_checkpoint(dir, &problem);
  if (!c) throw UsageError("checkpoint '" + dir + "': " + problem);
  s.policy_file = c->file("policy.pt");
  if (learned) s.reward_file = c->file("reward.pt");
  s.from = fs::path(dir).filename().string();
  s.step = c->step;
  return s;
}

// Observations the final policy meets acting deterministically (one env, episodes back to
// back from a fixed seed), and its actions (unclipped, as act() gives them).
struct Recording {
  int64_t n = 0;
  std::vector<float> obs, actions;  // (n x D), (n x A)
};

Recording record(PPOAgent& agent, const std::string& env_name, int steps, uint64_t seed) {
  const std::unique_ptr<Env> env = make_env(env_name);
  const EnvSpec& spec = env->spec();
  const int64_t D = spec.observation.numel(), A = spec.action.numel();
  env->seed(seed);
  std::vector<float> obs(D), act(A), executed(A);
  env->reset(obs.data());
  Recording r;
  for (int t = 0; t < steps; ++t) {
    agent.act(obs.data(), 1, act.data(), true);
    r.obs.insert(r.obs.end(), obs.begin(), obs.end());
    r.actions.insert(r.actions.end(), act.begin(), act.end());
    ++r.n;
    executed = act;
    clip_actions(spec.action, executed.data(), 1);
    const StepResult s = env->step(executed.data(), obs.data());
    if (s.terminated || s.truncated) env->reset(obs.data());
  }
  return r;
}

torch::Tensor blob(std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::from_blob(v.data(), shape, torch::kFloat32);
}

// max over elements of |a - b| / max(1, |b|).
double relative_gap(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return INFINITY;
  if (a.numel() == 0) return 0.0;
  return ((a - b).abs() / b.abs().clamp_min(1.0)).max().item<double>();
}

bool all_finite(const torch::jit::Module& m) {
  for (const torch::Tensor& p : m.parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  for (const torch::Tensor& b : m.buffers())
    if (b.is_floating_point() && !torch::isfinite(b).all().item<bool>()) return false;
  return true;
}

// The reward model's held-out accuracy at the exported state: the summary's at the end of the
// run, else the last value in metrics.jsonl at or before the checkpoint's step.
std::optional<double> val_accuracy(const Source& s) {
  if (s.from == "final") {
    const auto& j = s.info.summary;
    if (j.contains("val_accuracy") && j["val_accuracy"].is_number()) return j["val_accuracy"].get<double>();
  }
  std::ifstream in(RunDir::open(s.info.path).file("metrics.jsonl"));
  std::optional<double> last;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("reward/val_accuracy") == std::string::npos) continue;
    const nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
    if (r.is_discarded() || r.value("name", "") != "reward/val_accuracy" || !r["value"].is_number()) continue;
    if (s.step >= 0 && r.value("step", int64_t{0}) > s.step) break;
    last = r["value"].get<double>();
  }
  return last;
}

std::string card_time_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Labels of the run's database by teacher and by labeler (used ones: what the model learned from).
nlohmann::json label_counts(const Source& s) {
  nlohmann::json j = {{"total", 0}, {"by_teacher", nlohmann::json::object()}, {"by_labeler", nlohmann::json::object()}};
  const std::string db = RunDir::open(s.info.path).file("prefs.db");
  if (!fs::exists(db)) return j;
  SqlitePrefStore store(db);
  for (const Label& l : store.labels()) {
    j["total"] = j["total"].get<int64_t>() + 1;
    j["by_teacher"][l.teacher] = j["by_teacher"].value(l.teacher, int64_t{0}) + 1;
    j["by_labeler"][l.labeler] = j["by_labeler"].value(l.labeler, int64_t{0}) + 1;
  }
  return j;
}

// Everything compared between prefrl and the exported modules, and the checks' verdicts.
struct Verdict {
  std::vector<ExportCheck> checks;
  nlohmann::json evaluation = nlohmann::json::object();
};

// The final policy against the run's initial one, on the true return (or, with no true
// reward, the learned return), over the same episodes.
ExportCheck improvement_check(const ExportOptions& o, const Source& s, PPOAgent& agent, RewardModel* reward, Verdict* v) {
  const EnvSpec& spec = env_spec(s.cfg.env.name);
  if (!spec.has_true_reward && !reward) {
    ExportCheck c{"policy improved on the initial one"};
    c.detail = "no true reward and no reward model to compare the policies by";
    return c;
  }
  std::unique_ptr<Agent> initial = initial_agent(s.cfg, 1);
  const uint64_t seed = static_cast<uint64_t>(s.cfg.run.seed) + kCheckSeedOffset;
  const EvalResult fin = evaluate_policy(agent, s.cfg.env.name, o.check_episodes, seed, true, nullptr, reward);
  const EvalResult ini = evaluate_policy(*initial, s.cfg.env.name, o.check_episodes, seed, true, nullptr, reward);
  const bool by_truth = spec.has_true_reward;
  const ExportCheck c = check_improvement(by_truth ? fin.mean_return : EvalResult::mean(fin.predicted_returns),
                                          by_truth ? ini.mean_return : EvalResult::mean(ini.predicted_returns),
                                          by_truth ? "true return" : "learned return", o.check_episodes);
  v->evaluation["check"] = c.figures;
  return c;
}

// model_card.json's human-readable twin.
std::string card_markdown(const nlohmann::json& card) {
  std::ostringstream md;
  md << "# Model card: " << card["env"]["name"].get<std::string>() << " (prefrl run "
     << fs::path(card["run"].get<std::string>()).filename().string() << ")\n\n"
     << "Exported " << card["created_at"].get<std::string>() << " from the run's " << card["source"].get<std::string>()
     << " state (" << card["env_steps"].dump() << " environment steps), seed " << card["seed"].dump() << ", config CRC-32C "
     << card["config_crc32c"].get<std::string>() << ", prefrl " << card["build"].value("prefrl_version", "?") << " ("
     << card["build"].value("git_commit", "?") << ").\n\n"
     << "## Task\n\n"
     << "- environment: `" << card["env"]["name"].get<std::string>() << "`"
     << (card["env"].value("reference", "").empty() ? "" : " (" + card["env"].value("reference", "") + ")") << "\n"
     << "- observation space: " << card["env"]["observation"].dump() << "\n"
     << "- action space: " << card["env"]["action"].dump() << "\n"
     << "- time limit: " << card["env"]["max_episode_steps"].dump() << " steps at " << card["env"]["fps"].dump()
     << " steps/s" << (card["env"].contains("frame_skip") ? ", frame skip " + card["env"]["frame_skip"].dump() : "")
     << "\n\n## Files\n\n"
     << "- `policy.pt`: TorchScript; `forward(obs)` gives the distribution's parameters and the value, `act(obs)` "
        "the deterministic action (batch first; observation normalisation inside)\n";
  if (card.contains("reward_model") && !card["reward_model"].is_null())
    md << "- `reward.pt`: TorchScript; `forward(obs, action=None)` gives r̂ as the policy was given it, `members(obs, "
          "action=None)` each member's normalised output\n";
  md << "- `parity/`: the recorded observations and prefrl's outputs on them (NumPy .npy)\n\n"
     << "## Labels\n\n" << card["labels"].dump() << "\n\n"
     << "## Results\n\n" << card["evaluation"].dump(2) << "\n\n" << card["reward"].dump(2) << "\n\n"
     << "Health warnings: " << card["health"].dump() << "\n\n"
     << "## Sanity checks\n\n";
  for (const auto& c : card["checks"])
    md << "- " << (c["passed"].get<bool>() ? "passed" : "**failed**") << ": " << c["name"].get<std::string>() << " — "
       << c["detail"].get<std::string>() << "\n";
  if (!card["forced"].empty()) md << "\nExported with --force despite: " << card["forced"].dump() << "\n";
  return md.str();
}

// The recording as files: observations (bytes for byte spaces), prefrl's actions (clipped, as
// executed), distribution parameters, values and rewards.
void write_parity(const std::string& dir, const EnvSpec& spec, PPOAgent& agent, RewardModel* reward, Recording& rec) {
  fs::create_directories(dir);
  const int64_t K = rec.n;
  std::vector<int64_t> obs_shape = {K};
  for (int64_t d : spec.observation.shape) obs_shape.push_back(d);
  if (spec.observation.dtype == Dtype::kUInt8) {
    std::vector<uint8_t> bytes(rec.obs.size());
    for (size_t k = 0; k < bytes.size(); ++k) bytes[k] = static_cast<uint8_t>(std::lround(rec.obs[k] * 255.0f));
    write_file_synced(dir + "/obs.npy", npy_bytes(NpyType::kUInt8, obs_shape, bytes.data()));
  } else {
    write_file_synced(dir + "/obs.npy", npy_bytes(NpyType::kFloat32, obs_shape, rec.obs.data()));
  }
  const PolicyLayout L = agent.export_parts().layout;
  std::vector<float> head(static_cast<size_t>(K * L.head_dim)), values(static_cast<size_t>(K)),
      acts(static_cast<size_t>(K * L.act_dim));
  agent.forward_heads(rec.obs.data(), static_cast<int>(K), head.data(), values.data());
  agent.act(rec.obs.data(), static_cast<int>(K), acts.data(), true);
  clip_actions(spec.action, acts.data(), static_cast<int>(K));
  write_file_synced(dir + "/actions.npy", npy_bytes(NpyType::kFloat32, {K, L.act_dim}, acts.data()));
  write_file_synced(dir + "/head.npy", npy_bytes(NpyType::kFloat32, {K, L.head_dim}, head.data()));
  write_file_synced(dir + "/value.npy", npy_bytes(NpyType::kFloat32, {K}, values.data()));
  if (!reward) return;
  write_file_synced(dir + "/taken_actions.npy", npy_bytes(NpyType::kFloat32, {K, L.act_dim}, rec.actions.data()));
  std::vector<float> r(static_cast<size_t>(K));
  reward->predict(rec.obs.data(), rec.actions.data(), K, r.data());
  write_file_synced(dir + "/reward.npy", npy_bytes(NpyType::kFloat32, {K}, r.data()));
  const torch::Tensor m = reward->member_rewards(rec.obs.data(), rec.actions.data(), K).contiguous();
  write_file_synced(dir + "/reward_members.npy", npy_bytes(NpyType::kFloat32, {m.size(0), K}, m.data_ptr<float>()));
}

}  // namespace

ExportCheck check_finite(const std::vector<float>& policy_params, const torch::jit::Module* reward_module) {
  ExportCheck c{"parameters finite"};
  int64_t bad = 0;
  for (float x : policy_params) bad += std::isfinite(x) ? 0 : 1;
  const bool reward_ok = !reward_module || all_finite(*reward_module);
  c.passed = bad == 0 && reward_ok;
  c.figures = {{"policy_nonfinite", bad}, {"reward_finite", reward_ok}};
  c.detail = c.passed ? "every parameter and statistic is finite"
                      : fmt::format("{} policy parameters not finite{}", bad, reward_ok ? "" : "; the reward model holds a NaN or infinity");
  return c;
}

ExportCheck check_improvement(double final_value, double initial_value, const std::string& by, int episodes) {
  ExportCheck c{"policy improved on the initial one"};
  c.passed = std::isfinite(final_value) && std::isfinite(initial_value) && final_value > initial_value;
  c.figures = {{"by", by}, {"episodes", episodes}, {"final", final_value}, {"initial", initial_value}};
  c.detail = fmt::format("mean {} over {} episodes: final {:.3f}, initial {:.3f}", by, episodes, final_value, initial_value);
  return c;
}

ExportCheck check_val_accuracy(std::optional<double> accuracy, double threshold) {
  ExportCheck c{"reward validation accuracy"};
  c.passed = accuracy && *accuracy > threshold;
  c.figures = {{"val_accuracy", accuracy ? nlohmann::json(*accuracy) : nlohmann::json(nullptr)}, {"threshold", threshold}};
  c.detail = accuracy ? fmt::format("{:.3f} on held-out labels (must exceed {:.2f})", *accuracy, threshold)
                      : "the run recorded no validation accuracy";
  return c;
}

ExportCheck check_act_deterministic(torch::jit::Module& policy, const torch::Tensor& obs) {
  torch::NoGradGuard no_grad;
  ExportCheck c{"act deterministic"};
  const torch::Tensor a = policy.run_method("act", obs).toTensor(), b = policy.run_method("act", obs).toTensor();
  c.passed = torch::equal(a, b);
  c.figures = {{"observations", obs.size(0)}};
  c.detail = c.passed ? "act() gave the same actions twice" : "act() gave different actions for the same observations";
  return c;
}

ExportCheck check_policy_parity(torch::jit::Module& policy, PPOAgent& agent, const EnvSpec& spec, const float* obs_in,
                                int64_t n, double tolerance) {
  torch::NoGradGuard no_grad;
  const PolicyParts parts = agent.export_parts();
  const PolicyLayout& L = parts.layout;
  const int K = static_cast<int>(n);
  std::vector<float> obs(obs_in, obs_in + n * L.obs_dim);
  std::vector<float> head(static_cast<size_t>(n) * L.head_dim), values(static_cast<size_t>(n)),
      acts(static_cast<size_t>(n) * L.act_dim);
  agent.forward_heads(obs.data(), K, head.data(), values.data());
  agent.act(obs.data(), K, acts.data(), true);
  clip_actions(spec.action, acts.data(), K);
  const torch::Tensor x = blob(obs, {n, L.obs_dim});
  const c10::IValue forward_out = policy.forward({x});
  const auto& out = forward_out.toTupleRef().elements();
  const torch::Tensor ex_act = policy.run_method("act", x).toTensor();
  const double g_head = relative_gap(out[0].toTensor(), blob(head, {n, L.head_dim}));
  const double g_value = relative_gap(out[out.size() - 1].toTensor(), blob(values, {n}));
  const double g_act = relative_gap(ex_act, blob(acts, {n, L.act_dim}));
  double g_log_std = 0.0;
  if (!L.discrete) {
    std::vector<float> ls(parts.params.begin() + L.log_std, parts.params.begin() + L.log_std + L.head_dim);
    g_log_std = relative_gap(out[1].toTensor(), blob(ls, {1, L.head_dim}).expand({n, L.head_dim}));
  }
  ExportCheck c{"policy reproduces prefrl"};
  c.figures = {{"observations", n}, {"head", g_head}, {"value", g_value}, {"act", g_act}, {"log_std", g_log_std}};
  c.passed = std::max({g_head, g_value, g_act, g_log_std}) <= tolerance;
  c.detail = fmt::format("largest relative gap on {} observations: distribution {:.2g}, value {:.2g}, act {:.2g}{} "
                         "(tolerance {:.0e})",
                         n, g_head, g_value, g_act, L.discrete ? "" : fmt::format(", log-std {:.2g}", g_log_std), tolerance);
  return c;
}

ExportCheck check_reward_parity(torch::jit::Module& reward_module, RewardModel& reward, const float* obs_in,
                                const float* act_in, int64_t n, double tolerance) {
  torch::NoGradGuard no_grad;
  const RewardEncoding e = reward.encoding();
  std::vector<float> obs(obs_in, obs_in + n * e.obs_size), act(act_in, act_in + n * e.act_size);
  std::vector<float> r(static_cast<size_t>(n));
  reward.predict(obs.data(), act.data(), n, r.data());
  const torch::Tensor members = reward.member_rewards(obs.data(), act.data(), n);
  const torch::Tensor o = blob(obs, {n, e.obs_size}), a = blob(act, {n, e.act_size});
  const double g_r = relative_gap(reward_module.forward({o, a}).toTensor(), blob(r, {n}));
  const double g_m = relative_gap(reward_module.run_method("members", o, a).toTensor(), members);
  ExportCheck c{"reward model reproduces prefrl"};
  c.figures = {{"steps", n}, {"reward", g_r}, {"members", g_m}};
  c.passed = std::max(g_r, g_m) <= tolerance;
  c.detail = fmt::format("largest relative gap on {} steps: r̂ {:.2g}, members {:.2g} (tolerance {:.0e})", n, g_r, g_m,
                         tolerance);
  return c;
}

std::string export_run(const ExportOptions& o, std::ostream& log) {
  const Source s = resolve_source(o);
  const std::string out = o.out.empty() ? RunDir::open(o.run).file("export") : o.out;
  if (fs::exists(out)) throw UsageError("'" + out + "' exists; give --out a new directory");
  const EnvSpec& spec = env_spec(s.cfg.env.name);

  std::unique_ptr<Agent> loaded = load_agent(s.policy_file, 1);
  auto* agent = dynamic_cast<PPOAgent*>(loaded.get());
  if (!agent) throw UsageError("'" + s.policy_file + "' holds a '" + loaded->algorithm() + "' agent, which cannot be exported");
  // The reference computations (LibTorch's operators: what prefrl eval runs and the modules
  // call) are what the modules must reproduce; training's hand-written MLP kernels, where it
  // used them, are compared too, for the card (they agree within float rounding, not bit for bit).
  std::unique_ptr<Agent> as_trained_agent = load_agent(s.policy_file, 1);
  agent->use_libtorch_ops();
  TrainConfig libtorch_cfg = s.cfg;
  libtorch_cfg.reward.fast_mlp = false;
  std::unique_ptr<RewardModel> reward = s.reward_file.empty() ? nullptr : load_reward_model(libtorch_cfg, s.reward_file);
  std::unique_ptr<RewardModel> as_trained_reward =
      s.reward_file.empty() ? nullptr : load_reward_model(s.cfg, s.reward_file);
  const PolicyParts parts = agent->export_parts();
  log << "exporting " << s.cfg.env.name << " (" << s.from << ", " << s.step << " steps) from " << o.run << "\n";

  const std::string tmp = out + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    torch::jit::Module pm = policy_module(parts, spec);
    pm.save(tmp + "/policy.pt");
    if (reward) {
      reward->to_torchscript().save(tmp + "/reward.pt");
      fs::copy_file(s.reward_file, tmp + "/reward_state.pt");  // prefrl's own state: train --reward-from BUNDLE
    }

    Verdict v;
    std::optional<torch::jit::Module> rm;
    if (reward) rm = torch::jit::load(tmp + "/reward.pt");
    v.checks.push_back(check_finite(parts.params, rm ? &*rm : nullptr));
    v.checks.push_back(improvement_check(o, s, *agent, reward.get(), &v));
    if (reward) v.checks.push_back(check_val_accuracy(val_accuracy(s), o.min_val_accuracy));
    Recording rec = record(*agent, s.cfg.env.name, o.parity_steps, static_cast<uint64_t>(s.cfg.run.seed) + kCheckSeedOffset);
    {
      torch::jit::Module loaded_policy = torch::jit::load(tmp + "/policy.pt");
      loaded_policy.eval();
      const torch::Tensor obs = blob(rec.obs, {rec.n, parts.layout.obs_dim});
      v.checks.push_back(check_act_deterministic(loaded_policy, obs));
      ExportCheck pc = check_policy_parity(loaded_policy, *agent, spec, rec.obs.data(), rec.n, o.tolerance);
      auto* trained = dynamic_cast<PPOAgent*>(as_trained_agent.get());
      if (trained && trained->uses_fast_mlp()) {
        const ExportCheck k = check_policy_parity(loaded_policy, *trained, spec, rec.obs.data(), rec.n, o.tolerance);
        pc.figures["training_kernels"] = k.figures;
        pc.detail += "; training's hand-written kernels: " + k.detail.substr(k.detail.find(':') + 2);
      }
      v.checks.push_back(pc);
      if (reward) {
        rm->eval();
        ExportCheck rc = check_reward_parity(*rm, *reward, rec.obs.data(), rec.actions.data(), rec.n, o.tolerance);
        if (as_trained_reward->uses_fast_mlp()) {
          const ExportCheck k =
              check_reward_parity(*rm, *as_trained_reward, rec.obs.data(), rec.actions.data(), rec.n, o.tolerance);
          rc.figures["training_kernels"] = k.figures;
          rc.detail += "; training's hand-written kernels: " + k.detail.substr(k.detail.find(':') + 2);
        }
        v.checks.push_back(rc);
      }
    }
    write_parity(tmp + "/parity", spec, *agent, reward.get(), rec);

    nlohmann::json checks = nlohmann::json::array(), forced = nlohmann::json::array();
    std::string refused;
    for (const ExportCheck& c : v.checks) {
      log << (c.passed ? "  passed  " : "  FAILED  ") << c.name << ": " << c.detail << "\n";
      checks.push_back({{"name", c.name}, {"passed", c.passed}, {"detail", c.detail}, {"figures", c.figures}});
      if (!c.passed) {
        forced.push_back(c.name);
        refused += (refused.empty() ? "" : "\n") + std::string("export refused: ") + c.name + ": " + c.detail;
      }
    }
    if (!refused.empty() && !o.force) throw UsageError(refused + "\n(nothing written; --force exports anyway and says so in the card)");

    TrainConfig cfg_copy = s.cfg;
    nlohmann::json config = config_to_json(cfg_copy);
    const std::string config_text = config.dump();  // the hash is of the run's config as it was
    for (auto& [group, keys] : config.items()) {     // secrets (server.token) stay out of the card
      if (!keys.is_object()) continue;
      for (auto& [key, value] : keys.items())
        if (key.size() >= 5 && key.compare(key.size() - 5, 5, "token") == 0 && value.is_string() && !value.get<std::string>().empty())
          value = "(hidden)";
    }
    const nlohmann::json env = env_spec_json(spec, atari_frame_skip(spec.name, s.cfg.atari.frame_skip));
    nlohmann::json summary = s.info.summary;
    nlohmann::json evaluation = v.evaluation;
    if (s.from == "final" && summary.contains("eval")) evaluation["run"] = summary["eval"];
    nlohmann::json reward_figures = nlohmann::json::object();
    for (const char* k : {"val_accuracy", "final_true_corr", "heldout_true_corr"})
      if (summary.contains(k)) reward_figures[k] = summary[k];
    nlohmann::json card = {
        {"format", kBundleFormat}, {"version", kBundleVersion}, {"created_at", card_time_now()},
        {"run", fs::absolute(o.run).lexically_normal().string()}, {"source", s.from}, {"env_steps", s.step},
        {"seed", s.cfg.run.seed}, {"env", env}, {"config", config},
        {"config_crc32c", fmt::format("{:08x}", crc32c(config_text.data(), config_text.size()))},
        {"build", s.info.meta}, {"labels", label_counts(s)}, {"evaluation", evaluation}, {"reward", reward_figures},
        {"health", summary.contains("health") ? summary["health"] : nlohmann::json::object()},
        {"checks", checks}, {"forced", o.force ? forced : nlohmann::json::array()},
        {"policy", {{"algorithm", agent->algorithm()}, {"discrete", parts.layout.discrete}, {"act_dim", parts.layout.act_dim},
                    {"head_dim", parts.layout.head_dim}, {"obs_dim", parts.layout.obs_dim},
                    {"eval_rng_state", parts.eval_rng_state}}},
        {"reward_model", reward ? nlohmann::json{{"members", reward->encoding().members},
                                                 {"uses_action", reward->encoding().act_width > 0},
                                                 {"subtract_absorbing", reward->encoding().subtract_absorbing}}
                                : nlohmann::json(nullptr)}};
    card["files"] = file_manifest(tmp);
    write_file_synced(tmp + "/model_card.json", card.dump(2) + "\n");
    write_file_synced(tmp + "/MODEL_CARD.md", card_markdown(card));
    fs::rename(tmp, out);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  log << "wrote " << out << "\n";
  return out;
}

Bundle load_bundle(const std::string& dir) {
  Bundle b;
  b.dir = dir;
  const std::string card_path = dir + "/model_card.json";
  b.card = read_json_object(card_path, "not a prefrl bundle");
  if (b.card.value("format", "") != kBundleFormat)
    throw UsageError(card_path + ": format '" + b.card.value("format", "") + "', expected '" + kBundleFormat + "'");
  if (b.card.value("version", -1) != kBundleVersion)
    throw UsageError(card_path + ": format version " + b.card.value("version", nlohmann::json(nullptr)).dump() +
                     "; this prefrl reads version " + std::to_string(kBundleVersion));
  if (!b.card.contains("files") || !b.card["files"].is_object() || !b.card.contains("policy") || !b.card.contains("env"))
    throw UsageError(card_path + ": lacks 'files', 'policy' or 'env'");
  check_manifest(dir, b.card["files"], "the card");
  auto load = [&](const std::string& name) {
    try {
      auto m = std::make_shared<torch::jit::Module>(torch::jit::load(dir + "/" + name));
      m->eval();
      return m;
    } catch (const c10::Error& e) {
      throw UsageError(dir + "/" + name + ": not a TorchScript module LibTorch loads (" +
                       std::string(e.what_without_backtrace()) + ")");
    }
  };
  b.policy = load("policy.pt");
  if (b.card["files"].contains("reward.pt")) b.reward = load("reward.pt");
  return b;
}

namespace {

class BundlePolicy final : public ActingPolicy {
 public:
  explicit BundlePolicy(const Bundle& b) : module_(b.policy) {
    const nlohmann::json& p = b.card["policy"];
    layout_.discrete = p.at("discrete").get<bool>();
    layout_.act_dim = p.at("act_dim").get<int>();
    layout_.head_dim = p.at("head_dim").get<int>();
    layout_.obs_dim = p.at("obs_dim").get<int>();
    rng_.set_state(p.at("eval_rng_state").get<std::vector<uint64_t>>());
    if (!layout_.discrete) {
      const torch::Tensor ls = module_->attr("log_std").toTensor().contiguous();
      log_std_.assign(ls.data_ptr<float>(), ls.data_ptr<float>() + ls.numel());
    }
    scratch_.resize(layout_.head_dim);
  }
  void act(const float* obs, int n, float* actions, bool deterministic) override {
    if (n <= 0) return;
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::from_blob(const_cast<float*>(obs), {n, layout_.obs_dim}, torch::kFloat32);
    const c10::IValue out = module_->forward({x});
    const torch::Tensor head = out.toTupleRef().elements()[0].toTensor().contiguous();
    logp_.resize(n);
    choose_actions(layout_, head.data_ptr<float>(), layout_.discrete ? nullptr : log_std_.data(), n, deterministic, rng_,
                   actions, logp_.data(), scratch_.data());
  }

 private:
  std::shared_ptr<torch::jit::Module> module_;
  PolicyLayout layout_;
  Rng rng_{0};
  std::vector<float> log_std_, scratch_, logp_;
};

}  // namespace

std::unique_ptr<ActingPolicy> bundle_policy(const Bundle& b) { return std::make_unique<BundlePolicy>(b); }

std::function<void(const float*, const float*, int64_t, float*)> bundle_reward(const Bundle& b) {
  if (!b.reward) return nullptr;
  const std::shared_ptr<torch::jit::Module> m = b.reward;
  const int64_t D = b.card["policy"]["obs_dim"].get<int64_t>(), A = b.card["policy"]["act_dim"].get<int64_t>();
  return [m, D, A](const float* obs, const float* act, int64_t n, float* out) {
    torch::NoGradGuard no_grad;
    const torch::Tensor o = torch::from_blob(const_cast<float*>(obs), {n, D}, torch::kFloat32);
    const torch::Tensor a = torch::from_blob(const_cast<float*>(act), {n, A}, torch::kFloat32);
    const torch::Tensor r = m->forward({o, a}).toTensor().contiguous();
    std::memcpy(out, r.data_ptr<float>(), sizeof(float) * n);
  };
}

}  // namespace prefrl
