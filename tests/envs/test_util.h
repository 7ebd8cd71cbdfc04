// Helpers shared by the envs tests.
#pragma once
#include <cmath>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"

namespace prefrl::testing {

// A random action from the spec's action space; Box actions are drawn from 1.5x the bounds so
// that some lie outside them (the env must clip).
inline std::vector<float> random_action(const EnvSpec& spec, Rng& rng) {
  const Space& a = spec.action;
  if (a.discrete) return {static_cast<float>(rng.integer(a.n))};
  std::vector<float> act(a.numel());
  for (size_t i = 0; i < act.size(); ++i) {
    const double mid = 0.5 * (a.low[i] + a.high[i]), half = 0.75 * (a.high[i] - a.low[i]);
    act[i] = static_cast<float>(rng.uniform(mid - half, mid + half));
  }
  return act;
}

// Runs `steps` random steps (auto-resetting on episode end) and returns every observation.
inline std::vector<float> rollout(Env& env, int steps, uint64_t action_seed) {
  const EnvSpec& spec = env.spec();
  const int64_t n = spec.observation.numel();
  std::vector<float> obs(n), all;
  Rng rng(action_seed);
  env.reset(obs.data());
  all.insert(all.end(), obs.begin(), obs.end());
  for (int t = 0; t < steps; ++t) {
    const auto a = random_action(spec, rng);
    const StepResult r = env.step(a.data(), obs.data());
    all.insert(all.end(), obs.begin(), obs.end());
    all.push_back(r.reward);
    if (r.terminated || r.truncated) env.reset(obs.data());
  }
  return all;
}

}  // namespace prefrl::testing
