// SAC's gradient update (rl/sac_learner.h) on hopper's sizes (11 observations, 3 actions), one
// thread, random transitions: what a step of SAC costs beside the environment at one update per
// environment step.
//   BM_SacUpdate/W/B   hidden W x W, batch B: one update (critics, the actor every other update
//                      two steps of it, as CleanRL's policy_frequency 2, targets)
//   BM_SacAct/W        sampling 1 action (the rollout's per-step policy call)
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/rl/sac_learner.h"

namespace prefrl {
namespace {

constexpr int kObs = 11, kAct = 3;

SacSettings settings(int width, int batch) {
  SacSettings s;
  s.hidden = {width, width};
  s.max_batch = batch;
  return s;
}

void BM_SacUpdate(benchmark::State& state) {
  torch::set_num_threads(1);
  const int width = static_cast<int>(state.range(0)), batch = static_cast<int>(state.range(1));
  SacLearner learner(kObs, kAct, std::vector<float>(kAct, -1.0f), std::vector<float>(kAct, 1.0f),
                     settings(width, batch), 1);
  Rng rng(2);
  std::vector<float> obs(batch * kObs), next(batch * kObs), act(batch * kAct), rew(batch), term(batch, 0.0f);
  for (float& x : obs) x = static_cast<float>(rng.normal());
  for (float& x : next) x = static_cast<float>(rng.normal());
  for (float& x : act) x = static_cast<float>(rng.uniform(-1, 1));
  for (float& x : rew) x = static_cast<float>(rng.normal());
  const SacBatch b{batch, obs.data(), act.data(), rew.data(), next.data(), term.data()};
  for (auto _ : state) benchmark::DoNotOptimize(learner.update(b));
  state.counters["updates/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SacUpdate)->Args({64, 256})->Args({256, 128})->Args({256, 256})->Unit(benchmark::kMillisecond);

void BM_SacAct(benchmark::State& state) {
  torch::set_num_threads(1);
  const int width = static_cast<int>(state.range(0));
  SacLearner learner(kObs, kAct, std::vector<float>(kAct, -1.0f), std::vector<float>(kAct, 1.0f),
                     settings(width, 256), 1);
  Rng rng(3);
  std::vector<float> obs(kObs, 0.1f), act(kAct);
  for (auto _ : state) {
    learner.act(obs.data(), 1, false, rng, act.data());
    benchmark::DoNotOptimize(act.data());
  }
}
BENCHMARK(BM_SacAct)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace prefrl

BENCHMARK_MAIN();
