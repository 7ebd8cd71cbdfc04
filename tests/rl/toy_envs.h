// Tiny environments and a vectoriser for the rl tests: they do not depend on the real
// environments, are copyable (to fork an environment's state), and learn in seconds.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "prefrl/envs/env.h"
#include "prefrl/rl/ppo.h"

namespace prefrl::testing {

// Continuous contextual task: obs (2) uniform in [-1, 1]; action Box(1) in [-2, 2];
// reward -(a - (o0 - 0.5 o1))^2. Episodes are truncated after 16 steps.
class ToyReach : public Env {
 public:
  const EnvSpec& spec() const override {
    static const EnvSpec s = [] {
      EnvSpec e;
      e.name = "toy_reach";
      e.observation = Space::box({2}, {-1, -1}, {1, 1});
      e.action = Space::box({1}, {-2}, {2});
      e.max_episode_steps = 16;
      e.can_terminate = false;
      e.state_size = 2;
      return e;
    }();
    return s;
  }
  std::vector<double> get_state() const override { return {o_[0], o_[1]}; }
  void render(int, int, uint8_t*) const override {}

 protected:
  void reset_impl(float* obs) override { draw(obs); }
  StepResult step_impl(const float* action, float* obs) override {
    const double a = std::clamp(static_cast<double>(action[0]), -2.0, 2.0);
    const double target = o_[0] - 0.5 * o_[1];
    StepResult r;
    r.reward = static_cast<float>(-(a - target) * (a - target));
    draw(obs);
    return r;
  }
  void set_state_impl(const std::vector<double>& s, float* obs) override {
    o_[0] = s[0]; o_[1] = s[1];
    obs[0] = static_cast<float>(o_[0]); obs[1] = static_cast<float>(o_[1]);
  }

 private:
  void draw(float* obs) {
    for (int j = 0; j < 2; ++j) { o_[j] = rng_.uniform(-1.0, 1.0); obs[j] = static_cast<float>(o_[j]); }
  }
  double o_[2] = {0, 0};
};

// Discrete task with terminations: obs (3) uniform in [-1, 1]; action Discrete(3); reward 1
// for choosing the largest element, else the episode terminates with reward 0. Truncated at 20.
class ToyPick : public Env {
 public:
  const EnvSpec& spec() const override {
    static const EnvSpec s = [] {
      EnvSpec e;
      e.name = "toy_pick";
      e.observation = Space::box({3}, {-1, -1, -1}, {1, 1, 1});
      e.action = Space::discrete_n(3);
      e.max_episode_steps = 20;
      e.state_size = 3;
      return e;
    }();
    return s;
  }
  std::vector<double> get_state() const override { return {o_[0], o_[1], o_[2]}; }
  void render(int, int, uint8_t*) const override {}

 protected:
  void reset_impl(float* obs) override { draw(obs); }
  StepResult step_impl(const float* action, float* obs) override {
    const int best = static_cast<int>(std::max_element(o_, o_ + 3) - o_);
    StepResult r;
    r.terminated = static_cast<int>(action[0]) != best;
    r.reward = r.terminated ? 0.0f : 1.0f;
    draw(obs);
    return r;
  }
  void set_state_impl(const std::vector<double>& s, float* obs) override {
    for (int j = 0; j < 3; ++j) { o_[j] = s[j]; obs[j] = static_cast<float>(o_[j]); }
  }

 private:
  void draw(float* obs) {
    for (int j = 0; j < 3; ++j) { o_[j] = rng_.uniform(-1.0, 1.0); obs[j] = static_cast<float>(o_[j]); }
  }
  double o_[3] = {0, 0, 0};
};

// Pixel task: a 1 x 8 x 8 image with one lit pixel; action Discrete(2); reward 1 when the
// action names the half (left 0, right 1) the pixel is in. Truncated after 8 steps.
class ToyPixels : public Env {
 public:
  const EnvSpec& spec() const override {
    static const EnvSpec s = [] {
      EnvSpec e;
      e.name = "toy_pixels";
      e.observation = Space::box({1, 8, 8}, std::vector<float>(64, 0.0f), std::vector<float>(64, 1.0f));
      e.action = Space::discrete_n(2);
      e.max_episode_steps = 8;
      e.pixels = true;
      e.can_terminate = false;
      e.state_size = 1;
      return e;
    }();
    return s;
  }
  std::vector<double> get_state() const override { return {static_cast<double>(pos_)}; }
  void render(int, int, uint8_t*) const override {}

 protected:
  void reset_impl(float* obs) override { draw(obs); }
  StepResult step_impl(const float* action, float* obs) override {
    StepResult r;
    r.reward = static_cast<int>(action[0]) == ((pos_ % 8) >= 4 ? 1 : 0) ? 1.0f : 0.0f;
    draw(obs);
    return r;
  }
  void set_state_impl(const std::vector<double>& s, float* obs) override {
    pos_ = static_cast<int>(s[0]);
    write(obs);
  }

 private:
  void draw(float* obs) { pos_ = static_cast<int>(rng_.integer(64)); write(obs); }
  void write(float* obs) const { std::fill(obs, obs + 64, 0.0f); obs[pos_] = 1.0f; }
  int pos_ = 0;
};

// N copies of E stepped together with automatic reset, with VecEnv's interface. Copyable.
template <class E>
class ToyVec {
 public:
  ToyVec(int n, uint64_t seed) : envs_(n) {
    for (int i = 0; i < n; ++i) envs_[i].seed(seed + i);
    D_ = envs_[0].spec().observation.numel();
    A_ = envs_[0].spec().action.numel();
    obs_.assign(n * D_, 0.0f);
    final_obs_.assign(n * D_, 0.0f);
    rewards_.assign(n, 0.0f);
    terminated_.assign(n, 0);
    truncated_.assign(n, 0);
  }
  const EnvSpec& spec() const { return envs_[0].spec(); }
  int num_envs() const { return static_cast<int>(envs_.size()); }
  int64_t act_size() const { return A_; }
  void reset() { for (int i = 0; i < num_envs(); ++i) envs_[i].reset(obs_.data() + i * D_); }
  void step(const float* actions) {
    for (int i = 0; i < num_envs(); ++i) {
      float* o = obs_.data() + i * D_;
      const StepResult r = envs_[i].step(actions + i * A_, o);
      rewards_[i] = r.reward;
      terminated_[i] = r.terminated;
      truncated_[i] = r.truncated;
      if (r.terminated || r.truncated) {
        std::copy(o, o + D_, final_obs_.data() + i * D_);
        envs_[i].reset(o);
      }
    }
  }
  const std::vector<float>& obs() const { return obs_; }
  const std::vector<float>& final_obs() const { return final_obs_; }
  const std::vector<float>& rewards() const { return rewards_; }
  const std::vector<uint8_t>& terminated() const { return terminated_; }
  const std::vector<uint8_t>& truncated() const { return truncated_; }

 private:
  std::vector<E> envs_;
  int64_t D_ = 0, A_ = 0;
  std::vector<float> obs_, final_obs_, rewards_;
  std::vector<uint8_t> terminated_, truncated_;
};

// What a training run produced.
struct TrainLog {
  std::vector<float> actions;            // every action taken, in order
  std::vector<double> episode_returns;   // true returns of finished episodes, in order
  std::vector<double> rollout_mean_reward;  // mean reward per rollout
  std::vector<PPOStats> stats;           // one per update
};

// Runs `updates` PPO iterations of the trainer's loop on a VecEnv-like `envs` (already reset).
// progress for lr annealing is (first_update + u) / total_updates. reward_override, when set,
// replaces the rewards given to the agent (e.g. NaN).
template <class V>
TrainLog train(PPOAgent& agent, V& envs, int updates, int first_update = 0, int total_updates = 0,
               const std::vector<float>* reward_override = nullptr) {
  TrainLog log;
  const int N = envs.num_envs(), T = agent.num_steps();
  const int64_t A = envs.act_size();
  std::vector<float> act(N * A), rewards(static_cast<size_t>(T) * N);
  std::vector<double> running(N, 0.0);
  for (int u = 0; u < updates; ++u) {
    double sum = 0;
    for (int t = 0; t < T; ++t) {
      agent.rollout_act(t, envs.obs().data(), act.data());
      log.actions.insert(log.actions.end(), act.begin(), act.end());
      envs.step(act.data());
      agent.rollout_record(t, envs.terminated().data(), envs.truncated().data(), envs.final_obs().data());
      for (int i = 0; i < N; ++i) {
        rewards[t * N + i] = envs.rewards()[i];
        sum += envs.rewards()[i];
        running[i] += envs.rewards()[i];
        if (envs.terminated()[i] || envs.truncated()[i]) {
          log.episode_returns.push_back(running[i]);
          running[i] = 0.0;
        }
      }
    }
    log.rollout_mean_reward.push_back(sum / (static_cast<double>(T) * N));
    agent.set_rewards(reward_override ? reward_override->data() : rewards.data());
    const double progress = total_updates > 0 ? static_cast<double>(first_update + u) / total_updates : 0.0;
    log.stats.push_back(agent.ppo_update(envs.obs().data(), progress));
  }
  return log;
}

}  // namespace prefrl::testing
