// Helpers shared by the environments for reading actions and writing state vectors.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "prefrl/core/error.h"

namespace prefrl::envs_detail {

// A discrete action stored as a float => its index; throws UsageError naming the value if it is
// not a finite number that rounds to an index in [0, n).
inline int discrete_action(const char* env_name, float a, int64_t n) {
  const long idx = std::isfinite(a) ? std::lround(a) : -1;
  if (idx < 0 || idx >= n) {
    throw UsageError(std::string(env_name) + ": discrete action " + std::to_string(a) +
                     " is out of range; expected an integer in [0, " + std::to_string(n - 1) + "]");
  }
  return static_cast<int>(idx);
}

// A Box action element clipped to [lo, hi] as Gymnasium's np.clip does. NaN is treated as 0
// (inside every bound used here), so a diverged policy cannot poison the physical state.
inline float clip_action(float a, float lo, float hi) {
  if (std::isnan(a)) return 0.0f;
  return a < lo ? lo : (a > hi ? hi : a);
}

// Throws UsageError unless state has exactly `size` finite elements.
inline void check_state(const char* env_name, const std::vector<double>& state, size_t size) {
  if (state.size() != size) {
    throw UsageError(std::string(env_name) + ": set_state got " + std::to_string(state.size()) +
                     " values; expected " + std::to_string(size));
  }
  for (size_t i = 0; i < size; ++i) {
    if (!std::isfinite(state[i])) {
      throw UsageError(std::string(env_name) + ": set_state value " + std::to_string(i) + " is " +
                       std::to_string(state[i]) + "; expected a finite number");
    }
  }
}

}  // namespace prefrl::envs_detail
