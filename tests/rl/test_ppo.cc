// PPOAgent end to end on the toy environments: determinism, save/load, NaN rewards, the fast
// and autograd paths following the same trajectory, the pixel CNN, errors, and learning.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "prefrl/core/error.h"
#include "prefrl/rl/a2c.h"
#include "toy_envs.h"

namespace prefrl {
namespace {

using testing::ToyPick;
using testing::ToyPixels;
using testing::ToyReach;
using testing::ToyVec;
using testing::train;

class RlEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { torch::set_num_threads(1); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new RlEnvironment);

PPOConfig small_config() {
  PPOConfig cfg;
  cfg.num_steps = 32;
  cfg.minibatch_size = 32;
  cfg.update_epochs = 3;
  cfg.hidden = {32, 32};
  cfg.lr = 3e-3;
  cfg.ent_coef = 0.01;
  return cfg;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("prefrl_rl_" + std::to_string(::getpid()) + "_" + name)).string();
}

bool same(const torch::Tensor& a, const torch::Tensor& b) { return torch::equal(a, b); }

class BothPaths : public ::testing::TestWithParam<bool> {};

// The rollout buffer kept in the trainer's store's columns computes what it computes in the
// agent's own, and the columns hold what the agent acted on.
TEST_P(BothPaths, ARolloutBufferInTheStoresColumnsLearnsTheSame) {
  PPOConfig cfg = small_config();
  cfg.fast_mlp = GetParam();
  ToyVec<ToyPick> e1(4, 10), e2(4, 10);
  e1.reset();
  e2.reset();
  PPOAgent own(cfg, e1.spec(), 4, 42), kept(cfg, e2.spec(), 4, 42);
  TransitionStore store(4, cfg.num_steps, e2.spec().observation.numel(), e2.act_size(), 0, 3);
  kept.keep_rollout_in(store.columns());
  const auto l1 = train(own, e1, 3), l2 = train(kept, e2, 3);
  EXPECT_EQ(l1.actions, l2.actions);
  EXPECT_TRUE(same(own.parameters(), kept.parameters()));
  const std::vector<std::string> names = store.columns().names();
  EXPECT_EQ(names.front(), "ppo/obs");
  EXPECT_EQ(names.size(), 10u);
  // The last rollout's sampled actions (discrete: the indices the env executed), row t = step t.
  const float* acts = store.columns().floats("ppo/actions");
  ASSERT_NE(acts, nullptr);
  const size_t per_rollout = static_cast<size_t>(cfg.num_steps) * 4;
  ASSERT_GE(l2.actions.size(), per_rollout);
  for (size_t k = 0; k < per_rollout; ++k) EXPECT_EQ(acts[k], l2.actions[l2.actions.size() - per_rollout + k]) << k;
  EXPECT_NE(store.columns().floats("ppo/values"), nullptr);
  EXPECT_EQ(store.columns().floats("ppo/terminated"), nullptr);  // a byte column
  EXPECT_NE(store.columns().bytes("ppo/terminated"), nullptr);
  // Columns for another shape are refused with a message.
  TransitionStore other(4, cfg.num_steps + 1, e2.spec().observation.numel(), e2.act_size(), 0, 0);
  EXPECT_THROW(kept.keep_rollout_in(other.columns()), UsageError);
}

TEST_P(BothPaths, SameSeedGivesBitIdenticalActionsAndParameters) {
  PPOConfig cfg = small_config();
  cfg.fast_mlp = GetParam();
  cfg.norm_reward = true;
  ToyVec<ToyPick> e1(4, 10), e2(4, 10);
  e1.reset();
  e2.reset();
  PPOAgent a1(cfg, e1.spec(), 4, 42), a2(cfg, e2.spec(), 4, 42);
  EXPECT_EQ(a1.uses_fast_mlp(), GetParam());
  const auto l1 = train(a1, e1, 3), l2 = train(a2, e2, 3);
  EXPECT_EQ(l1.actions, l2.actions);
  EXPECT_TRUE(same(a1.parameters(), a2.parameters()));

  PPOAgent a3(cfg, e1.spec(), 4, 43);
  EXPECT_FALSE(same(a3.parameters(), PPOAgent(cfg, e1.spec(), 4, 42).parameters()));
}

TEST_P(BothPaths, SaveLoadContinuesIdentically) {
  PPOConfig cfg = small_config();
  cfg.fast_mlp = GetParam();
  cfg.norm_reward = true;
  ToyVec<ToyReach> envs(4, 3);
  envs.reset();
  PPOAgent a(cfg, envs.spec(), 4, 5);
  train(a, envs, 2, 0, 6);
  const std::string path = temp_path("ckpt_" + std::to_string(GetParam()) + ".pt");
  a.save(path);
  ToyVec<ToyReach> envs_copy = envs;  // the environments' state at the checkpoint
  const auto cont_a = train(a, envs, 2, 2, 6);

  PPOAgent b(cfg, envs.spec(), 4, 999);  // another seed: everything must come from the file
  b.load(path);
  const auto cont_b = train(b, envs_copy, 2, 2, 6);
  EXPECT_EQ(cont_a.actions, cont_b.actions);
  EXPECT_TRUE(same(a.parameters(), b.parameters()));
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Paths, BothPaths, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "fast" : "autograd"; });

TEST(PPOAgent, NanRewardsSkipEveryMinibatchAndLeaveParametersUnchanged) {
  PPOConfig cfg = small_config();
  ToyVec<ToyReach> envs(4, 1);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), 4, 1);
  train(agent, envs, 1);
  const torch::Tensor before = agent.parameters();
  const std::vector<float> nan_rewards(cfg.num_steps * 4, std::nanf(""));
  const auto log = train(agent, envs, 1, 0, 0, &nan_rewards);
  const int64_t per_update = cfg.update_epochs * ((cfg.num_steps * 4 + cfg.minibatch_size - 1) / cfg.minibatch_size);
  EXPECT_EQ(log.stats[0].skipped_nonfinite, per_update);
  EXPECT_EQ(log.stats[0].minibatches, 0);
  EXPECT_TRUE(same(before, agent.parameters()));
  // Training resumes on finite rewards.
  const auto next = train(agent, envs, 1);
  EXPECT_EQ(next.stats[0].skipped_nonfinite, 0);
  EXPECT_FALSE(same(before, agent.parameters()));
}

TEST(PPOAgent, OneNanRewardSkipsOnlyTheMinibatchesItReaches) {
  PPOConfig cfg = small_config();
  ToyVec<ToyReach> envs(4, 2);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), 4, 2);
  std::vector<float> rewards(cfg.num_steps * 4, -0.5f);
  rewards[3 * 4 + 1] = std::nanf("");  // env 1, step 3: reaches steps 0..3 of env 1 (episodes are 16 long)
  const auto log = train(agent, envs, 1, 0, 0, &rewards);
  EXPECT_GT(log.stats[0].skipped_nonfinite, 0);
  EXPECT_GT(log.stats[0].minibatches, 0);
  EXPECT_TRUE(torch::isfinite(agent.parameters()).all().item<bool>());
}

TEST(PPOAgent, FastAndAutogradFollowTheSameTrajectory) {
  PPOConfig cfg = small_config();
  cfg.norm_reward = true;
  ToyVec<ToyReach> e1(4, 8), e2(4, 8);
  e1.reset();
  e2.reset();
  cfg.fast_mlp = true;
  PPOAgent fast(cfg, e1.spec(), 4, 8);
  cfg.fast_mlp = false;
  PPOAgent slow(cfg, e2.spec(), 4, 8);
  ASSERT_TRUE(same(fast.parameters(), slow.parameters()));
  const auto lf = train(fast, e1, 3), ls = train(slow, e2, 3);
  ASSERT_EQ(lf.actions.size(), ls.actions.size());
  for (size_t k = 0; k < lf.actions.size(); ++k) ASSERT_NEAR(lf.actions[k], ls.actions[k], 1e-3) << k;
  const auto pf = fast.parameters(), ps = slow.parameters();
  const double change = (pf - PPOAgent(cfg, e1.spec(), 4, 8).parameters()).abs().max().item<double>();
  const double diff = (pf - ps).abs().max().item<double>();
  std::cout << "after 3 updates: max |fast - autograd| = " << diff << ", max parameter change " << change << "\n";
  EXPECT_GT(change, 1e-2);
  EXPECT_LT(diff, 1e-3 * change) << "fast and autograd parameters drifted apart";
  for (int u = 0; u < 3; ++u) {
    EXPECT_NEAR(lf.stats[u].value_loss, ls.stats[u].value_loss, 1e-3 * (1 + ls.stats[u].value_loss));
    EXPECT_NEAR(lf.stats[u].approx_kl, ls.stats[u].approx_kl, 1e-4);
  }
}

TEST(PPOAgent, PixelPolicyTrainsThroughTheCnn) {
  PPOConfig cfg;
  cfg.num_steps = 16;
  cfg.minibatch_size = 32;
  cfg.update_epochs = 2;
  cfg.conv_channels = {4, 8};
  cfg.lr = 1e-3;
  ToyVec<ToyPixels> envs(4, 0), envs2(4, 0);
  envs.reset();
  envs2.reset();
  PPOAgent agent(cfg, envs.spec(), 4, 0), twin(cfg, envs.spec(), 4, 0);
  EXPECT_FALSE(agent.uses_fast_mlp());
  const torch::Tensor before = agent.parameters();
  const auto log = train(agent, envs, 3);
  const auto log2 = train(twin, envs2, 3);
  EXPECT_EQ(log.stats.back().skipped_nonfinite, 0);
  EXPECT_GT(log.stats.back().minibatches, 0);
  EXPECT_TRUE(torch::isfinite(agent.parameters()).all().item<bool>());
  EXPECT_FALSE(same(before, agent.parameters()));
  EXPECT_EQ(log.actions, log2.actions);
  EXPECT_TRUE(same(agent.parameters(), twin.parameters()));
  std::vector<float> act(4);
  agent.act(envs.obs().data(), 4, act.data(), true);
  for (float a : act) EXPECT_TRUE(a == 0.0f || a == 1.0f);
}

TEST(PPOAgent, ThroughTheAgentInterfaceAndItsFrozenSnapshot) {
  PPOConfig cfg = small_config();
  ToyVec<ToyReach> envs(4, 3);
  envs.reset();
  AgentConfig which;
  std::unique_ptr<Agent> agent = make_agent(which, cfg, A2CConfig{}, envs.spec(), 4, 5);
  EXPECT_EQ(agent->algorithm(), "ppo");
  PPOAgent twin(cfg, envs.spec(), 4, 5);
  const std::vector<float> obs = envs.obs();
  std::vector<float> a(4), b(4), frozen(4);
  const std::unique_ptr<ActingPolicy> snap = agent->snapshot();
  agent->act(obs.data(), 4, a.data(), /*deterministic=*/true);
  snap->act(obs.data(), 4, frozen.data(), true);
  EXPECT_EQ(a, frozen);  // the snapshot acts as the agent did when it was taken
  // An update through the interface is PPO's, reported with its losses in order.
  PPOAgent& ppo = dynamic_cast<PPOAgent&>(*agent);
  const auto log = train(ppo, envs, 2);
  ToyVec<ToyReach> envs2(4, 3);
  envs2.reset();
  const auto log2 = train(twin, envs2, 2);
  EXPECT_TRUE(same(ppo.parameters(), twin.parameters()));
  ToyVec<ToyReach> envs3(4, 3);
  envs3.reset();
  PPOAgent third(cfg, envs3.spec(), 4, 5);
  std::vector<float> acts(4);
  for (int t = 0; t < cfg.num_steps; ++t) {
    third.rollout_act(t, envs3.obs().data(), acts.data());
    envs3.step(acts.data());
    third.rollout_record(t, envs3.terminated().data(), envs3.truncated().data(), envs3.final_obs().data());
  }
  third.set_rewards(std::vector<float>(static_cast<size_t>(cfg.num_steps) * 4, 1.0f).data());
  const AgentStats st = third.update(envs3.obs().data(), 0.0);
  ASSERT_EQ(st.metrics.size(), 7u);
  EXPECT_STREQ(st.metrics[0].first, "charts/learning_rate");
  EXPECT_STREQ(st.metrics[1].first, "losses/policy_loss");
  EXPECT_STREQ(st.metrics[3].first, "losses/entropy");
  EXPECT_EQ(st.metrics[3].second, st.entropy);
  EXPECT_GT(st.applied, 0);
  // After training, the agent acts differently; the snapshot taken before does not change.
  snap->act(obs.data(), 4, b.data(), true);
  EXPECT_EQ(b, frozen);
  EXPECT_THROW(make_agent(AgentConfig{"sac"}, cfg, A2CConfig{}, envs.spec(), 4, 5), UsageError);
}

TEST(PPOAgent, APolicyFileDescribesItselfAndLoadsWithoutAConfig) {
  PPOConfig cfg = small_config();
  cfg.hidden = {8, 6};
  cfg.norm_obs = true;
  ToyVec<ToyReach> envs(4, 3);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), 4, 9);
  train(agent, envs, 2);  // moves the parameters and the observation statistics
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("prefrl_test_policy_" + std::to_string(::getpid()) + ".pt")).string();
  agent.save(path);
  EXPECT_TRUE(policy_file_describes_itself(path));
  std::unique_ptr<Agent> loaded = load_agent(path, 2);  // no config: widths, spaces, statistics from the file
  EXPECT_EQ(loaded->algorithm(), "ppo");
  std::vector<float> a(4), b(4);
  agent.act(envs.obs().data(), 4, a.data(), /*deterministic=*/true);
  loaded->act(envs.obs().data(), 4, b.data(), true);
  EXPECT_EQ(a, b);
  EXPECT_TRUE(same(dynamic_cast<PPOAgent&>(*loaded).parameters(), agent.parameters()));
  // A file from before policy files described themselves is named, with what to do instead.
  torch::serialize::OutputArchive old;
  old.write("format", torch::tensor(int64_t{1}));
  old.save_to(path);
  EXPECT_FALSE(policy_file_describes_itself(path));
  EXPECT_FALSE(policy_file_describes_itself(path + ".missing"));
  try {
    load_agent(path, 2);
    FAIL() << "an old policy file loaded without its config";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("does not describe itself"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(PPOAgent, MisuseIsReportedWithAMessage) {
  PPOConfig cfg = small_config();
  ToyVec<ToyReach> envs(2, 0);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), 2, 0);
  EXPECT_THROW(agent.update(envs.obs().data(), 0.0), RuntimeError);  // no rollout
  std::vector<float> act(2);
  EXPECT_THROW(agent.rollout_act(cfg.num_steps, envs.obs().data(), act.data()), RuntimeError);
  const std::vector<float> bad = {0.0f, std::nanf(""), 0.0f, 0.0f};
  try {
    agent.rollout_act(0, bad.data(), act.data());
    FAIL() << "NaN observation accepted";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("env 0 has element 1"), std::string::npos) << e.what();
  }
  // A checkpoint of another architecture is refused.
  PPOConfig other = cfg;
  other.hidden = {8};
  const std::string path = temp_path("other.pt");
  PPOAgent(other, envs.spec(), 2, 0).save(path);
  EXPECT_THROW(agent.load(path), RuntimeError);
  std::remove(path.c_str());
  EXPECT_THROW(agent.load(temp_path("missing.pt")), RuntimeError);
}

TEST(PPOAgent, LoadAcceptsAnotherEnvCountAndActsTheSame) {
  PPOConfig cfg = small_config();
  ToyVec<ToyReach> envs(4, 0);
  envs.reset();
  PPOAgent a(cfg, envs.spec(), 4, 0);
  train(a, envs, 2);
  const std::string path = temp_path("envcount.pt");
  a.save(path);
  PPOAgent b(cfg, envs.spec(), 1, 7);
  b.load(path);
  std::vector<float> x = {0.3f, -0.2f}, ya(1), yb(1);
  a.act(x.data(), 1, ya.data(), true);
  b.act(x.data(), 1, yb.data(), true);
  EXPECT_EQ(ya, yb);
  std::remove(path.c_str());
}

TEST(PPOAgent, TargetKlStopsTheEpochsAndLrAnneals) {
  PPOConfig cfg = small_config();
  cfg.update_epochs = 5;
  cfg.target_kl = 1e-12;  // any change of the policy exceeds it: stop after the first epoch
  ToyVec<ToyReach> envs(4, 0);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), 4, 0);
  const auto log = train(agent, envs, 1, 1, 4);  // progress 0.25
  EXPECT_EQ(log.stats[0].minibatches, 4);        // 128 transitions / 32, one epoch
  EXPECT_DOUBLE_EQ(log.stats[0].lr, 0.75 * cfg.lr);
  EXPECT_GT(log.stats[0].approx_kl, 0.0);
  EXPECT_GT(log.stats[0].grad_norm, 0.0);
  EXPECT_GE(log.stats[0].clipfrac, 0.0);
}

TEST(PPOAgent, EvaluationActingDoesNotDisturbTraining) {
  PPOConfig cfg = small_config();
  ToyVec<ToyReach> e1(4, 0), e2(4, 0);
  e1.reset();
  e2.reset();
  PPOAgent a(cfg, e1.spec(), 4, 0), b(cfg, e2.spec(), 4, 0);
  std::vector<float> probe = {0.1f, 0.2f, -0.3f, 0.4f}, out(2);
  for (int u = 0; u < 2; ++u) {
    train(a, e1, 1);
    train(b, e2, 1);
    b.act(probe.data(), 2, out.data(), false);  // sampled: draws from the evaluation stream only
  }
  EXPECT_TRUE(same(a.parameters(), b.parameters()));
}

TEST(PPOAgentLearning, ContinuousToyTask) {
  PPOConfig cfg = small_config();
  cfg.num_steps = 64;
  cfg.minibatch_size = 64;
  cfg.update_epochs = 10;
  cfg.ent_coef = 0.0;
  cfg.gamma = 0.5;
  ToyVec<ToyReach> envs(8, 0);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), 8, 0);
  const int updates = 40;
  const auto log = train(agent, envs, updates, 0, updates);
  // A random policy (std 1) scores about -(1 + Var(target)) = -1.4; the best is 0.
  EXPECT_LT(log.rollout_mean_reward.front(), -0.8);
  EXPECT_GT(log.rollout_mean_reward.back(), -0.15) << "PPO did not learn the toy task";
}

TEST(PPOAgentLearning, DiscreteToyTaskWithTerminations) {
  PPOConfig cfg = small_config();
  cfg.num_steps = 64;
  cfg.minibatch_size = 64;
  cfg.update_epochs = 4;
  ToyVec<ToyPick> envs(8, 0);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), 8, 0);
  const int updates = 40;
  const auto log = train(agent, envs, updates, 0, updates);
  EXPECT_LT(log.rollout_mean_reward.front(), 0.5);
  EXPECT_GT(log.rollout_mean_reward.back(), 0.9) << "PPO did not learn to pick the largest element";
}

}  // namespace
}  // namespace prefrl
