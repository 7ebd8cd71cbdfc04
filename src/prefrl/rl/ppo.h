// PPO (clipped surrogate, GAE, value loss, entropy bonus, advantage normalisation,
// gradient-norm clipping, running observation normalisation, learning-rate annealing) for
// discrete (categorical) and continuous (diagonal Gaussian, state-independent log-std)
// actions, with MLP policies for state inputs and a small CNN for pixels.
//
// The rollout buffer is a set of columns of the trainer's transition store (keep_rollout_in;
// of the agent's own until then). The trainer's loop, per rollout of T steps:
//   for t in 0..T-1: agent.rollout_act(t, obs, actions)     // stores normalised obs, action, logp, value
//                    env.step(actions)
//                    agent.rollout_record(t, terminated, truncated, final_obs)
//   agent.set_rewards(rewards)           // (T x N) rewards the policy learns from (learned r̂)
//   stats = agent.ppo_update(next_obs, progress)    // or update(): the same, as the Agent interface reports it
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "prefrl/core/config.h"
#include "prefrl/envs/env.h"
#include "prefrl/rl/agent.h"

namespace prefrl {

struct PPOConfig {
  int num_steps = 128;                // rollout steps per environment per update
  int minibatch_size = 64;            // transitions per minibatch
  int update_epochs = 10;             // passes over each rollout
  double lr = 3e-4;                   // Adam learning rate
  bool anneal_lr = true;              // linearly anneal lr to 0 over training
  double gamma = 0.99;                // discount
  double gae_lambda = 0.95;           // GAE lambda
  double clip_coef = 0.2;             // surrogate clipping
  bool clip_vloss = false;            // clip the value loss like the policy
  double ent_coef = 0.0;              // entropy bonus
  double vf_coef = 0.5;               // value-loss weight
  double max_grad_norm = 0.5;         // global gradient-norm clip
  bool norm_adv = true;               // normalise advantages per minibatch
  double target_kl = 0.0;             // stop the epoch loop early above this KL (0: off)
  std::vector<int> hidden = {64, 64}; // MLP widths (policy and value, separate networks)
  std::string activation = "tanh";
  bool norm_obs = true;               // running observation normalisation
  double obs_clip = 10.0;             // clip normalised observations
  bool norm_reward = false;           // scale rewards by a running std of discounted returns
  double reward_clip = 10.0;          // clip scaled rewards
  double init_log_std = 0.0;          // initial log-std of the Gaussian (continuous actions)
  std::vector<int> conv_channels = {16, 32};  // CNN channels (pixels; cnn = small)
  std::string cnn = "small";          // pixel trunk: small (3x3 stride-2 convs, FC 128) | nature (Mnih et al. 2015)
  std::string optimizer = "adam";     // adam (eps 1e-5) | rmsprop (A2C's)
  double rmsprop_alpha = 0.99;        // RMSprop's smoothing constant
  double rmsprop_eps = 1e-5;          // RMSprop's epsilon (outside the square root, as PyTorch's)
  bool fast_mlp = true;               // MLP policies: hand-written forward/backward (false: LibTorch autograd)
  bool reuse_acting_forward = true;   // one epoch of one minibatch (A2C): differentiate the acting forwards

  template <class V>
  void visit(V& v) {
    v.num("num_steps", num_steps, "rollout steps per environment per update", 1, 1 << 20);
    v.num("minibatch_size", minibatch_size, "transitions per minibatch", 1, 1 << 24);
    v.num("update_epochs", update_epochs, "passes over each rollout", 1, 1000);
    v.num("lr", lr, "Adam learning rate", 0.0, 1.0);
    v.flag("anneal_lr", anneal_lr, "anneal the learning rate linearly to 0");
    v.num("gamma", gamma, "discount factor", 0.0, 1.0);
    v.num("gae_lambda", gae_lambda, "GAE lambda", 0.0, 1.0);
    v.num("clip_coef", clip_coef, "surrogate clipping coefficient", 0.0, 10.0);
    v.flag("clip_vloss", clip_vloss, "clip the value loss");
    v.num("ent_coef", ent_coef, "entropy bonus coefficient", 0.0, 10.0);
    v.num("vf_coef", vf_coef, "value loss coefficient", 0.0, 100.0);
    v.num("max_grad_norm", max_grad_norm, "global gradient norm clip (0: off)", 0.0, 1e6);
    v.flag("norm_adv", norm_adv, "normalise advantages per minibatch");
    v.num("target_kl", target_kl, "early-stop threshold on approximate KL (0: off)", 0.0, 100.0);
    v.ints("hidden", hidden, "MLP hidden layer widths", 1, 4096);
    v.text("activation", activation, "hidden activation", {"tanh", "relu"});
    v.flag("norm_obs", norm_obs, "running observation normalisation");
    v.num("obs_clip", obs_clip, "clip normalised observations to [-obs_clip, obs_clip]", 0.0, 1e6);
    v.flag("norm_reward", norm_reward, "scale rewards by a running std of discounted returns");
    v.num("reward_clip", reward_clip, "clip scaled rewards", 0.0, 1e6);
    v.num("init_log_std", init_log_std, "initial log std of the Gaussian policy", -10.0, 5.0);
    v.ints("conv_channels", conv_channels, "CNN channels per conv layer (pixels, cnn = small)", 1, 1024);
    v.text("cnn", cnn,
           "pixel policy trunk: small (3x3 stride-2 convs of conv_channels, then FC 128) or nature (the Nature DQN's: "
           "32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1, FC 512; ReLU)",
           {"small", "nature"});
    v.text("optimizer", optimizer, "adam (eps 1e-5) or rmsprop (rmsprop_alpha, rmsprop_eps; A2C's)", {"adam", "rmsprop"});
    v.num("rmsprop_alpha", rmsprop_alpha, "RMSprop smoothing constant (optimizer = rmsprop)", 0.0, 1.0);
    v.num("rmsprop_eps", rmsprop_eps, "RMSprop epsilon, added to the root mean square (optimizer = rmsprop)", 0.0, 1.0);
    v.flag("fast_mlp", fast_mlp, "MLP policies: hand-written forward/backward instead of LibTorch autograd");
    v.flag("reuse_acting_forward", reuse_acting_forward,
           "with one epoch of one minibatch (update_epochs 1, minibatch_size >= the rollout) and the LibTorch policy: "
           "the update differentiates the forward passes that acted instead of running the network again (the same "
           "gradient up to float rounding)");
  }
};

struct PPOStats {
  double policy_loss = 0, value_loss = 0, entropy = 0, approx_kl = 0, clipfrac = 0;
  double explained_variance = 0, lr = 0, grad_norm = 0;
  int64_t minibatches = 0;         // minibatch updates applied (skipped ones not included)
  int64_t skipped_nonfinite = 0;  // minibatches skipped because a loss was NaN/Inf
};

struct PolicyParts;  // policy.h

class PPOAgent : public Agent {
 public:
  PPOAgent(const PPOConfig& cfg, const EnvSpec& spec, int num_envs, uint64_t seed);
  // The same agent under another algorithm's name (a2c.h: A2C is PPO with A2C's settings): its
  // rollout columns, policy files and reported metrics carry that name.
  PPOAgent(const std::string& algorithm, const PPOConfig& cfg, const EnvSpec& spec, int num_envs, uint64_t seed);
  ~PPOAgent() override;

  std::string algorithm() const override;

  // Acts on raw observations (N x D) => actions (N x A), without storing anything.
  // deterministic: the mode (argmax / mean), else sampled. Used for evaluation.
  void act(const float* obs, int n, float* actions, bool deterministic) override;

  // Rollout step t: updates observation statistics, stores normalised obs, sampled action,
  // log-prob and value; writes actions (N x A) (continuous actions are unclipped samples;
  // the environment clips).
  void rollout_act(int t, const float* obs, float* actions) override;
  // After env.step: flags (N) and the final observation (N x D) of envs whose episode ended.
  void rollout_record(int t, const uint8_t* terminated, const uint8_t* truncated, const float* final_obs) override;
  // Rewards (T x N, row t = step t) the policy learns from for the rollout just collected.
  void set_rewards(const float* rewards) override;

  // GAE (bootstrapping from next_obs, and from V(final_obs) at truncations) and PPO epochs.
  // progress in [0, 1]: fraction of training done, for lr annealing.
  PPOStats ppo_update(const float* next_obs, double progress);
  // The same update, reported as any agent's: learning rate and PPO's losses/* in `metrics`.
  AgentStats update(const float* next_obs, double progress) override;
  // Drops the rollout collected so far without learning from it (a rollout that saw a
  // non-finite observation or reward); the next rollout starts at step 0.
  void discard_rollout() override;
  // A frozen copy of the acting policy: parameters, observation statistics, evaluation RNG.
  std::unique_ptr<ActingPolicy> snapshot() const override;

  // Its rollout buffer (normalised observations, sampled actions, log-probabilities, values,
  // rewards, flags, bootstrap values, advantages, returns) as columns "ppo/...".
  void keep_rollout_in(RolloutColumns& columns) override;
  int rollout_steps() const override { return num_steps(); }

  int num_steps() const;
  int num_envs() const;

  // Checkpoint: parameters, Adam state, normaliser statistics and RNG states. Call between
  // updates (a rollout in progress is not saved). load() accepts a checkpoint from an agent
  // with another env count (the reward scaler's per-env returns then restart at 0).
  void save(const std::string& path) const override;
  void load(const std::string& path) override;
  // load() from an archive already read from `path` (named in messages).
  void load(torch::serialize::InputArchive& ar, const std::string& path);

  // The acting policy's layout, parameters and observation normalisation (export).
  PolicyParts export_parts() const;
  // Actor outputs head (n x head_dim) and values (n) of raw observations obs (n x D), as act()
  // computes them.
  void forward_heads(const float* obs, int n, float* head, float* values);
  // Acts (act, forward_heads) through LibTorch's operators (the autograd policy) instead of the
  // hand-written MLP kernels: what an exported TorchScript policy computes, bit for bit (prefrl
  // eval). Training after this call is as correct, only slower.
  void use_libtorch_ops();

  // Added for tests and diagnostics:
  torch::Tensor parameters() const;  // (P) copy of the flat parameter vector
  bool uses_fast_mlp() const;        // whether the hand-written MLP path is in use

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefrl
