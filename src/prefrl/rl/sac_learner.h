// Soft actor-critic's networks and gradient steps (Haarnoja et al. 2018, as CleanRL's sac_continuous_action.py):
// a tanh-squashed Gaussian actor, twin Q networks with Polyak-averaged targets, a learned
// temperature. Every network is a hand-written MLP (nn/mlp.h) over one flat parameter vector
// per optimiser (actor; both critics), stepped by the flat Adam: on a CPU, small networks are
// bound by per-op overhead, not arithmetic.
//
// One update on a batch (s, a, r, s', terminated), B rows:
//   a' ~ pi(s'),  y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s'))
//   critics: minimise mean_i mean_b (Q_i(s, a) - y)^2
//   actor (every policy_frequency updates, that many steps): a~ = tanh(mu + sigma eps) scaled to
//     the action box; minimise mean_b (alpha log pi(a~|s) - min_i Q_i(s, a~))
//   temperature (autotune): minimise mean_b -alpha (log pi(a~|s) + target_entropy)
//   targets: Q'_i <- tau Q_i + (1 - tau) Q'_i
// log pi includes the squashing: - sum_j log(scale_j (1 - tanh(u_j)^2) + 1e-6); the actor's log-std
// is tanh-mapped into [-5, 2].
#pragma once
#include <cstdint>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/nn/adam.h"
#include "prefrl/nn/mlp.h"

namespace prefrl {

struct SacSettings {
  std::vector<int> hidden = {256, 256};
  double gamma = 0.99;
  double tau = 0.005;
  double q_lr = 1e-3;
  double policy_lr = 3e-4;
  double alpha_lr = 1e-3;
  int policy_frequency = 2;   // actor (and temperature) steps every this many updates, this many of them
  bool autotune = true;       // learn the temperature
  double alpha = 0.2;         // the temperature when not learned; the first one when learned is 1 (log alpha 0)
  double target_entropy = 0;  // autotune's target; 0: -(action dimensions)
  int max_batch = 256;
};

// A batch of transitions, row-major: obs and next_obs (B x D), actions (B x A) in the action box,
// rewards and terminated (B).
struct SacBatch {
  int size = 0;
  const float* obs = nullptr;
  const float* actions = nullptr;
  const float* rewards = nullptr;
  const float* next_obs = nullptr;
  const float* terminated = nullptr;
};

struct SacStats {
  double q_loss = 0, q1 = 0, q2 = 0;        // critics' loss, mean Q_1, Q_2 on the batch
  double actor_loss = 0, entropy = 0;       // of the last actor step (entropy: -mean log pi)
  double alpha = 0, alpha_loss = 0;
  bool actor_stepped = false;
};

class SacLearner {
 public:
  // An actor for obs_dim observations and actions in the box [low, high] (act_dim each).
  SacLearner(int obs_dim, int act_dim, std::vector<float> low, std::vector<float> high, const SacSettings& s,
             uint64_t seed);

  // Actions (n x A) for obs (n x D): the squashed mean (deterministic) or a sample, from rng.
  void act(const float* obs, int n, bool deterministic, Rng& rng, float* actions);
  // One gradient update (critics; the actor and temperature when due; targets).
  SacStats update(const SacBatch& b);

  double alpha() const;
  int64_t updates() const { return updates_; }
  // The flat vectors, for checkpoints and tests: actor, critics (Q_1 then Q_2), target critics.
  std::vector<float>& actor_params() { return actor_p_; }
  std::vector<float>& critic_params() { return critic_p_; }
  std::vector<float>& target_params() { return target_p_; }
  float& log_alpha() { return log_alpha_[0]; }
  // The gradients of the last critic and actor steps (tests check them against autograd).
  const std::vector<float>& critic_grad() const { return critic_g_; }
  const std::vector<float>& actor_grad() const { return actor_g_; }
  nn::FlatAdam& actor_adam() { return actor_opt_; }
  nn::FlatAdam& critic_adam() { return critic_opt_; }
  nn::FlatAdam& alpha_adam() { return alpha_opt_; }
  Rng& rng() { return rng_; }

  // The actor's sample for obs (feature-major D x Bp, n real columns) with noise eps (A x Bp):
  // env actions (A x Bp), log pi (Bp), and what its backward needs. Public for tests.
  struct Sample {
    std::vector<float> head;    // (2A x Bp) mean rows then log-std pre-activations
    std::vector<float> log_std; // (A x Bp)
    std::vector<float> squashed;// tanh(u) (A x Bp)
    std::vector<float> action;  // scaled to the box (A x Bp)
    std::vector<float> logp;    // (Bp)
  };
  void sample(const float* obs_t, int n, int64_t Bp, const float* eps, Sample* out);

 private:
  void draw_noise(int n, int64_t Bp);  // eps_ (A x Bp): N(0, 1) in columns < n, 0 beyond
  void critic_step(const SacBatch& b, int64_t Bp, SacStats* st);
  void actor_step(int n, int64_t Bp, SacStats* st);

  int D_, A_;
  std::vector<float> low_, high_, scale_, bias_;
  SacSettings s_;
  nn::MlpShape actor_shape_, q1_shape_, q2_shape_;
  nn::Mlp actor_, q1_, q2_;
  std::vector<float> actor_p_, critic_p_, target_p_, log_alpha_;
  std::vector<float> actor_g_, critic_g_, scratch_g_, alpha_g_;
  nn::FlatAdam actor_opt_, critic_opt_, alpha_opt_;
  Rng rng_;
  int64_t updates_ = 0;
  double target_entropy_;
  // Feature-major scratch: obs (D x Bp), next obs, Q input ((D + A) x Bp), noise (A x Bp), ...
  std::vector<float> obs_t_, next_t_, qin_, eps_, dq_, dqin_, dhead_;
  Sample next_sample_, actor_sample_;
};

}  // namespace prefrl
