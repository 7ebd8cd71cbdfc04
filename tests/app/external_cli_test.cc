// `--env-cmd`: training on an external environment (the Python CartPole of
// examples/python_cartpole through python/prefrl_env.py) records the command, logs each worker
// under RUN/workers, evaluates, and resumes exactly after a worker was killed mid-run; bad
// commands and settings are refused before any work.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "prefrl/tracking/metrics.h"
#include "test_util.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::run_prefrl;
using testing::temp_path;

const fs::path kRepo = fs::absolute(fs::path(PREFRL_TEST_DATA) / ".." / "..").lexically_normal();
const std::string kCartPole = "/usr/bin/python3 " + (kRepo / "examples" / "python_cartpole" / "cartpole.py").string();

const std::string kTrain =
    " --steps 6144 --labels 30 --seed 2 --threads 1 --set env.num_workers=2 --set run.eval_episodes=2 "
    "--set run.progress_every_s=0 --set run.checkpoint_every=1 --set run.checkpoint_keep=100";

// A CartPole worker that kills itself (SIGKILL) at its `at`-th step, once: the marker file says
// it has.
std::string dying_worker(const fs::path& dir, int at) {
  const fs::path script = dir / "dying.py";
  std::ofstream(script) << "import os, sys\n"
                           "sys.path.insert(0, '" << (kRepo / "python").string() << "')\n"
                           "sys.path.insert(0, '" << (kRepo / "examples" / "python_cartpole").string() << "')\n"
                           "from prefrl_env import serve\n"
                           "from cartpole import CartPoleEnv\n"
                           "MARK = '" << (dir / "died").string() << "'\n"
                           "steps = [0]\n"
                           "class Dying(CartPoleEnv):\n"
                           "    def step(self, a):\n"
                           "        steps[0] += 1\n"
                           "        if steps[0] == " << at << " and not os.path.exists(MARK):\n"
                           "            open(MARK, 'w').close()\n"
                           "            print('dying now', flush=True)\n"
                           "            os.kill(os.getpid(), 9)\n"
                           "        return super().step(a)\n"
                           "serve(Dying, name='cartpole_py')\n";
  return "/usr/bin/python3 " + script.string();
}

TEST(ExternalCli, TrainsEvaluatesAndResumesExactlyAfterAWorkerIsKilled) {
  const fs::path dir = temp_path("external_cli");
  fs::create_directories(dir);
  const std::string base = (dir / "base").string(), crashed = (dir / "crashed").string();
  auto r = run_prefrl("train --env-cmd '" + kCartPole + "' --teacher oracle" + kTrain + " --run-dir " + base);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json cfg = nlohmann::json::parse(read_file(base + "/config.json"));
  EXPECT_EQ(cfg["env"]["name"], "cartpole_py");
  EXPECT_EQ(cfg["env"]["cmd"], kCartPole);
  EXPECT_EQ(cfg["env"]["num_workers"], 2);
  EXPECT_TRUE(fs::is_regular_file(base + "/workers/worker-0.log"));
  EXPECT_TRUE(fs::is_regular_file(base + "/workers/worker-1.log"));
  r = run_prefrl("eval " + base + " --episodes 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"episodes\":2"), std::string::npos) << r.out;

  // Worker 0 (4 envs of 8) dies at its 2000th env step, the run's step 4000 (checkpoints every
  // 1024 steps, so the last one before it is at 3072).
  r = run_prefrl("train --env-cmd '" + dying_worker(dir, 2000) + "' --teacher oracle" + kTrain + " --run-dir " + crashed);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("external env worker"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("closed its socket"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dying now"), std::string::npos) << "the worker's log tail: " << r.out;
  EXPECT_NE(r.out.find("batch 501"), std::string::npos) << r.out;
  r = run_prefrl("train --resume " + crashed);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("resume: from " + crashed + "/checkpoints/ckpt-3072"), std::string::npos) << r.out;
  const MetricsComparison c = compare_metrics(base + "/metrics.jsonl", crashed + "/metrics.jsonl");
  EXPECT_GT(c.lines_a, 10);
  EXPECT_TRUE(c.agree) << "line " << c.first_difference << " of " << c.lines_a << "/" << c.lines_b << ":\n"
                       << c.line_a << "\n" << c.line_b;
  const nlohmann::json a = nlohmann::json::parse(read_file(base + "/summary.json"));
  const nlohmann::json b = nlohmann::json::parse(read_file(crashed + "/summary.json"));
  EXPECT_EQ(a["eval"], b["eval"]);
  EXPECT_EQ(a["labels"], b["labels"]);
  fs::remove_all(dir);
}

TEST(ExternalCli, BadCommandsAndSettingsAreRefusedBeforeAnyWork) {
  const fs::path dir = temp_path("external_cli_bad");
  fs::create_directories(dir);
  const std::string run = (dir / "r").string();
  auto r = run_prefrl("train --env-cmd 'echo broken >&2; exit 3' --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("exited with status 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("broken"), std::string::npos) << "the log's tail: " << r.out;
  EXPECT_FALSE(fs::exists(run));
  r = run_prefrl("train --env-cmd '" + kCartPole + "' --env cartpole --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("give one of --env, --task and --env-cmd"), std::string::npos) << r.out;
  r = run_prefrl("train --env-cmd '" + kCartPole + "' --set env.num_envs=2 --set env.num_workers=3 --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("env.num_workers 3 is more than env.num_envs 2"), std::string::npos) << r.out;
  // No state hooks: people cannot be shown clips of it.
  std::ofstream(dir / "stateless.py") << "import sys\n"
                                         "sys.path.insert(0, '" << (kRepo / "python").string() << "')\n"
                                         "sys.path.insert(0, '" << (kRepo / "examples" / "python_cartpole").string() << "')\n"
                                         "from prefrl_env import serve\n"
                                         "from cartpole import CartPoleEnv\n"
                                         "class Stateless:\n"
                                         "    def __init__(self):\n"
                                         "        self.e = CartPoleEnv()\n"
                                         "        self.observation_space = self.e.observation_space\n"
                                         "        self.action_space = self.e.action_space\n"
                                         "    def reset(self, seed=None): return self.e.reset(seed=seed)\n"
                                         "    def step(self, a): return self.e.step(a)\n"
                                         "serve(Stateless, name='stateless_cartpole', time_limit=500)\n";
  r = run_prefrl("train --env-cmd '/usr/bin/python3 " + (dir / "stateless.py").string() + "' --teacher human --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("has no state hooks"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(run));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl
