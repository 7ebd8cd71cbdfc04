#include "prefrl/rl/gae.h"

#include <vector>

namespace prefrl {

void compute_gae(const GaeInput& in, double gamma, double lambda, float* advantages, float* returns) {
  const int T = in.T, N = in.N;
  std::vector<double> last_gae(N, 0.0);  // (N) advantage of the step after t, within the episode
  for (int t = T - 1; t >= 0; --t) {
    for (int i = 0; i < N; ++i) {
      const int64_t k = static_cast<int64_t>(t) * N + i;
      const bool terminated = in.terminated[k] != 0;
      const bool truncated = !terminated && in.truncated[k] != 0;
      double reward = in.rewards[k];
      if (truncated) reward += gamma * in.final_values[k];  // bootstrap the cut-off return
      const double next_nonterminal = (terminated || truncated) ? 0.0 : 1.0;
      const double next_value = t == T - 1 ? in.next_values[i] : in.values[k + N];
      const double delta = reward + gamma * next_value * next_nonterminal - in.values[k];
      last_gae[i] = delta + gamma * lambda * next_nonterminal * last_gae[i];
      advantages[k] = static_cast<float>(last_gae[i]);
      returns[k] = static_cast<float>(last_gae[i] + in.values[k]);
    }
  }
}

}  // namespace prefrl
