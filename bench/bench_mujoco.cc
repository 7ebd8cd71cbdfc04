// MuJoCo speed: vectorised hopper stepping (VecEnv, 8 envs, random actions) against raw
// mj_step calls on the same model in the same process, the built-in hopper (a task file)
// against the hand-written C++ port, and one rendered 128x128 frame.
//
// The raw loop is the physical limit: 8 mjData stepped round robin with the same random
// controls, each reset when the hopper falls (as the environment's episodes end), so both
// simulate the same regime of contacts. Goal: env steps/s >= 0.9 x raw mj_step/s / frame_skip.
// A round is a raw slice and an env slice back to back; its ratio compares the two, so slow
// changes of load on a shared machine cancel, and the median ratio over the rounds is
// reported (with the best rates). Rates per second of wall time and of the thread's CPU time
// are both printed (other processes cannot inflate the CPU time, but they share the caches).
//   build/bench_mujoco [seconds_per_slice=0.5] [rounds=12]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/mujoco_tasks.h"

namespace prefrl {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kEnvs = 8;
constexpr int kActionPool = 4096;  // pre-drawn actions, cycled through

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// This thread's CPU time in seconds: what other processes on a busy machine cannot inflate.
double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

struct Rate {
  double wall = 0;  // steps per second of wall-clock time
  double cpu = 0;   // steps per second of this thread's CPU time
};

// Calls batch() (which does some steps and returns how many) for about `seconds`.
template <class Batch>
Rate steps_per_second(double seconds, Batch batch) {
  int64_t steps = 0;
  const auto start = Clock::now();
  const double cpu0 = thread_cpu_seconds();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int rep = 0; rep < 64; ++rep) steps += batch();
    elapsed = seconds_since(start);
  }
  return {steps / elapsed, steps / (thread_cpu_seconds() - cpu0)};
}

// kActionPool x kEnvs x nu random controls in [-1, 1].
std::vector<float> random_actions(int nu) {
  Rng rng(1);
  std::vector<float> a(static_cast<size_t>(kActionPool) * kEnvs * nu);
  for (float& x : a) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  return a;
}

// Raw mj_step calls per second over about `seconds`.
Rate raw_steps_per_second(const mjModel* m, const std::vector<float>& actions, double seconds) {
  std::vector<mjData*> data;
  Rng rng(2);
  auto reset = [&](mjData* d) {
    mj_resetData(m, d);
    for (int i = 0; i < m->nq; ++i) d->qpos[i] += rng.uniform(-5e-3, 5e-3);
    for (int i = 0; i < m->nv; ++i) d->qvel[i] = rng.uniform(-5e-3, 5e-3);
  };
  for (int i = 0; i < kEnvs; ++i) { data.push_back(mj_makeData(m)); reset(data.back()); }
  const int nu = m->nu, skip = Hopper::kFrameSkip;
  size_t t = 0;
  const Rate rate = steps_per_second(seconds, [&] {
    const float* a = actions.data() + (t++ % kActionPool) * kEnvs * nu;
    for (int i = 0; i < kEnvs; ++i) {
      mjData* d = data[i];
      for (int j = 0; j < nu; ++j) d->ctrl[j] = a[i * nu + j];
      for (int k = 0; k < skip; ++k) mj_step(m, d);
      if (!(d->qpos[1] > Hopper::kHealthyZMin && std::fabs(d->qpos[2]) < Hopper::kHealthyAngle)) reset(d);
    }
    return kEnvs * skip;
  });
  for (mjData* d : data) mj_deleteData(d);
  return rate;
}

// VecEnv(8) environment steps per second over about `seconds`.
Rate env_steps_per_second(const EnvFactory& factory, const std::vector<float>& actions, int nu, double seconds) {
  SerialVecEnv vec(factory, kEnvs, 0);
  vec.reset();
  size_t t = 0;
  return steps_per_second(seconds, [&] {
    vec.step(actions.data() + (t++ % kActionPool) * kEnvs * nu);
    return kEnvs;
  });
}

// Milliseconds per rendered frame of the hopper along a random-action rollout.
double ms_per_frame(int width, int height, int frames) {
  auto env = make_env("hopper");
  env->seed(3);
  std::vector<float> obs(env->spec().observation.numel()), action(3);
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  Rng rng(4);
  env->reset(obs.data());
  for (int k = 0; k < 5; ++k) env->render(width, height, rgb.data());  // makes the GL context
  double total = 0;
  for (int k = 0; k < frames; ++k) {
    for (float& a : action) a = static_cast<float>(rng.uniform(-1.0, 1.0));
    const StepResult r = env->step(action.data(), obs.data());
    if (r.terminated || r.truncated) env->reset(obs.data());
    const auto t0 = Clock::now();
    env->render(width, height, rgb.data());
    total += seconds_since(t0);
  }
  return 1e3 * total / frames;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace
}  // namespace prefrl

int main(int argc, char** argv) {
  using namespace prefrl;
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 12;
  if (!(seconds > 0) || rounds < 1) {
    std::fprintf(stderr, "usage: bench_mujoco [seconds_per_slice > 0] [rounds >= 1]\n");
    return 2;
  }
  const mjModel* m = mujoco_model("hopper");
  const std::vector<float> actions = random_actions(m->nu);
  const int skip = Hopper::kFrameSkip;
  // The built-in hopper is a task file (src/prefrl/envs/mjcf/hopper.toml); it steps bit for bit
  // as the hand-written C++ port of Gymnasium's (Hopper), whose rate it is compared with.
  const EnvFactory task = env_factory("hopper");
  const EnvFactory port = [] { return std::unique_ptr<Env>(std::make_unique<Hopper>()); };
  Rate raw, env, file;  // best of the rounds
  std::vector<double> wall_ratio, cpu_ratio, file_wall_ratio, file_cpu_ratio;
  for (int r = 0; r < rounds; ++r) {
    const Rate a = raw_steps_per_second(m, actions, seconds), b = env_steps_per_second(port, actions, m->nu, seconds);
    const Rate c = env_steps_per_second(task, actions, m->nu, seconds);
    raw = {std::max(raw.wall, a.wall), std::max(raw.cpu, a.cpu)};
    env = {std::max(env.wall, b.wall), std::max(env.cpu, b.cpu)};
    file = {std::max(file.wall, c.wall), std::max(file.cpu, c.cpu)};
    wall_ratio.push_back(b.wall / (a.wall / skip));
    cpu_ratio.push_back(b.cpu / (a.cpu / skip));
    file_wall_ratio.push_back(c.wall / b.wall);
    file_cpu_ratio.push_back(c.cpu / b.cpu);
  }
  std::printf("hopper, %d environments, random actions; %d rounds of a %.2f s raw and a %.2f s env slice\n", kEnvs,
              rounds, seconds, seconds);
  std::printf("                              per second of wall time | per second of CPU time\n");
  std::printf("  raw mj_step (best):         %9.0f steps/s      | %9.0f steps/s\n", raw.wall, raw.cpu);
  std::printf("    = env steps at frame skip %d: %7.0f           | %9.0f\n", skip, raw.wall / skip, raw.cpu / skip);
  std::printf("  VecEnv(C++ Hopper, %d):      %9.0f env steps/s  | %9.0f env steps/s\n", kEnvs, env.wall, env.cpu);
  std::printf("  ratio, median of rounds:    %9.3f of raw       | %9.3f of raw (goal >= 0.90)\n", median(wall_ratio),
              median(cpu_ratio));
  std::printf("  VecEnv(hopper, %d), task file: %7.0f env steps/s  | %9.0f env steps/s\n", kEnvs, file.wall, file.cpu);
  std::printf("  task file / C++, median:     %9.3f               | %9.3f (goal >= 0.95)\n", median(file_wall_ratio),
              median(file_cpu_ratio));
  const int frames = 200;
  std::printf("rendering hopper 128x128: %.2f ms per frame (mean of %d frames)\n", ms_per_frame(128, 128, frames),
              frames);
  return 0;
}
