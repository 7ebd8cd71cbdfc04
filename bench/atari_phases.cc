// Where the time of an Atari run goes: each phase of the preference loop timed on its own, at
// the pong preset's sizes (16 envs, 4 x 84 x 84 byte frames, A2C's 5-step rollouts, the
// paper's reward network), and what that implies for agent steps per second.
//
//   env          16 envs x 1 agent step (4 game frames, max pool, grey 84x84 resize, stack)
//   policy fwd   the Nature CNN on 16 observations (act)
//   policy upd   one A2C update on a 5 x 16 rollout (forward, backward, RMSprop)
//   reward fwd   the reward ensemble on 16 observations (predict)
//   reward train one minibatch of reward.batch_pairs pairs of 25-step clips (forward, backward, Adam)
//   conv layout  the Nature CNN forward on 16 frames, NCHW vs channels-last
//
// Usage: atari_phases [--threads N] [--env pong|enduro] [--reps R] [--set key=value]...
// (--set applies to the preset's config, e.g. --set reward.ensemble_size=1)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "prefrl/app/train_config.h"
#include "prefrl/core/allocator.h"
#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"
#include "prefrl/reward/reward_model.h"
#include "prefrl/rl/a2c.h"
#include "prefrl/rl/ppo.h"

namespace prefrl {
namespace {

using Clock = std::chrono::steady_clock;

// Median of reps timings (ms) of f.
template <class F>
double time_ms(int reps, F&& f) {
  std::vector<double> t;
  f();  // warm-up
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

Segment clip_of(const std::vector<float>& frames, int64_t D, int L, int offset) {
  Segment s;
  s.length = L;
  s.obs_size = D;
  s.act_size = 1;
  s.obs.assign(frames.begin() + static_cast<int64_t>(offset) * D, frames.begin() + static_cast<int64_t>(offset + L) * D);
  s.actions.assign(L, 0.0f);
  s.absorbing.assign(L, 0);
  s.true_rewards.assign(L, 0.0f);
  s.pack_obs();
  return s;
}

int run(int argc, char** argv) {
  int threads = 1, reps = 10;
  std::string env = "pong";
  std::vector<std::string> sets;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--env" && i + 1 < argc) env = argv[++i];
    else if (a == "--set" && i + 1 < argc) sets.push_back(argv[++i]);
    else { std::fprintf(stderr, "usage: atari_phases [--threads N] [--env pong|enduro] [--reps R] [--set k=v]...\n"); return 2; }
  }
  torch::set_num_threads(threads);
  TrainConfig cfg;
  apply_preset(cfg, find_preset(env));
  for (const auto& s : sets) config_assign(cfg, s);
  const int N = cfg.env.num_envs, T = cfg.a2c.num_steps, L = cfg.segment_steps();

  std::unique_ptr<VecEnv> vec = make_vec_env(cfg.env.name, N, 1);
  const EnvSpec spec = vec->spec();
  const int64_t D = vec->obs_size();
  vec->reset();
  std::vector<float> actions(N, 0.0f);
  Rng rng(3);
  // Frames to feed the networks: a random walk of the game (N x (L + 8) observations).
  std::vector<float> frames;
  for (int t = 0; t < L + 8; ++t) {
    for (int i = 0; i < N; ++i) actions[i] = static_cast<float>(rng.integer(spec.action.n));
    vec->step(actions.data());
    frames.insert(frames.end(), vec->obs().begin(), vec->obs().begin() + D);
  }
  const double env_ms = time_ms(reps * 5, [&] {
    for (int i = 0; i < N; ++i) actions[i] = static_cast<float>(rng.integer(spec.action.n));
    vec->step(actions.data());
  });

  std::unique_ptr<Agent> agent = make_agent(cfg.agent, cfg.ppo, cfg.a2c, spec, N, 1);
  std::vector<float> act(N);
  const double pfwd_ms = time_ms(reps, [&] { agent->act(vec->obs().data(), N, act.data(), false); });
  std::vector<float> rewards(static_cast<size_t>(T) * N, 0.0f);
  std::vector<uint8_t> none(N, 0);
  const double pupd_ms = time_ms(reps, [&] {
    for (int t = 0; t < T; ++t) {
      agent->rollout_act(t, vec->obs().data(), act.data());
      agent->rollout_record(t, none.data(), none.data(), vec->final_obs().data());
    }
    agent->set_rewards(rewards.data());
    agent->update(vec->obs().data(), 0.5);
  });
  // rollout_act = a policy forward; the update alone is the rest.
  const double pupd_only_ms = pupd_ms - T * pfwd_ms;

  RewardModel reward(cfg.reward, spec.observation.shape, 1, true, spec.action.n, spec.can_terminate, 1);
  if (!spec.reward_hidden.empty()) reward.hide_inputs(spec.reward_hidden);
  std::vector<float> out(N);
  const double rfwd_ms = time_ms(reps, [&] { reward.predict(frames.data(), actions.data(), N, out.data()); });
  std::vector<LabeledPair> pairs;
  for (int k = 0; k < cfg.reward.batch_pairs; ++k) {
    LabeledPair p;
    p.label_id = k;
    p.left = clip_of(frames, D, L, k % 8);
    p.right = clip_of(frames, D, L, (k + 3) % 8);
    p.target = k % 2 ? 1.0f : 0.0f;
    pairs.push_back(std::move(p));
  }
  RewardConfig one_batch = cfg.reward;
  one_batch.epochs_per_round = 1;
  one_batch.val_fraction = 0.0;
  one_batch.stats_pairs = 1;
  RewardModel trainee(one_batch, spec.observation.shape, 1, true, spec.action.n, spec.can_terminate, 1);
  trainee.add_pairs(pairs);
  const double rtrain_ms = time_ms(std::max(3, reps / 3), [&] { trainee.train_round(); });

  // The Nature CNN's first layers, NCHW against channels-last.
  const torch::Tensor x = torch::rand({N, 4, 84, 84});
  const torch::Tensor w1 = torch::randn({32, 4, 8, 8}), w2 = torch::randn({64, 32, 4, 4}), w3 = torch::randn({64, 64, 3, 3});
  auto trunk = [&](const torch::Tensor& in, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c) {
    torch::NoGradGuard g;
    return torch::relu(torch::conv2d(torch::relu(torch::conv2d(torch::relu(torch::conv2d(in, a, {}, 4)), b, {}, 2)), c, {}, 1));
  };
  const double nchw_ms = time_ms(reps, [&] { trunk(x, w1, w2, w3); });
  const auto cl = at::MemoryFormat::ChannelsLast;
  const torch::Tensor xc = x.contiguous(cl), w1c = w1.contiguous(cl), w2c = w2.contiguous(cl), w3c = w3.contiguous(cl);
  const double nhwc_ms = time_ms(reps, [&] { trunk(xc, w1c, w2c, w3c); });

  // Per agent step: env and policy forward every step, the update every T steps, reward
  // inference every step (of the whole batch); reward training depends on the label rate.
  const double per_batch = env_ms + pfwd_ms + rfwd_ms + pupd_only_ms / T;
  std::printf("atari_phases: env %s, %d envs, %d threads, A2C %d-step rollouts, reward: %d members, %d-pair "
              "minibatches of %d-step clips\n", cfg.env.name.c_str(), N, threads, T, cfg.reward.ensemble_size,
              cfg.reward.batch_pairs, L);
  std::printf("  %-34s %9.3f ms  (%6.1f us per agent step)\n", "env step (all envs)", env_ms, 1000 * env_ms / N);
  std::printf("  %-34s %9.3f ms  (%6.1f us per agent step)\n", "policy forward (all envs)", pfwd_ms, 1000 * pfwd_ms / N);
  std::printf("  %-34s %9.3f ms  (%6.1f us per agent step)\n", "policy update (one rollout)", pupd_only_ms,
              1000 * pupd_only_ms / (T * N));
  std::printf("  %-34s %9.3f ms  (%6.1f us per agent step)\n", "reward forward (all envs)", rfwd_ms, 1000 * rfwd_ms / N);
  std::printf("  %-34s %9.3f ms  (%6.2f ms per labeled pair seen)\n", "reward train (one minibatch)", rtrain_ms,
              rtrain_ms / cfg.reward.batch_pairs);
  std::printf("  %-34s %9.3f ms NCHW, %.3f ms channels-last\n", "Nature CNN trunk forward (16)", nchw_ms, nhwc_ms);
  std::printf("  agent steps/s without reward training: %.0f (with the reward model's inference), %.0f (true reward)\n",
              1000.0 * N / per_batch, 1000.0 * N / (per_batch - rfwd_ms));
  return 0;
}

}  // namespace
}  // namespace prefrl

int main(int argc, char** argv) {
  prefrl::tune_allocator();  // src/prefrl/core/allocator.h
  return prefrl::run(argc, argv);
}
