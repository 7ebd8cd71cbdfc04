// The health monitors fed synthetic series: each check fires when its condition is provoked
// (once, at the iteration it starts), clears when it ends, and stays silent on healthy series.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/tracking/health.h"
#include "prefrl/tracking/metrics.h"

namespace prefrl {
namespace {

using Check = HealthMonitor::Check;

// A healthy iteration: entropy slowly falling from log 2, steady throughput and memory,
// a reward model with 60 labels that generalises.
HealthSample healthy(int i, Rng& rng) {
  HealthSample s;
  s.step = 256 * (i + 1);
  s.entropy = 0.693 - 0.003 * i;
  s.rollout_sps = 20000 * (1.0 + 0.2 * (rng.uniform() - 0.5));
  s.rss_mb = 300 + 5 * rng.uniform();
  s.reward_round = i % 2 == 0;
  s.labels_used = 60 + i;
  s.train_loss = 0.30;
  s.val_loss = 0.39;
  s.val_accuracy = 0.85 + 0.1 * rng.uniform();
  s.true_corr = 0.9 + 0.05 * rng.uniform();
  return s;
}

// Feeds samples; returns the names of every warning fired, in order.
std::vector<std::string> feed(HealthMonitor& m, const std::vector<HealthSample>& samples) {
  std::vector<std::string> out;
  for (const auto& s : samples)
    for (const auto& e : m.observe(s)) out.push_back(e.name);
  return out;
}

// n healthy iterations drawn from Rng(seed), each then changed by edit(sample, i, rng).
template <class Edit>
std::vector<HealthSample> series(int n, uint64_t seed, Edit edit) {
  Rng rng(seed);
  std::vector<HealthSample> v;
  for (int i = 0; i < n; ++i) {
    v.push_back(healthy(i, rng));
    edit(v.back(), i, rng);
  }
  return v;
}

TEST(Health, HealthySeriesFireNothing) {
  for (bool gaussian : {false, true}) {
    HealthMonitor m(HealthConfig{}, gaussian, 1);
    Rng rng(3);
    std::vector<HealthSample> v;
    for (int i = 0; i < 200; ++i) v.push_back(healthy(i, rng));
    EXPECT_TRUE(feed(m, v).empty());
    for (int c = 0; c < HealthMonitor::kNumChecks; ++c) {
      EXPECT_EQ(m.value(static_cast<Check>(c)), 0.0) << HealthMonitor::name(static_cast<Check>(c));
      EXPECT_EQ(m.fired(static_cast<Check>(c)), 0);
    }
  }
}

TEST(Health, EntropyCollapseOfACategoricalPolicyFiresAndClears) {
  HealthMonitor m(HealthConfig{}, false, 1);
  Rng rng(1);
  std::vector<std::string> fired;
  for (int i = 0; i < 30; ++i) {
    HealthSample s = healthy(i, rng);
    s.entropy = i < 10 ? 0.69 - 0.01 * i : i < 20 ? 0.02 : 0.5;  // 0.02 < 0.05 * 0.69
    auto ev = m.observe(s);
    if (i == 10) {
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].name, "entropy_collapsed");
      EXPECT_EQ(ev[0].step, s.step);
      EXPECT_NE(ev[0].message.find("health.entropy_collapse"), std::string::npos) << ev[0].message;
    } else {
      EXPECT_TRUE(ev.empty()) << i;
    }
    // Fine again after `patience` (5) fine iterations in a row.
    EXPECT_EQ(m.value(HealthMonitor::kEntropyCollapsed), i >= 10 && i < 24 ? 1.0 : 0.0) << i;
  }
  EXPECT_EQ(m.fired(HealthMonitor::kEntropyCollapsed), 1);
  // Hovering about the threshold warns once, not at every crossing.
  HealthMonitor hover(HealthConfig{}, false, 1);
  std::vector<HealthSample> v;
  for (int i = 0; i < 40; ++i) {
    v.push_back(healthy(i, rng));
    v.back().entropy = i == 0 ? 0.69 : i % 2 ? 0.03 : 0.04;  // threshold 0.0345
  }
  EXPECT_EQ(feed(hover, v), std::vector<std::string>{"entropy_collapsed"});
}

TEST(Health, EntropyCollapseOfAGaussianIsJudgedByItsStd) {
  // Two action dimensions starting at std 1: H0 = 2 (0.5 + log sqrt(2 pi)).
  const double h0 = 2 * (0.5 + 0.5 * std::log(2 * M_PI));
  auto run = [&](double log_std_drop) {
    HealthMonitor m(HealthConfig{}, true, 2);
    Rng rng(2);
    HealthSample a = healthy(0, rng), b = healthy(1, rng);
    a.entropy = h0;
    b.entropy = h0 + 2 * log_std_drop;  // every dimension's log std fell by log_std_drop
    m.observe(a);
    return m.observe(b).size() == 1 && m.failing(HealthMonitor::kEntropyCollapsed);
  };
  EXPECT_TRUE(run(std::log(0.03)));   // std 0.03 of its start: below 0.05
  EXPECT_FALSE(run(std::log(0.1)));   // std 0.1: a confident but not collapsed policy
  EXPECT_FALSE(run(-0.5));            // negative entropy alone is not collapse
}

TEST(Health, EntropyFrozenFromTheStartFiresAfterTheWindow) {
  HealthConfig cfg;
  cfg.entropy_frozen_updates = 10;
  HealthMonitor m(cfg, true, 1);
  Rng rng(4);
  for (int i = 0; i < 15; ++i) {
    HealthSample s = healthy(i, rng);
    s.entropy = 1.4189385;  // a Gaussian whose parameters never move
    auto ev = m.observe(s);
    EXPECT_EQ(ev.size(), i == 9 ? 1u : 0u) << i;
    if (i == 9) EXPECT_EQ(ev[0].name, "entropy_frozen");
  }
  // It moves: the check clears and, the window being over, never fires again.
  Rng rng2(5);
  for (int i = 15; i < 40; ++i) {
    HealthSample s = healthy(i, rng2);
    s.entropy = 1.4 - 0.01 * (i - 15);
    EXPECT_TRUE(m.observe(s).empty());
  }
  EXPECT_EQ(m.value(HealthMonitor::kEntropyFrozen), 0.0);
  // Entropy that moves by more than the tolerance early is never frozen.
  HealthMonitor moving(cfg, false, 1);
  std::vector<HealthSample> v;
  for (int i = 0; i < 20; ++i) {
    v.push_back(healthy(i, rng));
    v.back().entropy = 0.6931 - 1e-5 * i;
  }
  EXPECT_TRUE(feed(moving, v).empty());
}

TEST(Health, NonFiniteValuesFireWithTheirCount) {
  HealthMonitor m(HealthConfig{}, false, 1);
  Rng rng(6);
  HealthSample s = healthy(0, rng);
  EXPECT_TRUE(m.observe(s).empty());
  s = healthy(1, rng);
  s.skipped_minibatches = 3;
  s.diverged_rounds = 1;
  auto ev = m.observe(s);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].name, "nonfinite");
  EXPECT_NE(ev[0].message.find("3 PPO minibatches skipped"), std::string::npos) << ev[0].message;
  EXPECT_NE(ev[0].message.find("1 reward rounds rolled back"), std::string::npos) << ev[0].message;
  EXPECT_EQ(m.value(HealthMonitor::kNonFinite), 4.0);
  s = healthy(2, rng);
  s.discarded_rollouts = 1;  // still failing: no second warning
  EXPECT_TRUE(m.observe(s).empty());
  EXPECT_EQ(m.value(HealthMonitor::kNonFinite), 1.0);
  EXPECT_TRUE(m.observe(healthy(3, rng)).empty());
  EXPECT_EQ(m.value(HealthMonitor::kNonFinite), 0.0);  // the count of this iteration
  for (int i = 4; i < 8; ++i) EXPECT_TRUE(m.observe(healthy(i, rng)).empty());  // 5 clean iterations in all
  s = healthy(8, rng);
  s.discarded_rollouts = 2;  // a new episode of trouble: a new warning
  EXPECT_EQ(m.observe(s).size(), 1u);
  EXPECT_EQ(m.fired(HealthMonitor::kNonFinite), 2);
}

TEST(Health, StepsPerSecondFallingSteadilyFiresButAStepChangeDoesNot) {
  HealthConfig cfg;
  cfg.trend_window = 10;
  {
    HealthMonitor m(cfg, false, 1);
    const std::vector<HealthSample> v = series(100, 7, [](HealthSample& s, int i, Rng& rng) {
      s.rollout_sps = 20000 * std::pow(0.985, i) * (1.0 + 0.05 * (rng.uniform() - 0.5));
    });
    const auto fired = feed(m, v);
    ASSERT_EQ(fired.size(), 1u);
    EXPECT_EQ(fired[0], "sps_falling");
  }
  {
    HealthMonitor m(cfg, false, 1);  // another process took a core: half speed, then steady
    const std::vector<HealthSample> v = series(100, 8, [](HealthSample& s, int i, Rng& rng) {
      s.rollout_sps = i < 40 ? 20000 : 10000;
    });
    EXPECT_TRUE(feed(m, v).empty());
  }
  {
    HealthMonitor m(cfg, false, 1);  // slow but shallow decline: 10% over the run
    const std::vector<HealthSample> v = series(100, 9, [](HealthSample& s, int i, Rng& rng) {
      s.rollout_sps = 20000 * (1.0 - 0.001 * i);
    });
    EXPECT_TRUE(feed(m, v).empty());
  }
}

TEST(Health, MemoryGrowingWithoutBoundFiresButAPlateauDoesNot) {
  HealthConfig cfg;
  cfg.trend_window = 10;
  cfg.memory_growth_mb = 256;
  {
    HealthMonitor m(cfg, false, 1);
    const std::vector<HealthSample> v = series(120, 10, [](HealthSample& s, int i, Rng& rng) {
      s.rss_mb = 300 + 4.0 * i;  // a leak: 4 MiB per iteration
    });
    const auto fired = feed(m, v);
    ASSERT_EQ(fired.size(), 1u);
    EXPECT_EQ(fired[0], "memory_growing");
    EXPECT_EQ(m.value(HealthMonitor::kMemoryGrowing), 1.0);
  }
  {
    HealthMonitor m(cfg, false, 1);  // grows while the label set grows, then levels off
    const std::vector<HealthSample> v = series(120, 11, [](HealthSample& s, int i, Rng& rng) {
      s.rss_mb = 300 + 2.0 * std::min(i, 60);
    });
    EXPECT_TRUE(feed(m, v).empty());
  }
}

TEST(Health, RewardLossRatioOutsideItsBandFiresAfterPatienceRounds) {
  HealthConfig cfg;
  cfg.patience = 5;
  HealthMonitor m(cfg, false, 1);
  Rng rng(12);
  int fired_at = -1, rounds = 0;
  for (int i = 0; i < 30; ++i) {
    HealthSample s = healthy(i, rng);
    s.val_loss = 6.0 * s.train_loss;  // overfitting: val 6x train
    rounds += s.reward_round;
    for (const auto& e : m.observe(s))
      if (e.name == "reward_loss_ratio") fired_at = rounds;
  }
  EXPECT_EQ(fired_at, 5);  // counted in reward rounds, not iterations
  // Too few labels to judge: silent.
  HealthMonitor early(cfg, false, 1);
  std::vector<HealthSample> v;
  for (int i = 0; i < 30; ++i) {
    v.push_back(healthy(i, rng));
    v.back().val_loss = 0.01 * v.back().train_loss;
    v.back().labels_used = 20;
  }
  EXPECT_TRUE(feed(early, v).empty());
}

TEST(Health, ValidationAccuracyNearChanceFires) {
  HealthMonitor m(HealthConfig{}, false, 1);
  std::vector<HealthSample> v = series(20, 13, [](HealthSample& s, int i, Rng& rng) {
    s.val_accuracy = 0.5 + 0.05 * (rng.uniform() - 0.5);
  });
  const auto fired = feed(m, v);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], "val_accuracy_chance");
  // NaN (no non-tie validation labels) is not judged.
  HealthMonitor nan(HealthConfig{}, false, 1);
  for (auto& s : v) s.val_accuracy = std::nan("");
  EXPECT_TRUE(feed(nan, v).empty());
}

TEST(Health, TrueCorrelationLowOrFallingFires) {
  HealthConfig cfg;
  cfg.corr_window = 10;
  cfg.patience = 5;
  {
    HealthMonitor m(cfg, false, 1);
    const std::vector<HealthSample> v = series(30, 14, [](HealthSample& s, int i, Rng& rng) {
      s.true_corr = 0.1 * rng.uniform();
    });
    std::vector<std::string> fired;
    for (size_t i = 0; i < v.size(); ++i)
      for (const auto& e : m.observe(v[i])) {
        fired.push_back(e.name);
        EXPECT_EQ(i, 13u);  // window full at 9, then 5 failing windows
        EXPECT_NE(e.message.find("is low"), std::string::npos) << e.message;
      }
    EXPECT_EQ(fired, std::vector<std::string>{"true_corr_low"});
  }
  {
    HealthMonitor m(cfg, false, 1);
    const std::vector<HealthSample> v = series(60, 15, [](HealthSample& s, int i, Rng& rng) {
      s.true_corr = i < 30 ? 0.95 : 0.35;  // above corr_min, but 0.6 below its best
    });
    std::vector<std::string> msgs;
    for (const auto& s : v)
      for (const auto& e : m.observe(s)) msgs.push_back(e.message);
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_NE(msgs[0].find("is falling"), std::string::npos) << msgs[0];
  }
  {
    HealthMonitor m(cfg, false, 1);  // undefined correlations (all clips alike) are skipped
    Rng rng(16);
    std::vector<HealthSample> v;
    for (int i = 0; i < 60; ++i) {
      v.push_back(healthy(i, rng));
      if (i % 3) v.back().true_corr = std::nan("");
    }
    EXPECT_TRUE(feed(m, v).empty());
  }
}

TEST(Health, WaitingForLabelsTooLongFiresOncePerWait) {
  HealthConfig cfg;
  cfg.label_wait_s = 600;
  HealthMonitor m(cfg, false, 1);
  Rng rng(17);
  EXPECT_TRUE(m.waiting(100, 0).empty());
  auto ev = m.waiting(601, 0);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].name, "label_wait");
  EXPECT_NE(ev[0].message.find("601 s"), std::string::npos) << ev[0].message;
  EXPECT_TRUE(m.waiting(900, 0).empty());
  m.wait_over();
  EXPECT_TRUE(m.observe(healthy(0, rng)).empty());   // already warned
  EXPECT_EQ(m.value(HealthMonitor::kLabelWait), 1.0);  // the iteration that waited too long
  EXPECT_TRUE(m.observe(healthy(1, rng)).empty());
  EXPECT_EQ(m.value(HealthMonitor::kLabelWait), 0.0);
  EXPECT_EQ(m.waiting(700, 0).size(), 1u);  // a new wait, a new warning
  EXPECT_EQ(m.fired(HealthMonitor::kLabelWait), 2);
}

TEST(Health, MetricNamesAndWhichChecksMeasureTheMachine) {
  for (int c = 0; c < HealthMonitor::kNumChecks; ++c) {
    const auto check = static_cast<Check>(c);
    EXPECT_EQ(std::string(HealthMonitor::metric_name(check)), std::string("health/") + HealthMonitor::name(check));
    const bool machine = check == HealthMonitor::kSpsFalling || check == HealthMonitor::kMemoryGrowing ||
                         check == HealthMonitor::kLabelWait;
    EXPECT_EQ(HealthMonitor::measures_machine(check), machine) << HealthMonitor::name(check);
    EXPECT_EQ(measures_machine(HealthMonitor::metric_name(check)), machine) << HealthMonitor::name(check);
  }
  EXPECT_TRUE(measures_machine("time/env_s"));
  EXPECT_TRUE(measures_machine("sys/rss_mb"));
  EXPECT_TRUE(measures_machine("charts/SPS"));
  EXPECT_TRUE(measures_machine("charts/rollout_SPS"));
  EXPECT_FALSE(measures_machine("charts/episodic_return"));
  EXPECT_FALSE(measures_machine("losses/entropy"));
}

}  // namespace
}  // namespace prefrl
