// preference_loss / preference_nll against the closed form computed by hand in double.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "prefrl/reward/reward_model.h"

namespace prefrl {
namespace {

// -[t log P + (1-t) log(1-P)], P = (1-eps) sigmoid(d) + eps/2, in double.
double closed_form(double d, double t, double eps) {
  const double p = (1 - eps) / (1 + std::exp(-d)) + eps / 2;
  return -(t * std::log(p) + (1 - t) * std::log(1 - p));
}

TEST(PreferenceLoss, MatchesClosedForm) {
  // Two members x five pairs: left wins, right wins, tie, and mixed signs of d.
  const std::vector<float> left = {2.0f, -1.0f, 0.3f, 0.0f, 1.5f, /* member 2 */ 0.5f, 0.5f, -2.0f, 3.0f, -0.7f};
  const std::vector<float> right = {0.5f, 1.0f, 0.3f, 0.0f, -1.0f, /* member 2 */ 1.0f, -0.5f, 1.0f, 1.0f, 0.7f};
  const std::vector<float> target = {1.0f, 0.0f, 0.5f, 0.5f, 0.0f};
  const torch::Tensor l = torch::tensor(left).view({2, 5}), r = torch::tensor(right).view({2, 5});
  const torch::Tensor t = torch::tensor(target);
  for (double eps : {0.0, 0.1}) {
    const torch::Tensor nll = preference_nll(l, r, t, eps);    // (2 x 5)
    const torch::Tensor loss = preference_loss(l, r, t, eps);  // (2)
    ASSERT_EQ(nll.sizes(), (std::vector<int64_t>{2, 5}));
    ASSERT_EQ(loss.sizes(), (std::vector<int64_t>{2}));
    for (int m = 0; m < 2; ++m) {
      double mean = 0;
      for (int p = 0; p < 5; ++p) {
        const double want = closed_form(left[m * 5 + p] - right[m * 5 + p], target[p], eps);
        EXPECT_NEAR(nll[m][p].item<double>(), want, 1e-5) << "eps " << eps << " member " << m << " pair " << p;
        mean += want / 5;
      }
      EXPECT_NEAR(loss[m].item<double>(), mean, 1e-5);
    }
  }
}

TEST(PreferenceLoss, TieOfEqualReturnsIsLog2ForAnyEps) {
  const torch::Tensor z = torch::zeros({3, 4});
  for (double eps : {0.0, 0.1, 0.5}) {
    const torch::Tensor loss = preference_loss(z + 1.7, z + 1.7, torch::full({4}, 0.5f), eps);
    for (int m = 0; m < 3; ++m) EXPECT_NEAR(loss[m].item<double>(), std::log(2.0), 1e-6);
  }
}

TEST(PreferenceLoss, LargeDifferencesStayFinite) {
  const torch::Tensor l = torch::tensor({1000.0f, -1000.0f, 1e30f, -1e30f}).view({1, 4}).requires_grad_(true);
  const torch::Tensor r = torch::zeros({1, 4});
  // Right wins every time: the loss is as wrong as it gets on pairs 0 and 2.
  const torch::Tensor t = torch::zeros({4});
  for (double eps : {0.0, 0.1}) {
    const torch::Tensor nll = preference_nll(l, r, t, eps);
    ASSERT_TRUE(torch::isfinite(nll).all().item<bool>()) << nll;
    if (eps == 0.0) {
      EXPECT_NEAR(nll[0][0].item<double>(), 1000.0, 1e-3);
      EXPECT_NEAR(nll[0][1].item<double>(), 0.0, 1e-6);
    } else {
      // With random responses the loss is bounded by -log(eps / 2).
      EXPECT_NEAR(nll[0][0].item<double>(), -std::log(0.05), 1e-5);
      EXPECT_NEAR(nll[0][2].item<double>(), -std::log(0.05), 1e-5);
      EXPECT_NEAR(nll[0][1].item<double>(), -std::log(0.95), 1e-5);
    }
    nll.sum().backward();
    EXPECT_TRUE(torch::isfinite(l.grad()).all().item<bool>()) << l.grad();
    l.grad().zero_();
  }
}

TEST(PreferenceLoss, RejectsImpossibleRandomResponse) {
  const torch::Tensor z = torch::zeros({1, 1});
  EXPECT_THROW(preference_loss(z, z, torch::ones({1}), 1.0), std::exception);
  EXPECT_THROW(preference_loss(z, z, torch::ones({1}), -0.1), std::exception);
}

}  // namespace
}  // namespace prefrl
