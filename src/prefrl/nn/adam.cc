#include "prefrl/nn/adam.h"

#include <cmath>
#include <cstring>
#include <string>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "prefrl/core/error.h"
#include "prefrl/nn/simd.h"

namespace prefrl::nn {

namespace {

// The element-wise Adam update over n floats. Four at a time with SSE square roots (the
// compiler will not vectorise std::sqrt, which may set errno), the tail one by one with the
// same float operations. kScale: g = grad * scale first (else g = grad).
template <bool kScale>
PREFRL_INLINE void adam_update(float* __restrict p, const float* __restrict g, float* __restrict m,
                               float* __restrict v, int64_t n, float scale, float beta1, float one_minus_beta1,
                               float beta2, float one_minus_beta2, float sqrt_bc2, float eps, float neg_step) {
  int64_t i = 0;
#if defined(__SSE2__)
  using simd::v4;
  for (; i + 4 <= n; i += 4) {
    v4 pi, gi, mi, vi;
    std::memcpy(&pi, p + i, sizeof pi);
    std::memcpy(&gi, g + i, sizeof gi);
    std::memcpy(&mi, m + i, sizeof mi);
    std::memcpy(&vi, v + i, sizeof vi);
    if constexpr (kScale) gi = gi * scale;
    mi = mi * beta1 + one_minus_beta1 * gi;
    vi = vi * beta2 + one_minus_beta2 * gi * gi;
    const v4 denom = reinterpret_cast<v4>(_mm_sqrt_ps(reinterpret_cast<__m128>(vi))) / sqrt_bc2 + eps;
    pi = pi + neg_step * (mi / denom);
    std::memcpy(p + i, &pi, sizeof pi);
    std::memcpy(m + i, &mi, sizeof mi);
    std::memcpy(v + i, &vi, sizeof vi);
  }
#endif
  for (; i < n; ++i) {
    float gi = g[i];
    if constexpr (kScale) gi = gi * scale;
    m[i] = m[i] * beta1 + one_minus_beta1 * gi;
    v[i] = v[i] * beta2 + one_minus_beta2 * gi * gi;
    const float denom = std::sqrt(v[i]) / sqrt_bc2 + eps;
    p[i] = p[i] + neg_step * (m[i] / denom);
  }
}

// FlatAdam::step's update: built twice, FMA contracted in the AVX2+FMA clone.
PREFRL_SIMD_CLONES void adam_kernel(float* __restrict p, const float* __restrict g, float* __restrict m,
                                    float* __restrict v, int64_t n, float scale, float beta1, float one_minus_beta1,
                                    float beta2, float one_minus_beta2, float sqrt_bc2, float eps, float neg_step) {
  adam_update<true>(p, g, m, v, n, scale, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, eps, neg_step);
}

// FlatAdam::step_l2's update: baseline x86-64 only, every operation rounded on its own.
void adam_kernel_baseline(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                          int64_t n, float beta1, float one_minus_beta1, float beta2, float one_minus_beta2,
                          float sqrt_bc2, float eps, float neg_step) {
  adam_update<false>(p, g, m, v, n, 1.0f, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, eps, neg_step);
}

// FlatRMSprop::step's update (SIMD clones, as Adam's): v <- alpha v + (1 - alpha) g^2,
// p <- p - lr g / (sqrt(v) + eps), with g = grad * scale.
PREFRL_SIMD_CLONES void rmsprop_kernel(float* __restrict p, const float* __restrict g, float* __restrict v, int64_t n,
                                       float scale, float alpha, float one_minus_alpha, float eps, float neg_lr) {
  int64_t i = 0;
#if defined(__SSE2__)
  using simd::v4;
  for (; i + 4 <= n; i += 4) {
    v4 pi, gi, vi;
    std::memcpy(&pi, p + i, sizeof pi);
    std::memcpy(&gi, g + i, sizeof gi);
    std::memcpy(&vi, v + i, sizeof vi);
    gi = gi * scale;
    vi = vi * alpha + one_minus_alpha * gi * gi;
    const v4 denom = reinterpret_cast<v4>(_mm_sqrt_ps(reinterpret_cast<__m128>(vi))) + eps;
    pi = pi + neg_lr * (gi / denom);
    std::memcpy(p + i, &pi, sizeof pi);
    std::memcpy(v + i, &vi, sizeof vi);
  }
#endif
  for (; i < n; ++i) {
    const float gi = g[i] * scale;
    v[i] = v[i] * alpha + one_minus_alpha * gi * gi;
    p[i] = p[i] + neg_lr * (gi / (std::sqrt(v[i]) + eps));
  }
}

}  // namespace

double grad_norm(const float* grad, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += static_cast<double>(grad[i]) * grad[i];
    s1 += static_cast<double>(grad[i + 1]) * grad[i + 1];
    s2 += static_cast<double>(grad[i + 2]) * grad[i + 2];
    s3 += static_cast<double>(grad[i + 3]) * grad[i + 3];
  }
  for (; i < n; ++i) s0 += static_cast<double>(grad[i]) * grad[i];
  return std::sqrt((s0 + s1) + (s2 + s3));
}

float clip_factor(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0f;
  const double coef = max_norm / (norm + 1e-6);
  return coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}

FlatAdam::FlatAdam(int64_t num_params, double beta1, double beta2, double eps)
    : n_(num_params), beta1_(beta1), beta2_(beta2), eps_(eps),
      m_(torch::zeros({num_params}, torch::kFloat32)), v_(torch::zeros({num_params}, torch::kFloat32)) {}

void FlatAdam::step(float* params, const float* grad, double lr, float grad_scale) {
  ++step_;
  const double bias_correction1 = 1.0 - std::pow(beta1_, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(beta2_, static_cast<double>(step_));
  const double step_size = lr / bias_correction1;
  adam_kernel(params, grad, m_.data_ptr<float>(), v_.data_ptr<float>(), n_, grad_scale, static_cast<float>(beta1_),
              static_cast<float>(1.0 - beta1_), static_cast<float>(beta2_), static_cast<float>(1.0 - beta2_),
              static_cast<float>(std::sqrt(bias_correction2)), static_cast<float>(eps_),
              static_cast<float>(-step_size));
}

void FlatAdam::step_l2(float* params, float* grad, double lr, double l2, int64_t n_l2) {
  if (l2 > 0) {
    const float l2f = static_cast<float>(l2);
    for (int64_t i = 0; i < n_l2; ++i) grad[i] += l2f * params[i];
  }
  ++step_;
  const double bias_correction1 = 1.0 - std::pow(beta1_, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(beta2_, static_cast<double>(step_));
  adam_kernel_baseline(params, grad, m_.data_ptr<float>(), v_.data_ptr<float>(), n_, static_cast<float>(beta1_),
                       static_cast<float>(1.0 - beta1_), static_cast<float>(beta2_),
                       static_cast<float>(1.0 - beta2_), static_cast<float>(std::sqrt(bias_correction2)),
                       static_cast<float>(eps_), static_cast<float>(-lr / bias_correction1));
}

void FlatAdam::step_tensor(torch::Tensor& params, double lr, double l2, int64_t n_l2) {
  torch::NoGradGuard no_grad;
  torch::Tensor g = params.mutable_grad();  // (P)
  if (!g.defined()) return;
  if (l2 > 0) g.narrow(0, 0, n_l2).add_(params.narrow(0, 0, n_l2), l2);
  ++step_;
  m_.mul_(beta1_).add_(g, 1.0 - beta1_);
  v_.mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
  const double bias_correction1 = 1.0 - std::pow(beta1_, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(beta2_, static_cast<double>(step_));
  torch::Tensor denom = (v_.sqrt() / std::sqrt(bias_correction2)).add_(eps_);
  params.addcdiv_(m_, denom, -lr / bias_correction1);
  g.zero_();
}

void FlatAdam::set_state(int64_t steps, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq) {
  if (exp_avg.numel() != n_ || exp_avg_sq.numel() != n_)
    throw RuntimeError("Adam state of " + std::to_string(exp_avg.numel()) + " values does not fit " +
                       std::to_string(n_) + " parameters");
  step_ = steps;
  m_.copy_(exp_avg.to(torch::kFloat32).reshape({n_}));
  v_.copy_(exp_avg_sq.to(torch::kFloat32).reshape({n_}));
}

FlatRMSprop::FlatRMSprop(int64_t num_params, double alpha, double eps)
    : n_(num_params), alpha_(alpha), eps_(eps), v_(torch::zeros({num_params}, torch::kFloat32)) {}

void FlatRMSprop::step(float* params, const float* grad, double lr, float grad_scale) {
  ++step_;
  rmsprop_kernel(params, grad, v_.data_ptr<float>(), n_, grad_scale, static_cast<float>(alpha_),
                 static_cast<float>(1.0 - alpha_), static_cast<float>(eps_), static_cast<float>(-lr));
}

void FlatRMSprop::set_state(int64_t steps, const torch::Tensor& square_avg) {
  if (square_avg.numel() != n_)
    throw RuntimeError("RMSprop state of " + std::to_string(square_avg.numel()) + " values does not fit " +
                       std::to_string(n_) + " parameters");
  step_ = steps;
  v_.copy_(square_avg.to(torch::kFloat32).reshape({n_}));
}

}  // namespace prefrl::nn
