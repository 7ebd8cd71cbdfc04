// VecEnv: N environments stepped in lockstep with Gymnasium-style automatic reset; the serial
// implementation.
#include <algorithm>
#include <cmath>
#include <string>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/action_util.h"

namespace prefrl {

VecEnv::VecEnv(const EnvSpec& spec, int num_envs) : spec_(spec), num_envs_(num_envs) {
  if (num_envs < 1) {
    throw UsageError("VecEnv: num_envs is " + std::to_string(num_envs) + "; expected >= 1");
  }
  obs_size_ = spec_.observation.numel();
  act_size_ = spec_.action.numel();
  obs_.assign(num_envs * obs_size_, 0.0f);
  final_obs_.assign(num_envs * obs_size_, 0.0f);
  rewards_.assign(num_envs, 0.0f);
  task_rewards_.assign(num_envs, 0.0f);
  task_over_.assign(num_envs, 0);
  terminated_.assign(num_envs, 0);
  truncated_.assign(num_envs, 0);
  success_.assign(num_envs, 0);
}

namespace {
// The first of N environments from `factory` (its spec is the VecEnv's), checked for N >= 1.
std::unique_ptr<Env> first_env(const EnvFactory& factory, int num_envs) {
  if (num_envs < 1) {
    throw UsageError("VecEnv: num_envs is " + std::to_string(num_envs) + "; expected >= 1");
  }
  return factory();
}
}  // namespace

SerialVecEnv::SerialVecEnv(const EnvFactory& factory, int num_envs, uint64_t seed)
    : SerialVecEnv(first_env(factory, num_envs), factory, num_envs, seed) {}

SerialVecEnv::SerialVecEnv(std::unique_ptr<Env> first, const EnvFactory& factory, int num_envs, uint64_t seed)
    : VecEnv(first->spec(), num_envs) {
  envs_.push_back(std::move(first));
  for (int i = 1; i < num_envs; ++i) envs_.push_back(factory());
  for (int i = 0; i < num_envs; ++i) envs_[i]->seed(seed + static_cast<uint64_t>(i));
}

SerialVecEnv::SerialVecEnv(const std::string& name, int num_envs, uint64_t seed)
    : SerialVecEnv(env_factory(name), num_envs, seed) {}

void SerialVecEnv::reset() {
  for (int i = 0; i < num_envs(); ++i) reset_one(i);
}

void SerialVecEnv::step(const float* actions) {
  for (int i = 0; i < num_envs(); ++i) step_one(i, actions);
}

void VecEnv::keep_states(bool on) {
  keep_states_ = on;
  const size_t n = on ? static_cast<size_t>(num_envs()) * state_size() : 0;
  states_.assign(n, 0.0f);
  final_states_.assign(n, 0.0f);
  if (on)
    for (int i = 0; i < num_envs(); ++i) store_state(i, &states_);
}

void VecEnv::store_state(int i, std::vector<float>* into) {
  const std::vector<double> s = env(i).get_state();
  std::copy(s.begin(), s.end(), into->begin() + i * state_size());
}

void VecEnv::reset_one(int i) {
  env(i).reset(obs_.data() + i * obs_size_);
  if (keep_states_) store_state(i, &states_);
  rewards_[i] = task_rewards_[i] = 0.0f;
  task_over_[i] = terminated_[i] = truncated_[i] = success_[i] = 0;
}

void VecEnv::step_one(int i, const float* actions) {
  {
    Env& env = this->env(i);
    float* obs = obs_.data() + i * obs_size_;
    const int limit = spec().max_episode_steps;
    StepResult r;
    if (task_over_[i] == kFallenShown) {
      // Penalty mode, the step after a would-be termination: the ended body was shown for one
      // step; it earns -penalty (whatever the action) and starts afresh inside the same
      // episode, whose clock runs on.
      task_over_[i] = kTaskOver;
      task_rewards_[i] = 0.0f;
      r.reward = -termination_penalty_;
      const int elapsed = env.elapsed_steps() + 1;
      env.reset(obs);
      env.set_elapsed_steps(elapsed);
      r.truncated = limit > 0 && elapsed >= limit;
    } else {
      r = env.step(actions + i * act_size_, obs);
      task_rewards_[i] = task_over_[i] ? 0.0f : r.reward;
      if (replace_termination_ && r.terminated) {
        // The ended state stays in obs for one more step, which carries the penalty, so that
        // the penalty belongs to a state that shows the end (a fallen body), not to the state
        // before it. If the episode's clock runs out now, the penalty comes with this step.
        task_over_[i] = kFallenShown;
        r.terminated = false;
        if (r.truncated) r.reward -= termination_penalty_;
      }
    }
    rewards_[i] = r.reward;
    terminated_[i] = r.terminated;
    truncated_[i] = r.truncated;
    if (r.terminated || r.truncated) {
      // Keep the ended episode's last observation, then start the next episode in obs.
      std::copy(obs, obs + obs_size_, final_obs_.data() + i * obs_size_);
      if (keep_states_) store_state(i, &final_states_);
      success_[i] = env.success();
      task_over_[i] = kTaskRunning;
      env.reset(obs);
    } else {
      success_[i] = 0;
    }
    if (keep_states_) store_state(i, &states_);
  }
}

void VecEnv::set_task_over(int i, uint8_t phase) {
  if (phase > kFallenShown) {
    throw UsageError("VecEnv: task phase " + std::to_string(phase) + " of env " + std::to_string(i) +
                     " is not one of 0 (running), 1 (over), 2 (ended state shown)");
  }
  task_over_.at(i) = phase;
}

void VecEnv::replace_termination(float penalty) {
  if (!std::isfinite(penalty)) {
    throw UsageError("VecEnv: termination penalty is " + std::to_string(penalty) + "; expected a finite number");
  }
  replace_termination_ = true;
  termination_penalty_ = penalty;
}

void clip_actions(const Space& space, float* actions, int n) {
  if (space.discrete) return;
  const int64_t a = space.numel();
  for (int i = 0; i < n; ++i)
    for (int64_t j = 0; j < a; ++j) {
      float& x = actions[i * a + j];
      x = envs_detail::clip_action(x, space.low[j], space.high[j]);
    }
}

}  // namespace prefrl
