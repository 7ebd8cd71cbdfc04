// GAE against values worked out by hand (gamma 0.9, lambda 0.8, so gamma * lambda = 0.72).
#include <gtest/gtest.h>

#include <vector>

#include "prefrl/rl/gae.h"

namespace prefrl {
namespace {

struct Case {
  int T, N;
  std::vector<float> rewards, values, next_values, final_values;
  std::vector<uint8_t> terminated, truncated;
  std::vector<float> adv, ret;

  void run(double gamma, double lambda) {
    GaeInput in;
    in.T = T; in.N = N;
    in.rewards = rewards.data(); in.values = values.data(); in.next_values = next_values.data();
    in.terminated = terminated.data(); in.truncated = truncated.data(); in.final_values = final_values.data();
    adv.assign(T * N, 0.0f);
    ret.assign(T * N, 0.0f);
    compute_gae(in, gamma, lambda, adv.data(), ret.data());
  }
};

// One env, rewards 1, 2, 3, values 0.5, 1.0, 1.5, V(next obs) = 2.0.
Case one_env() {
  Case c;
  c.T = 3; c.N = 1;
  c.rewards = {1, 2, 3};
  c.values = {0.5f, 1.0f, 1.5f};
  c.next_values = {2.0f};
  c.final_values = {100, 100, 100};  // must be ignored unless truncated
  c.terminated = {0, 0, 0};
  c.truncated = {0, 0, 0};
  return c;
}

void expect_near(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-5) << "index " << k;
}

TEST(Gae, NoEpisodeEnd) {
  Case c = one_env();
  c.run(0.9, 0.8);
  // d2 = 3 + 0.9*2.0 - 1.5 = 3.3                       A2 = 3.3
  // d1 = 2 + 0.9*1.5 - 1.0 = 2.35                      A1 = 2.35 + 0.72*3.3   = 4.726
  // d0 = 1 + 0.9*1.0 - 0.5 = 1.4                       A0 = 1.4  + 0.72*4.726 = 4.80272
  expect_near(c.adv, {4.80272, 4.726, 3.3});
  expect_near(c.ret, {5.30272, 5.726, 4.8});
}

TEST(Gae, TerminatedDoesNotBootstrap) {
  Case c = one_env();
  c.terminated = {0, 1, 0};
  c.run(0.9, 0.8);
  // A2 = 3.3 (new episode); d1 = 2 - 1.0 = 1.0, A1 = 1.0; d0 = 1.4, A0 = 1.4 + 0.72*1.0 = 2.12
  expect_near(c.adv, {2.12, 1.0, 3.3});
  expect_near(c.ret, {2.62, 2.0, 4.8});
}

TEST(Gae, TruncatedBootstrapsFromFinalObservation) {
  Case c = one_env();
  c.truncated = {0, 1, 0};
  c.final_values = {100, 4.0f, 100};
  c.run(0.9, 0.8);
  // step 1's reward becomes 2 + 0.9*4.0 = 5.6: d1 = 5.6 - 1.0 = 4.6, A1 = 4.6 (episode ends)
  // A0 = 1.4 + 0.72*4.6 = 4.712
  expect_near(c.adv, {4.712, 4.6, 3.3});
  expect_near(c.ret, {5.212, 5.6, 4.8});
}

TEST(Gae, TruncatedAtLastStepUsesFinalNotNextValue) {
  Case c = one_env();
  c.truncated = {0, 0, 1};
  c.final_values = {100, 100, 5.0f};
  c.run(0.9, 0.8);
  // d2 = 3 + 0.9*5.0 - 1.5 = 6.0; A1 = 2.35 + 0.72*6.0 = 6.67; A0 = 1.4 + 0.72*6.67 = 6.2024
  expect_near(c.adv, {6.2024, 6.67, 6.0});
}

TEST(Gae, TerminatedWinsOverTruncated) {
  Case c = one_env();
  c.terminated = {0, 1, 0};
  c.truncated = {0, 1, 0};
  c.final_values = {100, 4.0f, 100};
  c.run(0.9, 0.8);
  expect_near(c.adv, {2.12, 1.0, 3.3});
}

TEST(Gae, MixedEnvsAreIndependent) {
  // Env 0 terminates at step 1, env 1 is truncated at step 1 (V(final) = 4), env 2 runs on;
  // row t holds (env0, env1, env2).
  Case c;
  c.T = 3; c.N = 3;
  c.rewards = {1, 1, 1, 2, 2, 2, 3, 3, 3};
  c.values = {0.5f, 0.5f, 0.5f, 1.0f, 1.0f, 1.0f, 1.5f, 1.5f, 1.5f};
  c.next_values = {2.0f, 2.0f, 2.0f};
  c.final_values = {100, 100, 100, 100, 4.0f, 100, 100, 100, 100};
  c.terminated = {0, 0, 0, 1, 0, 0, 0, 0, 0};
  c.truncated = {0, 0, 0, 0, 1, 0, 0, 0, 0};
  c.run(0.9, 0.8);
  expect_near(c.adv, {2.12, 4.712, 4.80272, 1.0, 4.6, 4.726, 3.3, 3.3, 3.3});
}

TEST(Gae, LambdaOneGammaOneIsMonteCarloReturn) {
  Case c = one_env();
  c.terminated = {0, 0, 1};
  c.run(1.0, 1.0);
  // returns = rewards-to-go: 6, 5, 3
  expect_near(c.ret, {6, 5, 3});
}

}  // namespace
}  // namespace prefrl
