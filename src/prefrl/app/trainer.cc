// The trainer: the whole loop of DESIGN.md in one file, top to bottom.
//
//   seed everything => build components => pre-training (untrained policy's clips, first
//   labels, first reward model) => loop { rollout => r̂ => PPO update => segments => queries
//   => labels (committed to prefs.db) => reward training => metrics, health checks } =>
//   checkpoints => evaluation => summary.json
#include "prefrl/app/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <chrono>
#include <climits>
#include <csignal>
#include <map>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>
#include <torch/torch.h>

#include "prefrl/app/checkpoint.h"
#include "prefrl/app/evaluate.h"
#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/prefs/query_selection.h"
#include "prefrl/prefs/segments.h"
#include "prefrl/reward/reward_model.h"
#include "prefrl/rl/ppo.h"
#include "prefrl/server/label_server.h"
#include "prefrl/teachers/teacher.h"
#include "prefrl/tracking/health.h"
#include "prefrl/tracking/metric_names.h"
#include "prefrl/tracking/metrics.h"
#include "prefrl/tracking/runs.h"

namespace prefrl {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;  // set by request_stop (a signal handler)

// Random streams of a run: each component draws from its own, derived from the run seed.
enum Stream : uint64_t { kEnvStream = 1, kPolicyStream, kRewardStream, kSegmentStream, kQueryStream,
                         kTeacherStream, kEvalStream };

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A scripted teacher, or nullptr for people (they answer through the labeling server).
std::unique_ptr<Teacher> make_teacher(const TrainConfig& cfg) {
  if (cfg.teacher.kind == "human") return nullptr;
  if (cfg.teacher.kind == "oracle") return std::make_unique<OracleTeacher>(cfg.prefs.tie_tolerance);
  return std::make_unique<NoisyTeacher>(cfg.teacher.error_rate, derive_seed(cfg.run.seed, kTeacherStream),
                                        cfg.prefs.tie_tolerance);
}

// What one rollout saw, in the environment's own terms (raw observations, executed actions).
struct RolloutRecord {
  int T = 0, N = 0;
  int64_t D = 0, A = 0;
  std::vector<float> obs;           // (T x N x D) observation before each action
  std::vector<float> actions;       // (T x N x A) executed (clipped) actions
  std::vector<float> true_rewards;  // (T x N) what the teacher judges (penalty mode: with penalties)
  std::vector<float> task_rewards;  // (T x N) by the task's own rules (VecEnv::task_rewards)
  std::vector<uint8_t> terminated;  // (T x N)
  std::vector<uint8_t> truncated;   // (T x N)
  std::vector<uint8_t> success;     // (T x N), valid where an episode ended
  std::vector<float> final_obs;     // (T x N x D), valid where an episode ended
  std::vector<float> learned;       // (T x N) r̂ given to the policy
  // Physical states for rendering clips, where observations do not determine them (S > 0).
  int64_t S = 0;
  std::vector<float> states;        // (T x N x S) state behind each observation in obs
  std::vector<float> final_states;  // (T x N x S) state behind final_obs, valid where an episode ended
  std::vector<uint8_t> broken;      // (T x N) the env's observation or reward was not finite: it restarted

  void resize(int t, int n, int64_t d, int64_t a, int64_t s) {
    T = t; N = n; D = d; A = a; S = s;
    states.assign(static_cast<size_t>(T) * N * S, 0.f);
    final_states.assign(static_cast<size_t>(T) * N * S, 0.f);
    obs.assign(static_cast<size_t>(T) * N * D, 0.f);
    actions.assign(static_cast<size_t>(T) * N * A, 0.f);
    true_rewards.assign(static_cast<size_t>(T) * N, 0.f);
    task_rewards.assign(static_cast<size_t>(T) * N, 0.f);
    terminated.assign(static_cast<size_t>(T) * N, 0);
    truncated.assign(static_cast<size_t>(T) * N, 0);
    success.assign(static_cast<size_t>(T) * N, 0);
    final_obs.assign(static_cast<size_t>(T) * N * D, 0.f);
    learned.assign(static_cast<size_t>(T) * N, 0.f);
    broken.assign(static_cast<size_t>(T) * N, 0);
  }
};

// Per-environment history of recent steps, long enough to cut segments longer than one
// rollout: the previous (segment_length - 1) steps plus the newest rollout.
class SegmentHistory {
 public:
  SegmentHistory(int num_envs, int64_t D, int64_t A, int64_t S, int keep) : keep_(keep), trajs_(num_envs) {
    for (int i = 0; i < num_envs; ++i) {
      trajs_[i].obs_size = D; trajs_[i].act_size = A; trajs_[i].env_index = i; trajs_[i].num_envs = num_envs;
      trajs_[i].state_size = S;
    }
  }
  // Appends env i's steps of the rollout, starting at global step `start_step`, then trims.
  void append(const RolloutRecord& r, int64_t start_step) {
    for (int i = 0; i < r.N; ++i) {
      Trajectory& tr = trajs_[i];
      const int64_t old_size = tr.size();
      if (old_size == 0) tr.start_env_step = start_step;
      for (int t = 0; t < r.T; ++t) {
        const size_t k = static_cast<size_t>(t) * r.N + i;
        tr.obs.insert(tr.obs.end(), r.obs.begin() + k * r.D, r.obs.begin() + (k + 1) * r.D);
        tr.actions.insert(tr.actions.end(), r.actions.begin() + k * r.A, r.actions.begin() + (k + 1) * r.A);
        tr.final_obs.insert(tr.final_obs.end(), r.final_obs.begin() + k * r.D, r.final_obs.begin() + (k + 1) * r.D);
        tr.states.insert(tr.states.end(), r.states.begin() + k * r.S, r.states.begin() + (k + 1) * r.S);
        tr.final_states.insert(tr.final_states.end(), r.final_states.begin() + k * r.S,
                               r.final_states.begin() + (k + 1) * r.S);
        tr.true_rewards.push_back(r.true_rewards[k]);
        tr.terminated.push_back(r.terminated[k]);
        tr.truncated.push_back(r.truncated[k]);
      }
      const int excess = tr.size() - (keep_ + r.T);
      if (excess > 0) {
        tr.obs.erase(tr.obs.begin(), tr.obs.begin() + excess * r.D);
        tr.actions.erase(tr.actions.begin(), tr.actions.begin() + excess * r.A);
        tr.final_obs.erase(tr.final_obs.begin(), tr.final_obs.begin() + excess * r.D);
        tr.states.erase(tr.states.begin(), tr.states.begin() + excess * r.S);
        tr.final_states.erase(tr.final_states.begin(), tr.final_states.begin() + excess * r.S);
        tr.true_rewards.erase(tr.true_rewards.begin(), tr.true_rewards.begin() + excess);
        tr.terminated.erase(tr.terminated.begin(), tr.terminated.begin() + excess);
        tr.truncated.erase(tr.truncated.begin(), tr.truncated.begin() + excess);
        // Global steps advance N per row (Segment::env_step = start_env_step + start * N).
        tr.start_env_step += static_cast<int64_t>(excess) * r.N;
      }
    }
  }
  // Forgets every env's history (segments never span a discarded rollout).
  void clear() {
    for (Trajectory& tr : trajs_) {
      tr.obs.clear(); tr.actions.clear(); tr.final_obs.clear(); tr.states.clear(); tr.final_states.clear();
      tr.true_rewards.clear(); tr.terminated.clear(); tr.truncated.clear();
    }
  }
  const Trajectory& at(int i) const { return trajs_[i]; }
  int size() const { return static_cast<int>(trajs_.size()); }
  // Checkpoints: every env's kept steps.
  void save(ArchiveWriter& w) const {
    for (const Trajectory& tr : trajs_) {
      w.vec(tr.obs); w.vec(tr.actions); w.vec(tr.final_obs); w.vec(tr.states); w.vec(tr.final_states);
      w.vec(tr.true_rewards); w.vec(tr.terminated); w.vec(tr.truncated); w.i64(tr.start_env_step);
    }
  }
  void load(ArchiveReader& r) {
    for (Trajectory& tr : trajs_) {
      tr.obs = r.vec<float>(); tr.actions = r.vec<float>(); tr.final_obs = r.vec<float>();
      tr.states = r.vec<float>(); tr.final_states = r.vec<float>(); tr.true_rewards = r.vec<float>();
      tr.terminated = r.vec<uint8_t>(); tr.truncated = r.vec<uint8_t>(); tr.start_env_step = r.i64();
    }
  }

 private:
  int keep_;
  std::vector<Trajectory> trajs_;
};

void save_segment(ArchiveWriter& w, const Segment& s) {
  w.i64(s.id); w.i64(s.length); w.i64(s.obs_size); w.i64(s.act_size); w.vec(s.obs); w.vec(s.actions);
  w.vec(s.true_rewards); w.vec(s.absorbing); w.i64(s.state_size); w.vec(s.states); w.i64(s.env_step);
  w.i64(s.env_index);
}
Segment load_segment(ArchiveReader& r) {
  Segment s;
  s.id = r.i64(); s.length = static_cast<int>(r.i64()); s.obs_size = r.i64(); s.act_size = r.i64();
  s.obs = r.vec<float>(); s.actions = r.vec<float>(); s.true_rewards = r.vec<float>(); s.absorbing = r.vec<uint8_t>();
  s.state_size = r.i64(); s.states = r.vec<float>(); s.env_step = r.i64(); s.env_index = static_cast<int>(r.i64());
  return s;
}

// Doubles in a checkpoint's JSON: exact, with non-finite values as strings.
nlohmann::json exact(double x) {
  if (std::isfinite(x)) return x;
  return std::isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf");
}
double from_exact(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string t = j.get<std::string>();
  return t == "inf" ? kInf : t == "-inf" ? -kInf : std::nan("");
}

// Sizes of the run's TensorBoard event files (a checkpoint's position in each).
nlohmann::json event_file_sizes(const std::string& run_dir) {
  nlohmann::json out = nlohmann::json::object();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(run_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("events.out.tfevents.", 0) == 0) out[name] = static_cast<int64_t>(e.file_size(ec));
  }
  return out;
}

// The trainer's own state in a checkpoint's trainer.bin (the rest is in policy.pt, reward.pt
// and the manifest's info).
constexpr uint64_t kTrainerStateMagic = 0x50524546434b5054ULL;  // "PREFCKPT"
struct LoopState {
  std::vector<std::vector<double>> env_state;   // (N) each env's physical state
  std::vector<std::vector<uint64_t>> env_rng;   // (N) each env's RNG
  std::vector<int64_t> env_elapsed;             // (N) steps into the current episode
  std::vector<uint8_t> task_over;               // (N) penalty mode: the task's episode already ended
  std::vector<float> policy_obs, policy_states; // (N x D), (N x S) what the policy sees next
  std::vector<double> ep_true, ep_pred;         // (N) running episode sums
  std::vector<int> ep_len;                      // (N)
  std::vector<Segment> pool;                    // candidate clips, oldest first
  std::vector<uint64_t> segment_rng, query_rng, teacher_rng;
  std::vector<uint8_t> torch_rng;               // LibTorch's default CPU generator
  std::vector<double> corr_pred, corr_truth;    // the reward/true_corr window, oldest first
};

// Reads trainer.bin; `history` receives the segment history. Throws RuntimeError naming the
// file when it is malformed or does not fit N environments of D floats.
LoopState read_loop_state(const std::string& path, int N, int64_t D, SegmentHistory& history) {
  ArchiveReader r(read_file_bytes(path), path);
  LoopState st;
  if (r.u64() != kTrainerStateMagic) r.fail("it does not start with PREFCKPT");
  const uint64_t n = r.u64();
  if (n != static_cast<uint64_t>(N))
    r.fail("it holds " + std::to_string(n) + " environments, the config has env.num_envs = " + std::to_string(N));
  for (int i = 0; i < N; ++i) {
    st.env_state.push_back(r.vec<double>());
    st.env_rng.push_back(r.vec<uint64_t>());
    st.env_elapsed.push_back(r.i64());
    if (st.env_rng.back().size() != 6) r.fail("environment " + std::to_string(i) + " has a malformed RNG state");
  }
  st.task_over = r.vec<uint8_t>();
  if (st.task_over.size() != static_cast<size_t>(N)) r.fail("its per-environment task flags do not fit N environments");
  st.policy_obs = r.vec<float>(); st.policy_states = r.vec<float>();
  st.ep_true = r.vec<double>(); st.ep_pred = r.vec<double>(); st.ep_len = r.vec<int>();
  history.load(r);
  const uint64_t pool_n = r.u64();
  for (uint64_t k = 0; k < pool_n; ++k) st.pool.push_back(load_segment(r));
  st.segment_rng = r.vec<uint64_t>(); st.query_rng = r.vec<uint64_t>(); st.teacher_rng = r.vec<uint64_t>();
  st.torch_rng = r.vec<uint8_t>();
  st.corr_pred = r.vec<double>(); st.corr_truth = r.vec<double>();
  if (st.corr_pred.size() != st.corr_truth.size()) r.fail("its correlation window is malformed");
  if (!r.at_end()) r.fail("it has bytes after the end of the state");
  if (st.policy_obs.size() != static_cast<size_t>(N) * D || st.ep_len.size() != static_cast<size_t>(N) ||
      st.ep_true.size() != static_cast<size_t>(N) || st.ep_pred.size() != static_cast<size_t>(N))
    r.fail("its observations or episode sums do not fit " + std::to_string(N) + " environments");
  if (st.segment_rng.size() != 6 || st.query_rng.size() != 6) r.fail("a malformed RNG state");
  return st;
}

bool all_finite(const float* x, int64_t n) {
  for (int64_t k = 0; k < n; ++k) if (!std::isfinite(x[k])) return false;
  return true;
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}

// Predicted vs true returns of the clips in held-out (validation) pairs: labels the reward
// model never trained on, from every stage of training.
double heldout_correlation(RewardModel& reward, const PrefStore& db) {
  const std::vector<uint8_t> val = reward.validation_flags();
  const std::vector<LabeledPair> pairs = db.labeled_pairs(0);
  std::vector<const Segment*> segs;
  std::vector<double> truth, pred;
  for (size_t i = 0; i < pairs.size() && i < val.size(); ++i) {
    if (!val[i]) continue;
    segs.push_back(&pairs[i].left);
    segs.push_back(&pairs[i].right);
  }
  if (segs.size() < 2) return std::nan("");
  for (const Segment* s : segs) truth.push_back(s->true_return());
  torch::Tensor r = reward.segment_returns(segs).mean(0).contiguous();
  auto acc = r.accessor<float, 1>();
  for (int64_t j = 0; j < r.size(0); ++j) pred.push_back(acc[j]);
  return pearson(pred, truth);
}

}  // namespace

void request_stop(int signal_number) { g_stop_signal = signal_number; }

void check_checkpoint(const TrainConfig& cfg, const Checkpoint& c) {
  const int N = cfg.env.num_envs;
  VecEnv envs(cfg.env.name, N, 0);
  const EnvSpec spec = envs.spec();
  const int64_t D = envs.obs_size(), A = envs.act_size();
  const int64_t S = spec.obs_determines_state ? 0 : spec.state_size;
  PPOAgent agent(cfg.ppo, spec, N, 0);
  agent.load(c.file("policy.pt"));
  (void)load_reward_model(cfg, c.file("reward.pt"));
  SegmentHistory history(N, D, A, S, std::max(0, cfg.segment_steps() - 1));
  LoopState st = read_loop_state(c.file("trainer.bin"), N, D, history);
  std::vector<float> scratch(static_cast<size_t>(D));
  for (int i = 0; i < N; ++i) envs.env(i).set_state(st.env_state[i], scratch.data());
  HealthMonitor health(cfg.health, !spec.action.discrete, static_cast<int>(spec.action.discrete ? 1 : A));
  try {
    health.set_state(c.info.at("health"));
    for (const char* key : {"step", "iterations", "updates", "labels_requested", "last_label_id", "labels_used",
                            "metrics_bytes", "health_bytes"})
      (void)c.info.at(key).get<int64_t>();
  } catch (const std::exception& e) {
    throw RuntimeError("checkpoint '" + c.dir + "/manifest.json' has a malformed info: " + e.what());
  }
}
int stop_requested() { return g_stop_signal; }

nlohmann::json TrainResult::to_json() const {
  auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
  const double final_return = eval_episodes > 0 && std::isfinite(eval_mean_return) ? eval_mean_return : train_return;
  return {{"status", status},
          {"env_steps", env_steps},
          {"total_steps", total_steps},
          {"labels", labels},
          {"wall_s", wall_s},
          {"final_return", num(final_return)},
          {"train_return", num(train_return)},
          {"eval", {{"episodes", eval_episodes}, {"mean_return", num(eval_mean_return)},
                    {"std_return", num(eval_std_return)}, {"success_rate", num(eval_success_rate)}}},
          {"final_true_corr", num(final_true_corr)},
          {"heldout_true_corr", num(heldout_true_corr)},
          {"val_accuracy", num(val_accuracy)},
          {"health", health},
          {"nonfinite", nonfinite}};
}

TrainResult train(const TrainConfig& cfg, const RunDir& run, RunLog& log, bool resume) {
  const auto t_start = Clock::now();
  double wall_before = 0;  // seconds the run trained before it was resumed
  TrainResult result;

  // ---- Resuming: the newest good checkpoint; the append-only files cut back to it ---------
  const std::string ckpt_dir = run.file("checkpoints");
  std::optional<Checkpoint> ckpt;
  if (resume) {
    std::vector<std::string> problems;
    ckpt = find_checkpoint(ckpt_dir, &problems);
    for (const auto& p : problems) log.line("resume: checkpoint skipped: " + p);
    std::vector<std::string> moved;
    set_aside_newer(ckpt_dir, ckpt ? ckpt->step : -1, &moved);
    for (const auto& m : moved) log.line("resume: the damaged checkpoint is kept as " + m + " (never loaded)");
    const nlohmann::json none = {{"metrics_bytes", 0}, {"health_bytes", 0}, {"event_files", nlohmann::json::object()}};
    const nlohmann::json& at = ckpt ? ckpt->info : none;
    truncate_file(run.file("metrics.jsonl"), at.at("metrics_bytes").get<int64_t>());
    truncate_file(run.file("health.jsonl"), at.at("health_bytes").get<int64_t>());
    const nlohmann::json kept = at.at("event_files");
    const nlohmann::json present = event_file_sizes(run.path());
    for (const auto& [name, size] : present.items()) {
      if (kept.contains(name)) truncate_file(run.file(name), kept.at(name).get<int64_t>());
      else std::filesystem::remove(run.file(name));  // written after the checkpoint
    }
    if (ckpt) log.line(fmt::format("resume: from {} (step {})", ckpt->dir, ckpt->step));
    else log.line("resume: no good checkpoint; starting over, reusing the labels in prefs.db");
  }

  // ---- Seeding: every random stream derives from run.seed --------------------------------
  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);
  torch::set_num_threads(cfg.run.threads);
  torch::manual_seed(derive_seed(seed, kRewardStream));
  Rng segment_rng(derive_seed(seed, kSegmentStream));
  Rng query_rng(derive_seed(seed, kQueryStream));

  // ---- Components ------------------------------------------------------------------------
  const int N = cfg.env.num_envs;
  const int T = cfg.ppo.num_steps;
  VecEnv envs(cfg.env.name, N, derive_seed(seed, kEnvStream));
  const EnvSpec spec = envs.spec();
  const int64_t D = envs.obs_size(), A = envs.act_size();
  // termination=penalty: the learner never sees an episode end before the time limit.
  const std::optional<float> termination_penalty =
      cfg.env.termination == "penalty" && spec.can_terminate
          ? std::optional<float>(static_cast<float>(cfg.env.termination_penalty))
          : std::nullopt;
  if (termination_penalty) envs.replace_termination(*termination_penalty);
  const bool learner_sees_terminations = spec.can_terminate && !termination_penalty;
  const int L = cfg.segment_steps();  // steps per clip
  PPOAgent agent(cfg.ppo, spec, N, derive_seed(seed, kPolicyStream));
  RewardModel reward(cfg.reward, spec.observation.shape, A, spec.action.discrete, spec.action.n,
                     learner_sees_terminations, derive_seed(seed, kRewardStream));
  const std::unique_ptr<PrefStore> store = open_pref_store(sqlite_store_url(run.file("prefs.db")));
  PrefStore& db = *store;
  std::unique_ptr<Teacher> teacher = make_teacher(cfg);
  // People answer through the labeling server, which has its own database connection.
  const bool human = teacher == nullptr;
  std::unique_ptr<LabelServer> server;
  if (human) {
    const std::filesystem::path run_path = std::filesystem::absolute(run.path());
    server = std::make_unique<LabelServer>(cfg.server, sqlite_store_url(run.file("prefs.db")), cfg.env.name, run_path.filename().string(),
                                           run_path.parent_path().string());
    server->start();
    log.line(fmt::format("labeling page: {}  (open it in a browser; several people may label at once); runs: {}",
                         server->url(), server->runs_url()));
  }
  SegmentPool pool(static_cast<size_t>(cfg.prefs.pool_capacity));
  LabelSchedule schedule;
  schedule.total_labels = cfg.prefs.total_labels;
  schedule.initial_fraction = cfg.prefs.initial_fraction;
  schedule.kind = cfg.prefs.schedule;
  schedule.horizon = cfg.prefs.schedule_horizon;
  schedule.total_steps = cfg.run.total_steps;
  MetricWriter metrics(run.file("metrics.jsonl"), cfg.run.tensorboard ? run.path() : std::string());
  HealthMonitor health(cfg.health, !spec.action.discrete, static_cast<int>(spec.action.discrete ? 1 : A));
  std::ofstream health_log;  // health.jsonl: one line per warning

  // Baseline mode: the policy learns from the true reward; no labels are asked for.
  const bool true_reward_baseline = cfg.run.policy_reward == "true";
  if (true_reward_baseline) schedule.total_labels = 0;

  // Clips are rendered for people from stored observations, or, where those do not determine
  // the physical state (MuJoCo), from the states kept beside them.
  const int64_t S = spec.obs_determines_state ? 0 : spec.state_size;
  envs.keep_states(S > 0);
  RolloutRecord roll;
  roll.resize(T, N, D, A, S);
  SegmentHistory history(N, D, A, S, std::max(0, L - 1));
  std::vector<float> act_buf(static_cast<size_t>(N) * A);

  int64_t global_step = 0;
  int64_t iterations = 0;         // training iterations done (pre-training excluded)
  int64_t labels_requested = 0;   // queries asked (each wants one answer)
  int64_t last_label_id = 0;      // labels up to here are in the reward model
  int64_t labels_used = 0;        // labeled pairs the reward model has
  int64_t updates = 0;

  // Per-env running episode sums, for charts/episodic_return and charts/predicted_return.
  std::vector<double> ep_true(N, 0.0), ep_pred(N, 0.0);
  std::vector<double> corr_pred, corr_truth;  // reward/true_corr: the latest scored fresh clips
  std::vector<int> ep_len(N, 0);

  // Phase timers of the current iteration (seconds).
  double t_env = 0, t_inf = 0, t_rpred = 0, t_ppo = 0, t_rtrain = 0, t_query = 0, t_db = 0, t_wait = 0;
  // Non-finite values met this iteration, each skipped (see health/nonfinite).
  int64_t discarded_rollouts = 0, diverged_rounds = 0;
  int64_t total_skipped_minibatches = 0, total_discarded_rollouts = 0, total_diverged_rounds = 0;

  // ---- Collect one rollout of T steps from every environment ------------------------------
  // The policy sees policy_obs: the environments' observations, except that an environment
  // whose observation or reward is not finite (a diverged simulation) restarts, and the
  // rollout is then not learned from (rollout_nonfinite). policy_states: the states behind
  // policy_obs (S > 0).
  envs.reset();
  std::vector<float> policy_obs(envs.obs());                      // (N x D)
  std::vector<float> policy_states(envs.states());                // (N x S)
  std::vector<uint8_t> step_terminated(N), step_truncated(N);     // (N) as the policy records them
  bool rollout_nonfinite = false;
  auto collect_rollout = [&]() {
    rollout_nonfinite = false;
    std::fill(roll.broken.begin(), roll.broken.end(), 0);
    for (int t = 0; t < T; ++t) {
      const auto t0 = Clock::now();
      std::copy(policy_obs.begin(), policy_obs.end(), roll.obs.begin() + static_cast<size_t>(t) * N * D);
      std::copy(policy_states.begin(), policy_states.end(), roll.states.begin() + static_cast<size_t>(t) * N * S);
      agent.rollout_act(t, policy_obs.data(), act_buf.data());
      clip_actions(spec.action, act_buf.data(), N);  // store what the environment executes
      const auto t1 = Clock::now();
      envs.step(act_buf.data());
      const auto t2 = Clock::now();
      std::copy(envs.obs().begin(), envs.obs().end(), policy_obs.begin());
      std::copy(envs.states().begin(), envs.states().end(), policy_states.begin());
      for (int i = 0; i < N; ++i) {
        const size_t k = static_cast<size_t>(t) * N + i;
        roll.true_rewards[k] = envs.rewards()[i];
        roll.task_rewards[k] = envs.task_rewards()[i];
        roll.terminated[k] = step_terminated[i] = envs.terminated()[i];
        roll.truncated[k] = step_truncated[i] = envs.truncated()[i];
        roll.success[k] = envs.success()[i];
        const bool ended = roll.terminated[k] || roll.truncated[k];
        if (ended) {
          std::copy(envs.final_obs().begin() + i * D, envs.final_obs().begin() + (i + 1) * D,
                    roll.final_obs.begin() + k * D);
          std::copy(envs.final_states().begin() + i * S, envs.final_states().begin() + (i + 1) * S,
                    roll.final_states.begin() + k * S);
        }
        if (!std::isfinite(roll.true_rewards[k]) || !all_finite(policy_obs.data() + i * D, D) ||
            (ended && !all_finite(envs.final_obs().data() + i * D, D))) {
          Env& env = envs.env(i);
          env.reset(policy_obs.data() + i * D);  // a fresh episode; nothing non-finite reaches the policy
          if (S > 0) {
            const std::vector<double> st = env.get_state();
            std::copy(st.begin(), st.end(), policy_states.begin() + static_cast<size_t>(i) * S);
          }
          roll.broken[k] = 1;
          roll.true_rewards[k] = roll.task_rewards[k] = 0.f;
          roll.terminated[k] = step_terminated[i] = 1;  // no bootstrap from a non-finite final observation
          roll.truncated[k] = step_truncated[i] = 0;
          rollout_nonfinite = true;
        }
      }
      agent.rollout_record(t, step_terminated.data(), step_truncated.data(), envs.final_obs().data());
      std::copy(act_buf.begin(), act_buf.end(), roll.actions.begin() + static_cast<size_t>(t) * N * A);
      t_inf += std::chrono::duration<double>(t1 - t0).count();
      t_env += std::chrono::duration<double>(t2 - t1).count();
    }
    if (rollout_nonfinite) history.clear();  // no clip spans the broken steps
    else history.append(roll, global_step);
    global_step += static_cast<int64_t>(T) * N;
  };

  // ---- Cut segments from recent history into the candidate pool ---------------------------
  auto cut_into_pool = [&]() {
    std::vector<Segment> fresh;
    const int per_env = std::max(1, cfg.prefs.segments_per_rollout / N);
    for (int i = 0; i < N; ++i) {
      for (auto& s : cut_segments(history.at(i), L, per_env, segment_rng)) {
        fresh.push_back(s);
      }
    }
    for (const auto& s : fresh) pool.add(s);
    return fresh;
  };

  // ---- A resumed run replays what the stopped one asked after its checkpoint --------------
  // With a scripted teacher and one thread the resumed run chooses the same pairs again;
  // their clips, queries and answers are taken from prefs.db instead of being stored twice.
  std::vector<Query> replay;                          // queries after the checkpoint, oldest first
  size_t replay_pos = 0;                              // next one to be chosen again
  std::map<int64_t, std::pair<int64_t, Choice>> replay_answers;  // query id => (label id, answer)
  int64_t label_bound = INT64_MAX;                    // labels beyond this are not "given yet" while replaying
  auto same_segment = [&](const Segment& s, int64_t id) {
    if (s.id >= 0) return s.id == id;
    const std::optional<Segment> stored = db.get_segment(id);
    return stored && stored->env_step == s.env_step && stored->env_index == s.env_index && stored->obs == s.obs &&
           stored->actions == s.actions;
  };

  // ---- Ask `count` queries, have the teacher answer them, commit the labels ---------------
  double last_disagreement = std::nan("");
  std::vector<LabeledPair> claimed;  // labels claimed by ask_and_label, not yet in the reward model
  auto ask_and_label = [&](int count, const char* source) {
    // People: never more than server.max_pending unanswered queries ahead of them (the first
    // batch, which pre-training waits for, is asked whole).
    if (human && std::string(source) != "initial") count = static_cast<int>(std::min<int64_t>(count, cfg.server.max_pending - db.count_pending()));
    if (count <= 0 || pool.size() < 2) return;
    const auto tq = Clock::now();
    DisagreementFn score = [&](const SegmentPool& p, const std::vector<CandidatePair>& cands) {
      std::vector<std::pair<const Segment*, const Segment*>> pairs;
      pairs.reserve(cands.size());
      for (const auto& c : cands) pairs.emplace_back(&p.at(c.left), &p.at(c.right));
      return reward.disagreement(pairs);
    };
    const std::string method = std::string(source) == "initial" ? "uniform" : cfg.prefs.selection;
    auto chosen = select_pairs(pool, count, method, cfg.prefs.oversample, score, query_rng);
    t_query += seconds_since(tq);
    const auto td = Clock::now();
    if (replay_pos < replay.size()) {
      bool same = replay.size() - replay_pos >= chosen.size();
      for (size_t k = 0; same && k < chosen.size(); ++k) {
        const Query& rq = replay[replay_pos + k];
        same = same_segment(pool.at(chosen[k].left), rq.left_id) && same_segment(pool.at(chosen[k].right), rq.right_id);
        const auto it = replay_answers.find(rq.id);
        same = same && it != replay_answers.end() &&
               teacher->answer(pool.at(chosen[k].left), pool.at(chosen[k].right)) == it->second.second;
        if (same) {
          if (pool.at(chosen[k].left).id < 0) pool.set_id(chosen[k].left, rq.left_id);
          if (pool.at(chosen[k].right).id < 0) pool.set_id(chosen[k].right, rq.right_id);
        }
      }
      if (same) {
        for (size_t k = 0; k < chosen.size(); ++k) {
          label_bound = std::max(label_bound, replay_answers.at(replay[replay_pos + k].id).first);
          ++labels_requested;
        }
        replay_pos += chosen.size();
        std::vector<LabeledPair> now = db.claim_labels(last_label_id, kInf, &last_label_id, label_bound);
        claimed.insert(claimed.end(), std::make_move_iterator(now.begin()), std::make_move_iterator(now.end()));
        if (replay_pos == replay.size()) {
          label_bound = INT64_MAX;
          log.line(fmt::format("resume: the {} queries asked after the checkpoint were chosen again; their labels "
                               "came from prefs.db", replay.size()));
        }
        if (method == "disagreement") {
          std::vector<double> scores;
          for (const auto& c : chosen) scores.push_back(c.score);
          last_disagreement = mean_of(scores);
        }
        t_db += seconds_since(td);
        return;
      }
      // Another choice than the stopped run's (e.g. more than one thread): its remaining
      // labels stay in the database as given, and the reward model trains on them.
      log.line(fmt::format("resume: the run chose other pairs than the stopped run at its query {}; the {} labels "
                           "it was given after that are kept and used", replay[replay_pos].id,
                           replay.size() - replay_pos));
      labels_requested += static_cast<int64_t>(replay.size() - replay_pos);
      replay_pos = replay.size();
      label_bound = INT64_MAX;
    }
    // Store the chosen clips (each once, in one transaction), then the queries.
    std::vector<Segment> to_store;
    std::vector<size_t> to_store_index;
    for (const auto& c : chosen) {
      for (size_t idx : {c.left, c.right}) {
        if (pool.at(idx).id >= 0) continue;
        if (std::find(to_store_index.begin(), to_store_index.end(), idx) != to_store_index.end()) continue;
        to_store.push_back(pool.at(idx));
        to_store_index.push_back(idx);
      }
    }
    PrefStore::Batch batch(db);  // clips, queries and a scripted teacher's answers: one transaction
    db.add_segments(to_store);
    for (size_t k = 0; k < to_store.size(); ++k) pool.set_id(to_store_index[k], to_store[k].id);
    std::vector<Query> queries;
    std::vector<double> scores;
    for (const auto& c : chosen) {
      Query q;
      q.answers_wanted = human ? cfg.server.answers_per_query : 1;
      q.left_id = pool.at(c.left).id;
      q.right_id = pool.at(c.right).id;
      q.env_step = global_step;
      q.source = std::string(source) == "initial" ? "initial" : method;
      q.score = c.score;
      queries.push_back(q);
      scores.push_back(c.score);
    }
    db.add_queries(queries);
    // A scripted teacher answers at once (its answers committed together, in one transaction);
    // people answer through the server, later. Either way each label is committed before it is used.
    std::vector<PrefStore::NewLabel> answers;
    for (size_t k = 0; k < chosen.size(); ++k) {
      if (!human) {
        const Choice answer = teacher->answer(pool.at(chosen[k].left), pool.at(chosen[k].right));
        answers.push_back({queries[k].id, answer, teacher->name(), teacher->name()});
      }
      ++labels_requested;
    }
    db.add_labels(answers);
    // A scripted teacher's labels are final at once: claim them for the reward model in the
    // same transaction (one fsync in all); train_reward takes them from `claimed`.
    if (!human) {
      std::vector<LabeledPair> now = db.claim_labels(last_label_id, kInf, &last_label_id);
      claimed.insert(claimed.end(), std::make_move_iterator(now.begin()), std::make_move_iterator(now.end()));
    }
    batch.commit();
    if (method == "disagreement") last_disagreement = mean_of(scores);
    t_db += seconds_since(td);
  };

  // ---- Train the reward model on every label committed since the last round --------------
  RewardTrainStats rstats;
  auto train_reward = [&](int rounds) {
    const auto td = Clock::now();
    // Claim (mark used) every label committed since the last round; people's labels only once
    // they are older than the undo window.
    const double before = human ? unix_now() - cfg.server.undo_window_s : kInf;
    std::vector<LabeledPair> fresh = std::move(claimed);
    claimed.clear();
    std::vector<LabeledPair> more = db.claim_labels(last_label_id, before, &last_label_id, label_bound);
    fresh.insert(fresh.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    labels_used += static_cast<int64_t>(fresh.size());
    t_db += seconds_since(td);
    if (fresh.empty()) return false;
    const auto tr = Clock::now();
    reward.add_pairs(fresh);
    for (int r = 0; r < rounds; ++r) {
      rstats = reward.train_round();
      diverged_rounds += rstats.diverged ? 1 : 0;  // rolled back to the round's start
    }
    // Normalise each member's output: over all labeled clips' states, or the newest rollout's.
    if (cfg.reward.normalise_on == "labeled") reward.update_normalisation_on_labeled();
    else reward.update_normalisation(roll.obs.data(), roll.actions.data(), static_cast<int64_t>(T) * N);
    t_rtrain += seconds_since(tr);
    return true;
  };

  // ---- Health warnings: a log line, a line in health.jsonl (and, per iteration, metrics) --
  auto report_health = [&](const std::vector<HealthEvent>& events) {
    for (const HealthEvent& e : events) {
      log.line(fmt::format("health warning [{}] at step {}: {}", e.name, e.step, e.message));
      if (!health_log.is_open()) health_log.open(run.file("health.jsonl"), std::ios::app);
      health_log << nlohmann::json{{"name", e.name}, {"step", e.step}, {"message", e.message},
                                   {"wall_time", std::round(metrics.elapsed_s() * 1000.0) / 1000.0}}.dump()
                 << "\n" << std::flush;
    }
  };

  // ---- summary.json while running: progress and a heartbeat (runs list tells crashed runs) -
  std::deque<double> recent_returns;  // true returns of the last 20 episodes
  const nlohmann::json identity = process_identity();
  auto last_heartbeat = Clock::now();
  auto write_running_summary = [&]() {
    nlohmann::json process = identity;
    process["heartbeat"] = unix_time_now();
    std::vector<double> rr(recent_returns.begin(), recent_returns.end());
    const double recent = mean_of(rr);
    run.write_json("summary.json", {{"status", "running"}, {"env_steps", global_step},
                                    {"total_steps", cfg.run.total_steps}, {"labels", labels_used},
                                    {"wall_s", wall_before + seconds_since(t_start)},
                                    {"train_return", std::isfinite(recent) ? nlohmann::json(recent) : nlohmann::json(nullptr)},
                                    {"heartbeat_s", cfg.run.heartbeat_s}, {"process", process}},
                   /*durable=*/false);  // a heartbeat lost to a power cut still reads as crashed
    last_heartbeat = Clock::now();
  };
  write_running_summary();

  // ---- What the labeling page shows of the run (people only) ----------------------------
  std::vector<std::pair<int64_t, double>> return_curve;  // (step, recent mean return), thinned
  auto publish = [&](const char* phase, int64_t have, int64_t need) {
    if (!server) return;
    auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
    std::vector<double> rr(recent_returns.begin(), recent_returns.end());
    nlohmann::json curve = nlohmann::json::array();
    for (const auto& [s, r] : return_curve) curve.push_back({s, r});
    server->publish({{"phase", phase}, {"step", global_step}, {"total_steps", cfg.run.total_steps},
                     {"labels_used", labels_used}, {"label_budget", schedule.total_labels},
                     {"labels_have", have}, {"labels_needed", need},
                     {"val_accuracy", labels_used > 0 ? num(rstats.val_accuracy) : nlohmann::json(nullptr)},
                     {"recent_return", num(mean_of(rr))},
                     {"return_curve", curve}});
  };
  // Pre-training needs the first answers from people: wait for them, saying so on the CLI and
  // the page, then let the undo window pass so that they can be used.
  // Waiting for people's labels: the time counts as label wait; past health.label_wait_s, a
  // warning. With say_every_10s, a line every 10 s says how many are in.
  auto wait_for_labels = [&](int64_t want, bool say_every_10s) {
    const auto t0 = Clock::now();
    auto last_line = Clock::now() - std::chrono::hours(1);
    for (int64_t have = db.count_labels(); have < want && !stop_requested(); have = db.count_labels()) {
      publish("waiting", have, want);
      if (say_every_10s && seconds_since(last_line) >= 10.0) {
        log.line(fmt::format("waiting for the first labels: {} of {} given; label at {}", have, want, server->url()));
        last_line = Clock::now();
      }
      if (cfg.health.enabled) report_health(health.waiting(seconds_since(t0), global_step));
      std::this_thread::sleep_for(std::chrono::milliseconds(say_every_10s ? 200 : 20));
    }
    health.wait_over();
    t_wait += seconds_since(t0);
  };
  auto wait_for_first_labels = [&](int64_t need) {
    need = std::min(need, labels_requested);
    wait_for_labels(need, true);
    if (stop_requested()) return;
    metrics.log(metric::kTimeLabelWait, t_wait, global_step);
    publish("waiting", need, need);
    log.line(fmt::format("the first {} labels are in; training starts in {:g} s (the undo window)", need,
                         cfg.server.undo_window_s));
    std::this_thread::sleep_for(std::chrono::duration<double>(cfg.server.undo_window_s));
  };

  log.line(fmt::format("prefrl: training {} with {} teacher, {} labels, {} steps, seed {}; run dir {}",
                       cfg.env.name, cfg.teacher.kind, schedule.total_labels, cfg.run.total_steps,
                       cfg.run.seed, run.path()));

  // ---- Checkpoints: everything the loop carries from one iteration to the next -----------
  // At an iteration boundary (after the PPO update and the reward round), so that a resumed
  // run continues exactly as the uninterrupted one would.
  auto last_checkpoint = Clock::now();
  std::string last_checkpoint_dir;
  TrainConfig cfg_copy = cfg;  // config_to_json visits (non-const)
  auto save_checkpoint = [&]() {
    metrics.flush();
    const PrefStore::HighWater hw = db.high_water();
    nlohmann::json rs = {{"train_loss", exact(rstats.train_loss)}, {"val_loss", exact(rstats.val_loss)},
                         {"train_accuracy", exact(rstats.train_accuracy)}, {"val_accuracy", exact(rstats.val_accuracy)},
                         {"l2", exact(rstats.l2)}, {"n_train", rstats.n_train}, {"n_val", rstats.n_val},
                         {"updates", rstats.updates}, {"fit_loss", exact(rstats.fit_loss)}, {"diverged", rstats.diverged}};
    nlohmann::json returns = nlohmann::json::array(), curve = nlohmann::json::array();
    for (double r : recent_returns) returns.push_back(exact(r));
    for (const auto& [st, r] : return_curve) curve.push_back({st, exact(r)});
    std::error_code ec;
    const auto health_bytes = std::filesystem::file_size(run.file("health.jsonl"), ec);
    const nlohmann::json info = {
        {"step", global_step}, {"iterations", iterations}, {"updates", updates},
        {"labels_requested", labels_requested}, {"last_label_id", last_label_id}, {"labels_used", labels_used},
        {"db", {{"segment", hw.segment}, {"query", hw.query}, {"label", hw.label}}},
        {"skipped_minibatches", total_skipped_minibatches}, {"discarded_rollouts", total_discarded_rollouts},
        {"diverged_rounds", total_diverged_rounds}, {"last_disagreement", exact(last_disagreement)},
        {"rstats", rs}, {"recent_returns", returns}, {"return_curve", curve}, {"health", health.state()},
        {"wall_s", wall_before + seconds_since(t_start)}, {"metrics_bytes", metrics.bytes()},
        {"health_bytes", ec ? 0 : static_cast<int64_t>(health_bytes)}, {"event_files", event_file_sizes(run.path())},
        {"config", config_to_json(cfg_copy)}};
    ArchiveWriter w;
    w.u64(kTrainerStateMagic);
    w.u64(static_cast<uint64_t>(N));
    for (int i = 0; i < N; ++i) {
      Env& env = envs.env(i);
      w.vec(env.get_state());
      w.vec(env.rng().state());
      w.i64(env.elapsed_steps());
    }
    w.vec(envs.task_over());
    w.vec(policy_obs); w.vec(policy_states); w.vec(ep_true); w.vec(ep_pred); w.vec(ep_len);
    history.save(w);
    w.u64(pool.size());
    for (size_t k = 0; k < pool.size(); ++k) save_segment(w, pool.at(k));
    w.vec(segment_rng.state()); w.vec(query_rng.state());
    w.vec(teacher ? teacher->rng_state() : std::vector<uint64_t>{});
    {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      const at::Tensor st = gen.get_state().contiguous();
      w.vec(std::vector<uint8_t>(st.data_ptr<uint8_t>(), st.data_ptr<uint8_t>() + st.numel()));
    }
    w.vec(corr_pred); w.vec(corr_truth);
    last_checkpoint_dir = write_checkpoint(ckpt_dir, global_step, info, [&](const std::string& dir) {
      agent.save(dir + "/policy.pt");
      reward.save(dir + "/reward.pt");
      write_file_synced(dir + "/trainer.bin", w.data());
    }, cfg.run.checkpoint_keep);
    last_checkpoint = Clock::now();
  };

  // ---- Resuming: restore the checkpoint; line up the database with it --------------------
  if (resume) {
    nlohmann::json info = {{"last_label_id", 0}, {"labels_requested", 0}, {"db", {{"query", 0}}}};
    if (ckpt) {
      info = ckpt->info;
      agent.load(ckpt->file("policy.pt"));
      reward.load(ckpt->file("reward.pt"));
      LoopState st = read_loop_state(ckpt->file("trainer.bin"), N, D, history);
      std::vector<float> scratch(static_cast<size_t>(D));
      for (int i = 0; i < N; ++i) {
        Env& env = envs.env(i);
        env.set_state(st.env_state[i], scratch.data());
        env.rng().set_state(st.env_rng[i]);
        env.set_elapsed_steps(static_cast<int>(st.env_elapsed[i]));
        envs.set_task_over(i, st.task_over[i]);
      }
      policy_obs = std::move(st.policy_obs);
      policy_states = std::move(st.policy_states);
      ep_true = std::move(st.ep_true);
      ep_pred = std::move(st.ep_pred);
      ep_len = std::move(st.ep_len);
      corr_pred = std::move(st.corr_pred);
      corr_truth = std::move(st.corr_truth);
      pool.clear();
      for (Segment& seg : st.pool) pool.add(std::move(seg));
      segment_rng.set_state(st.segment_rng);
      query_rng.set_state(st.query_rng);
      if (teacher && !st.teacher_rng.empty()) teacher->set_rng_state(st.teacher_rng);
      {
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(torch::from_blob(st.torch_rng.data(), {static_cast<int64_t>(st.torch_rng.size())}, torch::kUInt8).clone());
      }
      global_step = info.at("step").get<int64_t>();
      iterations = info.at("iterations").get<int64_t>();
      updates = info.at("updates").get<int64_t>();
      labels_used = info.at("labels_used").get<int64_t>();
      total_skipped_minibatches = info.at("skipped_minibatches").get<int64_t>();
      total_discarded_rollouts = info.at("discarded_rollouts").get<int64_t>();
      total_diverged_rounds = info.at("diverged_rounds").get<int64_t>();
      last_disagreement = from_exact(info.at("last_disagreement"));
      const nlohmann::json& rs = info.at("rstats");
      rstats.train_loss = from_exact(rs.at("train_loss"));
      rstats.val_loss = from_exact(rs.at("val_loss"));
      rstats.train_accuracy = from_exact(rs.at("train_accuracy"));
      rstats.val_accuracy = from_exact(rs.at("val_accuracy"));
      rstats.l2 = from_exact(rs.at("l2"));
      rstats.n_train = rs.at("n_train").get<int64_t>();
      rstats.n_val = rs.at("n_val").get<int64_t>();
      rstats.updates = rs.at("updates").get<int64_t>();
      rstats.fit_loss = from_exact(rs.at("fit_loss"));
      rstats.diverged = rs.at("diverged").get<bool>();
      for (const auto& x : info.at("recent_returns")) recent_returns.push_back(from_exact(x));
      for (const auto& x : info.at("return_curve")) return_curve.emplace_back(x.at(0).get<int64_t>(), from_exact(x.at(1)));
      health.set_state(info.at("health"));
      wall_before = info.at("wall_s").get<double>();
      metrics.set_elapsed_offset(wall_before);
    }
    // The labels the restored reward model was trained on, in the order it got them.
    last_label_id = info.at("last_label_id").get<int64_t>();
    labels_requested = info.at("labels_requested").get<int64_t>();
    std::vector<LabeledPair> had;
    for (LabeledPair& p : db.labeled_pairs(0)) if (p.label_id <= last_label_id) had.push_back(std::move(p));
    if (ckpt && !had.empty()) reward.add_pairs(had);
    // Labels claimed after the checkpoint are claimed again (the restored model lacks them).
    db.unclaim_labels_after(last_label_id);
    std::vector<Query> after = db.queries_after(info.at("db").at("query").get<int64_t>());
    if (human) {
      labels_requested += static_cast<int64_t>(after.size());  // asked; people's answers arrive through the db
      // Clips of the pool stored after the checkpoint keep their ids (they are not stored twice).
      for (const Query& q : after) {
        for (int64_t id : {q.left_id, q.right_id}) {
          const std::optional<Segment> stored = db.get_segment(id);
          for (size_t k = 0; stored && k < pool.size(); ++k) {
            const Segment& p = pool.at(k);
            if (p.id < 0 && p.env_step == stored->env_step && p.env_index == stored->env_index && p.obs == stored->obs)
              pool.set_id(k, id);
          }
        }
      }
    } else if (!after.empty()) {
      replay = std::move(after);
      for (const Label& l : db.labels()) replay_answers[l.query_id] = {l.id, l.choice};
      label_bound = last_label_id;
    }
    log.line(fmt::format("resume: at step {} with {} labels trained on; {} queries asked after the checkpoint are "
                         "in prefs.db ({})", global_step, labels_used, replay.size() + (human ? after.size() : 0),
                         human ? "people's answers to them are used as they come" : "reused, not asked again"));
  }

  // ---- Pre-training: clips of the untrained policy, the first labels, the first r̂ --------
  const int initial = schedule.initial_labels();
  if (!ckpt && initial > 0) {
    const size_t want_segments = std::min<size_t>(static_cast<size_t>(cfg.prefs.pool_capacity),
                                                  std::max<size_t>(2, 2 * static_cast<size_t>(initial)));
    do {
      collect_rollout();
      cut_into_pool();
    } while (pool.size() < want_segments && global_step < cfg.run.total_steps);
    ask_and_label(initial, "initial");
    if (human) wait_for_first_labels(initial);
    if (stop_requested()) {  // still waiting for people's first labels: nothing to checkpoint yet
      result.status = "stopped";
      result.total_steps = cfg.run.total_steps;
      result.env_steps = global_step;
      result.labels = db.count_labels();
      nlohmann::json summary = result.to_json();
      summary["process"] = identity;
      summary["process"]["heartbeat"] = unix_time_now();
      run.write_json("summary.json", summary);
      log.line(fmt::format("stopped during pre-training, before the first checkpoint; the {} labels given are in "
                           "prefs.db; `prefrl train --resume {}` starts over and reuses them", result.labels, run.path()));
      if (server) server->stop();
      return result;
    }
    train_reward(cfg.prefs.initial_epoch_multiplier);
    log.line(fmt::format("pre-training: {} labels from the untrained policy over {} steps; reward model "
                         "val accuracy {:.3f}", db.count_labels(), global_step, rstats.val_accuracy));
  }

  // ---- The loop ---------------------------------------------------------------------------
  auto last_progress = Clock::now() - std::chrono::hours(1);
  int64_t steps_at_last_progress = global_step;
  auto time_at_last_progress = Clock::now();
  while (global_step < cfg.run.total_steps) {
    const auto t_iter = Clock::now();
    t_env = t_inf = t_rpred = t_ppo = t_rtrain = t_query = t_db = t_wait = 0;
    const int64_t labels_before = db.count_labels(label_bound);

    // Rollout with the current policy, scored by the current reward model. A rollout with a
    // non-finite observation or reward (true, or learned) is not learned from.
    collect_rollout();
    const auto tp = Clock::now();
    reward.predict(roll.obs.data(), roll.actions.data(), static_cast<int64_t>(T) * N, roll.learned.data());
    const float* policy_rewards = true_reward_baseline ? roll.true_rewards.data() : roll.learned.data();
    const bool learnable = !rollout_nonfinite && all_finite(policy_rewards, static_cast<int64_t>(T) * N);
    if (learnable) agent.set_rewards(policy_rewards);
    t_rpred += seconds_since(tp);

    // Episode statistics (true return is never shown to the learner).
    std::vector<double> finished_true, finished_pred, finished_len, finished_success;
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < N; ++i) {
        const size_t k = static_cast<size_t>(t) * N + i;
        if (roll.broken[k]) {  // the env restarted: its episode is not counted
          ep_true[i] = ep_pred[i] = 0.0;
          ep_len[i] = 0;
          continue;
        }
        ep_true[i] += roll.task_rewards[k];  // the task's return (penalty mode: by the task's rules)
        ep_pred[i] += roll.learned[k];
        ep_len[i] += 1;
        if (roll.terminated[k] || roll.truncated[k]) {
          finished_true.push_back(ep_true[i]);
          finished_pred.push_back(ep_pred[i]);
          finished_len.push_back(ep_len[i]);
          finished_success.push_back(roll.success[k]);
          ep_true[i] = ep_pred[i] = 0.0;
          ep_len[i] = 0;
        }
      }
    }

    // Policy update on r̂ (skipped, and counted, for a rollout with non-finite values).
    const auto tu = Clock::now();
    const double progress = std::min(1.0, static_cast<double>(global_step) / cfg.run.total_steps);
    PPOStats pstats;
    if (learnable) {
      pstats = agent.update(policy_obs.data(), progress);
      ++updates;
    } else {
      agent.discard_rollout();
      ++discarded_rollouts;
    }
    t_ppo += seconds_since(tu);

    // New candidate clips; the reward model's view of a few of them before any label (held
    // out), pooled over the latest iterations (run.true_corr_clips, run.true_corr_window).
    const auto tc = Clock::now();
    std::vector<Segment> fresh = cut_into_pool();
    if (!fresh.empty()) {
      const size_t k = std::min(fresh.size(), static_cast<size_t>(cfg.run.true_corr_clips));
      std::vector<const Segment*> ptrs;
      for (size_t j = 0; j < k; ++j) ptrs.push_back(&fresh[j * fresh.size() / k]);
      torch::Tensor r = reward.segment_returns(ptrs).mean(0).contiguous();  // (k)
      auto acc = r.accessor<float, 1>();
      for (size_t j = 0; j < k; ++j) {
        corr_pred.push_back(acc[static_cast<int64_t>(j)]);
        corr_truth.push_back(ptrs[j]->true_return());
      }
      const size_t w = static_cast<size_t>(cfg.run.true_corr_window);
      if (corr_pred.size() > w) {
        corr_pred.erase(corr_pred.begin(), corr_pred.end() - w);
        corr_truth.erase(corr_truth.begin(), corr_truth.end() - w);
      }
    }
    const double true_corr = corr_pred.size() >= 2 ? pearson(corr_pred, corr_truth) : std::nan("");
    t_query += seconds_since(tc);

    // Labels due by now, then a reward-model round on them.
    const int due = static_cast<int>(schedule.target_labels(global_step) - labels_requested);
    if (due >= cfg.prefs.query_batch || (due > 0 && global_step >= cfg.run.total_steps)) ask_and_label(due, "schedule");
    if (human && cfg.server.max_label_lag >= 0) {
      // Paced by the people (opt-in): pause while more than max_label_lag of the queries asked
      // so far are unanswered (0: every label is in before training goes on, as with a script).
      wait_for_labels(labels_requested - cfg.server.max_label_lag, false);
      if (cfg.server.max_label_lag == 0 && cfg.server.undo_window_s > 0) {
        std::this_thread::sleep_for(std::chrono::duration<double>(cfg.server.undo_window_s));
      }
    }
    const bool reward_round = train_reward(1);

    ++iterations;

    // ---- Metrics, against environment steps ----
    const int64_t labels_now = db.count_labels(label_bound);
    const double iter_s = seconds_since(t_iter);
    auto log_m = [&](const char* name, double v) { metrics.log(name, v, global_step); };
    if (!finished_true.empty()) {
      log_m(metric::kEpisodicReturn, mean_of(finished_true));
      log_m(metric::kPredictedReturn, mean_of(finished_pred));
      log_m(metric::kEpisodicLength, mean_of(finished_len));
      if (spec.has_success) log_m(metric::kSuccessRate, mean_of(finished_success));
      for (double r : finished_true) {
        recent_returns.push_back(r);
        if (recent_returns.size() > 20) recent_returns.pop_front();
      }
      if (server) {
        return_curve.emplace_back(global_step, mean_of(std::vector<double>(recent_returns.begin(), recent_returns.end())));
        if (return_curve.size() > 400) {  // keep every other point
          for (size_t i = 0; i < return_curve.size() / 2; ++i) return_curve[i] = return_curve[2 * i];
          return_curve.resize(return_curve.size() / 2);
        }
      }
    }
    publish("training", labels_now, labels_now);
    const double rollout_sps = static_cast<double>(T) * N / std::max(t_env + t_inf, 1e-9);
    log_m(metric::kSPS, static_cast<double>(T) * N / std::max(iter_s, 1e-9));
    log_m(metric::kRolloutSPS, rollout_sps);
    if (pstats.minibatches > 0) {  // an update with no minibatch applied has no losses
      log_m(metric::kLearningRate, pstats.lr);
      log_m(metric::kPolicyLoss, pstats.policy_loss);
      log_m(metric::kValueLoss, pstats.value_loss);
      log_m(metric::kEntropy, pstats.entropy);
      log_m(metric::kApproxKL, pstats.approx_kl);
      log_m(metric::kClipFrac, pstats.clipfrac);
      log_m(metric::kExplainedVariance, pstats.explained_variance);
    }
    log_m(metric::kSkippedUpdates, static_cast<double>(pstats.skipped_nonfinite));
    log_m(metric::kRewardTrainLoss, rstats.train_loss);
    log_m(metric::kRewardValLoss, rstats.val_loss);
    log_m(metric::kRewardTrainAccuracy, rstats.train_accuracy);
    log_m(metric::kRewardValAccuracy, rstats.val_accuracy);
    log_m(metric::kRewardL2, rstats.l2);
    log_m(metric::kRewardDiverged, static_cast<double>(diverged_rounds));
    log_m(metric::kRewardTrueCorr, true_corr);
    log_m(metric::kRewardDisagreement, last_disagreement);
    log_m(metric::kLabels, static_cast<double>(labels_now));
    log_m(metric::kPendingQueries, static_cast<double>(db.count_pending()));
    log_m(metric::kLabelRate, 1000.0 * (labels_now - labels_before) / (static_cast<double>(T) * N));
    log_m(metric::kDbBytes, static_cast<double>(db.file_size()));
    log_m(metric::kPoolSize, static_cast<double>(pool.size()));
    log_m(metric::kUnusedLabels, static_cast<double>(labels_now - labels_used));
    log_m(metric::kTimeEnv, t_env);
    log_m(metric::kTimeInference, t_inf);
    log_m(metric::kTimeRewardPredict, t_rpred);
    log_m(metric::kTimePPO, t_ppo);
    log_m(metric::kTimeRewardTrain, t_rtrain);
    log_m(metric::kTimeQuery, t_query);
    log_m(metric::kTimeDb, t_db);
    log_m(metric::kTimeLabelWait, t_wait);
    log_m(metric::kTimeIteration, iter_s);
    const double rss_mb = resident_memory_mb();
    log_m(metric::kRssMb, rss_mb);

    // ---- Health checks: warnings (log, health.jsonl) and health/<check> metrics ----
    if (cfg.health.enabled) {
      HealthSample h;
      h.step = global_step;
      h.entropy = pstats.minibatches > 0 ? pstats.entropy : std::nan("");
      h.skipped_minibatches = pstats.skipped_nonfinite;
      h.diverged_rounds = diverged_rounds;
      h.discarded_rollouts = discarded_rollouts;
      h.rollout_sps = rollout_sps;
      h.rss_mb = rss_mb;
      h.reward_round = reward_round;
      h.labels_used = labels_used;
      h.train_loss = rstats.train_loss;
      h.val_loss = rstats.val_loss;
      h.val_accuracy = rstats.val_accuracy;
      h.true_corr = true_corr;
      report_health(health.observe(h));
      for (int c = 0; c < HealthMonitor::kNumChecks; ++c) {
        const auto check = static_cast<HealthMonitor::Check>(c);
        log_m(HealthMonitor::metric_name(check), health.value(check));
      }
    }
    metrics.flush();
    total_skipped_minibatches += pstats.skipped_nonfinite;
    total_discarded_rollouts += discarded_rollouts;
    total_diverged_rounds += diverged_rounds;
    discarded_rollouts = diverged_rounds = 0;

    // ---- Progress line (display only) ----
    if (seconds_since(last_progress) >= cfg.run.progress_every_s || global_step >= cfg.run.total_steps) {
      const double sps = (global_step - steps_at_last_progress) / std::max(seconds_since(time_at_last_progress), 1e-9);
      std::vector<double> rr(recent_returns.begin(), recent_returns.end());
      log.progress(fmt::format("step {:>8}/{} | {:>7.0f} steps/s | return {:>9.2f} | labels {:>4}/{} | val acc {:.3f} | "
                               "true corr {:+.2f} | entropy {:+.3f}",
                               global_step, cfg.run.total_steps, sps, mean_of(rr), labels_now, schedule.total_labels,
                               rstats.val_accuracy, true_corr, pstats.entropy),
                   static_cast<double>(global_step) / cfg.run.total_steps);
      last_progress = Clock::now();
      steps_at_last_progress = global_step;
      time_at_last_progress = last_progress;
    }
    if (seconds_since(last_heartbeat) >= cfg.run.heartbeat_s) write_running_summary();

    // ---- Checkpoint: on schedule, at the end of training, and when asked to stop ----
    const bool stop = stop_requested() != 0;
    if (stop || global_step >= cfg.run.total_steps ||
        (cfg.run.checkpoint_every > 0 && iterations % cfg.run.checkpoint_every == 0) ||
        (cfg.run.checkpoint_every_s > 0 && seconds_since(last_checkpoint) >= cfg.run.checkpoint_every_s)) {
      save_checkpoint();
    }
    if (stop && global_step < cfg.run.total_steps) {
      result.status = "stopped";
      result.env_steps = global_step;
      result.total_steps = cfg.run.total_steps;
      result.labels = db.count_labels();
      result.wall_s = wall_before + seconds_since(t_start);
      nlohmann::json summary = result.to_json();
      summary["checkpoint"] = last_checkpoint_dir;
      summary["process"] = identity;
      summary["process"]["heartbeat"] = unix_time_now();
      run.write_json("summary.json", summary);
      log.line(fmt::format("stopped by {} at step {} of {}; everything is saved in {}; continue with: prefrl train "
                           "--resume {}", stop_requested() == SIGTERM ? "SIGTERM" : "SIGINT", global_step,
                           cfg.run.total_steps, last_checkpoint_dir, run.path()));
      if (server) server->stop();
      return result;
    }
  }

  // ---- Checkpoints, evaluation, summary -------------------------------------------------
  agent.save(run.file("checkpoints/policy.pt"));
  reward.save(run.file("checkpoints/reward.pt"));
  result.env_steps = global_step;
  result.total_steps = cfg.run.total_steps;
  result.train_return = mean_of(std::vector<double>(recent_returns.begin(), recent_returns.end()));
  result.labels = db.count_labels();
  for (int c = 0; c < HealthMonitor::kNumChecks; ++c) {
    const auto check = static_cast<HealthMonitor::Check>(c);
    if (cfg.health.enabled) result.health[HealthMonitor::name(check)] = health.fired(check);
  }
  result.nonfinite = {{"skipped_minibatches", total_skipped_minibatches},
                      {"diverged_reward_rounds", total_diverged_rounds},
                      {"discarded_rollouts", total_discarded_rollouts}};
  result.val_accuracy = reward.validation_accuracy();
  result.wall_s = wall_before + seconds_since(t_start);

  const uint64_t eval_seed = derive_seed(seed, kEvalStream);
  result.final_true_corr = reward_true_correlation(agent, reward, cfg.env.name, N, L, 256, eval_seed,
                                                   termination_penalty);
  result.heldout_true_corr = heldout_correlation(reward, db);
  metrics.log(metric::kRewardTrueCorr, result.final_true_corr, global_step);
  if (cfg.run.eval_episodes > 0) {
    EvalResult ev = evaluate_policy(agent, cfg.env.name, cfg.run.eval_episodes, eval_seed + 1);
    result.eval_episodes = ev.episodes;
    result.eval_mean_return = ev.mean_return;
    result.eval_std_return = ev.std_return;
    result.eval_success_rate = ev.has_success ? ev.success_rate : std::nan("");
  }
  metrics.flush();
  publish("finished", result.labels, result.labels);
  nlohmann::json summary = result.to_json();
  summary["process"] = identity;
  summary["process"]["heartbeat"] = unix_time_now();
  run.write_json("summary.json", summary);
  log.line(fmt::format("done: {} steps, {} labels, {:.1f} s; eval return {:.2f} ± {:.2f} over {} episodes; "
                       "reward val accuracy {:.3f}; predicted-vs-true correlation {:.3f} (final policy), {:.3f} (held-out clips)",
                       result.env_steps, result.labels, result.wall_s, result.eval_mean_return,
                       result.eval_std_return, result.eval_episodes, result.val_accuracy, result.final_true_corr,
                       result.heldout_true_corr));
  return result;
}

}  // namespace prefrl
