// Judging a policy and a reward model on fresh episodes, apart from training.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
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
  std::vector<int> lengths;         // steps of each episode, in the order of `returns`
  // Whether `returns` are true returns; where the task has none, they are the sums of its
  // rewards (0, or a script teacher's score) and are not to be reported as returns.
  bool has_true_reward = true;
  // The task's own metrics (EnvSpec::metrics): metrics[k][e] is metric k summed over episode e.
  std::vector<std::string> metric_names;
  std::vector<std::vector<double>> metrics;
  // With a reward model: each episode's sum of r̂ (normalised, as a policy is given it), in
  // the order of `returns`; empty without one.
  std::vector<double> predicted_returns;
  double mean_length() const;
  static double mean(const std::vector<double>& v);
  static double stddev(const std::vector<double>& v);
};

struct TrainConfig;

// A run's final policy (RUN_DIR/checkpoints/policy.pt), made for num_envs environments, and
// the run's config into *cfg. Throws UsageError if the run or its final policy is missing.
std::unique_ptr<Agent> load_run_policy(const std::string& run_path, int num_envs, TrainConfig* cfg);

// The reward model a run's policy was trained on (RUN_DIR/checkpoints/reward.pt), built as
// training builds it from the run's config; nullptr if the run trained on the true reward or
// has no final reward model.
std::unique_ptr<RewardModel> load_run_reward(const std::string& run_path, const TrainConfig& cfg);

// Another run's final reward model, to judge a policy by (`prefrl eval --reward-from`): the
// two runs must share the environment; a run stopped part way lends its newest good
// checkpoint's; computed with LibTorch's operators (reward.fast_mlp off), as `prefrl eval` computes
// a run's own. Throws UsageError if `reward_run` trained on the true reward, has no reward
// model, or ran another environment than `env_name`.
std::unique_ptr<RewardModel> load_other_run_reward(const std::string& reward_run, const std::string& env_name);

// A new reward model shaped for `cfg`'s environment, as training builds it (hidden inputs set).
std::unique_ptr<RewardModel> make_reward_model(const TrainConfig& cfg, uint64_t seed);
// A reward model shaped for `cfg`'s environment, as training builds it, loaded from `file`.
std::unique_ptr<RewardModel> load_reward_model(const TrainConfig& cfg, const std::string& file);

// Runs `episodes` episodes of `env_name` with the agent acting (deterministic: its mode).
// trace: if given, one JSON line per counted step: {"episode", "t", "obs", "action", "reward",
// "terminated", "truncated"[, "predicted"]}; "episode" indexes `returns`, "obs" is what the agent
// acted on, "action" what the environment executed (clipped), "predicted" the reward model's
// r̂ for that step as the policy was given it (when `reward` is given). With `reward`, every
// episode's sum of r̂ goes to EvalResult::predicted_returns.
EvalResult evaluate_policy(ActingPolicy& agent, const std::string& env_name, int episodes, uint64_t seed,
                           bool deterministic = true, std::ostream* trace = nullptr, RewardModel* reward = nullptr);
// A per-step reward as a policy is given it: r̂ (n) of obs (n x D) and actions (n x A).
using StepReward = std::function<void(const float* obs, const float* act, int64_t n, float* out)>;
// The same with any per-step reward (an exported reward module, `prefrl eval --exported`); empty: none.
EvalResult evaluate_policy(ActingPolicy& agent, const std::string& env_name, int episodes, uint64_t seed,
                           bool deterministic, std::ostream* trace, const StepReward& reward);

// Pearson correlation; NaN when either side has no variance or fewer than 2 points.
double pearson(const std::vector<double>& a, const std::vector<double>& b);
// Why pearson(predicted, truth) is undefined, in words ("" when it is defined): fewer than two
// clips, every clip's true return the same (a solved cartpole), every predicted return the
// same, or a return that is not finite.
std::string undefined_correlation(const std::vector<double>& predicted, const std::vector<double>& truth);
// A correlation for people: "+0.57", or "undefined (" + why + ")".
std::string correlation_text(double r, const std::string& why, int decimals = 2);

// Cuts `num_segments` segments of `length` steps from stochastic rollouts of the agent on
// fresh environments, and correlates the reward model's predicted segment returns
// (ensemble mean) with the true ones. termination_penalty: the environments replace
// terminations by this penalty, as in training (VecEnv::replace_termination).
// undefined: where the correlation is undefined, why (undefined_correlation), else "".
double reward_true_correlation(ActingPolicy& agent, RewardModel& reward, const std::string& env_name,
                               int num_envs, int length, int num_segments, uint64_t seed,
                               std::optional<float> termination_penalty = std::nullopt,
                               std::string* undefined = nullptr);

}  // namespace prefrl
