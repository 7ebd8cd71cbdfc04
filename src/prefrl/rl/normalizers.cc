#include "prefrl/rl/normalizers.h"

#include <algorithm>
#include <cmath>

#include "prefrl/core/error.h"

namespace prefrl {

namespace {
constexpr double kVarEps = 1e-8;  // added to the variance before the square root
}

RunningMeanStd::RunningMeanStd(int dim)
    : mean_(dim, 0.0), var_(dim, 1.0), batch_mean_(dim), batch_var_(dim) {}

void RunningMeanStd::update(const float* x, int n) {
  if (n <= 0) return;
  const int d = dim();
  std::fill(batch_mean_.begin(), batch_mean_.end(), 0.0);
  std::fill(batch_var_.begin(), batch_var_.end(), 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) batch_mean_[j] += x[static_cast<int64_t>(i) * d + j];
  for (int j = 0; j < d; ++j) batch_mean_[j] /= n;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) {
      const double e = x[static_cast<int64_t>(i) * d + j] - batch_mean_[j];
      batch_var_[j] += e * e;
    }
  for (int j = 0; j < d; ++j) batch_var_[j] /= n;
  update_moments(batch_mean_.data(), batch_var_.data(), n);
}

void RunningMeanStd::update_moments(const double* batch_mean, const double* batch_var, double batch_count) {
  const double total = count_ + batch_count;
  for (int j = 0; j < dim(); ++j) {
    const double delta = batch_mean[j] - mean_[j];
    const double m2 = var_[j] * count_ + batch_var[j] * batch_count + delta * delta * count_ * batch_count / total;
    mean_[j] += delta * batch_count / total;
    var_[j] = m2 / total;
  }
  count_ = total;
}

void RunningMeanStd::set(const std::vector<double>& mean, const std::vector<double>& var, double count) {
  if (static_cast<int>(mean.size()) != dim() || static_cast<int>(var.size()) != dim()) {
    throw RuntimeError("running statistics of size " + std::to_string(mean.size()) + " do not fit dimension " +
                       std::to_string(dim()));
  }
  mean_ = mean;
  var_ = var;
  count_ = count;
}

ObsNormalizer::ObsNormalizer(int dim, bool enabled, double clip)
    : rms_(dim), enabled_(enabled), clip_(static_cast<float>(clip)), shift_(dim), scale_(dim) {
  refresh();
}

void ObsNormalizer::update(const float* obs, int n) {
  if (!enabled_) return;
  rms_.update(obs, n);
  refresh();
}

void ObsNormalizer::normalize(const float* obs, int n, float* out) const {
  const int d = rms_.dim();
  const int64_t total = static_cast<int64_t>(n) * d;
  if (!enabled_) {
    if (out != obs) std::copy(obs, obs + total, out);
    return;
  }
  for (int i = 0; i < n; ++i) {
    const float* x = obs + static_cast<int64_t>(i) * d;
    float* y = out + static_cast<int64_t>(i) * d;
    for (int j = 0; j < d; ++j) y[j] = std::clamp((x[j] - shift_[j]) * scale_[j], -clip_, clip_);
  }
}

void ObsNormalizer::set_stats(const std::vector<double>& mean, const std::vector<double>& var, double count) {
  rms_.set(mean, var, count);
  refresh();
}

void ObsNormalizer::refresh() {
  for (int j = 0; j < rms_.dim(); ++j) {
    shift_[j] = static_cast<float>(rms_.mean()[j]);
    scale_[j] = static_cast<float>(1.0 / std::sqrt(rms_.var()[j] + kVarEps));
  }
}

RewardScaler::RewardScaler(int num_envs, double gamma, double clip)
    : rms_(1), returns_(num_envs, 0.0), gamma_(gamma), clip_(clip), finite_(num_envs) {}

void RewardScaler::scale(int T, const float* rewards, const uint8_t* terminated, const uint8_t* truncated,
                         float* out) {
  const int N = num_envs();
  for (int t = 0; t < T; ++t) {
    const int64_t row = static_cast<int64_t>(t) * N;
    int n_finite = 0;
    for (int i = 0; i < N; ++i) {
      returns_[i] = returns_[i] * gamma_ + rewards[row + i];
      if (std::isfinite(returns_[i])) finite_[n_finite++] = static_cast<float>(returns_[i]);
    }
    rms_.update(finite_.data(), n_finite);
    const double inv_std = 1.0 / std::sqrt(rms_.var()[0] + kVarEps);
    for (int i = 0; i < N; ++i) {
      const double r = rewards[row + i] * inv_std;
      out[row + i] = static_cast<float>(std::isfinite(r) ? std::clamp(r, -clip_, clip_) : r);
      if (terminated[row + i] || truncated[row + i] || !std::isfinite(returns_[i])) returns_[i] = 0.0;
    }
  }
}

void RewardScaler::set_state(const std::vector<double>& mean, const std::vector<double>& var, double count,
                             const std::vector<double>& returns) {
  rms_.set(mean, var, count);
  if (returns.size() == returns_.size()) returns_ = returns;
  else std::fill(returns_.begin(), returns_.end(), 0.0);
}

}  // namespace prefrl
