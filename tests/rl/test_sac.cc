// SAC's gradient steps (rl/sac_learner.h) against the same losses written in LibTorch autograd,
// with the learner's own noise draws; its temperature gradient and target averaging by hand.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/rl/sac_learner.h"

namespace prefrl {
namespace {

torch::Tensor vec(const std::vector<float>& v) { return torch::tensor(v); }

// An MLP of `shape` (ReLU hidden, linear out) on rows x, its parameters views of `p` (a leaf).
torch::Tensor mlp(const nn::MlpShape& shape, const torch::Tensor& p, torch::Tensor x) {
  for (size_t l = 0; l < shape.layers.size(); ++l) {
    const nn::DenseSlot& d = shape.layers[l];
    const torch::Tensor w = p.narrow(0, d.w, static_cast<int64_t>(d.out) * d.in).view({d.out, d.in});
    const torch::Tensor b = p.narrow(0, d.b, d.out);
    x = torch::nn::functional::linear(x, w, b);
    if (l + 1 < shape.layers.size()) x = torch::relu(x);
  }
  return x;
}

struct Squashed {
  torch::Tensor action, logp;
};

// The actor's sample for obs (n x D) with noise eps (n x A), as sac_learner.h defines it.
Squashed sample(const nn::MlpShape& shape, const torch::Tensor& p, const torch::Tensor& obs, const torch::Tensor& eps,
                const torch::Tensor& scale, const torch::Tensor& bias) {
  const int64_t A = eps.size(1);
  const torch::Tensor head = mlp(shape, p, obs);
  const torch::Tensor mu = head.narrow(1, 0, A), z = head.narrow(1, A, A);
  const torch::Tensor ls = -5.0 + 0.5 * 7.0 * (torch::tanh(z) + 1);
  const torch::Tensor a = torch::tanh(mu + ls.exp() * eps);
  const torch::Tensor logp =
      (-0.5 * eps * eps - ls - 0.5 * std::log(2 * M_PI) - torch::log(scale * (1 - a * a) + 1e-6)).sum(1);
  return {a * scale + bias, logp};
}

void expect_close(const std::vector<float>& got, const torch::Tensor& want, double tol, const char* what) {
  ASSERT_EQ(static_cast<int64_t>(got.size()), want.numel()) << what;
  const torch::Tensor w = want.contiguous();
  double worst = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double ref = w.data_ptr<float>()[i];
    worst = std::max(worst, std::abs(got[i] - ref) / std::max(1.0, std::abs(ref)));
  }
  EXPECT_LT(worst, tol) << what;
}

TEST(SacLearner, OneUpdateIsTheAutogradStep) {
  const int D = 3, A = 2, n = 11;
  SacSettings s;
  s.hidden = {8, 8};
  s.max_batch = 16;
  s.policy_frequency = 1;
  const std::vector<float> low = {-1.0f, -2.0f}, high = {1.0f, 0.5f};
  SacLearner L(D, A, low, high, s, 7);
  torch::manual_seed(1);
  const torch::Tensor obs = torch::randn({n, D}), next = torch::randn({n, D});
  const torch::Tensor act = torch::rand({n, A}) * 1.5 - 1.0, rew = torch::randn({n});
  const torch::Tensor term = (torch::rand({n}) < 0.3).to(torch::kFloat32);
  SacBatch b{n, obs.data_ptr<float>(), act.data_ptr<float>(), rew.data_ptr<float>(), next.data_ptr<float>(),
             term.data_ptr<float>()};
  const std::vector<float> actor0 = L.actor_params(), critic0 = L.critic_params(), target0 = L.target_params();
  // The noise the update will draw: next actions' (A x Bp, columns < n), then the actor step's.
  Rng noise = L.rng();
  auto draw = [&] {
    torch::Tensor e = torch::zeros({n, A});
    for (int j = 0; j < A; ++j)
      for (int c = 0; c < 16; ++c)
        if (c < n) e[c][j] = static_cast<float>(noise.normal());
    return e;
  };
  const torch::Tensor eps_next = draw(), eps_actor = draw();
  const SacStats st = L.update(b);
  EXPECT_TRUE(st.actor_stepped);

  const torch::Tensor scale = torch::tensor({1.0f, 1.25f}), bias = torch::tensor({0.0f, -0.75f});
  const nn::MlpShape ashape = nn::mlp_shape(D, s.hidden, 2 * A);
  const nn::MlpShape q1s = nn::mlp_shape(D + A, s.hidden, 1), q2s = nn::mlp_shape(D + A, s.hidden, 1, q1s.end);
  const double alpha = 1.0;  // log alpha starts at 0
  // Critics: y from the target critics on (s', a'), no gradient.
  torch::Tensor y;
  {
    torch::NoGradGuard ng;
    const Squashed nx = sample(ashape, vec(actor0), next, eps_next, scale, bias);
    const torch::Tensor in = torch::cat({next, nx.action}, 1);
    const torch::Tensor tq = torch::min(mlp(q1s, vec(target0), in), mlp(q2s, vec(target0), in)).squeeze(1);
    y = rew + 0.99 * (1 - term) * (tq - alpha * nx.logp);
  }
  torch::Tensor cp = vec(critic0).requires_grad_(true);
  const torch::Tensor in = torch::cat({obs, act}, 1);
  const torch::Tensor q1 = mlp(q1s, cp, in).squeeze(1), q2 = mlp(q2s, cp, in).squeeze(1);
  const torch::Tensor qloss = (q1 - y).pow(2).mean() + (q2 - y).pow(2).mean();
  qloss.backward();
  expect_close(L.critic_grad(), cp.grad(), 2e-4, "critic gradient");
  EXPECT_NEAR(st.q_loss, qloss.item<double>(), 1e-4 * std::max(1.0, qloss.item<double>()));
  EXPECT_NEAR(st.q1, q1.mean().item<double>(), 1e-4);
  // Actor: on the critics after their step, the actor before its own.
  torch::Tensor ap = vec(actor0).requires_grad_(true);
  const torch::Tensor cnow = vec(L.critic_params());
  const Squashed pi = sample(ashape, ap, obs, eps_actor, scale, bias);
  const torch::Tensor pin = torch::cat({obs, pi.action}, 1);
  const torch::Tensor qpi = torch::min(mlp(q1s, cnow, pin), mlp(q2s, cnow, pin)).squeeze(1);
  const torch::Tensor aloss = (alpha * pi.logp - qpi).mean();
  aloss.backward();
  expect_close(L.actor_grad(), ap.grad(), 2e-4, "actor gradient");
  EXPECT_NEAR(st.actor_loss, aloss.item<double>(), 1e-4 * std::max(1.0, std::abs(aloss.item<double>())));
  EXPECT_NEAR(st.entropy, -pi.logp.mean().item<double>(), 1e-4);
  // Temperature: d/d log alpha of mean[-alpha (log pi + target)], target -A.
  EXPECT_NEAR(st.alpha_loss, -alpha * (pi.logp.mean().item<double>() - A), 1e-4);
  // Adam's first step moves log alpha by the learning rate against the gradient's sign.
  EXPECT_NEAR(L.log_alpha(), st.alpha_loss > 0 ? -1e-3 : 1e-3, 1e-6);
  // Targets: tau critics + (1 - tau) targets.
  for (size_t i = 0; i < target0.size(); ++i)
    EXPECT_NEAR(L.target_params()[i], 0.005f * L.critic_params()[i] + 0.995f * target0[i], 1e-6);
}

TEST(SacLearner, ActionsStayInTheBoxAndTheSameSeedRepeats) {
  SacSettings s;
  s.hidden = {16};
  s.max_batch = 32;
  const std::vector<float> low = {-2.0f}, high = {0.0f};
  SacLearner a(4, 1, low, high, s, 3), b(4, 1, low, high, s, 3);
  EXPECT_EQ(a.actor_params(), b.actor_params());
  torch::manual_seed(2);
  const torch::Tensor obs = torch::randn({40, 4}) * 10;
  std::vector<float> x(40), y(40);
  Rng r1(9), r2(9);
  a.act(obs.data_ptr<float>(), 40, false, r1, x.data());
  b.act(obs.data_ptr<float>(), 40, false, r2, y.data());
  EXPECT_EQ(x, y);
  for (float v : x) {
    EXPECT_GE(v, -2.0f);
    EXPECT_LE(v, 0.0f);
  }
  a.act(obs.data_ptr<float>(), 40, true, r1, x.data());
  a.act(obs.data_ptr<float>(), 40, true, r2, y.data());
  EXPECT_EQ(x, y);  // deterministic: no draws
  EXPECT_THROW(SacLearner(4, 1, {-1.0f}, {std::numeric_limits<float>::infinity()}, s, 1), UsageError);
  EXPECT_THROW(SacLearner(4, 2, {-1.0f}, {1.0f}, s, 1), UsageError);
}

}  // namespace
}  // namespace prefrl
