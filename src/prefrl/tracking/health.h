// Health monitors: checks, live during training, of the numbers that tell whether learning
// from preferences is working (DESIGN.md: policy entropy, predicted-vs-true correlation,
// reward validation accuracy) and whether the machine keeps up (throughput, memory).
//
//   (one HealthSample per training iteration) => HealthMonitor::observe => the warnings that
//   began this iteration; value(check) => the health/<name> metric of the iteration.
//
// A check is "failing" while its condition holds (and, once failing, until it has held for
// health.patience observations in a row: no flapping); it fires a warning (one log line, one
// line in health.jsonl and the report) when it starts failing. Checks on wall-clock
// quantities (steps/s, memory, label waits) are marked measures_machine: their metrics,
// like time/* and sys/*, may differ between two runs with the same seed; every other check
// is a function of deterministic quantities only.
//
// Not thread-safe; the trainer's thread owns the monitor.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefrl/core/config.h"

namespace prefrl {

struct HealthConfig {
  bool enabled = true;                  // run the monitors (false: no health/* metrics or warnings)
  double entropy_collapse = 0.05;       // policy spread below this fraction of the first update's: collapsed
  int entropy_frozen_updates = 10;      // entropy unchanged over this many first updates: frozen
  double entropy_frozen_tol = 1e-6;     // "unchanged": max - min of the entropy below this (nats)
  int trend_window = 10;                // iterations per point (their median) of the throughput and memory trends
  double sps_drop = 0.5;                // rollout steps/s fell steadily by this fraction
  double memory_growth_mb = 256;        // resident memory grew steadily by this much (MiB)
  int min_labels = 40;                  // reward checks start once the reward model has this many labels
  int patience = 5;                     // reward checks fire after this many failing rounds in a row
  double loss_ratio_low = 0.5;          // reward val/train loss ratio band, low end
  double loss_ratio_high = 4.0;         // reward val/train loss ratio band, high end
  double chance_accuracy = 0.6;         // validation accuracy below this counts as near chance
  double corr_min = 0.3;                // predicted-vs-true correlation (window mean) below this: low
  double corr_drop = 0.5;               // the window mean fell this far below its best: falling
  int corr_window = 10;                 // finite correlations averaged per window
  double label_wait_s = 600;            // waiting longer than this for people's labels

  template <class V>
  void visit(V& v) {
    v.flag("enabled", enabled, "run the health monitors (false: no health/* metrics, no warnings)");
    v.num("entropy_collapse", entropy_collapse,
          "entropy collapsed: discrete, entropy below this fraction of the first update's; Gaussian, std "
          "(geometric mean over action dimensions) below this fraction of the first update's", 0.0, 1.0);
    v.num("entropy_frozen_updates", entropy_frozen_updates,
          "entropy frozen: unchanged (within entropy_frozen_tol) over this many first policy updates", 2, 1000000);
    v.num("entropy_frozen_tol", entropy_frozen_tol, "entropy frozen: max - min below this many nats", 0.0, 1e3);
    v.num("trend_window", trend_window, "iterations per point (their median) of the steps/s and memory trends", 1, 1000000);
    v.num("sps_drop", sps_drop,
          "steps/s falling: rollout (env + inference) steps/s fell steadily over the last 8 windows, to below "
          "(1 - sps_drop) of where they began", 0.0, 1.0);
    v.num("memory_growth_mb", memory_growth_mb,
          "memory growing: resident memory rose steadily over the last 8 windows and by more than this (MiB) "
          "since the first window after warm-up", 0.0, 1e9);
    v.num("min_labels", min_labels, "reward-model checks start once it has trained on this many labels", 0, 100000000);
    v.num("patience", patience, "reward-model checks fire after this many failing rounds in a row", 1, 1000000);
    v.num("loss_ratio_low", loss_ratio_low, "reward val/train loss ratio band: low end", 0.0, 1e6);
    v.num("loss_ratio_high", loss_ratio_high, "reward val/train loss ratio band: high end", 0.0, 1e6);
    v.num("chance_accuracy", chance_accuracy, "reward validation accuracy below this counts as near chance", 0.0, 1.0);
    v.num("corr_min", corr_min, "predicted-vs-true correlation low: window mean below this", -1.0, 1.0);
    v.num("corr_drop", corr_drop, "predicted-vs-true correlation falling: window mean this far below its best", 0.0, 2.0);
    v.num("corr_window", corr_window, "finite predicted-vs-true correlations averaged per window", 1, 1000000);
    v.num("label_wait_s", label_wait_s, "warn when waiting for people's labels longer than this (seconds)", 0.0, 1e9);
  }
};

// What the monitors see of one training iteration. NaN means "not measured this time".
struct HealthSample {
  int64_t step = 0;                 // environment steps so far
  double entropy = 0;               // policy entropy of the update (nats)
  int64_t skipped_minibatches = 0;  // PPO minibatches skipped: non-finite loss or gradient
  int64_t diverged_rounds = 0;      // reward rounds rolled back: parameters became non-finite
  int64_t discarded_rollouts = 0;   // rollouts not learned from: non-finite observation or reward
  double rollout_sps = 0;           // environment steps / (env stepping + policy inference seconds)
  double rss_mb = 0;                // resident memory, less the reward model's label buffer
  bool reward_round = false;        // the reward model trained a round this iteration
  int64_t labels_used = 0;          // labels the reward model has trained on
  double train_loss = 0, val_loss = 0, val_accuracy = 0;  // that round's (NaN: no validation labels)
  double true_corr = 0;             // predicted vs true returns of fresh clips (NaN: undefined)
};

struct HealthEvent {
  std::string name;     // the check, e.g. "entropy_collapsed"
  int64_t step = 0;
  std::string message;  // one line: what was seen and the threshold (config key) it crossed
};

class HealthMonitor {
 public:
  enum Check { kEntropyCollapsed, kEntropyFrozen, kNonFinite, kSpsFalling, kMemoryGrowing, kLossRatio,
               kAccuracyChance, kTrueCorr, kLabelWait, kNumChecks };

  // gaussian: continuous actions (diagonal Gaussian, action_dims dimensions); else discrete.
  // The config is taken as validated (TrainConfig::validate checks the loss-ratio band).
  HealthMonitor(const HealthConfig& cfg, bool gaussian, int action_dims);

  // One iteration => the warnings that began with it.
  std::vector<HealthEvent> observe(const HealthSample& s);
  // While waiting for people's labels: the warning, once per wait, when it passes label_wait_s.
  std::vector<HealthEvent> waiting(double waited_s, int64_t step);
  // The wait is over (the labels came).
  void wait_over();

  // The health/<name> metric for the last observed iteration: 1 failing, 0 fine
  // (kNonFinite: the number of non-finite events; kLabelWait: 1 if a wait passed the limit
  // since the previous iteration).
  double value(Check c) const;
  bool failing(Check c) const { return failing_[c]; }
  int64_t fired(Check c) const { return fired_[c]; }  // warnings so far

  // Everything the monitor has seen, for checkpoints: set_state(state()) continues exactly
  // (doubles round-trip through JSON exactly; non-finite ones are not kept by the monitor).
  nlohmann::json state() const;
  // Restores a state() of a monitor built with the same config; throws RuntimeError if malformed.
  void set_state(const nlohmann::json& j);

  // Turns check c off for this run (never fires; its metric is not logged), with the reason
  // in words, e.g. true_corr_low where the task has no true reward.
  void turn_off(Check c, const std::string& why) { off_[c] = why; }
  bool is_off(Check c) const { return !off_[c].empty(); }
  const std::string& why_off(Check c) const { return off_[c]; }

  static const char* name(Check c);        // e.g. "entropy_collapsed"
  static const char* metric_name(Check c);  // e.g. "health/entropy_collapsed"
  static bool measures_machine(Check c);     // wall-clock based (not deterministic)

 private:
  // Records whether check c fails now; a warning when it starts failing. With hysteresis, a
  // failing check counts as fine again only after `patience` fine observations in a row.
  void set(Check c, bool now, int64_t step, const std::string& message, std::vector<HealthEvent>& out,
           bool hysteresis = true);
  void observe_entropy(const HealthSample& s, std::vector<HealthEvent>& out);
  void observe_trends(const HealthSample& s, std::vector<HealthEvent>& out);
  void observe_reward(const HealthSample& s, std::vector<HealthEvent>& out);

  HealthConfig cfg_;
  bool gaussian_;
  int action_dims_;
  bool failing_[kNumChecks] = {};
  std::string off_[kNumChecks];   // non-empty: the check is off, for this reason
  int clear_streak_[kNumChecks] = {};
  int64_t fired_[kNumChecks] = {};
  int64_t nonfinite_now_ = 0;
  bool wait_fired_ = false, wait_fired_since_sample_ = false;

  // Entropy.
  int64_t updates_ = 0;
  double entropy0_ = 0, entropy_min_ = 0, entropy_max_ = 0;
  // Trends: medians of consecutive windows of trend_window iterations (the first is warm-up).
  struct Trend {
    std::vector<double> values;  // of the window being filled
    int windows_seen = 0;
    std::vector<double> medians;  // after warm-up
  };
  static bool push(Trend& t, double x, int window);  // true when a window completed
  Trend sps_, rss_;
  // Reward model.
  int loss_streak_ = 0, acc_streak_ = 0, corr_streak_ = 0;
  std::deque<double> corr_recent_;
  double corr_best_ = -2.0;
};

}  // namespace prefrl
