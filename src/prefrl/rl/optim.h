// Optimiser pieces over one flat parameter vector: the global gradient norm, its clipping
// factor, and a fused Adam step (clip-scale, moments, update in one pass).
#pragma once
#include <cstdint>

#include <torch/torch.h>

namespace prefrl {

// Global L2 norm of grad (n), accumulated in double.
double grad_norm(const float* grad, int64_t n);

// torch::nn::utils::clip_grad_norm_'s factor: max_norm / (norm + 1e-6) when below 1, else 1.
// max_norm <= 0 turns clipping off.
float clip_factor(double norm, double max_norm);

// Adam as torch::optim::Adam (no weight decay, no AMSGrad), float math in the same order.
// CleanRL's PPO uses eps = 1e-5.
class FlatAdam {
 public:
  explicit FlatAdam(int64_t num_params, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-5);

  // One step: g = grad * grad_scale; m, v <- moments; params -= lr * m_hat / (sqrt(v_hat) + eps).
  void step(float* params, const float* grad, double lr, float grad_scale = 1.0f);

  int64_t steps() const { return step_; }
  const torch::Tensor& exp_avg() const { return m_; }
  const torch::Tensor& exp_avg_sq() const { return v_; }
  // Restores saved state (tensors of num_params floats).
  void set_state(int64_t steps, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq);

 private:
  int64_t n_;
  double beta1_, beta2_, eps_;
  int64_t step_ = 0;
  torch::Tensor m_;  // (P) first moment
  torch::Tensor v_;  // (P) second moment
};

}  // namespace prefrl
