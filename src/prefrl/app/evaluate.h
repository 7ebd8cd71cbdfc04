// Judging a policy and a reward model on fresh episodes, apart from training.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prefrl/reward/reward_model.h"
#include "prefrl/rl/ppo.h"

namespace prefrl {

struct EvalResult {
  int episodes = 0;
  double mean_return = 0, std_return = 0;
  double success_rate = 0;          // envs with a success criterion (spec.has_success)
  bool has_success = false;
  std::vector<double> returns;
};

struct TrainConfig;

// A run's final policy (RUN_DIR/checkpoints/policy.pt), made for num_envs environments, and
// the run's config into *cfg. Throws UsageError if the run or its final policy is missing.
std::unique_ptr<PPOAgent> load_run_policy(const std::string& run_path, int num_envs, TrainConfig* cfg);

// Runs `episodes` episodes of `env_name` with the agent acting (deterministic: its mode).
EvalResult evaluate_policy(PPOAgent& agent, const std::string& env_name, int episodes, uint64_t seed,
                           bool deterministic = true);

// Pearson correlation; NaN when either side has no variance or fewer than 2 points.
double pearson(const std::vector<double>& a, const std::vector<double>& b);

// Cuts `num_segments` segments of `length` steps from stochastic rollouts of the agent on
// fresh environments, and correlates the reward model's predicted segment returns
// (ensemble mean) with the true ones. termination_penalty: the environments replace
// terminations by this penalty, as in training (VecEnv::replace_termination).
double reward_true_correlation(PPOAgent& agent, RewardModel& reward, const std::string& env_name,
                               int num_envs, int length, int num_segments, uint64_t seed,
                               std::optional<float> termination_penalty = std::nullopt);

}  // namespace prefrl
