// External environments (docs/env_protocol.md) through the pure-Python client
// (python/prefrl_env.py): the bridge reproduces Gymnasium's CartPole trajectories exactly, the
// batched VecEnv computes what one env per worker computes, and every way a worker can fail
// stops with a message naming the worker, the env and the batch.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "prefrl/core/error.h"
#include "prefrl/envs/external_env.h"
#include "test_util.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;

const fs::path kRepo = fs::path(PREFRL_TEST_DATA) / ".." / "..";
const std::string kPython = "/usr/bin/python3";

std::string cartpole_cmd() { return kPython + " " + (kRepo / "examples" / "python_cartpole" / "cartpole.py").string(); }

std::string registered_cartpole(int workers = 1) {
  ExternalEnvOptions o;
  o.cmd = cartpole_cmd();
  o.num_workers = workers;
  o.step_timeout_s = 60;
  o.log_dir = (fs::temp_directory_path() / ("prefrl_ext_logs_" + std::to_string(getpid()))).string();
  return register_external_env(o);
}

// The options of a Python script of `dir` run there, logging there.
ExternalEnvOptions script_in(const fs::path& dir, const std::string& script) {
  ExternalEnvOptions o;
  o.cmd = kPython + " " + script;
  o.dir = dir.string();
  o.log_dir = dir.string();
  return o;
}

// A worker whose env is CartPole until its 5th step, when it misbehaves as `mode` says.
std::string bad_worker(const std::string& mode) {
  const fs::path dir = fs::temp_directory_path() / ("prefrl_ext_bad_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path script = dir / ("bad_" + mode + ".py");
  std::ofstream(script) << "import os, sys, time\n"
                           "import numpy as np\n"
                           "sys.path.insert(0, '" << (kRepo / "python").string() << "')\n"
                           "sys.path.insert(0, '" << (kRepo / "examples" / "python_cartpole").string() << "')\n"
                           "from prefrl_env import serve\n"
                           "from cartpole import CartPoleEnv\n"
                           "MODE = '" << mode << "'\n"
                           "class Bad(CartPoleEnv):\n"
                           "    def step(self, a):\n"
                           "        self.n = getattr(self, 'n', 0) + 1\n"
                           "        if self.n == 5:\n"
                           "            print('misbehaving:', MODE, flush=True)\n"
                           "            if MODE == 'die': os.kill(os.getpid(), 9)\n"
                           "            if MODE == 'hang': time.sleep(600)\n"
                           "            if MODE == 'shape': return np.zeros(3, np.float32), 1.0, False, False, {}\n"
                           "            if MODE == 'nan': return np.full(4, np.nan, np.float32), 1.0, False, False, {}\n"
                           "            if MODE == 'raise': raise ValueError('the simulator broke')\n"
                           "        return super().step(a)\n"
                           "serve(Bad, name='bad_" << mode << "')\n";
  return kPython + " " + script.string();
}

// The message of the error that `f` throws (empty if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(ExternalEnv, TheHandshakeGivesTheSpec) {
  const std::string name = registered_cartpole();
  EXPECT_EQ(name, "cartpole_py");
  const EnvSpec s = env_spec(name);
  EXPECT_TRUE(s.action.discrete);
  EXPECT_EQ(s.action.n, 2);
  EXPECT_EQ(s.observation.shape, std::vector<int64_t>{4});
  EXPECT_EQ(s.max_episode_steps, 500);
  EXPECT_EQ(s.fps, 50);
  EXPECT_EQ(s.state_size, 4);
  EXPECT_TRUE(s.has_true_reward);
  EXPECT_FALSE(s.obs_determines_state);
  // Registering the same command again is the same environment.
  EXPECT_EQ(registered_cartpole(2), name);
}

// Gymnasium's own trajectories (tests/data/gym_golden/cartpole.jsonl) through the bridge: the
// state set, the recorded actions stepped, every observation, reward and flag equal.
TEST(ExternalEnv, ThePythonCartPoleReproducesGymnasiumsTrajectoriesExactly) {
  const std::string name = registered_cartpole();
  std::ifstream f(fs::path(PREFRL_TEST_DATA) / "gym_golden" / "cartpole.jsonl");
  ASSERT_TRUE(f) << "missing golden file";
  std::unique_ptr<VecEnv> vec = make_vec_env(name, 1, 0);
  std::string line;
  int episodes = 0;
  while (std::getline(f, line)) {
    const nlohmann::json ep = nlohmann::json::parse(line);
    std::unique_ptr<Env> env = make_env(name);
    std::vector<float> obs(4);
    env->set_state(ep["state"].get<std::vector<double>>(), obs.data());
    EXPECT_EQ(obs, ep["initial_obs"].get<std::vector<float>>());
    // The batched path too: env 0 of a VecEnv put in the same state.
    std::vector<float> scratch(4);
    vec->env(0).set_state(ep["state"].get<std::vector<double>>(), scratch.data());
    const auto& steps = ep["steps"];
    ASSERT_EQ(steps.size(), ep["actions"].size());
    for (size_t t = 0; t < steps.size(); ++t) {
      const float a = ep["actions"][t].get<float>();
      const StepResult r = env->step(&a, obs.data());
      SCOPED_TRACE("episode " + std::to_string(episodes) + " step " + std::to_string(t));
      ASSERT_EQ(obs, steps[t]["obs"].get<std::vector<float>>());
      EXPECT_EQ(r.reward, steps[t]["reward"].get<float>());
      EXPECT_EQ(r.terminated, steps[t]["terminated"].get<bool>());
      EXPECT_EQ(r.truncated, steps[t]["truncated"].get<bool>());
      vec->step(&a);
      const bool ended = vec->terminated()[0] || vec->truncated()[0];
      EXPECT_EQ(ended, r.terminated || r.truncated);
      const std::vector<float>& seen = ended ? vec->final_obs() : vec->obs();
      EXPECT_EQ(std::vector<float>(seen.begin(), seen.begin() + 4), obs);
    }
    ++episodes;
  }
  EXPECT_GE(episodes, 3);
}

// N envs on W workers, one message per batch, compute what N envs each on its own worker do
// (the serial path steps and resets each env by itself), with states kept and terminations
// replaced by a penalty, across many episode ends.
TEST(ExternalEnv, BatchedWorkersComputeWhatOneEnvPerWorkerComputes) {
  const std::string name = registered_cartpole(2);
  for (bool penalty : {false, true}) {
    std::unique_ptr<VecEnv> batched = make_vec_env(name, 3, 11);
    SerialVecEnv serial(env_factory(name), 3, 11);
    for (VecEnv* v : {batched.get(), static_cast<VecEnv*>(&serial)}) {
      if (penalty) v->replace_termination(5.0f);
      v->keep_states(true);
      v->reset();
    }
    ASSERT_EQ(batched->obs(), serial.obs());
    Rng rng(3);
    int ends = 0;
    for (int t = 0; t < 300; ++t) {
      std::vector<float> actions(3);
      for (float& a : actions) a = static_cast<float>(rng.integer(2));
      batched->step(actions.data());
      serial.step(actions.data());
      SCOPED_TRACE("penalty " + std::to_string(penalty) + " step " + std::to_string(t));
      ASSERT_EQ(batched->obs(), serial.obs());
      ASSERT_EQ(batched->rewards(), serial.rewards());
      ASSERT_EQ(batched->terminated(), serial.terminated());
      ASSERT_EQ(batched->truncated(), serial.truncated());
      ASSERT_EQ(batched->states(), serial.states());
      for (int i = 0; i < 3; ++i) {
        if (batched->terminated()[i] || batched->truncated()[i]) {
          ++ends;
          ASSERT_EQ(std::vector<float>(batched->final_obs().begin() + 4 * i, batched->final_obs().begin() + 4 * i + 4),
                    std::vector<float>(serial.final_obs().begin() + 4 * i, serial.final_obs().begin() + 4 * i + 4));
        }
      }
    }
    // Penalty mode: episodes run to the time limit (500), so 300 steps end none.
    if (!penalty) EXPECT_GE(ends, 10);
    // The checkpointed parts: states, random streams and clocks give the same continuation.
    EXPECT_EQ(batched->env(1).get_state(), serial.env(1).get_state());
    EXPECT_EQ(batched->env(1).rng().state(), serial.env(1).rng().state());
    EXPECT_EQ(batched->env(1).elapsed_steps(), serial.env(1).elapsed_steps());
  }
}

TEST(ExternalEnv, RenderedFramesComeFromTheWorker) {
  const std::string name = registered_cartpole();
  std::unique_ptr<Env> env = make_env(name);
  std::vector<float> obs(4);
  env->reset(obs.data());
  std::vector<uint8_t> frame(64 * 48 * 3);
  env->render(64, 48, frame.data());
  EXPECT_NE(*std::min_element(frame.begin(), frame.end()), *std::max_element(frame.begin(), frame.end()));
}

// Box actions reach the worker clipped to the space's bounds; a uint8 Box's observations arrive
// as byte / 255 (prefrl's pixels); the env's own truncation ends an episode.
TEST(ExternalEnv, BoxActionsAreClippedAndByteObservationsScaled) {
  const fs::path dir = fs::temp_directory_path() / ("prefrl_ext_box_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "echo.py") << "import sys\n"
                                    "import numpy as np\n"
                                    "sys.path.insert(0, '" << (kRepo / "python").string() << "')\n"
                                    "from prefrl_env import serve\n"
                                    "class Box:\n"
                                    "    def __init__(self, lo, hi, shape, dtype):\n"
                                    "        self.low, self.high = np.full(shape, lo, dtype), np.full(shape, hi, dtype)\n"
                                    "        self.shape, self.dtype = shape, np.dtype(dtype)\n"
                                    "class Echo:\n"
                                    "    observation_space = Box(0, 255, (2, 1, 2), np.uint8)\n"
                                    "    action_space = Box(-1.0, 1.0, (2,), np.float32)\n"
                                    "    def reset(self, seed=None):\n"
                                    "        self.t = 0\n"
                                    "        return np.zeros((2, 1, 2), np.uint8), {}\n"
                                    "    def step(self, a):\n"
                                    "        self.t += 1\n"
                                    "        o = np.array([[[round(100 * (a[0] + 1)), round(100 * (a[1] + 1))]], [[self.t, 255]]], np.uint8)\n"
                                    "        return o, float(a.sum()), False, self.t == 3, {}\n"
                                    "serve(Echo, name='echo_box', render=False)\n";
  const std::string name = register_external_env(script_in(dir, "echo.py"));
  const EnvSpec spec = env_spec(name);
  EXPECT_EQ(spec.observation.dtype, Dtype::kUInt8);
  EXPECT_TRUE(spec.pixels);
  EXPECT_EQ(spec.action.high, (std::vector<float>{1.0f, 1.0f}));
  std::unique_ptr<VecEnv> v = make_vec_env(name, 2, 0);
  v->reset();
  const std::vector<float> actions = {5.0f, -0.5f, -7.0f, 0.25f};  // env 0: (5, -0.5), env 1: (-7, 0.25)
  for (int t = 1; t <= 3; ++t) {
    v->step(actions.data());
    const std::vector<float>& obs = t < 3 ? v->obs() : v->final_obs();
    EXPECT_EQ(obs[0], 200 / 255.0f);  // 5 clipped to 1
    EXPECT_EQ(obs[1], 50 / 255.0f);
    EXPECT_EQ(obs[2], static_cast<float>(t) / 255.0f);
    EXPECT_EQ(obs[3], 1.0f);
    EXPECT_EQ(obs[4], 0.0f);          // -7 clipped to -1
    EXPECT_EQ(obs[5], 125 / 255.0f);
    EXPECT_EQ(v->rewards()[0], 0.5f);
    EXPECT_EQ(v->truncated()[0], t == 3);  // the env's own truncation, with no time limit
  }
  EXPECT_EQ(v->obs()[2], 0.0f);  // a new episode
  v.reset();
  fs::remove_all(dir);
}

struct BadCase {
  std::string mode;
  std::string expect;  // in the message
};

TEST(ExternalEnv, AWorkerThatFailsStopsWithItsNameEnvBatchAndLog) {
  for (const BadCase& c : {BadCase{"die", "closed its socket"}, BadCase{"hang", "env.step_timeout_s"},
                           BadCase{"shape", "(observation)"}, BadCase{"nan", "must be finite"},
                           BadCase{"raise", "the simulator broke"}}) {
    SCOPED_TRACE(c.mode);
    ExternalEnvOptions o;
    o.cmd = bad_worker(c.mode);
    o.num_workers = 2;
    o.step_timeout_s = c.mode == "hang" ? 2.0 : 30.0;
    o.log_dir = (fs::temp_directory_path() / ("prefrl_ext_bad_logs_" + std::to_string(getpid()) + c.mode)).string();
    const std::string name = register_external_env(o);
    EXPECT_EQ(name, "bad_" + c.mode);
    std::unique_ptr<VecEnv> v = make_vec_env(name, 4, 0);
    v->reset();
    const std::string msg = error_of([&] {
      std::vector<float> zeros(4, 0.0f);  // action 0: no episode ends in 5 steps
      for (int t = 0; t < 10; ++t) v->step(zeros.data());
    });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    EXPECT_NE(msg.find("external env worker "), std::string::npos) << msg;
    EXPECT_NE(msg.find("batched step 6"), std::string::npos) << msg;  // the reset is the first, the 5th step the 6th
    EXPECT_NE(msg.find("misbehaving: " + c.mode), std::string::npos) << "the log's tail: " << msg;
    if (c.mode == "shape" || c.mode == "nan" || c.mode == "raise") EXPECT_NE(msg.find(", env 0"), std::string::npos) << msg;
    if (c.mode == "die")
      EXPECT_TRUE(msg.find("killed by signal") != std::string::npos || msg.find("status 137") != std::string::npos) << msg;
    v.reset();  // the other worker is closed, the dead one reaped
  }
}

TEST(ExternalEnv, AnotherProtocolVersionOrABadSpecIsRefusedWithTheReason) {
  const fs::path dir = fs::temp_directory_path() / ("prefrl_ext_version_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "v2.py") << "import json, os, socket, struct\n"
                                  "s = socket.socket(fileno=int(os.environ['PREFRL_ENV_FD']))\n"
                                  "n = struct.unpack('<I', s.recv(4, socket.MSG_WAITALL))[0]\n"
                                  "s.recv(n, socket.MSG_WAITALL)\n"
                                  "b = json.dumps({'op': 'hello', 'protocol': 'prefrl-env', 'version': 2, 'env': {}}).encode()\n"
                                  "s.sendall(struct.pack('<I', len(b)) + b)\n";
  ExternalEnvOptions o = script_in(dir, "v2.py");
  std::string msg = error_of([&] { register_external_env(o); });
  EXPECT_NE(msg.find("speaks protocol version 2; prefrl speaks 1"), std::string::npos) << msg;
  o.cmd = "exit 7";
  msg = error_of([&] { register_external_env(o); });
  EXPECT_NE(msg.find("exited with status 7"), std::string::npos) << msg;
  fs::remove_all(dir);

  nlohmann::json spec = {{"name", "ok_env"},
                         {"observation_space", {{"type", "box"}, {"shape", {2}}, {"dtype", "float64"},
                                                {"low", {"-inf", -1}}, {"high", {"inf", 1}}}},
                         {"action_space", {{"type", "discrete"}, {"n", 3}}},
                         {"fps", 30}, {"time_limit", 0}, {"render", nullptr}, {"has_true_reward", false},
                         {"state_size", 0}};
  const ExternalSpec x = parse_external_spec(spec);
  EXPECT_EQ(x.spec.observation.low[1], -1.0f);
  EXPECT_TRUE(std::isinf(x.spec.observation.high[0]));
  EXPECT_FALSE(x.spec.has_true_reward);
  EXPECT_EQ(x.render_width, 0);
  auto refused = [&](const char* key, nlohmann::json value, const std::string& says) {
    nlohmann::json bad = spec;
    bad[key] = std::move(value);
    const std::string m = error_of([&] { parse_external_spec(bad); });
    EXPECT_NE(m.find(says), std::string::npos) << key << ": " << m;
  };
  refused("name", "Has Spaces", "'name'");
  refused("observation_space", {{"type", "box"}, {"shape", {2}}, {"dtype", "int64"}, {"low", {0, 0}}, {"high", {1, 1}}}, "dtype");
  refused("observation_space", {{"type", "box"}, {"shape", {2}}, {"dtype", "float32"}, {"low", {0}}, {"high", {1, 1}}}, "has 1 values; expected 2");
  refused("action_space", {{"type", "box"}, {"shape", {1}}, {"dtype", "float32"}, {"low", {"-inf"}}, {"high", {1}}}, "infinite bound");
  refused("fps", 0, "'fps'");
  refused("state_size", -1, "'state_size'");
}

}  // namespace
}  // namespace prefrl
