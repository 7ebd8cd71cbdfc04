// The Bradley–Terry likelihood with random-response mixing, in log space:
//   P(left)     = (1 - eps) * sigmoid(d) + eps / 2,           d = R_left - R_right
//   log P(left) = log(exp(log(1 - eps) + logsigmoid(d)) + exp(log(eps / 2)))
//               = softplus(log(1 - eps) + logsigmoid(d) - log(eps / 2)) + log(eps / 2)
// and the same with -d for P(right) = 1 - P(left). softplus and logsigmoid are stable for
// any d, so huge return differences give finite losses (bounded by -log(eps / 2) when eps > 0)
// and finite gradients; eps = 0 is the plain logistic loss.
#include <cmath>

#include "prefrl/core/error.h"
#include "prefrl/reward/reward_model.h"

namespace prefrl {

namespace {
// log of the mixed probability that the clip with advantage d wins: (M x P) => (M x P).
torch::Tensor log_mixed_prob(const torch::Tensor& d, double eps) {
  if (eps <= 0.0) return torch::log_sigmoid(d);
  const double log_keep = std::log1p(-eps);     // log(1 - eps)
  const double log_random = std::log(eps / 2);  // log(eps / 2)
  return torch::softplus(torch::log_sigmoid(d) + (log_keep - log_random)) + log_random;
}
}  // namespace

torch::Tensor preference_nll(const torch::Tensor& ret_left, const torch::Tensor& ret_right,
                             const torch::Tensor& target, double random_response) {
  if (!(random_response >= 0.0 && random_response < 1.0)) {
    throw UsageError("random_response must be in [0, 1), got " + std::to_string(random_response));
  }
  const torch::Tensor d = ret_left - ret_right;             // (M x P)
  const torch::Tensor t = target.to(d.dtype()).unsqueeze(0);  // (1 x P)
  const torch::Tensor log_left = log_mixed_prob(d, random_response);    // (M x P)
  const torch::Tensor log_right = log_mixed_prob(-d, random_response);  // (M x P)
  return -(t * log_left + (1 - t) * log_right);
}

torch::Tensor preference_loss(const torch::Tensor& ret_left, const torch::Tensor& ret_right,
                              const torch::Tensor& target, double random_response) {
  return preference_nll(ret_left, ret_right, target, random_response).mean(1);
}

}  // namespace prefrl
