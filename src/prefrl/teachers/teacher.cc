// Scripted teachers: the oracle reads true returns; the noisy teacher sometimes guesses.
#include "prefrl/teachers/teacher.h"

#include <cmath>
#include <string>

#include "prefrl/core/error.h"

namespace prefrl {

OracleTeacher::OracleTeacher(double tie_tolerance) : tol_(tie_tolerance) {
  if (!(tie_tolerance >= 0.0 && std::isfinite(tie_tolerance)))
    throw UsageError("oracle teacher: tie_tolerance " + std::to_string(tie_tolerance) +
                     " must be a finite number >= 0");
}

Choice OracleTeacher::answer(const Segment& left, const Segment& right) {
  const double a = left.true_return(), b = right.true_return();
  if (std::isnan(a) || std::isnan(b))
    throw RuntimeError("oracle teacher: true return is NaN (segment " + std::to_string(left.id) + ": " +
                       std::to_string(a) + ", segment " + std::to_string(right.id) + ": " +
                       std::to_string(b) + ")");
  if (a == b || std::fabs(a - b) <= tol_) return Choice::kEqual;  // a == b: equal infinities
  return a > b ? Choice::kLeft : Choice::kRight;
}

NoisyTeacher::NoisyTeacher(double error_rate, uint64_t seed, double tie_tolerance)
    : oracle_(tie_tolerance), error_rate_(error_rate), rng_(seed) {
  if (!(error_rate >= 0.0 && error_rate <= 1.0))
    throw UsageError("noisy teacher: error_rate " + std::to_string(error_rate) + " must be in [0, 1]");
}

Choice NoisyTeacher::answer(const Segment& left, const Segment& right) {
  const Choice truth = oracle_.answer(left, right);
  if (!rng_.bernoulli(error_rate_)) return truth;
  return rng_.integer(2) == 0 ? Choice::kLeft : Choice::kRight;
}

}  // namespace prefrl
