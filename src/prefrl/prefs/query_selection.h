// Choosing which pairs to ask about, and when.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/prefs/segments.h"

namespace prefrl {

struct CandidatePair {
  size_t left = 0, right = 0;   // indices into the SegmentPool
  double score = 0.0;           // disagreement (higher = more informative)
};

// Scores candidate pairs: for each pair, the ensemble's disagreement about which is better
// (e.g. the variance over members of P(left better)). Supplied by the reward model.
using DisagreementFn = std::function<std::vector<double>(const SegmentPool&, const std::vector<CandidatePair>&)>;

// Picks `count` distinct pairs of distinct segments from the pool. "uniform": at random.
// "disagreement": samples count * oversample random candidate pairs and keeps the `count`
// with the highest score (ties broken by sampling order, so results are deterministic).
std::vector<CandidatePair> select_pairs(const SegmentPool& pool, int count, const std::string& method,
                                        double oversample, const DisagreementFn& score, Rng& rng);

// How many labels should exist by a given point of training.
// A share `initial_fraction` of the budget is requested before policy training starts (from
// the untrained policy). The rest arrives at a rate that decays with environment steps T:
// "hyperbolic": rate ∝ 1/(T + horizon)  (paper: horizon 2e6 on MuJoCo);
// "constant": evenly over training; "all_upfront": everything before training.
// Reaches exactly `total_labels` by `total_steps`.
struct LabelSchedule {
  int total_labels = 200;
  double initial_fraction = 0.1;
  std::string kind = "hyperbolic";
  double horizon = 2e6;        // T0 in the hyperbolic rate
  int64_t total_steps = 100000;

  int initial_labels() const;
  // Labels that should have been requested once `env_step` steps have been taken (>= initial).
  int target_labels(int64_t env_step) const;
};

}  // namespace prefrl
