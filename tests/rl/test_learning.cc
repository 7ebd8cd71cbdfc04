// Learning smoke tests on the real environments with their true rewards (fixed seeds, checked
// on seeds 1-9 for CartPole and 1-5 for Pendulum, all well past the thresholds).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <numeric>

#include "prefrl/envs/env.h"
#include "toy_envs.h"

namespace prefrl {
namespace {

TEST(PPOAgentLearning, CartPoleReachesReturn150Within50kSteps) {
  torch::set_num_threads(1);
  PPOConfig cfg;
  cfg.num_steps = 128;
  cfg.minibatch_size = 128;
  cfg.update_epochs = 4;
  cfg.lr = 2.5e-3;
  cfg.ent_coef = 0.01;
  cfg.hidden = {64, 64};
  cfg.norm_obs = true;
  const int N = 8, updates = 48;  // 48 x 1024 = 49,152 steps
  const uint64_t seed = std::getenv("PREFRL_SEED") ? std::strtoull(std::getenv("PREFRL_SEED"), nullptr, 10) : 1;
  SerialVecEnv envs("cartpole", N, seed);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), N, seed);
  const auto t0 = std::chrono::steady_clock::now();
  const auto log = testing::train(agent, envs, updates, 0, updates);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_GE(log.episode_returns.size(), 20u);
  const double last20 = std::accumulate(log.episode_returns.end() - 20, log.episode_returns.end(), 0.0) / 20;
  std::cout << "cartpole: mean return of the last 20 episodes " << last20 << " after " << updates * 128 * N
            << " steps, " << secs << " s\n";
  EXPECT_GT(last20, 150.0);
}

TEST(PPOAgentLearning, PendulumSwingsUpWithinAbout120kSteps) {
  torch::set_num_threads(1);
  PPOConfig cfg;  // the pendulum-peer configuration
  cfg.num_steps = 256;
  cfg.minibatch_size = 64;
  cfg.update_epochs = 10;
  cfg.clip_coef = 0.1;
  cfg.ent_coef = 0.01;
  cfg.gae_lambda = 0.95;
  cfg.gamma = 0.97;
  cfg.lr = 0.002;
  cfg.anneal_lr = false;
  cfg.hidden = {32, 32};
  const int N = 8, updates = 60;  // 60 x 2048 = 122,880 steps
  SerialVecEnv envs("pendulum", N, 1);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), N, 1);
  const auto t0 = std::chrono::steady_clock::now();
  const auto log = testing::train(agent, envs, updates);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_GE(log.episode_returns.size(), 16u);
  const double first16 = std::accumulate(log.episode_returns.begin(), log.episode_returns.begin() + 16, 0.0) / 16;
  const double last16 = std::accumulate(log.episode_returns.end() - 16, log.episode_returns.end(), 0.0) / 16;
  std::cout << "pendulum: mean return of the first 16 episodes " << first16 << ", of the last 16 " << last16
            << " after " << updates * 2048 << " steps, " << secs << " s\n";
  EXPECT_LT(first16, -900.0);
  EXPECT_GT(last16, -400.0);
}

}  // namespace
}  // namespace prefrl
