// Reward-model speed: one training round over 200 labeled pairs of 100-step clips
// (obs 3, action 1, 32x32 MLP, 3 epochs of 64-pair minibatches) for 1 and 3 members, and
// predict() over 2048 steps (one rollout's worth of rewards).
//
// Training allocates many short-lived multi-MB autograd buffers; with glibc's default
// malloc each one is fresh pages from the kernel (page faults dominate: measured 260-330 ms
// per M=3 round). Run with MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456
// (or mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD) at program start) to see the compute
// cost: ~50 ms per M=3 round on the same machine.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/reward/reward_model.h"

namespace prefrl {
namespace {

constexpr int64_t kObs = 3, kAct = 1;
constexpr int kLen = 100;

// A clip of random steps whose true reward is the first observation.
Segment random_segment(Rng& rng) {
  Segment s;
  s.length = kLen;
  s.obs_size = kObs;
  s.act_size = kAct;
  s.absorbing.assign(kLen, 0);
  for (int t = 0; t < kLen; ++t) {
    for (int64_t j = 0; j < kObs; ++j) s.obs.push_back(static_cast<float>(rng.normal()));
    s.actions.push_back(static_cast<float>(rng.uniform(-1, 1)));
    s.true_rewards.push_back(s.obs[t * kObs]);
  }
  return s;
}

RewardConfig bench_config(int members) {
  RewardConfig cfg;
  cfg.ensemble_size = members;
  cfg.hidden = {32, 32};
  cfg.epochs_per_round = 3;
  cfg.batch_pairs = 64;
  return cfg;
}

void BM_RewardTrainRound(benchmark::State& state) {
  torch::set_num_threads(1);
  Rng rng(1);
  std::vector<LabeledPair> pairs(200);
  for (size_t i = 0; i < pairs.size(); ++i) {
    pairs[i].label_id = static_cast<int64_t>(i);
    pairs[i].left = random_segment(rng);
    pairs[i].right = random_segment(rng);
    pairs[i].target = pairs[i].left.true_return() > pairs[i].right.true_return() ? 1.0f : 0.0f;
  }
  RewardModel model(bench_config(static_cast<int>(state.range(0))), {kObs}, kAct, false, 0, true, 2);
  model.add_pairs(pairs);
  int64_t updates = 0;
  for (auto _ : state) {
    const RewardTrainStats st = model.train_round();
    updates += st.updates;
    benchmark::DoNotOptimize(st.train_loss);
  }
  state.counters["updates/round"] = benchmark::Counter(static_cast<double>(updates) / state.iterations());
  state.SetItemsProcessed(updates * bench_config(1).batch_pairs);  // labeled pairs trained on
}
BENCHMARK(BM_RewardTrainRound)->Arg(1)->Arg(3)->Unit(benchmark::kMillisecond);

void BM_RewardPredict(benchmark::State& state) {
  torch::set_num_threads(1);
  const int64_t n = state.range(0);
  Rng rng(3);
  std::vector<float> obs(n * kObs), act(n * kAct), out(n);
  for (float& x : obs) x = static_cast<float>(rng.normal());
  for (float& x : act) x = static_cast<float>(rng.uniform(-1, 1));
  RewardModel model(bench_config(3), {kObs}, kAct, false, 0, true, 4);
  model.update_normalisation(obs.data(), act.data(), n);
  for (auto _ : state) {
    model.predict(obs.data(), act.data(), n, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * n);  // steps scored
}
BENCHMARK(BM_RewardPredict)->Arg(2048)->Arg(16384)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace prefrl

BENCHMARK_MAIN();
