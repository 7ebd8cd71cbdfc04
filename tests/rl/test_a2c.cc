// A2C (a2c.h): one update is the hand-computed A2C step (n-step returns, the A2C loss, gradient
// clipping, RMSprop), its policy files say what they hold, it learns a toy task, and the
// Nature CNN has the Nature DQN's shape.
#include "prefrl/rl/a2c.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "prefrl/core/transitions.h"
#include "prefrl/rl/policy.h"
#include "toy_envs.h"

namespace prefrl {
namespace {

using testing::ToyPick;
using testing::ToyVec;

class A2CEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { torch::set_num_threads(1); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new A2CEnvironment);

A2CConfig toy_config() {
  A2CConfig a;
  a.hidden = {16, 16};
  a.norm_obs = false;
  a.lr = 0.01;
  return a;
}

std::unique_ptr<PPOAgent> make_a2c(const A2CConfig& a, const EnvSpec& spec, int n, uint64_t seed) {
  std::unique_ptr<Agent> agent = make_agent(AgentConfig{"a2c"}, PPOConfig{}, a, spec, n, seed);
  return std::unique_ptr<PPOAgent>(dynamic_cast<PPOAgent*>(agent.release()));
}

// The actor-critic MLP of `layout` on params: obs (B x D) => logits (B x H), values (B).
std::pair<torch::Tensor, torch::Tensor> reference_forward(const PolicyLayout& L, const torch::Tensor& p,
                                                          const torch::Tensor& obs) {
  auto mlp = [&](torch::Tensor x, const std::vector<LinearSlot>& layers) {
    for (size_t i = 0; i < layers.size(); ++i) {
      const LinearSlot& s = layers[i];
      const torch::Tensor w = p.narrow(0, s.w, int64_t{s.in} * s.out).view({s.out, s.in});
      const torch::Tensor b = p.narrow(0, s.b, s.out);
      x = torch::matmul(x, w.t()) + b;
      if (i + 1 < layers.size()) x = torch::tanh(x);
    }
    return x;
  };
  return {mlp(obs, L.actor), mlp(obs, L.critic).view({-1})};
}

TEST(A2C, OneUpdateIsTheHandComputedA2CStep) {
  const A2CConfig a = toy_config();
  const int N = 4, T = a.num_steps;
  ToyVec<ToyPick> envs(N, 11);
  envs.reset();
  std::unique_ptr<PPOAgent> agent = make_a2c(a, envs.spec(), N, 3);
  EXPECT_EQ(agent->algorithm(), "a2c");
  EXPECT_EQ(agent->num_steps(), 5);
  RolloutColumns cols(N, T);
  agent->keep_rollout_in(cols);
  const torch::Tensor p0 = agent->parameters();

  std::vector<float> act(N), rewards(static_cast<size_t>(T) * N);
  for (int t = 0; t < T; ++t) {
    agent->rollout_act(t, envs.obs().data(), act.data());
    envs.step(act.data());
    agent->rollout_record(t, envs.terminated().data(), envs.truncated().data(), envs.final_obs().data());
    for (int i = 0; i < N; ++i) rewards[t * N + i] = envs.rewards()[i];
  }
  agent->set_rewards(rewards.data());
  const std::vector<float> next_obs = envs.obs();
  const double progress = 0.2;
  const AgentStats st = agent->update(next_obs.data(), progress);

  const PolicyLayout L = make_layout(a2c_as_ppo(a), envs.spec());
  const int D = L.obs_dim;
  auto col = [&](const char* name, int64_t width) {
    const float* f = cols.floats(std::string("a2c/") + name);
    EXPECT_NE(f, nullptr) << name;
    return torch::from_blob(const_cast<float*>(f), {int64_t{T} * N, width}, torch::kFloat32).clone();
  };
  const torch::Tensor obs = col("obs", D), actions = col("actions", 1).view({-1}).to(torch::kLong);
  const torch::Tensor values = col("values", 1).view({-1}), returns = col("returns", 1).view({-1});
  const torch::Tensor final_values = col("final_values", 1).view({-1});
  const uint8_t* term = cols.bytes("a2c/terminated");
  const uint8_t* trunc = cols.bytes("a2c/truncated");
  ASSERT_NE(term, nullptr);

  // n-step returns, bootstrapped from V(next obs), cut at terminations, from V(final obs) at truncations.
  torch::Tensor nv;
  {
    torch::NoGradGuard g;
    nv = reference_forward(L, p0, torch::from_blob(const_cast<float*>(next_obs.data()), {N, D}, torch::kFloat32)).second;
  }
  int n_terminated = 0;
  for (int i = 0; i < N; ++i) {
    double R = nv[i].item<double>();
    for (int t = T - 1; t >= 0; --t) {
      const int k = t * N + i;
      if (term[k]) { R = rewards[k]; ++n_terminated; }
      else if (trunc[k]) R = rewards[k] + a.gamma * final_values[k].item<double>();
      else R = rewards[k] + a.gamma * R;
      EXPECT_NEAR(returns[k].item<double>(), R, 1e-5) << "step " << t << " env " << i;
    }
  }
  EXPECT_GT(n_terminated, 0) << "the rollout should cross episode ends";

  // The A2C loss: -mean(A log pi(a|s)) + vf_coef mean((R - V)^2) - ent_coef mean(H), A = R - V.
  torch::Tensor p = p0.clone().requires_grad_(true);
  auto [logits, v] = reference_forward(L, p, obs);
  const torch::Tensor logp_all = torch::log_softmax(logits, 1);
  const torch::Tensor logp = logp_all.gather(1, actions.view({-1, 1})).view({-1});
  const torch::Tensor adv = returns - values;
  const torch::Tensor entropy = -(logp_all.exp() * logp_all).sum(1).mean();
  const torch::Tensor loss = -(adv * logp).mean() + a.vf_coef * (returns - v).pow(2).mean() - a.ent_coef * entropy;
  torch::Tensor g = torch::autograd::grad({loss}, {p})[0];
  const double norm = g.norm().item<double>();
  if (norm > a.max_grad_norm) g = g * (a.max_grad_norm / (norm + 1e-6));
  // RMSprop's first step from a zero mean square.
  const torch::Tensor sq = (1 - a.rmsprop_alpha) * g * g;
  const double lr = a.lr * (1 - progress);
  const torch::Tensor expected = p0 - lr * g / (sq.sqrt() + a.rmsprop_eps);
  EXPECT_LT((agent->parameters() - expected).abs().max().item<double>(), 2e-4);
  EXPECT_GT((agent->parameters() - p0).abs().max().item<double>(), 1e-3);

  // Reported as A2C's: no ratio or clipping figures; the value loss as the mean squared error.
  ASSERT_EQ(st.metrics.size(), 5u);
  EXPECT_STREQ(st.metrics[0].first, "charts/learning_rate");
  EXPECT_NEAR(st.metrics[0].second, lr, 1e-12);
  EXPECT_STREQ(st.metrics[2].first, "losses/value_loss");
  EXPECT_NEAR(st.metrics[2].second, (returns - values).pow(2).mean().item<double>(), 1e-4);
  EXPECT_EQ(st.applied, 1);
}

TEST(A2C, APolicyFileSaysA2CAndResumesTheOptimiser) {
  const A2CConfig a = toy_config();
  ToyVec<ToyPick> envs(4, 0), envs2(4, 0);
  envs.reset();
  std::unique_ptr<PPOAgent> agent = make_a2c(a, envs.spec(), 4, 1);
  testing::train(*agent, envs, 3);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("prefrl_a2c_" + std::to_string(::getpid()) + ".pt")).string();
  agent->save(path);
  std::unique_ptr<Agent> loaded = load_agent(path, 4);
  EXPECT_EQ(loaded->algorithm(), "a2c");
  auto& twin = dynamic_cast<PPOAgent&>(*loaded);
  EXPECT_TRUE(torch::equal(twin.parameters(), agent->parameters()));
  // Continuing from the file computes what continuing in memory does (RMSprop's mean square kept).
  envs2 = envs;
  testing::train(*agent, envs, 2);
  testing::train(twin, envs2, 2);
  EXPECT_TRUE(torch::equal(twin.parameters(), agent->parameters()));
  std::filesystem::remove(path);
}

TEST(A2C, LearnsTheDiscreteToyTask) {
  A2CConfig a = toy_config();
  a.num_steps = 5;
  a.lr = 3e-3;
  ToyVec<ToyPick> envs(16, 0);
  envs.reset();
  std::unique_ptr<PPOAgent> agent = make_a2c(a, envs.spec(), 16, 0);
  const int updates = 300;
  const auto log = testing::train(*agent, envs, updates, 0, updates);
  double early = 0, late = 0;  // a random policy picks the largest of three a third of the time
  for (int u = 0; u < 3; ++u) early += log.rollout_mean_reward[u] / 3;
  for (int u = 0; u < 20; ++u) late += log.rollout_mean_reward[updates - 1 - u] / 20;
  EXPECT_LT(early, 0.45);
  EXPECT_GT(late, 0.85) << "A2C did not learn to pick the largest element";
}

TEST(A2C, TheNatureCnnHasTheNatureDqnShape) {
  EnvSpec spec;
  spec.name = "atari_like";
  spec.observation = Space::bytes({4, 84, 84});
  spec.action = Space::discrete_n(6);
  spec.pixels = true;
  const PolicyLayout L = make_layout(a2c_as_ppo(A2CConfig{}), spec);
  ASSERT_EQ(L.convs.size(), 3u);
  EXPECT_EQ(L.convs[0].cout, 32); EXPECT_EQ(L.convs[0].k, 8); EXPECT_EQ(L.convs[0].stride, 4);
  EXPECT_EQ(L.convs[0].h_out, 20);
  EXPECT_EQ(L.convs[1].cout, 64); EXPECT_EQ(L.convs[1].k, 4); EXPECT_EQ(L.convs[1].stride, 2);
  EXPECT_EQ(L.convs[1].h_out, 9);
  EXPECT_EQ(L.convs[2].cout, 64); EXPECT_EQ(L.convs[2].k, 3); EXPECT_EQ(L.convs[2].stride, 1);
  EXPECT_EQ(L.convs[2].h_out, 7);
  EXPECT_EQ(L.trunk_fc.in, 3136);
  EXPECT_EQ(L.trunk_fc.out, 512);
  // 32*4*64+32 + 64*32*16+64 + 64*64*9+64 + 3136*512+512 + 512*6+6 + 512+1
  EXPECT_EQ(L.num_params, 8224 + 32832 + 36928 + 1606144 + 3078 + 513);
  // It acts on a batch of frames.
  PPOAgent agent("a2c", a2c_as_ppo(A2CConfig{}), spec, 2, 0);
  std::vector<float> obs(2 * 4 * 84 * 84, 0.5f), act(2);
  agent.act(obs.data(), 2, act.data(), false);
  for (float x : act) EXPECT_TRUE(x >= 0 && x < 6);
}

// A pixel A2C agent differentiates its acting forwards (reuse_acting_forward, the default) and
// computes what the agent that runs the network again computes, update after update.
TEST(A2C, ReusingTheActingForwardsGivesTheRecomputedUpdates) {
  A2CConfig a;
  a.cnn = "small";
  a.conv_channels = {4, 8};
  a.lr = 3e-3;
  A2CConfig again = a;
  again.reuse_acting_forward = false;
  ToyVec<testing::ToyPixels> envs(4, 2);
  envs.reset();
  ToyVec<testing::ToyPixels> envs2 = envs;
  std::unique_ptr<PPOAgent> reuse = make_a2c(a, envs.spec(), 4, 7), recompute = make_a2c(again, envs.spec(), 4, 7);
  const auto log1 = testing::train(*reuse, envs, 6);
  const auto log2 = testing::train(*recompute, envs2, 6);
  EXPECT_EQ(log1.actions, log2.actions);
  for (size_t u = 0; u < log1.stats.size(); ++u) {
    EXPECT_NEAR(log1.stats[u].policy_loss, log2.stats[u].policy_loss, 1e-5) << "update " << u;
    EXPECT_NEAR(log1.stats[u].value_loss, log2.stats[u].value_loss, 1e-5) << "update " << u;
    EXPECT_NEAR(log1.stats[u].entropy, log2.stats[u].entropy, 1e-5) << "update " << u;
  }
  const double moved = (reuse->parameters() - torch::zeros_like(reuse->parameters())).abs().max().item<double>();
  EXPECT_GT(moved, 0.0);
  EXPECT_LT((reuse->parameters() - recompute->parameters()).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace prefrl
