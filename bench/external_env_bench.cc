// External environments' overhead: the Python CartPole (examples/python_cartpole) stepped
// in-process by Python itself, and through prefrl's bridge (one worker per block of envs, one
// message per batch, arrays in shared memory). Prints env steps/s for both, the ratio, and the
// bridge's microseconds per batched step.
//   build/external_env_bench [--envs 1,8,16,32,64] [--workers 1] [--seconds 2] [--rounds 3] [--repo DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/external_env.h"

namespace {

using Clock = std::chrono::steady_clock;

// Python's own rate: the same envs, the same random actions, stepped by a Python loop with the
// resets prefrl would do, for about `seconds`.
double python_rate(const std::string& repo, int envs, double seconds) {
  const std::string code = fmt::format(
      "import sys, time\n"
      "import numpy as np\n"
      "sys.path.insert(0, '{0}/examples/python_cartpole')\n"
      "from cartpole import CartPoleEnv\n"
      "envs = [CartPoleEnv() for _ in range({1})]\n"
      "for j, e in enumerate(envs): e.reset(seed=j)\n"
      "rng = np.random.default_rng(0)\n"
      "acts = rng.integers(0, 2, size=(4096, {1}))\n"
      "obs = np.zeros(({1}, 4), np.float32)\n"
      "n = 0; t0 = time.perf_counter(); k = 0\n"
      "while time.perf_counter() - t0 < {2}:\n"
      "    a = acts[k % 4096]; k += 1\n"
      "    for j, e in enumerate(envs):\n"
      "        o, r, term, trunc, _ = e.step(int(a[j]))\n"
      "        obs[j] = o\n"
      "        if term or trunc: obs[j] = e.reset(seed=n)[0]\n"
      "        n += 1\n"
      "print(n / (time.perf_counter() - t0))\n",
      repo, envs, seconds);
  const std::string path = (std::filesystem::temp_directory_path() / "prefrl_python_rate.py").string();
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs(code.c_str(), f);
  std::fclose(f);
  FILE* p = popen(("/usr/bin/python3 " + path).c_str(), "r");
  double rate = 0;
  if (!p || std::fscanf(p, "%lf", &rate) != 1) rate = 0;
  if (p) pclose(p);
  return rate;
}

}  // namespace

// Env steps/s through the bridge: `vec` stepped with pre-drawn random actions for `seconds`.
double bridge_rate(prefrl::VecEnv& vec, double seconds, double* us_per_batch) {
  const int envs = vec.num_envs();
  prefrl::Rng rng(0);
  std::vector<float> actions(static_cast<size_t>(4096) * envs);
  for (float& a : actions) a = static_cast<float>(rng.integer(2));
  for (int k = 0; k < 200; ++k) vec.step(actions.data() + (k % 4096) * envs);  // warm up
  int64_t batches = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    vec.step(actions.data() + (batches % 4096) * envs);
    ++batches;
    if (batches % 64 == 0) elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  *us_per_batch = 1e6 * elapsed / batches;
  return batches * envs / elapsed;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  std::vector<int> env_counts = {1, 8, 16, 32, 64};
  int workers = 1, rounds = 3;
  double seconds = 2;
  std::string repo = std::filesystem::path(__FILE__).parent_path().parent_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--envs") {  // e.g. 8 or 1,8,32
      env_counts.clear();
      std::string list = argv[i + 1];
      for (size_t at = 0; at <= list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        env_counts.push_back(std::atoi(list.substr(at, comma - at).c_str()));
        at = comma + 1;
      }
    } else if (a == "--workers") workers = std::atoi(argv[i + 1]);
    else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
    else if (a == "--repo") repo = argv[i + 1];
  }
  prefrl::ExternalEnvOptions o;
  o.cmd = "/usr/bin/python3 " + repo + "/examples/python_cartpole/cartpole.py";
  o.num_workers = workers;
  const std::string name = prefrl::register_external_env(o);
  std::printf("external env bench: the Python CartPole (examples/python_cartpole), random actions, %d worker(s);\n"
              "median of %d alternating rounds of %.1f s each\n\n", workers, rounds, seconds);
  std::printf("%6s %18s %18s %7s %20s %22s\n", "envs", "in-process steps/s", "bridge steps/s", "ratio",
              "us per batched step", "protocol us per batch");
  for (int envs : env_counts) {
    std::unique_ptr<prefrl::VecEnv> vec = prefrl::make_vec_env(name, envs, 0);
    vec->reset();
    std::vector<double> py, br, us;
    for (int r = 0; r < rounds; ++r) {
      py.push_back(python_rate(repo, envs, seconds));
      double u = 0;
      br.push_back(bridge_rate(*vec, seconds, &u));
      us.push_back(u);
    }
    const double p = median(py), b = median(br), u = median(us);
    // The protocol's own cost: a batch's time less the time Python takes for its env steps.
    const double own = u - 1e6 * envs / p;
    std::printf("%6d %18.0f %18.0f %7.2f %20.1f %22.1f\n", envs, p, b, b / p, u, own);
  }
  return 0;
}
