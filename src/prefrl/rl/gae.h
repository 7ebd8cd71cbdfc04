// Generalised advantage estimation (Schulman et al. 2016) over a rollout of T steps from N
// environments, with Gymnasium's two kinds of episode end:
//   terminated: the MDP reached a terminal state; nothing follows, no bootstrap.
//   truncated:  the time limit cut the episode; the return continues beyond it, so the step's
//               reward gets + gamma * V(final_obs) (the SB3 approach), and the GAE recursion
//               stops there as at any episode end.
#pragma once
#include <cstdint>

namespace prefrl {

struct GaeInput {
  int T = 0;                            // steps per environment
  int N = 0;                            // environments
  const float* rewards = nullptr;       // (T x N) reward of step t
  const float* values = nullptr;        // (T x N) V(s_t), the observation acted on at step t
  const float* next_values = nullptr;   // (N) V(s_T), the observation after the last step
  const uint8_t* terminated = nullptr;  // (T x N) step t ended in a terminal state
  const uint8_t* truncated = nullptr;   // (T x N) step t hit the time limit (and did not terminate)
  const float* final_values = nullptr;  // (T x N) V(final observation); read only where truncated
};

// Writes advantages (T x N) and returns = advantages + values (T x N). Accumulates in double.
void compute_gae(const GaeInput& in, double gamma, double lambda, float* advantages, float* returns);

}  // namespace prefrl
