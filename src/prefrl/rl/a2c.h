// A2C (Mnih et al. 2016's synchronous advantage actor-critic, as the paper's Atari experiments
// and their reproduction ran it): N environments, n-step returns bootstrapped from V, one
// gradient step per rollout on the whole batch, RMSprop, entropy bonus, gradient-norm clipping,
// the learning rate decayed linearly to 0.
//
// A2C is PPO with one epoch of one minibatch, no advantage normalisation and GAE lambda 1
// (Huang et al. 2022, "A2C is a special case of PPO"): in the first (and only) epoch the
// probability ratio is 1, where PPO's clipped surrogate has exactly A2C's gradient,
// -A * grad log pi. So prefrl's A2C is its PPO agent (ppo.h) run with the settings
// a2c_as_ppo() derives from these; what the agent computes is A2C's, step for step.
// One convention differs: A2C's value loss is vf_coef * mean((R - V)^2) (OpenAI baselines,
// Stable-Baselines3), PPO's (CleanRL's) vf_coef * 0.5 * mean((R - V)^2); a2c_as_ppo doubles
// the coefficient, and the agent reports A2C's value loss.
#pragma once
#include <string>
#include <vector>

#include "prefrl/rl/ppo.h"

namespace prefrl {

struct A2CConfig {
  int num_steps = 5;                  // rollout steps per environment per update (n of the n-step return)
  double lr = 7e-4;                   // RMSprop learning rate
  bool anneal_lr = true;              // decay the learning rate linearly to 0 over training
  double gamma = 0.99;                // discount
  double gae_lambda = 1.0;            // 1: n-step returns (A2C's); below 1: GAE
  double ent_coef = 0.01;             // entropy bonus
  double vf_coef = 0.5;               // value loss weight, on mean((R - V)^2)
  double max_grad_norm = 0.5;         // global gradient-norm clip
  double rmsprop_alpha = 0.99;        // RMSprop smoothing constant
  double rmsprop_eps = 1e-5;          // RMSprop epsilon
  std::string cnn = "nature";         // pixel trunk (ppo.cnn's choices)
  std::vector<int> conv_channels = {16, 32};  // CNN channels (cnn = small)
  std::vector<int> hidden = {64, 64}; // MLP widths (state inputs)
  std::string activation = "tanh";
  bool norm_obs = true;               // running observation normalisation (state inputs; never pixels)
  double obs_clip = 10.0;
  bool norm_reward = false;           // scale rewards by a running std of discounted returns
  double reward_clip = 10.0;
  double init_log_std = 0.0;          // Gaussian policies' initial log-std
  bool reuse_acting_forward = true;   // the update differentiates the rollout's acting forward passes

  template <class V>
  void visit(V& v) {
    v.num("num_steps", num_steps, "rollout steps per environment per update (the n of n-step returns)", 1, 1 << 20);
    v.num("lr", lr, "RMSprop learning rate", 0.0, 1.0);
    v.flag("anneal_lr", anneal_lr, "decay the learning rate linearly to 0 over training");
    v.num("gamma", gamma, "discount factor", 0.0, 1.0);
    v.num("gae_lambda", gae_lambda, "1: n-step returns (A2C); below 1: generalised advantage estimation", 0.0, 1.0);
    v.num("ent_coef", ent_coef, "entropy bonus coefficient", 0.0, 10.0);
    v.num("vf_coef", vf_coef, "value loss coefficient (on the mean squared error)", 0.0, 100.0);
    v.num("max_grad_norm", max_grad_norm, "global gradient norm clip (0: off)", 0.0, 1e6);
    v.num("rmsprop_alpha", rmsprop_alpha, "RMSprop smoothing constant", 0.0, 1.0);
    v.num("rmsprop_eps", rmsprop_eps, "RMSprop epsilon, added to the root mean square", 0.0, 1.0);
    v.text("cnn", cnn, "pixel trunk: nature (the Nature DQN network) or small (3x3 stride-2 convs)", {"small", "nature"});
    v.ints("conv_channels", conv_channels, "CNN channels per conv layer (cnn = small)", 1, 1024);
    v.ints("hidden", hidden, "MLP hidden layer widths (state inputs)", 1, 4096);
    v.text("activation", activation, "hidden activation (MLP)", {"tanh", "relu"});
    v.flag("norm_obs", norm_obs, "running observation normalisation (state inputs)");
    v.num("obs_clip", obs_clip, "clip normalised observations to [-obs_clip, obs_clip]", 0.0, 1e6);
    v.flag("norm_reward", norm_reward, "scale rewards by a running std of discounted returns");
    v.num("reward_clip", reward_clip, "clip scaled rewards", 0.0, 1e6);
    v.num("init_log_std", init_log_std, "initial log std of the Gaussian policy", -10.0, 5.0);
    v.flag("reuse_acting_forward", reuse_acting_forward,
           "pixel and LibTorch policies: the update differentiates the forward passes that acted on the rollout (the "
           "same parameters) instead of running the network on it again; off: a second forward, the same gradient up "
           "to float rounding");
  }
};

// The PPO settings under which the PPO agent computes A2C (see above): one epoch, the whole
// rollout as one minibatch, no advantage normalisation or value clipping, RMSprop, and the
// value coefficient doubled for PPO's 0.5 * MSE.
PPOConfig a2c_as_ppo(const A2CConfig& a2c);

}  // namespace prefrl
