// Running statistics for PPO's input and reward scaling, as Gymnasium's NormalizeObservation
// and gym's NormalizeReward wrappers, but owned by the agent (so they are checkpointed with it).
#pragma once
#include <cstdint>
#include <vector>

namespace prefrl {

// Per-dimension running mean and (population) variance, merged batch by batch with Chan et
// al.'s parallel update, in double precision. Starts at mean 0, variance 1, count 0, so the
// first batch sets the statistics exactly.
class RunningMeanStd {
 public:
  explicit RunningMeanStd(int dim = 1);

  // Merges a batch x (n x dim).
  void update(const float* x, int n);
  // Merges a batch given by its moments: mean (dim), population variance (dim), size.
  void update_moments(const double* batch_mean, const double* batch_var, double batch_count);

  int dim() const { return static_cast<int>(mean_.size()); }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& var() const { return var_; }
  double count() const { return count_; }
  // Restores saved statistics (sizes must equal dim()).
  void set(const std::vector<double>& mean, const std::vector<double>& var, double count);

 private:
  std::vector<double> mean_, var_;  // (dim)
  double count_ = 0.0;
  std::vector<double> batch_mean_, batch_var_;  // (dim) scratch
};

// Observation normalisation: clip((x - mean) / sqrt(var + 1e-8), -clip, clip), with the
// statistics updated from every batch the agent acts on. Disabled: a plain copy.
class ObsNormalizer {
 public:
  ObsNormalizer(int dim, bool enabled, double clip);

  // Adds a batch obs (n x dim) to the statistics (no-op when disabled).
  void update(const float* obs, int n);
  // out (n x dim) = normalised obs (n x dim); out may equal obs.
  void normalize(const float* obs, int n, float* out) const;

  bool enabled() const { return enabled_; }
  const RunningMeanStd& stats() const { return rms_; }
  // What normalize() computes with: clamp((x - shift) * scale, -clip, clip), as floats.
  const std::vector<float>& shift() const { return shift_; }
  const std::vector<float>& scale() const { return scale_; }
  float clip() const { return clip_; }
  // Restores saved statistics.
  void set_stats(const std::vector<double>& mean, const std::vector<double>& var, double count);

 private:
  // Recomputes the float shift and scale used by normalize().
  void refresh();
  RunningMeanStd rms_;
  bool enabled_;
  float clip_;
  std::vector<float> shift_, scale_;  // (dim) mean and 1 / sqrt(var + eps), as floats
};

// Reward scaling (gym 0.21's NormalizeReward): each env keeps a discounted return
// R <- gamma * R + r, the running variance of R is tracked, and rewards are divided by its
// std (then clipped). R restarts at 0 after an episode ends. Non-finite rewards pass through
// unscaled-but-non-finite (so PPO skips the minibatches they reach) and never enter the
// statistics; that env's return restarts.
class RewardScaler {
 public:
  RewardScaler(int num_envs, double gamma, double clip);

  // Scales rewards (T x N) in step order into out (T x N); an episode ends at step t of env i
  // where terminated or truncated (T x N) is set.
  void scale(int T, const float* rewards, const uint8_t* terminated, const uint8_t* truncated, float* out);

  int num_envs() const { return static_cast<int>(returns_.size()); }
  const RunningMeanStd& stats() const { return rms_; }
  const std::vector<double>& returns() const { return returns_; }
  // Restores saved state; returns of another size (a different env count) restart at 0.
  void set_state(const std::vector<double>& mean, const std::vector<double>& var, double count,
                 const std::vector<double>& returns);

 private:
  RunningMeanStd rms_;           // statistics of the discounted returns (dim 1)
  std::vector<double> returns_;  // (N) discounted return so far in each env's episode
  double gamma_, clip_;
  std::vector<float> finite_;    // (N) scratch: this step's finite returns
};

}  // namespace prefrl
