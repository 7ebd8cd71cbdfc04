// Reward-model speed: one training round over 200 labeled pairs of 100-step clips
// (obs 3, action 1, 32x32 MLP, 3 epochs of 64-pair minibatches) for 1 and 3 members, and
// predict() over 2048 steps (one rollout's worth of rewards).
//
// Training allocates many short-lived multi-MB autograd buffers; with glibc's default
// malloc each one is fresh pages from the kernel (page faults dominate: measured 260-330 ms
// per M=3 round). This bench keeps glibc's defaults; run it with MALLOC_MMAP_MAX_=0
// MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=268435456 (what the prefrl command sets,
// src/prefrl/core/allocator.h) to see the compute cost: ~50 ms per M=3 round.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/reward/fast_mlp.h"
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

RewardConfig bench_config(int members, bool fast = true) {
  RewardConfig cfg;
  cfg.fast_mlp = fast;
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
  RewardModel model(bench_config(static_cast<int>(state.range(0)), state.range(1) != 0), {kObs}, kAct, false, 0, true, 2);
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
// Args: members, fast_mlp (1: hand-written path, 0: LibTorch autograd).
BENCHMARK(BM_RewardTrainRound)->Args({1, 1})->Args({3, 1})->Args({3, 0})->Unit(benchmark::kMillisecond);

void BM_RewardPredict(benchmark::State& state) {
  torch::set_num_threads(1);
  const int64_t n = state.range(0);
  Rng rng(3);
  std::vector<float> obs(n * kObs), act(n * kAct), out(n);
  for (float& x : obs) x = static_cast<float>(rng.normal());
  for (float& x : act) x = static_cast<float>(rng.uniform(-1, 1));
  RewardModel model(bench_config(3, state.range(1) != 0), {kObs}, kAct, false, 0, true, 4);
  model.update_normalisation(obs.data(), act.data(), n);
  for (auto _ : state) {
    model.predict(obs.data(), act.data(), n, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * n);  // steps scored
}
// Args: steps, fast_mlp.
BENCHMARK(BM_RewardPredict)->Args({2048, 1})->Args({2048, 0})->Args({16384, 1})->Args({16384, 0})->Unit(benchmark::kMicrosecond);

// The hand-written reward MLP alone (reward/fast_mlp.h): one minibatch of the pendulum-peer
// preset (16 pairs of 100-step clips, 3 members, 32x32, input 5, all bootstrap counts 1):
// forward, loss and backward, then Adam. ~3,500 multiply-adds per step and member.
void BM_FastRewardMinibatch(benchmark::State& state) {
  Rng init(5), rng(6);
  reward_detail::NetShape shape;
  shape.members = 3;
  shape.row_width = kObs + kAct + 1;
  shape.hidden = {32, 32};
  reward_detail::EnsembleNet net(shape, init);
  reward_detail::FastEnsembleMlp fast(net);
  const int64_t B = 16, F = shape.row_width;
  std::vector<float> rows(static_cast<size_t>(B * 2 * kLen * F));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = i % F == static_cast<size_t>(F - 1) ? 0.0f : static_cast<float>(rng.normal());
  std::vector<const float*> pair_rows;
  for (int64_t k = 0; k < B; ++k) pair_rows.push_back(rows.data() + k * 2 * kLen * F);
  std::vector<float> targets(B, 1.0f), weights(3 * B, 1.0f);
  std::vector<double> loss(3);
  for (auto _ : state) {
    fast.loss_and_grad(pair_rows, kLen, targets.data(), weights.data(), {}, 0.1, loss.data());
    fast.adam_step(1e-3, 1e-4);
    benchmark::DoNotOptimize(loss.data());
  }
  const double macs = 3.0 * B * 2 * kLen * (F * 32 + 32 * 32 + 32) * 2.9;  // forward + ~1.9x backward
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * macs * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FastRewardMinibatch)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace prefrl

BENCHMARK_MAIN();
