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

// What the informed methods read (B-Pref's query schemes): the ensemble's disagreement and
// entropy about candidate pairs, and the features of the pairs already labeled (k-center's
// starting centres: pair_features of each, in any order).
struct QueryScorer {
  DisagreementFn disagreement;  // variance over members of P(left better)
  DisagreementFn entropy;       // mean over members of the entropy of P(left better)
  const std::vector<std::vector<float>>* labeled = nullptr;
};

// A pair's k-center features (B-Pref's): the left clip's observations, then the right's, flat.
std::vector<float> pair_features(const Segment& left, const Segment& right);

// The query selection methods (prefs.selection).
const std::vector<std::string>& selection_methods();

// Picks `count` distinct pairs of distinct segments from the pool, by `method`:
//   uniform: at random.
//   disagreement / entropy: samples count * oversample random candidate pairs and keeps the
//     `count` with the highest score (ties broken by sampling order: deterministic).
//   kcenter: of the same candidates, greedily the one farthest (Euclidean, pair_features) from
//     its nearest centre, which it then becomes; the centres start as the labeled pairs (none:
//     the first candidate drawn starts them).
//   kcenter_disagreement / kcenter_entropy: kcenter among the half of the candidates with the
//     highest disagreement / entropy (B-Pref's).
// A chosen pair's score is the method's score (kcenter: its distance when chosen).
std::vector<CandidatePair> select_pairs(const SegmentPool& pool, int count, const std::string& method,
                                        double oversample, const QueryScorer& scorer, Rng& rng);
// The same with disagreement alone (uniform, disagreement).
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
