// `--env-cmd`: training on an external environment (the Python CartPole of
// examples/python_cartpole through python/prefrl_env.py) records the command, logs each worker
// under RUN/workers, evaluates, and resumes exactly after a worker was killed mid-run; bad
// commands and settings are refused before any work.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "prefrl/tracking/metrics.h"
#include "test_util.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;
using testing::Running;
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

// A CartPole worker without state hooks (get_state/set_state): its SPEC's state_size is 0.
std::string stateless_worker(const fs::path& dir) {
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
  return "/usr/bin/python3 " + (dir / "stateless.py").string();
}

// Without state hooks a resumed run starts every env on a new episode, and says so.
TEST(ExternalCli, AnEnvWithoutStateHooksResumesOnNewEpisodes) {
  const fs::path dir = temp_path("external_cli_stateless");
  fs::create_directories(dir);
  const std::string run = (dir / "run").string();
  auto r = run_prefrl("train --env-cmd '" + stateless_worker(dir) + "' --teacher oracle --steps 2048 --labels 10 "
                      "--seed 1 --set run.checkpoint_every=1 --set run.eval_episodes=1 --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_prefrl("train --resume " + run + " --steps 4096 --override");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("has no state hooks (state_size 0): each env starts a new episode"), std::string::npos) << r.out;
  EXPECT_NE(read_file(run + "/summary.json").find("\"env_steps\": 4096"), std::string::npos);
  fs::remove_all(dir);
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
  EXPECT_NE(r.out.find("batched step 501"), std::string::npos) << r.out;
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

// A task file of an external env is its command, run in the task file's directory; the run
// records that command and directory, so eval works from anywhere.
TEST(ExternalCli, AnExternalTaskFileRunsItsCommandInItsDirectory) {
  const fs::path dir = temp_path("external_cli_task");
  fs::create_directories(dir / "sim");
  std::ofstream(dir / "sim" / "my_env.py") << "import sys\n"
                                              "sys.path.insert(0, '" << (kRepo / "python").string() << "')\n"
                                              "sys.path.insert(0, '" << (kRepo / "examples" / "python_cartpole").string() << "')\n"
                                              "from prefrl_env import serve\n"
                                              "from cartpole import CartPoleEnv\n"
                                              "serve(CartPoleEnv, name='my_cartpole')\n";
  std::ofstream(dir / "sim" / "my_env.toml") << "[external]\ncmd = \"/usr/bin/python3 my_env.py\"\nnum_workers = 2\n";
  const std::string run = (dir / "run").string();
  auto r = run_prefrl("train --task " + (dir / "sim" / "my_env.toml").string() +
                      " --teacher oracle --steps 2048 --labels 10 --seed 1 --set run.eval_episodes=1 --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json cfg = nlohmann::json::parse(read_file(run + "/config.json"));
  EXPECT_EQ(cfg["env"]["name"], "my_cartpole");
  EXPECT_EQ(cfg["env"]["cmd"], "/usr/bin/python3 my_env.py");
  EXPECT_EQ(cfg["env"]["cmd_dir"], (dir / "sim").string());
  EXPECT_EQ(cfg["env"]["num_workers"], 2);
  EXPECT_EQ(cfg["env"]["task"], "");
  r = run_prefrl("eval " + run + " --episodes 1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  std::ofstream(dir / "sim" / "bad.toml") << "[external]\ncmd = \"x\"\nworkers = 2\n";
  r = run_prefrl("train --task " + (dir / "sim" / "bad.toml").string() + " --run-dir " + (dir / "r2").string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("workers"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

// People judge clips of an external env rendered by its workers (set_state, then render()):
// the labeling page's clip images come from the env's own frames.
TEST(ExternalCli, PeopleJudgeClipsTheWorkerRendered) {
  const std::string dir = temp_path("external_cli_human");
  Running train("train --env-cmd '" + kCartPole + "' --teacher human --port 0 --labels 4 --steps 2048 --seed 1 "
                "--run-dir " + dir + " --set server.undo_window_s=0 --set server.frame_size=48");
  const std::string port = train.wait_for(R"(labeling page: http://127\.0\.0\.1:(\d+)/)");
  ASSERT_FALSE(port.empty()) << train.out();
  httplib::Client c("127.0.0.1", std::stoi(port));
  int answered = 0;
  for (int tries = 0; tries < 600 && answered < 2; ++tries) {
    auto r = c.Get("/api/query/next?labeler=tester");
    ASSERT_TRUE(r);
    const nlohmann::json q = nlohmann::json::parse(r->body)["query"];
    if (q.is_null()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    for (const char* side : {"left", "right"}) {
      auto img = c.Get(q[side]["url"].get<std::string>().c_str());
      ASSERT_TRUE(img);
      ASSERT_EQ(img->status, 200) << img->body;
      EXPECT_EQ(img->body.substr(1, 3), "PNG");
      EXPECT_GT(img->body.size(), 1000u);  // frames of a cart and pole, not a blank sheet
    }
    auto l = c.Post("/api/label", nlohmann::json{{"query_id", q["id"]}, {"choice", "left"}, {"labeler", "tester"}}.dump(),
                    "application/json");
    ASSERT_TRUE(l);
    ASSERT_EQ(l->status, 200) << l->body;
    ++answered;
  }
  EXPECT_EQ(answered, 2);  // the run goes on to its end with the rest pending
  EXPECT_EQ(train.finish(), 0) << train.out();
  std::filesystem::remove_all(dir);
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
  const std::string stateless = stateless_worker(dir);
  r = run_prefrl("train --env-cmd '" + stateless + "' --teacher human --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("has no state hooks"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(run));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl
