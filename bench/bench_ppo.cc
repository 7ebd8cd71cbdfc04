// PPO speed on the "pendulum-peer" configuration: 8 envs x 256 steps = 2048 transitions per
// update, minibatch 64, 10 epochs (320 minibatch updates), 32x32 tanh MLPs, obs 3, action 1.
// Each benchmark runs with the hand-written MLP path (fast) and with LibTorch autograd.
//   BM_PPOUpdate      one update() of 2048 transitions (GAE + 320 minibatch steps)
//   BM_MinibatchStep  one minibatch: loss + gradient, grad-norm clip, Adam
//   BM_RolloutAct     rollout_act on a batch of 8 observations
//   BM_TrainIteration collect 2048 Pendulum steps + update: the policy side of the env-steps/s budget
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <chrono>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"
#include "prefrl/nn/adam.h"
#include "prefrl/rl/policy.h"
#include "prefrl/rl/ppo.h"

namespace prefrl {
namespace {

constexpr int kEnvs = 8;

PPOConfig peer_config(bool fast) {
  PPOConfig cfg;
  cfg.num_steps = 256;
  cfg.minibatch_size = 64;
  cfg.update_epochs = 10;
  cfg.hidden = {32, 32};
  cfg.activation = "tanh";
  cfg.lr = 2e-3;
  cfg.clip_coef = 0.1;
  cfg.ent_coef = 0.01;
  cfg.fast_mlp = fast;
  return cfg;
}

// Collects one rollout from envs into agent (rewards = the environment's).
void collect(PPOAgent& agent, VecEnv& envs, std::vector<float>& act, std::vector<float>& rewards) {
  const int T = agent.num_steps(), N = envs.num_envs();
  for (int t = 0; t < T; ++t) {
    agent.rollout_act(t, envs.obs().data(), act.data());
    envs.step(act.data());
    agent.rollout_record(t, envs.terminated().data(), envs.truncated().data(), envs.final_obs().data());
    std::copy(envs.rewards().begin(), envs.rewards().end(), rewards.begin() + static_cast<size_t>(t) * N);
  }
  agent.set_rewards(rewards.data());
}

void BM_PPOUpdate(benchmark::State& state) {
  torch::set_num_threads(1);
  const PPOConfig cfg = peer_config(state.range(0) != 0);
  SerialVecEnv envs("pendulum", kEnvs, 0);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), kEnvs, 0);
  std::vector<float> act(kEnvs * envs.act_size()), rewards(cfg.num_steps * kEnvs);
  int64_t minibatches = 0;
  double update_seconds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    collect(agent, envs, act, rewards);
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    const PPOStats s = agent.ppo_update(envs.obs().data(), 0.0);
    update_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    minibatches += s.minibatches;
  }
  state.SetItemsProcessed(state.iterations() * cfg.num_steps * kEnvs);
  state.counters["minibatch_us"] = minibatches > 0 ? update_seconds * 1e6 / minibatches : 0.0;
}
BENCHMARK(BM_PPOUpdate)->Arg(1)->Arg(0)->ArgName("fast")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MinibatchStep(benchmark::State& state) {
  torch::set_num_threads(1);
  const PPOConfig cfg = peer_config(state.range(0) != 0);
  const EnvSpec spec = env_spec("pendulum");
  const PolicyLayout L = make_layout(cfg, spec);
  std::vector<float> params(L.num_params), grad(L.num_params);
  Rng rng(1);
  init_params(L, 0.0, rng, params.data());
  auto policy = cfg.fast_mlp ? make_fast_mlp_policy(L, cfg, params.data(), 64)
                             : make_autograd_policy(L, cfg, params.data());
  nn::FlatAdam adam(L.num_params);
  const int B = 64;
  std::vector<float> obs(B * 3), actions(B), logp(B), values(B), adv(B), ret(B);
  for (auto& x : obs) x = static_cast<float>(rng.normal());
  for (int i = 0; i < B; ++i) {
    actions[i] = static_cast<float>(rng.normal());
    logp[i] = static_cast<float>(-1.0 - 0.5 * actions[i] * actions[i]);
    values[i] = static_cast<float>(rng.normal());
    adv[i] = static_cast<float>(rng.normal());
    ret[i] = static_cast<float>(rng.normal());
  }
  Minibatch mb;
  mb.size = B; mb.obs = obs.data(); mb.actions = actions.data(); mb.logprobs = logp.data();
  mb.values = values.data(); mb.advantages = adv.data(); mb.returns = ret.data();
  for (auto _ : state) {
    const LossTerms l = policy->loss_and_grad(mb, grad.data());
    const double norm = nn::grad_norm(grad.data(), L.num_params);
    adam.step(params.data(), grad.data(), 1e-5, nn::clip_factor(norm, cfg.max_grad_norm));
    benchmark::DoNotOptimize(l.loss);
  }
}
BENCHMARK(BM_MinibatchStep)->Arg(1)->Arg(0)->ArgName("fast")->Unit(benchmark::kMicrosecond);

void BM_RolloutAct(benchmark::State& state) {
  torch::set_num_threads(1);
  const PPOConfig cfg = peer_config(state.range(0) != 0);
  PPOAgent agent(cfg, env_spec("pendulum"), kEnvs, 0);
  std::vector<float> obs(kEnvs * 3), act(kEnvs);
  Rng rng(2);
  for (auto& x : obs) x = static_cast<float>(rng.uniform(-1, 1));
  int t = 0;
  for (auto _ : state) {
    agent.rollout_act(t, obs.data(), act.data());
    t = (t + 1) % cfg.num_steps;
    benchmark::DoNotOptimize(act.data());
  }
}
BENCHMARK(BM_RolloutAct)->Arg(1)->Arg(0)->ArgName("fast")->Unit(benchmark::kMicrosecond);

void BM_TrainIteration(benchmark::State& state) {
  torch::set_num_threads(1);
  const PPOConfig cfg = peer_config(state.range(0) != 0);
  SerialVecEnv envs("pendulum", kEnvs, 0);
  envs.reset();
  PPOAgent agent(cfg, envs.spec(), kEnvs, 0);
  std::vector<float> act(kEnvs * envs.act_size()), rewards(cfg.num_steps * kEnvs);
  for (auto _ : state) {
    collect(agent, envs, act, rewards);
    benchmark::DoNotOptimize(agent.ppo_update(envs.obs().data(), 0.0));
  }
  state.SetItemsProcessed(state.iterations() * cfg.num_steps * kEnvs);  // env steps
}
BENCHMARK(BM_TrainIteration)->Arg(1)->Arg(0)->ArgName("fast")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace prefrl

BENCHMARK_MAIN();
