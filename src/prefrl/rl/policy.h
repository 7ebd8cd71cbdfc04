// Actor-critic networks stored in ONE flat float parameter vector, with two interchangeable
// implementations of the forward pass and of the PPO loss gradient:
//   - autograd (policy.cc): LibTorch functional ops on views of the flat vector; MLPs and the
//     pixel CNN. The reference.
//   - fast MLP (fast_mlp.cc): forward and backward written out by hand for MLP policies, with
//     no allocation per call; ~25x faster per minibatch on a 32x32 MLP (bench/bench_ppo.cc).
// Both read the same layout, so one set of parameters means the same policy in either.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"
#include "prefrl/rl/ppo.h"

namespace prefrl {

constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi)), in the Gaussian log-density
constexpr int kPixelFeatures = 128;                      // width of the small CNN trunk's linear layer
constexpr int kNatureFeatures = 512;                     // width of the Nature CNN's linear layer

// A linear layer in the flat vector: weight (out x in), row-major as torch::nn::Linear, then bias (out).
struct LinearSlot {
  int64_t w = 0, b = 0;  // offsets of weight and bias
  int in = 0, out = 0;
  double gain = 1.0;     // orthogonal-init gain
};

// A convolution (kernel k, stride, padding) in the flat vector: weight (cout x cin x k x k), bias (cout).
struct ConvSlot {
  int64_t w = 0, b = 0;
  int cin = 0, cout = 0, k = 3, stride = 2, pad = 1;
  int h_in = 0, w_in = 0, h_out = 0, w_out = 0;
};

// Where every parameter lives, derived from the config and the environment's spaces.
//   State inputs: actor MLP (hidden..., head_dim; output gain 0.01) and a separate critic MLP
//                 (hidden..., 1; output gain 1), hidden gains sqrt(2), activation cfg.activation.
//   Pixels:       a shared trunk of convs + ReLU, then a Linear + ReLU; actor and critic are
//                 single linear heads. cfg.cnn small: 3x3 stride-2 convs (cfg.conv_channels, padding 1),
//                 Linear(kPixelFeatures); nature (Mnih et al. 2015, the A2C/DQN Atari network): 32 8x8
//                 stride 4, 64 4x4 stride 2, 64 3x3 stride 1 (no padding), Linear(kNatureFeatures).
//   Box actions:  a state-independent log-std (head_dim) at the end.
struct PolicyLayout {
  int obs_dim = 0;                  // floats per observation
  int act_dim = 0;                  // floats per action (1 for discrete: the index)
  int head_dim = 0;                 // actor outputs: logits (n) or Gaussian means (A)
  bool discrete = false, pixels = false, relu = false;
  std::vector<ConvSlot> convs;      // pixels only
  LinearSlot trunk_fc;              // pixels only
  std::vector<LinearSlot> actor;    // hidden layers then the output layer
  std::vector<LinearSlot> critic;   // hidden layers then the output layer
  int64_t log_std = -1;             // offset of the log-std (head_dim); -1 when discrete
  int64_t num_params = 0;
};

// Builds the layout; throws UsageError for spaces it cannot handle (e.g. pixels that are not C x H x W).
PolicyLayout make_layout(const PPOConfig& cfg, const EnvSpec& spec);

// What an agent's acting policy computes, for export (app/torchscript.h): its layout, a copy of
// its parameters, and the observation normalisation it applies.
struct PolicyParts {
  PolicyLayout layout;
  std::vector<float> params;                // (num_params)
  bool norm_obs = false;                    // observations normalised: clamp((x - shift) * scale, -clip, clip)
  std::vector<float> obs_shift, obs_scale;  // (obs_dim) each, with norm_obs
  float obs_clip = 0.0f;
  std::vector<uint64_t> eval_rng_state;     // the evaluation RNG (stochastic act())
};

// Fills params (num_params): orthogonal weights with their gains (from rng, not torch's
// generator), zero biases, log-std = init_log_std.
void init_params(const PolicyLayout& layout, double init_log_std, Rng& rng, float* params);

// One minibatch, gathered into contiguous arrays.
struct Minibatch {
  int size = 0;                       // B
  const float* obs = nullptr;         // (B x obs_dim) normalised observations
  const float* actions = nullptr;     // (B x act_dim) actions taken
  const float* logprobs = nullptr;    // (B) their log-probabilities when collected
  const float* values = nullptr;      // (B) values when collected
  const float* advantages = nullptr;  // (B) GAE advantages
  const float* returns = nullptr;     // (B) value targets
  bool kept = false;                  // the rows are the kept acting forwards', in order (see forward_kept)
};

// The PPO loss of one minibatch and its parts (CleanRL's names).
struct LossTerms {
  double loss = 0, policy_loss = 0, value_loss = 0, entropy = 0;
  double approx_kl = 0, old_approx_kl = 0, clipfrac = 0;
};

// An actor-critic over a flat parameter vector owned by the caller (read at every call, so
// in-place optimiser steps take effect immediately).
class Policy {
 public:
  virtual ~Policy() = default;
  // Actor outputs head (n x head_dim) and values (n) for normalised obs (n x obs_dim); no gradients.
  virtual void forward(const float* obs, int n, float* head, float* values) = 0;
  // PPO loss of a minibatch (CleanRL's ppo.py): writes d loss / d params into grad (num_params).
  virtual LossTerms loss_and_grad(const Minibatch& mb, float* grad) = 0;
  // forward() whose graph the policy keeps, so that the next loss_and_grad of a Minibatch with
  // `kept` set (the kept rows, in the order they were computed) differentiates these outputs
  // instead of running the network again: A2C's only minibatch of its only epoch is the whole
  // rollout, evaluated by the very parameters that acted on it. The graph reads the parameters
  // where they live, so they must not change between the kept forwards and that loss_and_grad.
  // Returns false (and computes nothing) where the policy cannot keep graphs.
  virtual bool forward_kept(const float* obs, int n, float* head, float* values) {
    (void)obs, (void)n, (void)head, (void)values;
    return false;
  }
  // Rows of the kept graphs (0 when none).
  virtual int64_t kept_rows() const { return 0; }
  // Forgets the kept graphs.
  virtual void drop_kept() {}
};

// LibTorch autograd implementation (any layout).
std::unique_ptr<Policy> make_autograd_policy(const PolicyLayout& layout, const PPOConfig& cfg, float* params);
// Hand-written implementation (MLP layouts only); max_batch bounds minibatch sizes.
std::unique_ptr<Policy> make_fast_mlp_policy(const PolicyLayout& layout, const PPOConfig& cfg, float* params,
                                             int max_batch);

// Log-density of actions (n x A) under N(mean, exp(log_std)^2), summed over A, as float math
// identical to the loss's; writes logp (n).
void gaussian_logprob(const float* mean, const float* log_std, const float* actions, int n, int A, float* logp);
// Log-softmax of one row of logits (n); writes out (n).
void log_softmax_row(const float* logits, int n, float* out);
// How an actor's outputs head (n x head_dim) become actions (n x act_dim) and their
// log-probabilities logp (n): discrete, the first argmax (deterministic) or a draw by inverse
// CDF from rng; Gaussian (log_std: head_dim), the mean or mean + exp(log_std) * N(0, 1).
// scratch holds head_dim floats.
void choose_actions(const PolicyLayout& layout, const float* head, const float* log_std, int n, bool deterministic,
                    Rng& rng, float* act, float* logp, float* scratch);

}  // namespace prefrl
