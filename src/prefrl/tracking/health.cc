#include "prefrl/tracking/health.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "prefrl/core/error.h"


namespace prefrl {

namespace {

struct CheckInfo {
  const char* name;
  const char* metric;
  bool machine;
};

constexpr CheckInfo kChecks[HealthMonitor::kNumChecks] = {
    {"entropy_collapsed", "health/entropy_collapsed", false},
    {"entropy_frozen", "health/entropy_frozen", false},
    {"nonfinite", "health/nonfinite", false},
    {"sps_falling", "health/sps_falling", true},
    {"memory_growing", "health/memory_growing", true},
    {"reward_loss_ratio", "health/reward_loss_ratio", false},
    {"val_accuracy_chance", "health/val_accuracy_chance", false},
    {"true_corr_low", "health/true_corr_low", false},
    {"label_wait", "health/label_wait", true},
};

// Spearman rank correlation of the last (up to) k values with their order: +1 rising at
// every step, -1 falling at every step, near 0 for noise. Ties get average ranks; 0 if the
// values are all equal or fewer than 4.
double trend_of_tail(const std::vector<double>& v, size_t k) {
  const size_t n = std::min(k, v.size());
  if (n < 4) return 0.0;
  const std::vector<double> x(v.end() - n, v.end());
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && x[order[j + 1]] == x[order[i]]) ++j;
    for (size_t k2 = i; k2 <= j; ++k2) rank[order[k2]] = 0.5 * (i + j);
    i = j + 1;
  }
  const double mean = 0.5 * (n - 1);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (i - mean) * (rank[i] - mean);
    sxx += (i - mean) * (i - mean);
    syy += (rank[i] - mean) * (rank[i] - mean);
  }
  return syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
}

// A trend counts as steady when the window medians' rank correlation with time is beyond this,
// over the last kTrendWindows windows (robust to the noise of a shared machine, and to a
// single step change when another process starts).
constexpr size_t kTrendWindows = 8;
constexpr double kSteady = 0.9;

}  // namespace

const char* HealthMonitor::name(Check c) { return kChecks[c].name; }
const char* HealthMonitor::metric_name(Check c) { return kChecks[c].metric; }
bool HealthMonitor::measures_machine(Check c) { return kChecks[c].machine; }

HealthMonitor::HealthMonitor(const HealthConfig& cfg, bool gaussian, int action_dims)
    : cfg_(cfg), gaussian_(gaussian), action_dims_(std::max(1, action_dims)) {}

void HealthMonitor::set(Check c, bool now, int64_t step, const std::string& message, std::vector<HealthEvent>& out,
                        bool hysteresis) {
  if (now) {
    clear_streak_[c] = 0;
    if (!failing_[c]) {
      ++fired_[c];
      out.push_back({name(c), step, message});
    }
    failing_[c] = true;
  } else if (failing_[c] && (!hysteresis || ++clear_streak_[c] >= cfg_.patience)) {
    failing_[c] = false;  // fine again (for `patience` observations in a row: no flapping warnings)
  }
}

bool HealthMonitor::push(Trend& t, double x, int window) {
  if (!std::isfinite(x)) return false;
  t.values.push_back(x);
  if (static_cast<int>(t.values.size()) < window) return false;
  std::nth_element(t.values.begin(), t.values.begin() + t.values.size() / 2, t.values.end());
  if (t.windows_seen++ > 0) t.medians.push_back(t.values[t.values.size() / 2]);  // the first window is warm-up
  t.values.clear();
  return true;
}

std::vector<HealthEvent> HealthMonitor::observe(const HealthSample& s) {
  std::vector<HealthEvent> out;
  observe_entropy(s, out);

  nonfinite_now_ = s.skipped_minibatches + s.diverged_rounds + s.discarded_rollouts;
  set(kNonFinite, nonfinite_now_ > 0, s.step,
      fmt::format("non-finite values: {} PPO minibatches skipped (loss or gradient), {} reward rounds rolled back, "
                  "{} rollouts not learned from (observation or reward); the run goes on",
                  s.skipped_minibatches, s.diverged_rounds, s.discarded_rollouts),
      out);

  observe_trends(s, out);
  observe_reward(s, out);
  // Fired (and counted) by waiting(); failing for the iterations the long wait touched.
  const bool waited = wait_fired_ || wait_fired_since_sample_;
  wait_fired_since_sample_ = false;
  set(kLabelWait, waited, s.step, "", out, /*hysteresis=*/false);
  return out;
}

void HealthMonitor::observe_entropy(const HealthSample& s, std::vector<HealthEvent>& out) {
  if (!std::isfinite(s.entropy)) return;
  if (updates_++ == 0) entropy0_ = entropy_min_ = entropy_max_ = s.entropy;
  entropy_min_ = std::min(entropy_min_, s.entropy);
  entropy_max_ = std::max(entropy_max_, s.entropy);

  // Collapsed: the policy's spread fell below a fraction of the first update's. A
  // diagonal Gaussian's entropy is sum_d (0.5 + log sqrt(2 pi) + log std_d), so the ratio of
  // (geometric-mean) stds is exp((H - H0) / dims); a categorical's entropy goes to 0.
  bool collapsed;
  std::string what;
  if (gaussian_) {
    const double std_ratio = std::exp((s.entropy - entropy0_) / action_dims_);
    collapsed = std_ratio < cfg_.entropy_collapse;
    what = fmt::format("policy std fell to {:.3g} of the first update's (entropy {:.4g} nats, was {:.4g})",
                       std_ratio, s.entropy, entropy0_);
  } else {
    collapsed = entropy0_ > 0 && s.entropy < cfg_.entropy_collapse * entropy0_;
    what = fmt::format("policy entropy {:.4g} nats is below {:g} x the first update's {:.4g}", s.entropy,
                       cfg_.entropy_collapse, entropy0_);
  }
  set(kEntropyCollapsed, collapsed, s.step, what + " (health.entropy_collapse): the policy stopped exploring", out);

  // Frozen: the entropy has not moved at all since the first update (nothing is learned).
  const bool frozen = updates_ >= cfg_.entropy_frozen_updates && entropy_max_ - entropy_min_ < cfg_.entropy_frozen_tol;
  set(kEntropyFrozen, frozen, s.step,
      fmt::format("policy entropy stayed at {:.6g} (within {:g} nats) over the first {} updates "
                  "(health.entropy_frozen_updates): is the policy learning at all?",
                  s.entropy, cfg_.entropy_frozen_tol, updates_),
      out);
}

void HealthMonitor::observe_trends(const HealthSample& s, std::vector<HealthEvent>& out) {
  if (push(sps_, s.rollout_sps, cfg_.trend_window)) {
    const auto& m = sps_.medians;
    const size_t n = std::min(kTrendWindows, m.size());
    const double from = n ? m[m.size() - n] : 0, to = n ? m.back() : 0;
    const bool falling = trend_of_tail(m, kTrendWindows) < -kSteady && to < (1.0 - cfg_.sps_drop) * from;
    set(kSpsFalling, falling, s.step,
        fmt::format("rollout steps/s fell steadily over the last {} windows of {} iterations, from {:.0f} to {:.0f} "
                    "(health.sps_drop {:g})",
                    n, cfg_.trend_window, from, to, cfg_.sps_drop),
        out);
  }
  if (push(rss_, s.rss_mb, cfg_.trend_window)) {
    const auto& m = rss_.medians;
    const double grew = m.empty() ? 0 : m.back() - m.front();
    const bool growing = trend_of_tail(m, kTrendWindows) > kSteady && grew > cfg_.memory_growth_mb;
    set(kMemoryGrowing, growing, s.step,
        fmt::format("resident memory (less the reward model's label buffer) rose steadily over the last {} windows "
                    "of {} iterations, by {:.0f} MiB since the first to {:.0f} MiB (health.memory_growth_mb {:g}): "
                    "a leak?",
                    std::min(kTrendWindows, m.size()), cfg_.trend_window, grew, m.empty() ? 0.0 : m.back(),
                    cfg_.memory_growth_mb),
        out);
  }
}

void HealthMonitor::observe_reward(const HealthSample& s, std::vector<HealthEvent>& out) {
  const bool enough = s.labels_used >= cfg_.min_labels;
  if (s.reward_round && enough) {
    // Loss ratio: the L2 adaptation keeps val/train loss near [1.1, 1.5]; far outside, the
    // model over- or underfits (or the split is broken).
    if (std::isfinite(s.val_loss) && std::isfinite(s.train_loss) && s.train_loss > 0) {
      const double ratio = s.val_loss / s.train_loss;
      loss_streak_ = ratio < cfg_.loss_ratio_low || ratio > cfg_.loss_ratio_high ? loss_streak_ + 1 : 0;
      set(kLossRatio, loss_streak_ >= cfg_.patience, s.step,
          fmt::format("reward val/train loss ratio {:.3g} (val {:.4g}, train {:.4g}) outside [{:g}, {:g}] for {} rounds "
                      "(health.loss_ratio_low/high)",
                      ratio, s.val_loss, s.train_loss, cfg_.loss_ratio_low, cfg_.loss_ratio_high, loss_streak_),
          out);
    }
    if (std::isfinite(s.val_accuracy)) {
      acc_streak_ = s.val_accuracy < cfg_.chance_accuracy ? acc_streak_ + 1 : 0;
      set(kAccuracyChance, acc_streak_ >= cfg_.patience, s.step,
          fmt::format("reward validation accuracy {:.3f} is near chance (below {:g}) with {} labels, {} rounds in a "
                      "row (health.chance_accuracy): the labels or the model carry no signal",
                      s.val_accuracy, cfg_.chance_accuracy, s.labels_used, acc_streak_),
          out);
    }
  }
  // Correlation of predicted and true returns on fresh clips, averaged over a window.
  if (enough && std::isfinite(s.true_corr) && !is_off(kTrueCorr)) {
    corr_recent_.push_back(s.true_corr);
    if (static_cast<int>(corr_recent_.size()) > cfg_.corr_window) corr_recent_.pop_front();
    if (static_cast<int>(corr_recent_.size()) == cfg_.corr_window) {
      double mean = 0;
      for (double c : corr_recent_) mean += c;
      mean /= corr_recent_.size();
      corr_best_ = std::max(corr_best_, mean);
      const bool low = mean < cfg_.corr_min, falling = corr_best_ - mean > cfg_.corr_drop;
      corr_streak_ = low || falling ? corr_streak_ + 1 : 0;
      set(kTrueCorr, corr_streak_ >= cfg_.patience, s.step,
          fmt::format("predicted-vs-true return correlation {} (mean of the last {}: {:.3f}, best {:.3f}; "
                      "health.corr_min {:g}, health.corr_drop {:g}): the learned reward does not track the task",
                      low ? "is low" : "is falling", cfg_.corr_window, mean, corr_best_, cfg_.corr_min,
                      cfg_.corr_drop),
          out);
    }
  }
}

std::vector<HealthEvent> HealthMonitor::waiting(double waited_s, int64_t step) {
  std::vector<HealthEvent> out;
  if (waited_s > cfg_.label_wait_s && !wait_fired_) {
    wait_fired_ = wait_fired_since_sample_ = true;
    failing_[kLabelWait] = true;
    ++fired_[kLabelWait];
    out.push_back({name(kLabelWait), step,
                   fmt::format("waiting for people's labels for {:.0f} s (health.label_wait_s {:g}): is anyone "
                               "labeling? training waits for them",
                               waited_s, cfg_.label_wait_s)});
  }
  return out;
}

void HealthMonitor::wait_over() { wait_fired_ = false; }

double HealthMonitor::value(Check c) const {
  if (c == kNonFinite) return static_cast<double>(nonfinite_now_);
  return failing_[c] ? 1.0 : 0.0;
}

nlohmann::json HealthMonitor::state() const {
  auto arr = [](const auto& a, int n) {
    nlohmann::json j = nlohmann::json::array();
    for (int i = 0; i < n; ++i) j.push_back(a[i]);
    return j;
  };
  auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
  auto trend = [&](const Trend& t) {
    nlohmann::json v = nlohmann::json::array(), m = nlohmann::json::array();
    for (double x : t.values) v.push_back(num(x));
    for (double x : t.medians) m.push_back(num(x));
    return nlohmann::json{{"values", v}, {"windows_seen", t.windows_seen}, {"medians", m}};
  };
  nlohmann::json corr = nlohmann::json::array();
  for (double x : corr_recent_) corr.push_back(num(x));
  return {{"failing", arr(failing_, kNumChecks)}, {"clear_streak", arr(clear_streak_, kNumChecks)},
          {"fired", arr(fired_, kNumChecks)}, {"nonfinite_now", nonfinite_now_},
          {"wait_fired", wait_fired_}, {"wait_fired_since_sample", wait_fired_since_sample_},
          {"updates", updates_}, {"entropy0", num(entropy0_)}, {"entropy_min", num(entropy_min_)},
          {"entropy_max", num(entropy_max_)}, {"sps", trend(sps_)}, {"rss", trend(rss_)},
          {"loss_streak", loss_streak_}, {"acc_streak", acc_streak_}, {"corr_streak", corr_streak_},
          {"corr_recent", corr}, {"corr_best", num(corr_best_)}};
}

void HealthMonitor::set_state(const nlohmann::json& j) {
  auto num = [](const nlohmann::json& x) { return x.is_null() ? std::nan("") : x.get<double>(); };
  try {
    for (int i = 0; i < kNumChecks; ++i) {
      failing_[i] = j.at("failing").at(i).get<bool>();
      clear_streak_[i] = j.at("clear_streak").at(i).get<int>();
      fired_[i] = j.at("fired").at(i).get<int64_t>();
    }
    nonfinite_now_ = j.at("nonfinite_now").get<int64_t>();
    wait_fired_ = j.at("wait_fired").get<bool>();
    wait_fired_since_sample_ = j.at("wait_fired_since_sample").get<bool>();
    updates_ = j.at("updates").get<int64_t>();
    entropy0_ = num(j.at("entropy0"));
    entropy_min_ = num(j.at("entropy_min"));
    entropy_max_ = num(j.at("entropy_max"));
    auto trend = [&](const nlohmann::json& t, Trend& out) {
      out.values.clear();
      out.medians.clear();
      for (const auto& x : t.at("values")) out.values.push_back(num(x));
      for (const auto& x : t.at("medians")) out.medians.push_back(num(x));
      out.windows_seen = t.at("windows_seen").get<int>();
    };
    trend(j.at("sps"), sps_);
    trend(j.at("rss"), rss_);
    loss_streak_ = j.at("loss_streak").get<int>();
    acc_streak_ = j.at("acc_streak").get<int>();
    corr_streak_ = j.at("corr_streak").get<int>();
    corr_recent_.clear();
    for (const auto& x : j.at("corr_recent")) corr_recent_.push_back(num(x));
    corr_best_ = num(j.at("corr_best"));
  } catch (const nlohmann::json::exception& e) {
    throw RuntimeError(std::string("health monitor state is malformed: ") + e.what());
  }
}

}  // namespace prefrl
