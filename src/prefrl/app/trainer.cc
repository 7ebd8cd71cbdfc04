// The trainer: DESIGN.md's loop as a sequence of named parts.
//
//   seed everything => build the parts => pre-training (the untrained policy's clips, the first
//   labels, the first reward model) => loop {
//     collect (rollout.h) => score with r̂ => update the agent => cut clips, score a few
//     => ask queries (queries.h; the teacher answers now or later) => pace to the teacher
//     => train the reward model on the final labels => log => check health => checkpoint
//   } => final models, evaluation, summary.json
//
// Everything the loop carries from one iteration to the next is in the parts below; a
// checkpoint is LoopState (loop_state.h) + policy.pt + reward.pt, captured and restored here.
#include "prefrl/app/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <deque>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <utility>
#include <torch/torch.h>

#include "prefrl/app/checkpoint.h"
#include "prefrl/app/dataset.h"
#include "prefrl/app/reward_reuse.h"
#include "prefrl/app/evaluate.h"
#include "prefrl/app/loop_state.h"
#include "prefrl/app/queries.h"
#include "prefrl/app/rollout.h"
#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/prefs/query_selection.h"
#include "prefrl/reward/reward_model.h"
#include "prefrl/rl/ppo.h"
#include "prefrl/server/label_server.h"
#include "prefrl/teachers/teacher.h"
#include "prefrl/tracking/health.h"
#include "prefrl/core/metric_names.h"
#include "prefrl/tracking/metrics.h"
#include "prefrl/tracking/runs.h"

namespace prefrl {

namespace {

// Why figures from the true reward are absent, in words.
constexpr const char* kNoTrueReward = "the task has no true reward";
constexpr const char* kBaseline = "the true-reward baseline trains no reward model";

volatile std::sig_atomic_t g_stop_signal = 0;  // set by request_stop (a signal handler)

// Random streams of a run: each component draws from its own, derived from the run seed.
enum Stream : uint64_t { kEnvStream = 1, kPolicyStream, kRewardStream, kSegmentStream, kQueryStream,
                         kTeacherStream, kEvalStream, kExploreStream };

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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
double mean_of(const std::deque<double>& d) { return mean_of(std::vector<double>(d.begin(), d.end())); }

nlohmann::json num_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

// Predicted vs true returns of the clips in held-out (validation) pairs: labels the reward
// model never trained on, from every stage of training.
double heldout_correlation(RewardModel& reward, const PrefStore& db, std::string* undefined) {
  const std::vector<int64_t> val = reward.validation_label_ids();  // sorted
  const std::vector<LabeledPair> pairs = db.labeled_pairs(0);
  std::vector<const Segment*> segs;
  std::vector<double> truth, pred;
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (!std::binary_search(val.begin(), val.end(), pairs[i].label_id)) continue;
    segs.push_back(&pairs[i].left);
    segs.push_back(&pairs[i].right);
  }
  if (segs.size() < 2) {
    *undefined = "fewer than 2 held-out clips";
    return std::nan("");
  }
  for (const Segment* s : segs) truth.push_back(s->true_return());
  torch::Tensor r = reward.segment_returns(segs).mean(0).contiguous();
  auto acc = r.accessor<float, 1>();
  for (int64_t j = 0; j < r.size(0); ++j) pred.push_back(acc[j]);
  const double corr = pearson(pred, truth);
  *undefined = std::isfinite(corr) ? "" : undefined_correlation(pred, truth);
  return corr;
}

// The LibTorch default generator's state, and setting it back.
std::vector<uint8_t> torch_rng_state() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  const at::Tensor st = gen.get_state().contiguous();
  return std::vector<uint8_t>(st.data_ptr<uint8_t>(), st.data_ptr<uint8_t>() + st.numel());
}
void set_torch_rng_state(std::vector<uint8_t> state) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(torch::from_blob(state.data(), {static_cast<int64_t>(state.size())}, torch::kUInt8).clone());
}

// Resuming: the newest good checkpoint; metrics.jsonl, health.jsonl and the TensorBoard files
// cut back to it (before anything opens them).
std::optional<Checkpoint> prepare_resume(const RunDir& run, RunLog& log) {
  const std::string ckpt_dir = run.file("checkpoints");
  std::vector<std::string> problems;
  std::optional<Checkpoint> ckpt = find_checkpoint(ckpt_dir, &problems);
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
  return ckpt;
}

// Every random stream derives from run.seed; LibTorch's before any network is built.
struct Seeding {
  explicit Seeding(const TrainConfig& cfg) : seed(static_cast<uint64_t>(cfg.run.seed)) {
    torch::set_num_threads(cfg.run.threads);
    torch::manual_seed(derive_seed(seed, kRewardStream));
  }
  uint64_t seed;
};

// What one iteration measured, for its metrics and health checks.
struct Iteration {
  PhaseTimes t;
  EpisodeTally episodes;
  AgentStats pstats;
  int64_t labels_before = 0;
  int64_t discarded_rollouts = 0, diverged_rounds = 0;  // non-finite values met, each skipped
  int64_t explored_queries = 0;  // queries asked with a clip of an exploring episode
  int64_t skipped_queries = 0;   // queries the teacher skipped
  double true_corr = std::nan("");
  std::string true_corr_undefined;  // why true_corr is undefined, in words
  bool reward_round = false;
  int iterations = 1;  // training iterations this record covers (run.metrics_every)

  // Adds the next iteration `b` to this record (run.metrics_every): sums of times, steps,
  // episodes and counts; the mean of the losses and entropy over the updates applied; the
  // newest reward correlation.
  void merge(const Iteration& b) {
    t.env += b.t.env; t.inference += b.t.inference; t.reward_predict += b.t.reward_predict; t.ppo += b.t.ppo;
    t.reward_train += b.t.reward_train; t.query += b.t.query; t.db += b.t.db; t.wait += b.t.wait;
    auto append = [](auto& into, const auto& from) { into.insert(into.end(), from.begin(), from.end()); };
    append(episodes.true_returns, b.episodes.true_returns);
    append(episodes.predicted_returns, b.episodes.predicted_returns);
    append(episodes.lengths, b.episodes.lengths);
    append(episodes.successes, b.episodes.successes);
    append(episodes.envs, b.episodes.envs);
    if (b.pstats.applied > 0) {
      if (pstats.applied == 0) {
        const int64_t skipped = pstats.skipped_nonfinite;
        pstats = b.pstats;
        pstats.skipped_nonfinite += skipped;
        updates_averaged = 1;
      } else {  // running means over the records' updates
        ++updates_averaged;
        const double w = 1.0 / updates_averaged;
        for (size_t k = 0; k < pstats.metrics.size() && k < b.pstats.metrics.size(); ++k)
          pstats.metrics[k].second += w * (b.pstats.metrics[k].second - pstats.metrics[k].second);
        pstats.entropy += w * (b.pstats.entropy - pstats.entropy);
        pstats.applied += b.pstats.applied;
        pstats.skipped_nonfinite += b.pstats.skipped_nonfinite;
      }
    } else {
      pstats.skipped_nonfinite += b.pstats.skipped_nonfinite;
    }
    discarded_rollouts += b.discarded_rollouts;
    diverged_rounds += b.diverged_rounds;
    explored_queries += b.explored_queries;
    skipped_queries += b.skipped_queries;
    true_corr = b.true_corr;
    true_corr_undefined = b.true_corr_undefined;
    reward_round = reward_round || b.reward_round;
    iterations += b.iterations;
  }
  int updates_averaged = 1;  // merge: the iterations with an update the losses are averaged over
};

class Trainer {
 public:
  Trainer(const TrainConfig& cfg, const RunDir& run, RunLog& log, bool resume);
  TrainResult run();

 private:
  // ---- the loop's parts, in the order they run ----
  bool pretrain();                         // false: stopped while waiting for the first labels
  void score_and_update(Iteration& it);    // r̂ for the rollout, episode tallies, the agent's update
  void cut_and_score_clips(Iteration& it); // new candidate clips; r̂ vs true on a few of them
  void add_exploring_clips(Iteration& it); // prefs.explore_clips: clips of exploring episodes
  void ask_due_queries(Iteration& it);     // the schedule's labels, paced to the teacher
  void ask(int count, bool initial, Iteration& it);  // queries_.ask, the teacher told the typical clip return
  double typical_clip_return() const;
  bool train_reward(int rounds, Iteration& it);
  void log_iteration(Iteration& it);       // every metric of the iteration, against the step
  void check_health(const Iteration& it);
  void progress_line(const Iteration& it);
  // ---- around the loop ----
  WaitHooks make_wait_hooks();            // once: they act on *waiting_ (the iteration that waits)
  void report_health(const std::vector<HealthEvent>& events);
  void publish(const char* phase, int64_t have, int64_t need);
  void write_running_summary();
  LoopState capture();
  void save_checkpoint();
  void restore();
  TrainResult stopped(const std::string& line, bool with_checkpoint);
  TrainResult finish();

  const TrainConfig& cfg_;
  TrainConfig cfg_copy_;  // config_to_json visits (non-const)
  const RunDir& run_;
  RunLog& log_;
  const Clock::time_point t_start_ = Clock::now();
  const bool resume_;
  std::optional<Checkpoint> ckpt_;
  Seeding seeding_;
  const int N_, T_, L_;  // environments, rollout steps, steps per clip
  int explore_steps_ = 0;  // steps of an exploring episode (prefs.explore_clips > 0)
  Collector collector_;
  const EnvSpec spec_;
  std::unique_ptr<Agent> agent_;  // the policy's learner (agent.algorithm)
  RewardModel reward_;
  std::unique_ptr<PrefStore> store_;
  PrefStore& db_;
  std::unique_ptr<LabelServer> server_;  // the labeling page, when people answer
  std::unique_ptr<Teacher> teacher_;
  const TeacherKnobs teacher_knobs_;  // a scripted teacher's (B-Pref's imperfections)
  Queries queries_;
  LabelSchedule schedule_;
  MetricWriter metrics_;
  HealthMonitor health_;
  std::ofstream health_log_;  // health.jsonl: one line per warning
  const bool true_reward_baseline_;  // the policy learns from the true reward; no labels are asked
  // Answers the run started with (prefs.import_from, label ids 1..imported_): counted apart.
  int64_t imported_ = 0, imported_pairs_ = 0;
  int64_t new_labels() const { return queries_.count_labels() - imported_; }
  const nlohmann::json identity_ = process_identity();

  LoopCounters c_;  // labels_requested and last_label_id are Queries' (filled in by capture())
  RewardTrainStats rstats_;
  double wall_before_ = 0;                 // seconds the run trained before it was resumed
  std::vector<double> corr_pred_, corr_truth_;  // reward/true_corr: the latest scored fresh clips
  std::deque<double> recent_returns_;      // true returns of the last 20 episodes
  std::vector<std::pair<int64_t, double>> return_curve_;  // (step, recent mean return), thinned (page only)
  Clock::time_point last_heartbeat_ = Clock::now(), last_checkpoint_ = Clock::now();
  Clock::time_point last_progress_ = Clock::now() - std::chrono::hours(1), time_at_last_progress_ = Clock::now();
  int64_t steps_at_last_progress_ = 0;
  std::string last_checkpoint_dir_;
  double iteration_s_ = 0;         // wall time of the iterations of the metrics record being written
  std::optional<Iteration> record_;  // the iterations since the last metrics record (run.metrics_every)
  double record_s_ = 0;              // their wall time
  double rss_mb_ = 0;              // resident memory, measured with the iteration's metrics
  int64_t carried_diverged_ = 0;   // pre-training's diverged reward rounds, counted in the first iteration
  Iteration* waiting_ = nullptr;   // the iteration a teacher's wait is counted in
  const WaitHooks hooks_ = make_wait_hooks();
};

Trainer::Trainer(const TrainConfig& cfg, const RunDir& run, RunLog& log, bool resume)
    : cfg_(cfg),
      cfg_copy_(cfg),
      run_(run),
      log_(log),
      resume_(resume),
      ckpt_(resume ? prepare_resume(run, log) : std::nullopt),
      seeding_(cfg),
      N_(cfg.env.num_envs),
      T_(cfg.rollout_steps()),
      L_(cfg.segment_steps()),
      collector_(cfg.env.name, N_, T_, derive_seed(seeding_.seed, kEnvStream),
                 cfg.env.termination == "penalty" ? std::optional<float>(static_cast<float>(cfg.env.termination_penalty))
                                                  : std::nullopt,
                 L_),
      spec_(collector_.spec()),
      agent_(make_agent(cfg.agent, cfg.ppo, cfg.a2c, spec_, N_, derive_seed(seeding_.seed, kPolicyStream))),
      reward_(cfg.reward, spec_.observation.shape, collector_.act_size(), spec_.action.discrete, spec_.action.n,
              spec_.can_terminate && !collector_.envs().termination_replaced(),
              derive_seed(seeding_.seed, kRewardStream)),
      store_(open_pref_store(sqlite_store_url(run.file("prefs.db")))),
      db_(*store_),
      server_(teacher_needs_people(cfg.teacher)
                  ? std::make_unique<LabelServer>(cfg.server, sqlite_store_url(run.file("prefs.db")), cfg.env.name,
                                                  std::filesystem::absolute(run.path()).filename().string(),
                                                  std::filesystem::absolute(run.path()).parent_path().string())
                  : nullptr),
      teacher_(make_teacher(cfg.teacher, cfg.prefs.tie_tolerance, derive_seed(seeding_.seed, kTeacherStream),
                            PeopleSettings{cfg.server.answers_per_query, cfg.server.undo_window_s,
                                           cfg.server.max_pending, cfg.server.max_label_lag,
                                           server_ ? server_->url() : std::string(), imported_label_count(*store_)},
                            db_)),
      teacher_knobs_(teacher_knobs(cfg.teacher)),
      queries_(cfg.prefs, L_, derive_seed(seeding_.seed, kSegmentStream), derive_seed(seeding_.seed, kQueryStream),
               db_, *teacher_, reward_, log),
      metrics_(run.file("metrics.jsonl"), cfg.run.tensorboard ? run.path() : std::string()),
      health_(cfg.health, !spec_.action.discrete, static_cast<int>(spec_.action.discrete ? 1 : collector_.act_size())),
      true_reward_baseline_(cfg.run.policy_reward == "true") {
  agent_->keep_rollout_in(collector_.store().columns());  // its rollout buffer: columns of the one store
  if (cfg.prefs.explore_clips > 0) {
    explore_steps_ = cfg.prefs.explore_steps > 0 ? cfg.prefs.explore_steps : spec_.max_episode_steps;
    if (explore_steps_ <= 0)
      throw UsageError("prefs.explore_clips: '" + cfg.env.name +
                       "' has no time limit; set prefs.explore_steps (the length of an exploring episode)");
    if (explore_steps_ < L_)
      throw UsageError("prefs.explore_steps: exploring episodes of " + std::to_string(explore_steps_) +
                       " steps are shorter than a clip (" + std::to_string(L_) + " steps)");
    EpsilonPolicy::check(spec_.action, cfg.prefs.explore_epsilon);  // an unbounded action space is refused now
    log_.line(fmt::format("exploring clips: {} per iteration, from episodes of {} steps with random actions at rate {}",
                          cfg.prefs.explore_clips, explore_steps_, cfg.prefs.explore_epsilon));
  }
  if (!cfg.run.reward_from.empty()) {  // the model to start from (a resumed run's checkpoint replaces it)
    const RewardSource src = resolve_reward_source(cfg.run.reward_from);
    reward_.load(src.state_file);
    reward_.forget_saved_pairs();
    log_.line(fmt::format("reward model from {} ({}){}", src.path, src.kind,
                          cfg.prefs.total_labels > 0 ? fmt::format(": it trains on the run's {} labels", cfg.prefs.total_labels)
                                                     : std::string(": fixed, no labels are asked")));
  }
  imported_ = imported_label_count(db_);
  if (imported_ > 0) {
    const std::vector<ImportedRange> ranges = imported_ranges(db_);
    for (const Label& l : db_.labels())  // the store's labels read once, not once per import
      for (const ImportedRange& r : ranges)
        if (l.id >= r.first && l.id <= r.last && l.choice != Choice::kSkip) ++imported_pairs_;
    log_.line(fmt::format("the store holds {} imported answers ({} labeled pairs; prefs.import_from): the reward model "
                          "learns from them, and metrics count them apart (prefs/labels_imported) from the {} new labels "
                          "of the budget", imported_, imported_pairs_, cfg.prefs.total_labels));
  }
  if (!spec_.reward_hidden.empty()) {  // e.g. an Atari game's score display
    reward_.hide_inputs(spec_.reward_hidden);
    log_.line(fmt::format("the reward model does not see {} of the {} observation values (the task hides them: "
                          "score displays)", spec_.reward_hidden.size(), spec_.observation.numel()));
  }
  if (cfg.teacher.kind != "human" && describe_knobs(teacher_knobs_) != "none" && !true_reward_baseline_)
    log_.line(fmt::format("teacher {}: {}", cfg.teacher.kind, describe_knobs(teacher_knobs_)));
  if (server_) {
    server_->start();
    log_.line(fmt::format("labeling page: {}  (open it in a browser; several people may label at once); runs: {}",
                          server_->url(), server_->runs_url()));
  }
  if (!spec_.has_true_reward) {
    health_.turn_off(HealthMonitor::kTrueCorr, kNoTrueReward);
    log_.line(fmt::format("task {} has no true reward{}: true returns, reward/true_corr and the predicted-vs-true "
                          "correlations are absent; health check {} is off",
                          cfg.env.name, cfg.teacher.kind == "script" ? " (its rewards are the script teacher's score)" : "",
                          HealthMonitor::name(HealthMonitor::kTrueCorr)));
  }
  if (true_reward_baseline_ && spec_.has_true_reward) {
    health_.turn_off(HealthMonitor::kTrueCorr, kBaseline);
    log_.line(fmt::format("run.policy_reward=true: the policy learns from the true reward; no labels are asked, no "
                          "clips are cut and r̂ is not computed while training (reward/true_corr and "
                          "episode/predicted_return are absent); health check {} is off",
                          HealthMonitor::name(HealthMonitor::kTrueCorr)));
  }
  schedule_.total_labels = true_reward_baseline_ ? 0 : cfg.prefs.total_labels;
  schedule_.initial_fraction = cfg.prefs.initial_fraction;
  schedule_.kind = cfg.prefs.schedule;
  schedule_.horizon = cfg.prefs.schedule_horizon;
  schedule_.total_steps = cfg.run.total_steps;
}

// ---- Waiting for a teacher: the time counts as label wait; past health.label_wait_s, a warning
WaitHooks Trainer::make_wait_hooks() {
  WaitHooks h;
  h.stop = [] { return stop_requested() != 0; };
  h.show = [this](int64_t have, int64_t want) { publish("waiting", have, want); };
  h.waited = [this](double s) { if (cfg_.health.enabled) report_health(health_.waiting(s, c_.step)); };
  h.over = [this](double s) { health_.wait_over(); waiting_->t.wait += s; };
  h.say = [this](const std::string& line) { log_.line(line); };
  h.first_labels_in = [this](int64_t need) {
    metrics_.log(metric::kTimeLabelWait, waiting_->t.wait, c_.step);
    publish("waiting", need, need);
  };
  return h;
}

// ---- Health warnings: a log line, a line in health.jsonl (and, per iteration, metrics) ------
void Trainer::report_health(const std::vector<HealthEvent>& events) {
  for (const HealthEvent& e : events) {
    log_.line(fmt::format("health warning [{}] at step {}: {}", e.name, e.step, e.message));
    if (!health_log_.is_open()) health_log_.open(run_.file("health.jsonl"), std::ios::app);
    health_log_ << nlohmann::json{{"name", e.name}, {"step", e.step}, {"message", e.message},
                                  {"wall_time", std::round(metrics_.elapsed_s() * 1000.0) / 1000.0}}.dump()
                << "\n" << std::flush;
  }
}

// ---- What the labeling page shows of the run (when it is served) -----------------------------
void Trainer::publish(const char* phase, int64_t have, int64_t need) {
  if (!server_) return;
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& [s, r] : return_curve_) curve.push_back({s, r});
  server_->publish({{"phase", phase}, {"step", c_.step}, {"total_steps", cfg_.run.total_steps},
                    {"labels_used", c_.labels_used - imported_pairs_}, {"label_budget", schedule_.total_labels},
                    {"labels_have", have}, {"labels_needed", need},
                    {"val_accuracy", c_.labels_used > 0 ? num_or_null(rstats_.val_accuracy) : nlohmann::json(nullptr)},
                    {"recent_return", num_or_null(mean_of(recent_returns_))},
                    {"return_curve", curve}});
}

// ---- summary.json while running: progress and a heartbeat (runs list tells crashed runs) ----
void Trainer::write_running_summary() {
  nlohmann::json process = identity_;
  process["heartbeat"] = unix_time_now();
  run_.write_json("summary.json", {{"status", "running"}, {"env_steps", c_.step},
                                   {"total_steps", cfg_.run.total_steps}, {"labels", std::max<int64_t>(0, c_.labels_used - imported_pairs_)},
                                   {"wall_s", wall_before_ + seconds_since(t_start_)},
                                   {"train_return", num_or_null(mean_of(recent_returns_))},
                                   {"heartbeat_s", cfg_.run.heartbeat_s}, {"process", process}},
                  /*durable=*/false);  // a heartbeat lost to a power cut still reads as crashed
  last_heartbeat_ = Clock::now();
}

// ---- Checkpoints: everything the loop carries from one iteration to the next -------------
// At an iteration boundary (after the agent's update and the reward round), so that a resumed
// run continues exactly as the uninterrupted one would.
LoopState Trainer::capture() {
  LoopState st;
  VecEnv& envs = collector_.envs();
  for (int i = 0; i < N_; ++i) {
    Env& env = envs.env(i);
    st.env_state.push_back(env.get_state());
    st.env_rng.push_back(env.rng().state());
    st.env_elapsed.push_back(env.elapsed_steps());
  }
  st.task_over = envs.task_over();
  st.policy_obs = collector_.policy_obs();
  st.policy_states = collector_.policy_states();
  st.ep_true = collector_.episode_true();
  st.ep_pred = collector_.episode_predicted();
  st.ep_len = collector_.episode_length();
  for (int i = 0; i < N_; ++i) st.history.push_back(Trajectory::copy_of(collector_.store().trajectory(i)));
  for (size_t k = 0; k < queries_.pool().size(); ++k) {
    st.pool.push_back(queries_.pool().at(k));
    st.pool.back().unpack_obs();  // trainer.bin keeps clips' observations as floats (format 1)
  }
  st.segment_rng = queries_.segment_rng().state();
  st.query_rng = queries_.query_rng().state();
  st.teacher_rng = teacher_->rng_state();
  st.torch_rng = torch_rng_state();
  st.corr_pred = corr_pred_;
  st.corr_truth = corr_truth_;
  st.counters = c_;
  st.counters.labels_requested = queries_.labels_requested();
  st.counters.last_label_id = queries_.last_label_id();
  st.db = db_.high_water();
  st.last_disagreement = queries_.last_disagreement();
  st.rstats = rstats_;
  st.recent_returns.assign(recent_returns_.begin(), recent_returns_.end());
  st.return_curve = return_curve_;
  st.health = health_.state();
  st.wall_s = wall_before_ + seconds_since(t_start_);
  st.metrics_bytes = metrics_.bytes();
  std::error_code ec;
  const auto health_bytes = std::filesystem::file_size(run_.file("health.jsonl"), ec);
  st.health_bytes = ec ? 0 : static_cast<int64_t>(health_bytes);
  st.event_files = event_file_sizes(run_.path());
  st.config = config_to_json(cfg_copy_);
  return st;
}

void Trainer::save_checkpoint() {
  metrics_.flush();
  const LoopState st = capture();
  const std::string bin = st.trainer_bin();
  last_checkpoint_dir_ = write_checkpoint(run_.file("checkpoints"), c_.step, st.info(), [&](const std::string& dir) {
    agent_->save(dir + "/policy.pt");
    reward_.save(dir + "/reward.pt");
    write_file_synced(dir + "/trainer.bin", bin);
  }, cfg_.run.checkpoint_keep);
  last_checkpoint_ = Clock::now();
}

// ---- Resuming: restore the checkpoint; line up the store with it ---------------------------
void Trainer::restore() {
  int64_t last_label_id = 0, labels_requested = 0, after_query = 0;
  if (ckpt_) {
    agent_->load(ckpt_->file("policy.pt"));
    reward_.load(ckpt_->file("reward.pt"));
    LoopState st = LoopState::read(*ckpt_, N_, collector_.obs_size());
    std::vector<float> scratch(static_cast<size_t>(collector_.obs_size()));
    VecEnv& envs = collector_.envs();
    // An external env without state hooks cannot be put back where it was: each env starts a
    // new episode (drawn from its checkpointed random stream), which the policy then sees.
    const bool fresh = !cfg_.env.cmd.empty() && envs.spec().state_size == 0;
    std::vector<float> fresh_obs;
    for (int i = 0; i < N_; ++i) {
      Env& env = envs.env(i);
      env.rng().set_state(st.env_rng[i]);
      env.set_state(st.env_state[i], scratch.data());
      if (fresh) st.ep_len[i] = st.ep_true[i] = st.ep_pred[i] = 0;
      if (fresh) fresh_obs.insert(fresh_obs.end(), scratch.begin(), scratch.end());
      else env.set_elapsed_steps(static_cast<int>(st.env_elapsed[i]));
      envs.set_task_over(i, fresh ? VecEnv::kTaskRunning : st.task_over[i]);
    }
    if (fresh) {
      log_.line("resume: external env '" + cfg_.env.name + "' has no state hooks (state_size 0): each env starts a "
                "new episode (docs/env_protocol.md)");
      st.policy_obs = std::move(fresh_obs);
    }
    collector_.policy_obs() = std::move(st.policy_obs);
    collector_.policy_states() = std::move(st.policy_states);
    collector_.episode_true() = std::move(st.ep_true);
    collector_.episode_predicted() = std::move(st.ep_pred);
    collector_.episode_length() = std::move(st.ep_len);
    for (int i = 0; i < N_; ++i) {
      Trajectory& saved = st.history[i];
      saved.obs_size = collector_.obs_size(); saved.act_size = collector_.act_size();
      saved.state_size = collector_.state_size(); saved.num_envs = N_; saved.env_index = i;
      collector_.store().set_trajectory(i, saved.view());
    }
    corr_pred_ = std::move(st.corr_pred);
    corr_truth_ = std::move(st.corr_truth);
    queries_.pool().clear();
    for (Segment& seg : st.pool) {
      if (collector_.store().obs_bytes() && !seg.pack_obs())
        throw RuntimeError("checkpoint '" + ckpt_->dir + "': a clip's observation is not a byte / 255, but '" +
                           cfg_.env.name + "' keeps observations as bytes");
      queries_.pool().add(std::move(seg));
    }
    queries_.segment_rng().set_state(st.segment_rng);
    queries_.query_rng().set_state(st.query_rng);
    if (!st.teacher_rng.empty()) teacher_->set_rng_state(st.teacher_rng);
    set_torch_rng_state(std::move(st.torch_rng));
    c_ = st.counters;
    queries_.set_last_disagreement(st.last_disagreement);
    rstats_ = st.rstats;
    recent_returns_.assign(st.recent_returns.begin(), st.recent_returns.end());
    return_curve_ = st.return_curve;
    health_.set_state(st.health);
    wall_before_ = st.wall_s;
    metrics_.set_elapsed_offset(wall_before_);
    last_label_id = st.counters.last_label_id;
    labels_requested = st.counters.labels_requested;
    after_query = st.db.query;
  }
  std::vector<LabeledPair> had;
  const size_t after = queries_.resume(last_label_id, labels_requested, after_query, ckpt_.has_value(), &had);
  if (!had.empty()) reward_.add_pairs(had);
  log_.line(fmt::format("resume: at step {} with {} labels trained on; {} queries asked after the checkpoint are "
                        "in prefs.db ({})", c_.step, c_.labels_used, after,
                        teacher_->repeatable() ? "reused, not asked again"
                                               : "people's answers to them are used as they come"));
}

// ---- Pre-training: clips of the untrained policy, the first labels, the first r̂ ------------
bool Trainer::pretrain() {
  const int initial = schedule_.initial_labels();
  if (ckpt_ || initial <= 0) return true;
  Iteration it;
  const size_t want_segments = std::min<size_t>(static_cast<size_t>(cfg_.prefs.pool_capacity),
                                                std::max<size_t>(2, 2 * static_cast<size_t>(initial)));
  do {
    collector_.collect(*agent_, &c_.step, &it.t);
    queries_.cut(collector_.store());
  } while (queries_.pool().size() < want_segments && c_.step < cfg_.run.total_steps);
  ask(initial, /*initial=*/true, it);
  waiting_ = &it;
  teacher_->wait_for_first_labels(std::min<int64_t>(initial, queries_.labels_requested()), hooks_);
  if (stop_requested()) return false;
  // Answers the run started with get the rounds they would have had arriving query_batch at a
  // time (a run learns from its labels over one round per batch): else a model that starts with
  // hundreds of answers trains on them for only the first few rounds.
  const int imported_rounds =
      static_cast<int>((imported_pairs_ + cfg_.prefs.query_batch - 1) / std::max(1, cfg_.prefs.query_batch));
  train_reward(cfg_.prefs.initial_epoch_multiplier + imported_rounds, it);
  carried_diverged_ = it.diverged_rounds;
  log_.line(fmt::format("pre-training: {} labels from the untrained policy over {} steps; reward model "
                        "val accuracy {:.3f}", new_labels(), c_.step, rstats_.val_accuracy));
  return true;
}

// ---- r̂ for the rollout; episodes; the agent's update on r̂ ----------------------------------
// A rollout with a non-finite observation or reward (true, or learned) is not learned from
// (skipped, and counted).
void Trainer::score_and_update(Iteration& it) {
  TransitionStore& st = collector_.store();
  const auto tp = Clock::now();
  if (true_reward_baseline_) {  // no reward model trains: r̂ of the untrained one would be noise, and costly on pixels
    std::fill(st.learned(0), st.learned(0) + st.transitions(), 0.0f);
  } else {
    reward_.predict(st.obs(0), st.actions(0), st.transitions(), st.learned(0));  // the rollout: (T x N) rows
  }
  const float* policy_rewards = true_reward_baseline_ ? st.true_rewards(0) : st.learned(0);
  const bool learnable = !collector_.nonfinite() && all_finite(policy_rewards, st.transitions());
  if (learnable) agent_->set_rewards(policy_rewards);
  it.t.reward_predict += seconds_since(tp);

  it.episodes = collector_.tally();

  const auto tu = Clock::now();
  const double progress = std::min(1.0, static_cast<double>(c_.step) / cfg_.run.total_steps);
  if (learnable) {
    it.pstats = agent_->update(collector_.policy_obs().data(), progress);
    ++c_.updates;
  } else {
    agent_->discard_rollout();
    ++it.discarded_rollouts;
  }
  it.t.ppo += seconds_since(tu);
}

// ---- New candidate clips; the reward model's view of a few of them before any label -------
// (held out), pooled over the latest iterations (run.true_corr_clips, run.true_corr_window).
void Trainer::cut_and_score_clips(Iteration& it) {
  if (true_reward_baseline_) {  // no queries, so no clips
    it.true_corr_undefined = kBaseline;
    return;
  }
  const auto tc = Clock::now();
  std::vector<Segment> fresh = queries_.cut(collector_.store());
  if (!spec_.has_true_reward) {
    it.true_corr_undefined = kNoTrueReward;
    it.t.query += seconds_since(tc);
    return;
  }
  if (!fresh.empty()) {
    const size_t k = std::min(fresh.size(), static_cast<size_t>(cfg_.run.true_corr_clips));
    std::vector<const Segment*> ptrs;
    for (size_t j = 0; j < k; ++j) ptrs.push_back(&fresh[j * fresh.size() / k]);
    torch::Tensor r = reward_.segment_returns(ptrs).mean(0).contiguous();  // (k)
    auto acc = r.accessor<float, 1>();
    for (size_t j = 0; j < k; ++j) {
      corr_pred_.push_back(acc[static_cast<int64_t>(j)]);
      corr_truth_.push_back(ptrs[j]->true_return());
    }
    const size_t w = static_cast<size_t>(cfg_.run.true_corr_window);
    if (corr_pred_.size() > w) {
      corr_pred_.erase(corr_pred_.begin(), corr_pred_.end() - w);
      corr_truth_.erase(corr_truth_.begin(), corr_truth_.end() - w);
    }
  }
  it.true_corr = corr_pred_.size() >= 2 ? pearson(corr_pred_, corr_truth_) : std::nan("");
  if (!std::isfinite(it.true_corr)) it.true_corr_undefined = undefined_correlation(corr_pred_, corr_truth_);
  it.t.query += seconds_since(tc);
}

// ---- Clips where the policy does not go (prefs.explore_clips) -------------------------------
// Fresh episodes of the policy's most likely actions, each replaced by a uniformly random one
// with probability prefs.explore_epsilon, one clip from each into the pool (the agent never
// learns from them). A policy that has settled where an early reward model peaks shows only
// that place; the teacher then never sees a clip that says the peak is elsewhere. Everything
// about them is drawn from seeds of the run seed and the iteration: no state to checkpoint.
void Trainer::add_exploring_clips(Iteration& it) {
  const int k = cfg_.prefs.explore_clips;
  if (k <= 0 || true_reward_baseline_) return;
  const auto tx = Clock::now();
  const uint64_t seed = derive_seed(derive_seed(seeding_.seed, kExploreStream), static_cast<uint64_t>(c_.iterations));
  Collector explore(cfg_.env.name, k, explore_steps_, derive_seed(seed, 1), collector_.termination_penalty(), L_);
  EpsilonPolicy policy(*agent_, spec_.action, cfg_.prefs.explore_epsilon, derive_seed(seed, 2));
  int64_t step = c_.step;  // the clips' env_step: when they were collected
  PhaseTimes ignored;      // counted as query time, below
  explore.collect(policy, /*deterministic=*/true, &step, &ignored);
  Rng where(derive_seed(seed, 3));
  queries_.add_clips(explore.store(), N_, where);
  it.t.query += seconds_since(tx);
}

// ---- Labels due by now (a batch at a time), then the teacher's pace ------------------------
void Trainer::ask_due_queries(Iteration& it) {
  const int due = static_cast<int>(schedule_.target_labels(c_.step) - queries_.labels_requested());
  const int64_t explored_before = queries_.explored_asked();
  if (due >= cfg_.prefs.query_batch || (due > 0 && c_.step >= cfg_.run.total_steps)) ask(due, /*initial=*/false, it);
  it.explored_queries += queries_.explored_asked() - explored_before;
  waiting_ = &it;
  teacher_->pace(queries_.labels_requested(), hooks_);
}

void Trainer::ask(int count, bool initial, Iteration& it) {
  if (teacher_->uses_scale()) teacher_->set_typical_return(typical_clip_return());
  const int64_t skipped_before = queries_.skipped_asked();
  queries_.ask(count, initial, c_.step, &it.t);
  it.skipped_queries += queries_.skipped_asked() - skipped_before;
}

// B-Pref's typical clip return, the scale of its teachers' skip and equal thresholds: the mean
// true return of the last 10 episodes x the clip length / the time limit; with no time limit,
// or before an episode has ended, the mean true return of the candidate clips.
double Trainer::typical_clip_return() const {
  const size_t n = std::min<size_t>(10, recent_returns_.size());
  if (n > 0 && spec_.max_episode_steps > 0) {
    double sum = 0.0;
    for (size_t k = recent_returns_.size() - n; k < recent_returns_.size(); ++k) sum += recent_returns_[k];
    return sum / static_cast<double>(n) * L_ / spec_.max_episode_steps;
  }
  const SegmentPool& pool = queries_.pool();
  double sum = 0.0;
  for (size_t k = 0; k < pool.size(); ++k) sum += pool.at(k).true_return();
  return pool.size() > 0 ? sum / static_cast<double>(pool.size()) : 0.0;
}

// ---- Train the reward model on every label final since the last round ---------------------
bool Trainer::train_reward(int rounds, Iteration& it) {
  std::vector<LabeledPair> fresh = queries_.take_final(&it.t);
  c_.labels_used += static_cast<int64_t>(fresh.size());
  if (fresh.empty()) return false;
  const auto tr = Clock::now();
  reward_.add_pairs(fresh);
  for (int r = 0; r < rounds; ++r) {
    rstats_ = reward_.train_round();
    it.diverged_rounds += rstats_.diverged ? 1 : 0;  // rolled back to the round's start
  }
  // Normalise each member's output: over all labeled clips' states, or the newest rollout's.
  const TransitionStore& st = collector_.store();
  if (cfg_.reward.normalise_on == "labeled") reward_.update_normalisation_on_labeled();
  else reward_.update_normalisation(st.obs(0), st.actions(0), st.transitions());
  it.t.reward_train += seconds_since(tr);
  return true;
}

// ---- Metrics of one iteration, against environment steps ------------------------------------
void Trainer::log_iteration(Iteration& it) {
  const int64_t labels_now = queries_.count_labels();  // imported ones included
  auto log_m = [&](const char* name, double v) { metrics_.log(name, v, c_.step); };
  const EpisodeTally& ep = it.episodes;
  if (!ep.true_returns.empty()) {
    if (spec_.has_true_reward) log_m(metric::kEpisodicReturn, mean_of(ep.true_returns));  // absent where none
    if (!true_reward_baseline_) log_m(metric::kPredictedReturn, mean_of(ep.predicted_returns));
    log_m(metric::kEpisodicLength, mean_of(ep.lengths));
    if (spec_.has_success) log_m(metric::kSuccessRate, mean_of(ep.successes));
  }
  if (!ep.true_returns.empty() && spec_.has_true_reward) {
    for (double r : ep.true_returns) {
      recent_returns_.push_back(r);
      if (recent_returns_.size() > 20) recent_returns_.pop_front();
    }
    if (server_) {
      return_curve_.emplace_back(c_.step, mean_of(recent_returns_));
      if (return_curve_.size() > 400) {  // keep every other point
        for (size_t i = 0; i < return_curve_.size() / 2; ++i) return_curve_[i] = return_curve_[2 * i];
        return_curve_.resize(return_curve_.size() / 2);
      }
    }
  }
  publish("training", labels_now, labels_now);
  const double steps = static_cast<double>(T_) * N_ * it.iterations;
  const AgentStats& p = it.pstats;
  const PhaseTimes& t = it.t;
  log_m(metric::kSPS, steps / std::max(iteration_s_, 1e-9));
  log_m(metric::kRolloutSPS, steps / std::max(t.env + t.inference, 1e-9));
  if (p.applied > 0) {  // an update with no gradient step applied has no losses
    for (const auto& [name, value] : p.metrics) log_m(name, value);
  }
  log_m(metric::kSkippedUpdates, static_cast<double>(p.skipped_nonfinite));
  log_m(metric::kRewardTrainLoss, rstats_.train_loss);
  log_m(metric::kRewardValLoss, rstats_.val_loss);
  log_m(metric::kRewardTrainAccuracy, rstats_.train_accuracy);
  log_m(metric::kRewardValAccuracy, rstats_.val_accuracy);
  log_m(metric::kRewardL2, rstats_.l2);
  log_m(metric::kRewardDiverged, static_cast<double>(it.diverged_rounds));
  if (spec_.has_true_reward && !true_reward_baseline_) log_m(metric::kRewardTrueCorr, it.true_corr);
  log_m(metric::kRewardDisagreement, queries_.last_disagreement());
  log_m(metric::kLabels, static_cast<double>(labels_now - imported_));
  if (imported_ > 0) log_m(metric::kLabelsImported, static_cast<double>(imported_));
  log_m(metric::kPendingQueries, static_cast<double>(db_.count_pending()));
  log_m(metric::kLabelRate, 1000.0 * (labels_now - it.labels_before) / steps);
  log_m(metric::kDbBytes, static_cast<double>(db_.file_size()));
  log_m(metric::kPoolSize, static_cast<double>(queries_.pool().size()));
  if (cfg_.prefs.explore_clips > 0 && !true_reward_baseline_)
    log_m(metric::kExploredQueries, static_cast<double>(it.explored_queries));
  if (!true_reward_baseline_ && teacher_knobs_.skip > 0) log_m(metric::kSkippedQueries, static_cast<double>(it.skipped_queries));
  log_m(metric::kUnusedLabels, static_cast<double>(labels_now - c_.labels_used));
  log_m(metric::kTimeEnv, t.env);
  log_m(metric::kTimeInference, t.inference);
  log_m(metric::kTimeRewardPredict, t.reward_predict);
  log_m(metric::kTimePPO, t.ppo);
  log_m(metric::kTimeRewardTrain, t.reward_train);
  log_m(metric::kTimeQuery, t.query);
  log_m(metric::kTimeDb, t.db);
  log_m(metric::kTimeLabelWait, t.wait);
  log_m(metric::kTimeIteration, iteration_s_);
  rss_mb_ = resident_memory_mb();
  log_m(metric::kRssMb, rss_mb_);
}

// ---- Health checks: warnings (log, health.jsonl) and health/<check> metrics -----------------
void Trainer::check_health(const Iteration& it) {
  if (!cfg_.health.enabled) return;
  const AgentStats& p = it.pstats;
  HealthSample h;
  h.step = c_.step;
  h.entropy = p.applied > 0 ? p.entropy : std::nan("");
  h.skipped_minibatches = p.skipped_nonfinite;
  h.diverged_rounds = it.diverged_rounds;
  h.discarded_rollouts = it.discarded_rollouts;
  h.rollout_sps = static_cast<double>(T_) * N_ * it.iterations / std::max(it.t.env + it.t.inference, 1e-9);
  h.rss_mb = rss_mb_ - static_cast<double>(reward_.buffer_bytes()) / (1 << 20);  // the label buffer grows by design
  h.reward_round = it.reward_round;
  h.labels_used = c_.labels_used;
  h.train_loss = rstats_.train_loss;
  h.val_loss = rstats_.val_loss;
  h.val_accuracy = rstats_.val_accuracy;
  h.true_corr = it.true_corr;
  report_health(health_.observe(h));
  for (int k = 0; k < HealthMonitor::kNumChecks; ++k) {
    const auto check = static_cast<HealthMonitor::Check>(k);
    if (health_.is_off(check)) continue;
    metrics_.log(HealthMonitor::metric_name(check), health_.value(check), c_.step);
  }
}

// ---- Progress line (display only) -----------------------------------------------------------
void Trainer::progress_line(const Iteration& it) {
  if (seconds_since(last_progress_) < cfg_.run.progress_every_s && c_.step < cfg_.run.total_steps) return;
  const double sps = (c_.step - steps_at_last_progress_) / std::max(seconds_since(time_at_last_progress_), 1e-9);
  const std::string ret = spec_.has_true_reward ? fmt::format("return {:>9.2f}", mean_of(recent_returns_))
                                                : std::string("no true return (the task has none)");
  const std::string corr = spec_.has_true_reward ? " | true corr " + correlation_text(it.true_corr, it.true_corr_undefined)
                                                 : std::string();
  const std::string prefs = true_reward_baseline_
                                ? std::string("true reward, no labels")
                                : fmt::format("labels {:>4}/{} | val acc {:.3f}{}", new_labels(),
                                              schedule_.total_labels, rstats_.val_accuracy, corr);
  log_.progress(fmt::format("step {:>8}/{} | {:>7.0f} steps/s | {} | {} | entropy {:+.3f}", c_.step,
                            cfg_.run.total_steps, sps, ret, prefs, it.pstats.entropy),
                static_cast<double>(c_.step) / cfg_.run.total_steps);
  last_progress_ = Clock::now();
  steps_at_last_progress_ = c_.step;
  time_at_last_progress_ = last_progress_;
}

// ---- Stopped by a signal: summary.json says where; `--resume` continues ----------------------
TrainResult Trainer::stopped(const std::string& line, bool with_checkpoint) {
  TrainResult result;
  result.status = "stopped";
  result.env_steps = c_.step;
  result.has_true_reward = spec_.has_true_reward;
  result.total_steps = cfg_.run.total_steps;
  result.labels = db_.count_labels() - imported_;
  result.labels_imported = imported_;
  if (with_checkpoint) result.wall_s = wall_before_ + seconds_since(t_start_);
  nlohmann::json summary = result.to_json();
  if (with_checkpoint) summary["checkpoint"] = last_checkpoint_dir_;
  summary["process"] = identity_;
  summary["process"]["heartbeat"] = unix_time_now();
  run_.write_json("summary.json", summary);
  log_.line(line);
  if (server_) server_->stop();
  return result;
}

// ---- The final models, evaluation, summary ---------------------------------------------------
TrainResult Trainer::finish() {
  TrainResult result;
  agent_->save(run_.file("checkpoints/policy.pt"));
  reward_.save(run_.file("checkpoints/reward.pt"));
  result.env_steps = c_.step;
  result.has_true_reward = spec_.has_true_reward;
  result.total_steps = cfg_.run.total_steps;
  result.train_return = mean_of(recent_returns_);
  result.labels = db_.count_labels() - imported_;
  result.labels_imported = imported_;
  for (int k = 0; k < HealthMonitor::kNumChecks; ++k) {
    const auto check = static_cast<HealthMonitor::Check>(k);
    if (!cfg_.health.enabled) continue;
    if (health_.is_off(check)) result.health_off[HealthMonitor::name(check)] = health_.why_off(check);
    else result.health[HealthMonitor::name(check)] = health_.fired(check);
  }
  result.nonfinite = {{"skipped_minibatches", c_.skipped_minibatches},
                      {"diverged_reward_rounds", c_.diverged_rounds},
                      {"discarded_rollouts", c_.discarded_rollouts}};
  result.val_accuracy = reward_.validation_accuracy();
  result.wall_s = wall_before_ + seconds_since(t_start_);

  const uint64_t eval_seed = derive_seed(seeding_.seed, kEvalStream);
  const std::optional<float> penalty = collector_.termination_penalty();
  std::string why_final = kNoTrueReward, why_heldout = kNoTrueReward;
  result.final_true_corr = result.heldout_true_corr = std::nan("");
  if (spec_.has_true_reward && true_reward_baseline_) {
    why_final = why_heldout = kBaseline;
  } else if (spec_.has_true_reward) {
    result.final_true_corr =
        reward_true_correlation(*agent_, reward_, cfg_.env.name, N_, L_, 256, eval_seed, penalty, &why_final);
    result.heldout_true_corr = heldout_correlation(reward_, db_, &why_heldout);
    metrics_.log(metric::kRewardTrueCorr, result.final_true_corr, c_.step);
  } else {
    result.train_return = std::nan("");
    result.undefined["train_return"] = kNoTrueReward;
  }
  if (!std::isfinite(result.final_true_corr)) result.undefined["final_true_corr"] = why_final;
  if (!std::isfinite(result.heldout_true_corr)) result.undefined["heldout_true_corr"] = why_heldout;
  if (cfg_.run.eval_episodes > 0) {
    EvalResult ev = evaluate_policy(*agent_, cfg_.env.name, cfg_.run.eval_episodes, eval_seed + 1);
    result.eval_episodes = ev.episodes;
    result.eval_mean_return = ev.has_true_reward ? ev.mean_return : std::nan("");
    result.eval_std_return = ev.has_true_reward ? ev.std_return : std::nan("");
    if (!ev.has_true_reward) result.undefined["eval.mean_return"] = kNoTrueReward;
    result.eval_success_rate = ev.has_success ? ev.success_rate : std::nan("");
    result.eval_mean_length = ev.mean_length();
    for (size_t k = 0; k < ev.metric_names.size(); ++k)
      result.eval_metrics[ev.metric_names[k]] = {{"mean", EvalResult::mean(ev.metrics[k])},
                                                 {"std", EvalResult::stddev(ev.metrics[k])}};
  }
  metrics_.flush();
  publish("finished", result.labels, result.labels);
  nlohmann::json summary = result.to_json();
  summary["process"] = identity_;
  summary["process"]["heartbeat"] = unix_time_now();
  run_.write_json("summary.json", summary);
  std::string eval = spec_.has_true_reward
                         ? fmt::format("eval return {:.2f} ± {:.2f}", result.eval_mean_return, result.eval_std_return)
                         : fmt::format("eval: no return ({}), mean length {:.1f}", kNoTrueReward, result.eval_mean_length);
  for (const auto& [name, v] : result.eval_metrics.items())
    eval += fmt::format(", {} {:.3f} ± {:.3f}", name, v["mean"].get<double>(), v["std"].get<double>());
  const std::string corr = spec_.has_true_reward
                               ? fmt::format("predicted-vs-true correlation {} (final policy), {} (held-out clips)",
                                             correlation_text(result.final_true_corr, why_final, 3),
                                             correlation_text(result.heldout_true_corr, why_heldout, 3))
                               : fmt::format("no predicted-vs-true correlation ({})", kNoTrueReward);
  log_.line(fmt::format("done: {} steps, {} labels, {:.1f} s; {} over {} episodes; reward val accuracy {:.3f}; {}",
                        result.env_steps, result.labels, result.wall_s, eval, result.eval_episodes,
                        result.val_accuracy, corr));
  return result;
}

// ---- The run: pre-training, then the loop of named parts -------------------------------------
TrainResult Trainer::run() {
  write_running_summary();
  log_.line(fmt::format("prefrl: training {} with {} teacher, {} labels, {} steps, seed {}; run dir {}",
                        cfg_.env.name, cfg_.teacher.kind, schedule_.total_labels, cfg_.run.total_steps,
                        cfg_.run.seed, run_.path()));
  if (resume_) restore();
  if (!pretrain()) {  // still waiting for people's first labels: nothing to checkpoint yet
    return stopped(fmt::format("stopped during pre-training, before the first checkpoint; the {} labels given are "
                               "in prefs.db; `prefrl train --resume {}` starts over and reuses them",
                               new_labels(), run_.path()),
                   /*with_checkpoint=*/false);
  }
  steps_at_last_progress_ = c_.step;
  time_at_last_progress_ = Clock::now();
  while (c_.step < cfg_.run.total_steps) {
    const auto t_iter = Clock::now();
    Iteration it;
    it.diverged_rounds = std::exchange(carried_diverged_, 0);
    it.labels_before = queries_.count_labels();
    collector_.collect(*agent_, &c_.step, &it.t);
    score_and_update(it);
    cut_and_score_clips(it);
    add_exploring_clips(it);
    ask_due_queries(it);
    it.reward_round = train_reward(1, it);
    ++c_.iterations;
    // Checkpoint: on schedule, at the end of training, and when asked to stop; the metrics
    // record (run.metrics_every iterations) is written before it.
    const bool stop = stop_requested() != 0;
    const bool checkpoint =
        stop || c_.step >= cfg_.run.total_steps ||
        (cfg_.run.checkpoint_every > 0 && c_.iterations % cfg_.run.checkpoint_every == 0) ||
        (cfg_.run.checkpoint_every_s > 0 && seconds_since(last_checkpoint_) >= cfg_.run.checkpoint_every_s);
    const double it_s = seconds_since(t_iter);
    if (!record_) {
      record_ = it;
      record_s_ = it_s;
    } else {
      record_->merge(it);
      record_s_ += it_s;
    }
    if (record_->iterations >= cfg_.run.metrics_every || checkpoint) {
      iteration_s_ = record_s_;
      log_iteration(*record_);
      check_health(*record_);
      metrics_.flush();
      record_.reset();
    }
    c_.skipped_minibatches += it.pstats.skipped_nonfinite;
    c_.discarded_rollouts += it.discarded_rollouts;
    c_.diverged_rounds += it.diverged_rounds;
    progress_line(it);
    if (seconds_since(last_heartbeat_) >= cfg_.run.heartbeat_s) write_running_summary();
    if (checkpoint) save_checkpoint();
    if (stop && c_.step < cfg_.run.total_steps) {
      return stopped(fmt::format("stopped by {} at step {} of {}; everything is saved in {}; continue with: prefrl "
                                 "train --resume {}", stop_requested() == SIGTERM ? "SIGTERM" : "SIGINT", c_.step,
                                 cfg_.run.total_steps, last_checkpoint_dir_, run_.path()),
                     /*with_checkpoint=*/true);
    }
  }
  return finish();
}

}  // namespace

void request_stop(int signal_number) { g_stop_signal = signal_number; }
int stop_requested() { return g_stop_signal; }

void check_checkpoint(const TrainConfig& cfg, const Checkpoint& c) {
  const int N = cfg.env.num_envs;
  const std::unique_ptr<VecEnv> vec = make_vec_env(cfg.env.name, N, 0);
  VecEnv& envs = *vec;
  const EnvSpec spec = envs.spec();
  const int64_t D = envs.obs_size(), A = envs.act_size();
  const std::unique_ptr<Agent> agent = make_agent(cfg.agent, cfg.ppo, cfg.a2c, spec, N, 0);
  agent->load(c.file("policy.pt"));
  (void)load_reward_model(cfg, c.file("reward.pt"));
  LoopState st = LoopState::read(c, N, D);
  std::vector<float> scratch(static_cast<size_t>(D));
  for (int i = 0; i < N; ++i) envs.env(i).set_state(st.env_state[i], scratch.data());
  HealthMonitor health(cfg.health, !spec.action.discrete, static_cast<int>(spec.action.discrete ? 1 : A));
  try {
    health.set_state(st.health);
  } catch (const std::exception& e) {
    throw RuntimeError("checkpoint '" + c.dir + "/manifest.json' has a malformed info: " + e.what());
  }
}

nlohmann::json TrainResult::to_json() const {
  auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
  const double final_return = eval_episodes > 0 && std::isfinite(eval_mean_return) ? eval_mean_return : train_return;
  nlohmann::json j = {{"status", status},
          {"env_steps", env_steps},
          {"total_steps", total_steps},
          {"labels", labels},
          {"wall_s", wall_s},
          {"final_return", num(final_return)},
          {"train_return", num(train_return)},
          {"eval", {{"episodes", eval_episodes}, {"mean_return", num(eval_mean_return)},
                    {"std_return", num(eval_std_return)}, {"success_rate", num(eval_success_rate)}}},
          {"has_true_reward", has_true_reward},
          {"final_true_corr", num(final_true_corr)},
          {"heldout_true_corr", num(heldout_true_corr)},
          {"val_accuracy", num(val_accuracy)},
          {"health", health},
          {"nonfinite", nonfinite}};
  if (!undefined.empty()) j["undefined"] = undefined;
  if (eval_episodes > 0) j["eval"]["mean_length"] = num(eval_mean_length);
  if (!eval_metrics.empty()) j["eval"]["metrics"] = eval_metrics;
  if (labels_imported > 0) j["labels_imported"] = labels_imported;
  if (!health_off.empty()) j["health_off"] = health_off;  // checks that were off, and why  // what is null above because it has no value, and why
  return j;
}

TrainResult train(const TrainConfig& cfg, const RunDir& run, RunLog& log, bool resume) {
  Trainer trainer(cfg, run, log, resume);
  return trainer.run();
}

std::unique_ptr<Agent> initial_agent(const TrainConfig& cfg, int num_envs) {
  return make_agent(cfg.agent, cfg.ppo, cfg.a2c, env_spec(cfg.env.name), num_envs,
                    derive_seed(static_cast<uint64_t>(cfg.run.seed), kPolicyStream));
}

}  // namespace prefrl
