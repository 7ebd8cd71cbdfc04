// Environment throughput: steps per second of every env, raw (one instance, reset on episode
// end) and through VecEnv(8) (auto-reset included). Actions are pre-drawn at random so that
// only the environment is timed.
//   build-bench/bench_envs --benchmark_filter=cartpole
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"

namespace prefrl {
namespace {

constexpr int kActionPool = 4096;  // pre-drawn actions, cycled through

// kActionPool x count random actions from the spec's action space (Box: within bounds).
std::vector<float> random_actions(const EnvSpec& spec, int count, uint64_t seed) {
  Rng rng(seed);
  const int64_t k = spec.action.numel();
  std::vector<float> actions(static_cast<size_t>(kActionPool) * count * k);
  for (size_t i = 0; i < actions.size(); ++i) {
    if (spec.action.discrete) {
      actions[i] = static_cast<float>(rng.integer(spec.action.n));
    } else {
      const size_t j = i % k;
      actions[i] = static_cast<float>(rng.uniform(spec.action.low[j], spec.action.high[j]));
    }
  }
  return actions;
}

void BM_EnvStep(benchmark::State& state, const std::string& name) {
  auto env = make_env(name);
  env->seed(0);
  const EnvSpec& spec = env->spec();
  const int64_t k = spec.action.numel();
  std::vector<float> obs(spec.observation.numel());
  const std::vector<float> actions = random_actions(spec, 1, 1);
  env->reset(obs.data());
  size_t t = 0;
  for (auto _ : state) {
    const StepResult r = env->step(actions.data() + (t % kActionPool) * k, obs.data());
    if (r.terminated || r.truncated) env->reset(obs.data());
    benchmark::DoNotOptimize(obs.data());
    ++t;
  }
  state.counters["steps_per_s"] =
      benchmark::Counter(static_cast<double>(t), benchmark::Counter::kIsRate);
}

void BM_VecEnvStep(benchmark::State& state, const std::string& name) {
  const int n = static_cast<int>(state.range(0));
  SerialVecEnv vec(name, n, 0);
  const int64_t k = vec.act_size();
  const std::vector<float> actions = random_actions(vec.spec(), n, 1);
  vec.reset();
  size_t t = 0;
  for (auto _ : state) {
    vec.step(actions.data() + (t % kActionPool) * n * k);
    benchmark::DoNotOptimize(vec.obs().data());
    ++t;
  }
  state.counters["steps_per_s"] =
      benchmark::Counter(static_cast<double>(t) * n, benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_EnvStep, cartpole, std::string("cartpole"));
BENCHMARK_CAPTURE(BM_EnvStep, pendulum, std::string("pendulum"));
BENCHMARK_CAPTURE(BM_EnvStep, mountaincar_continuous, std::string("mountaincar_continuous"));
BENCHMARK_CAPTURE(BM_EnvStep, acrobot, std::string("acrobot"));
BENCHMARK_CAPTURE(BM_EnvStep, movingdot, std::string("movingdot"));

BENCHMARK_CAPTURE(BM_VecEnvStep, cartpole, std::string("cartpole"))->Arg(8);
BENCHMARK_CAPTURE(BM_VecEnvStep, pendulum, std::string("pendulum"))->Arg(8);
BENCHMARK_CAPTURE(BM_VecEnvStep, mountaincar_continuous, std::string("mountaincar_continuous"))
    ->Arg(8);
BENCHMARK_CAPTURE(BM_VecEnvStep, acrobot, std::string("acrobot"))->Arg(8);
BENCHMARK_CAPTURE(BM_VecEnvStep, movingdot, std::string("movingdot"))->Arg(8);

}  // namespace
}  // namespace prefrl

BENCHMARK_MAIN();
