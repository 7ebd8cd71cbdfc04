// A hand-written forward/backward pass and fused Adam for the reward ensemble when it is a
// plain MLP (no conv trunk, no per-action output selection, relu or leaky_relu), internal to
// reward/. It reads and writes EnsembleNet's flat parameter buffer and Adam state directly and
// computes exactly what the LibTorch path computes (EnsembleNet::forward, preference_nll with
// bootstrap weights, EnsembleNet::adam_step) up to float rounding; tests/reward checks the two
// against each other.
//
// Why: the reward MLP is tiny (input ~5, 32x32 hidden) and a minibatch is a few thousand rows
// per member, so LibTorch's per-op and autograd overhead and BLAS's packing of small-K
// matrices cost more than the arithmetic. Here a minibatch is processed in tiles of whole
// pairs (both clips of a few pairs, ~1000 steps) per member: forward, the Bradley–Terry loss
// of those pairs, and backward, with activations feature-major (features x steps) so every
// kernel runs along the steps in 8-float vectors and stays in cache. A pair whose bootstrap
// count for a member is 0 contributes nothing to that member's loss or gradient and is
// skipped for that member (the LibTorch path multiplies its loss by 0).
#pragma once
#include <cstdint>
#include <vector>

#include "prefrl/nn/aligned.h"

#include "prefrl/reward/ensemble_net.h"

namespace prefrl::reward_detail {

class FastEnsembleMlp {
 public:
  // Whether the fast path computes `net` exactly: plain MLP head on the whole row, relu or
  // leaky_relu, and no parameters besides the head's weights and biases.
  static bool supports(const EnsembleNet& net);

  // net must satisfy supports() and outlive this object.
  explicit FastEnsembleMlp(EnsembleNet& net);

  // Raw outputs of every member, no dropout: rows (N x F, row-major) => out (M x N, row-major).
  void forward(const float* rows, int64_t N, float* out);

  // One minibatch of B labeled pairs: pair k's 2L rows (left clip then right, row-major
  // 2L x F) start at pair_rows[k]; targets (B) = P(left better); weights (M x B, row-major)
  // bootstrap counts; masks: empty (no dropout) or one (M x hidden_i) row-major multiplier
  // per hidden layer; random_response as in preference_nll. Computes each member's
  // bootstrap-weighted mean NLL, part_m = sum_k w_mk nll_mk / max(sum_k w_mk, 1), into
  // loss (M) and sets grad() to the gradient of sum_m part_m.
  void loss_and_grad(const std::vector<const float*>& pair_rows, int64_t L, const float* targets,
                     const float* weights, const std::vector<const float*>& masks, double random_response,
                     double* loss);

  // One Adam step from grad() as EnsembleNet::adam_step does from params().grad(): PyTorch's
  // formula (betas 0.9/0.999, eps 1e-8), L2 as coupled weight decay on the weights only
  // (nn::FlatAdam::step_l2 on the net's Adam state; grad() then includes the L2 term).
  void adam_step(double lr, double l2);

  // The gradient of the last loss_and_grad (P floats, the layout of params()).
  const nn::AlignedFloats& grad() const { return grad_; }

 private:
  // Runs member m's layers on x_ (F x Bp), keeping every layer's output in act_.
  void forward_member(int64_t m, int64_t Bp, const std::vector<const float*>* masks);
  // Backpropagates delta_.back() (set by the loss) of member m into grad_.
  void backward_member(int64_t m, int64_t Bp, const std::vector<const float*>* masks);
  // Makes room for tiles of Bp columns.
  void reserve(int64_t Bp);

  EnsembleNet& net_;
  std::vector<EnsembleNet::HeadLayer> layers_;
  int64_t M_ = 0, F_ = 0, P_ = 0, n_weights_ = 0;
  bool leaky_ = true;
  int64_t cap_ = 0;                         // columns the buffers hold
  nn::AlignedFloats x_;                    // (F x cap) input, feature-major
  std::vector<nn::AlignedFloats> act_;     // per layer: (out x cap) outputs (after activation and mask)
  std::vector<nn::AlignedFloats> delta_;   // per layer: (out x cap) d loss / d pre-activation
  nn::AlignedFloats grad_;                 // (P)
};

}  // namespace prefrl::reward_detail
