// Teachers answer queries. Scripted teachers read segments' true rewards.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/core/segment.h"

namespace prefrl {

class Teacher {
 public:
  virtual ~Teacher() = default;
  virtual std::string name() const = 0;  // stored with each label ("oracle", ...)
  virtual Choice answer(const Segment& left, const Segment& right) = 0;
  // Random state, for checkpoints (empty for a deterministic teacher).
  virtual std::vector<uint64_t> rng_state() const { return {}; }
  virtual void set_rng_state(const std::vector<uint64_t>& state) {}
};

// Prefers the segment with the higher true return; "equal" when the returns are equal
// within `tie_tolerance` (absolute).
class OracleTeacher : public Teacher {
 public:
  // Throws UsageError unless tie_tolerance is a finite number >= 0.
  explicit OracleTeacher(double tie_tolerance = 0.0);
  std::string name() const override { return "oracle"; }
  Choice answer(const Segment& left, const Segment& right) override;
 private:
  double tol_;
};

// The oracle's answer replaced by a uniformly random one (left/right) with probability
// `error_rate`, e.g. to test robustness.
class NoisyTeacher : public Teacher {
 public:
  // Throws UsageError unless error_rate is in [0, 1]. Deterministic given `seed`.
  NoisyTeacher(double error_rate, uint64_t seed, double tie_tolerance = 0.0);
  std::string name() const override { return "noisy"; }
  Choice answer(const Segment& left, const Segment& right) override;
  std::vector<uint64_t> rng_state() const override { return rng_.state(); }
  void set_rng_state(const std::vector<uint64_t>& state) override { rng_.set_state(state); }
 private:
  OracleTeacher oracle_;
  double error_rate_;
  Rng rng_;
};

}  // namespace prefrl
