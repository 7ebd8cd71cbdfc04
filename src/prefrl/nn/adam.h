// The one Adam over a flat parameter vector, RMSprop (A2C's optimiser) beside it, and the
// gradient-norm clipping that goes with them.
//
// FlatAdam holds the moments and the step count; its three step functions are the ways its
// callers have always stepped, kept apart because each rounds differently (nn/simd.h) and a
// run must compute the same numbers bit for bit:
//   step         the fused float loop, built with SIMD clones (FMA where the CPU has it), the
//                gradient scaled first (clipping) - rl/ (PPO).
//   step_l2      the same float loop built for baseline x86-64 (no FMA), after coupled L2 on
//                a prefix of the parameters (g += l2 * w) - reward/'s hand-written MLP path.
//   step_tensor  LibTorch element-wise ops on the parameter tensor and its .grad() -
//                reward/'s autograd path (EnsembleNet).
// All three are PyTorch's formula (torch::optim::Adam, no AMSGrad):
//   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
//   w <- w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
#pragma once
#include <cstdint>

#include <torch/torch.h>

namespace prefrl::nn {

// Global L2 norm of grad (n), accumulated in double (four partial sums, then pairwise).
double grad_norm(const float* grad, int64_t n);

// torch::nn::utils::clip_grad_norm_'s factor: max_norm / (norm + 1e-6) when below 1, else 1.
// max_norm <= 0 turns clipping off.
float clip_factor(double norm, double max_norm);

class FlatAdam {
 public:
  // Zero moments for num_params parameters. CleanRL's PPO uses eps = 1e-5, the reward model 1e-8.
  explicit FlatAdam(int64_t num_params, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-5);

  // One fused step (SIMD clones): g = grad * grad_scale (P); m, v <- moments; params (P) updated.
  void step(float* params, const float* grad, double lr, float grad_scale = 1.0f);

  // One step built for baseline x86-64: grad[i] += float(l2) * params[i] for i < n_l2 when
  // l2 > 0 (grad (P) is changed in place), then the update.
  void step_l2(float* params, float* grad, double lr, double l2, int64_t n_l2);

  // One step with LibTorch ops from params.grad() (P; nothing happens if it is undefined):
  // grad[:n_l2] += l2 * params[:n_l2] when l2 > 0, the update, then the grad is zeroed.
  void step_tensor(torch::Tensor& params, double lr, double l2, int64_t n_l2);

  int64_t num_params() const { return n_; }
  int64_t steps() const { return step_; }
  const torch::Tensor& exp_avg() const { return m_; }     // (P)
  const torch::Tensor& exp_avg_sq() const { return v_; }  // (P)
  // Restores saved state (tensors of num_params floats).
  void set_state(int64_t steps, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq);

 private:
  int64_t n_;
  double beta1_, beta2_, eps_;
  int64_t step_ = 0;
  torch::Tensor m_;  // (P) first moment
  torch::Tensor v_;  // (P) second moment
};

// RMSprop over a flat parameter vector, PyTorch's formula (torch::optim::RMSprop, no momentum,
// not centred; the paper's A2C, and Stable-Baselines3's, use alpha 0.99, eps 1e-5):
//   v <- alpha v + (1 - alpha) g^2,   w <- w - lr * g / (sqrt(v) + eps).
// (TensorFlow's RMSProp, which OpenAI baselines' A2C used, puts eps inside the square root and
// starts v at 1; the two differ in the first updates only.)
class FlatRMSprop {
 public:
  FlatRMSprop(int64_t num_params, double alpha = 0.99, double eps = 1e-5);

  // One fused step: g = grad * grad_scale (P); v <- the running mean square; params (P) updated.
  void step(float* params, const float* grad, double lr, float grad_scale = 1.0f);

  int64_t num_params() const { return n_; }
  int64_t steps() const { return step_; }
  const torch::Tensor& square_avg() const { return v_; }  // (P)
  // Restores saved state (a tensor of num_params floats).
  void set_state(int64_t steps, const torch::Tensor& square_avg);

 private:
  int64_t n_;
  double alpha_, eps_;
  int64_t step_ = 0;
  torch::Tensor v_;  // (P) running mean of squared gradients
};

}  // namespace prefrl::nn
