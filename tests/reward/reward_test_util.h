// Synthetic preference data for the reward-model tests: segments with a hidden true reward
// and an oracle teacher (the clip with the higher true return wins; equal returns tie).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "prefrl/core/rng.h"
#include "prefrl/core/segment.h"
#include "prefrl/reward/reward_model.h"

namespace prefrl::reward_test {

// True reward of one step from (obs (D), action (A)).
using TrueReward = std::function<float(const float* obs, const float* act)>;
// Fills one observation (D floats) and action (A floats) for a step.
using StepSampler = std::function<void(Rng&, float* obs, float* act)>;

// A segment of L steps; steps from `absorb_from` on are absorbing padding (true reward 0,
// zero action, the last real observation kept).
inline Segment make_segment(Rng& rng, int L, int64_t D, int64_t A, const StepSampler& sample,
                            const TrueReward& reward, int absorb_from = -1) {
  Segment s;
  s.length = L;
  s.obs_size = D;
  s.act_size = A;
  s.obs.resize(static_cast<size_t>(L * D));
  s.actions.assign(static_cast<size_t>(L * A), 0.0f);
  s.true_rewards.assign(static_cast<size_t>(L), 0.0f);
  s.absorbing.assign(static_cast<size_t>(L), 0);
  for (int t = 0; t < L; ++t) {
    float* o = s.obs.data() + t * D;
    float* a = s.actions.data() + t * A;
    if (absorb_from >= 0 && t >= absorb_from) {
      s.absorbing[t] = 1;
      for (int64_t j = 0; j < D; ++j) o[j] = t > 0 ? o[j - D] : 0.0f;
      continue;
    }
    sample(rng, o, a);
    s.true_rewards[t] = reward(o, a);
  }
  return s;
}

// The oracle's label for (a, b).
inline LabeledPair oracle_pair(Segment a, Segment b, int64_t label_id) {
  LabeledPair p;
  p.label_id = label_id;
  const double ra = a.true_return(), rb = b.true_return();
  p.target = ra > rb ? 1.0f : (ra < rb ? 0.0f : 0.5f);
  p.left = std::move(a);
  p.right = std::move(b);
  return p;
}

// Standard normal observations and actions.
inline StepSampler normal_sampler(int64_t D, int64_t A) {
  return [D, A](Rng& rng, float* o, float* a) {
    for (int64_t j = 0; j < D; ++j) o[j] = static_cast<float>(rng.normal());
    for (int64_t j = 0; j < A; ++j) a[j] = static_cast<float>(rng.normal());
  };
}

// Pearson correlation of two equally long series.
inline double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) { mx += x[i]; my += y[i]; }
  mx /= n; my /= n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxy / std::sqrt(sxx * syy);
}

// Ensemble-mean predicted returns of segments.
inline std::vector<double> predicted_returns(RewardModel& model, const std::vector<Segment>& segs) {
  std::vector<const Segment*> ptrs;
  for (const auto& s : segs) ptrs.push_back(&s);
  torch::Tensor r = model.segment_returns(ptrs).mean(0).to(torch::kFloat64).contiguous();
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
}

inline std::vector<double> true_returns(const std::vector<Segment>& segs) {
  std::vector<double> r;
  for (const auto& s : segs) r.push_back(s.true_return());
  return r;
}

}  // namespace prefrl::reward_test
