// Every run observable, archived and comparable, through the real binary: a healthy run fires
// no health check while provoked runs fire theirs; `runs list|show|compare`, `report` and
// `reproduce` read the archive; a killed run is recognised as crashed; `sweep` runs seeds as
// processes and keeps a failed seed in its figures; users' mistakes exit 2 with one line.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <filesystem>
#include <set>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

extern char** environ;

namespace fs = std::filesystem;
using nlohmann::json;

namespace prefrl {
namespace {

using testing::read_file;
using testing::run_prefrl;
using testing::temp_path;

// name => values of every health/* metric line.
std::map<std::string, std::vector<double>> health_metrics(const std::string& run) {
  std::map<std::string, std::vector<double>> out;
  std::istringstream in(read_file(run + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    const std::string name = j["name"];
    if (name.rfind("health/", 0) == 0) out[name].push_back(j["value"].get<double>());
  }
  return out;
}

std::set<std::string> fired(const std::string& run) {
  std::set<std::string> out;
  std::istringstream in(read_file(run + "/health.jsonl"));
  std::string line;
  while (std::getline(in, line)) out.insert(json::parse(line)["name"].get<std::string>());
  return out;
}

TEST(Observability, AHealthyCartpoleRunFiresNoHealthCheck) {
  const std::string dir = temp_path("healthy");
  auto r = run_prefrl("train --env cartpole --steps 40000 --labels 120 --seed 2 --set run.eval_episodes=2 --run-dir " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find("health warning"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir + "/health.jsonl"));
  const auto h = health_metrics(dir);
  ASSERT_EQ(h.size(), 9u);  // every check, every iteration
  for (const auto& [name, values] : h) {
    EXPECT_GT(values.size(), 100u) << name;
    for (double v : values) ASSERT_EQ(v, 0.0) << name;
  }
  const json s = json::parse(read_file(dir + "/summary.json"));
  for (const auto& [name, count] : s["health"].items()) EXPECT_EQ(count, 0) << name;
  // The reward checks were live: the reward model trained on more labels than health.min_labels.
  EXPECT_GE(s["labels"].get<int>(), 100);
  EXPECT_EQ(s["status"], "finished");
  fs::remove_all(dir);
}

// name => values of one metric, in order.
std::vector<double> metric_values(const std::string& run, const std::string& metric) {
  std::vector<double> out;
  std::istringstream in(read_file(run + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    if (j["name"] == metric && !j["value"].is_null()) out.push_back(j["value"].get<double>());
  }
  return out;
}

// run.metrics_every groups iterations into one record without changing what the run computes:
// the same evaluation; losses the mean of the grouped iterations' losses; one record per group
// (the last one short, written before the final checkpoint).
TEST(Observability, MetricsEveryGroupsIterationsWithoutChangingTheRun) {
  const std::string base = temp_path("metrics_every");
  const std::string args = "train --env cartpole --steps 20480 --labels 40 --seed 3 --set run.eval_episodes=3 "
                           "--set run.checkpoint_every_s=0 --run-dir ";
  ASSERT_EQ(run_prefrl(args + base + "/every1").exit_code, 0);
  auto r = run_prefrl(args + base + "/every3 --set run.metrics_every=3");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json s1 = json::parse(read_file(base + "/every1/summary.json"));
  const json s3 = json::parse(read_file(base + "/every3/summary.json"));
  EXPECT_EQ(s1["eval"], s3["eval"]);
  EXPECT_EQ(s1["labels"], s3["labels"]);
  const std::vector<double> a = metric_values(base + "/every1", "losses/policy_loss");
  const std::vector<double> b = metric_values(base + "/every3", "losses/policy_loss");
  ASSERT_GE(a.size(), 7u);
  ASSERT_EQ(b.size(), (a.size() + 2) / 3);
  for (size_t k = 0; k < b.size(); ++k) {
    double sum = 0;
    size_t n = 0;
    for (size_t i = 3 * k; i < std::min(a.size(), 3 * k + 3); ++i, ++n) sum += a[i];
    EXPECT_NEAR(b[k], sum / n, 1e-9 * std::max(1.0, std::abs(sum / n))) << "record " << k;
  }
  EXPECT_EQ(metric_values(base + "/every3", "time/iteration_s").size(), b.size());
  EXPECT_EQ(metric_values(base + "/every3", "health/nonfinite").size(), b.size());
  fs::remove_all(base);
}

TEST(Observability, ProvokedRunsFireTheirHealthChecks) {
  const std::string base = temp_path("provoked");
  // Random answers: the reward model cannot beat chance, its reward does not track the task.
  auto r = run_prefrl("train --env cartpole --steps 12000 --labels 100 --seed 1 --teacher oracle "
                      "--set teacher.error_rate=1 --set run.eval_episodes=1 --run-dir " + base + "/noise");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(fired(base + "/noise").count("val_accuracy_chance")) << r.out;
  EXPECT_TRUE(fired(base + "/noise").count("true_corr_low")) << r.out;
  EXPECT_NE(r.out.find("health warning [val_accuracy_chance]"), std::string::npos) << r.out;
  // A learning rate of 0: the Gaussian policy's entropy never moves.
  r = run_prefrl("train --env pendulum --steps 24576 --labels 40 --seed 1 --set ppo.lr=0 --set run.eval_episodes=1 "
                 "--run-dir " + base + "/frozen");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(fired(base + "/frozen"), std::set<std::string>{"entropy_frozen"}) << r.out;
  // A learning rate of 1 without gradient clipping: non-finite losses, skipped; the run goes on.
  r = run_prefrl("train --env pendulum --steps 8192 --labels 20 --seed 1 --set ppo.lr=1 --set ppo.max_grad_norm=0 "
                 "--set run.eval_episodes=1 --run-dir " + base + "/nan");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(fired(base + "/nan").count("nonfinite")) << r.out;
  const json s = json::parse(read_file(base + "/nan/summary.json"));
  EXPECT_EQ(s["status"], "finished");
  EXPECT_GT(s["nonfinite"]["skipped_minibatches"].get<int>(), 0);
  EXPECT_GE(s["health"]["nonfinite"].get<int>(), 1);
  auto h = health_metrics(base + "/nan");
  double skipped = 0;
  for (double v : h["health/nonfinite"]) skipped += v;
  EXPECT_EQ(skipped, s["nonfinite"]["skipped_minibatches"].get<double>());
  // The report says so.
  r = run_prefrl("report " + base + "/nan --out " + base + "/nan.html");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(read_file(base + "/nan.html").find("PPO minibatches skipped"), std::string::npos);
  fs::remove_all(base);
}

TEST(Observability, ArchiveCommandsReadRunsAndReproduceAgrees) {
  const std::string root = temp_path("archive");
  const std::string args = "train --env cartpole --steps 4096 --labels 24 --set run.eval_episodes=2 --runs-root " + root;
  ASSERT_EQ(run_prefrl(args + " --seed 5").exit_code, 0);
  ASSERT_EQ(run_prefrl(args + " --seed 6 --set ppo.lr=0.002").exit_code, 0);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), 2u);

  auto r = run_prefrl("runs list --root " + root);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const std::string s : {names[0], names[1], std::string("cartpole"), std::string("oracle"), std::string("finished"),
                              std::string("4096/4096"), std::string("final return")})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;

  r = run_prefrl("runs show " + names[0] + " --root " + root);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* s : {"status     finished", "command", "--seed 5", "LibTorch", "MuJoCo", "machine", "no warnings"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;

  r = run_prefrl("runs compare " + root + "/" + names[0] + " " + root + "/" + names[1] + " --diff");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("2 of "), std::string::npos) << r.out;  // ppo.lr and run.seed
  EXPECT_NE(r.out.find("*  ppo.lr"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("*  run.seed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("env.num_envs"), std::string::npos) << r.out;

  r = run_prefrl("report " + names[0] + " --root " + root + " --out " + root + "/r.html");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string html = read_file(root + "/r.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("True return"), std::string::npos);

  r = run_prefrl("reproduce " + names[0] + " --root " + root + " --run-dir " + root + "/again");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("metrics agree"), std::string::npos) << r.out;
  EXPECT_NE(read_file(root + "/again/command.txt").find("reproduce"), std::string::npos);
  // A changed metrics file is caught.
  {
    std::ofstream(root + "/" + names[1] + "/metrics.jsonl", std::ios::app)
        << json{{"name", "prefs/labels"}, {"value", 1}, {"step", 1}, {"wall_time", 0}}.dump() << "\n";
  }
  r = run_prefrl("reproduce " + names[1] + " --root " + root + " --run-dir " + root + "/again2");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("metrics DIFFER at line"), std::string::npos) << r.out;
  fs::remove_all(root);
}

TEST(Observability, AKilledRunIsListedAsCrashed) {
  const std::string root = temp_path("crash");
  const std::string dir = root + "/victim";
  fs::create_directories(root);
  std::vector<std::string> args = {PREFRL_BINARY, "train", "--env", "pendulum", "--steps", "100000000", "--seed", "1",
                                   "--set", "run.heartbeat_s=0.2", "--run-dir", dir};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, PREFRL_BINARY, &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  // Running: its summary.json says so, with progress.
  bool running = false;
  for (int i = 0; i < 600 && !running; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto r = run_prefrl("runs list --root " + root);
    running = r.out.find("running") != std::string::npos && fs::exists(dir + "/metrics.jsonl") &&
              fs::file_size(dir + "/metrics.jsonl") > 0;
  }
  ASSERT_TRUE(running) << run_prefrl("runs list --root " + root).out;
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  auto r = run_prefrl("runs list --root " + root);
  EXPECT_NE(r.out.find("crashed"), std::string::npos) << r.out;
  r = run_prefrl("runs show " + dir);
  EXPECT_NE(r.out.find("ended without writing a final status"), std::string::npos) << r.out;
  r = run_prefrl("report " + dir + " --out " + root + "/crash.html");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(read_file(root + "/crash.html").find("crashed"), std::string::npos);
  fs::remove_all(root);
}

TEST(Observability, SweepRunsSeedsAsProcessesAndKeepsAFailedSeed) {
  const std::string dir = temp_path("sweep");
  // Seed 2's directory already holds a run: that seed's `prefrl train` refuses it (exit 2).
  fs::create_directories(dir + "/seed-2");
  { std::ofstream(dir + "/seed-2/metrics.jsonl") << "{}\n"; }
  auto r = run_prefrl("sweep --env cartpole --seeds 3 --jobs 2 --steps 4096 --labels 20 --set run.eval_episodes=2 "
                      "--threshold 20 --sweep-dir " + dir);
  EXPECT_EQ(r.exit_code, 1) << r.out;  // not every seed finished
  const json sweep = json::parse(read_file(dir + "/sweep.json"));
  EXPECT_EQ(sweep["status"], "finished");
  const json& f = sweep["figures"];
  ASSERT_EQ(f["seeds"].size(), 3u);
  EXPECT_EQ(f["n_finished"], 2);
  EXPECT_EQ(f["seeds"][0]["status"], "finished");
  EXPECT_EQ(f["seeds"][1]["status"], "failed");
  EXPECT_EQ(f["seeds"][1]["exit_code"], 2);
  EXPECT_NE(f["seeds"][1]["detail"].get<std::string>().find("already holds a run"), std::string::npos) << f.dump(2);
  EXPECT_EQ(f["seeds"][2]["status"], "finished");
  EXPECT_TRUE(f["mean"].is_number());
  EXPECT_TRUE(f["iqm_ci95"][0].is_number());
  EXPECT_EQ(f["threshold"], 20.0);
  // Each seed is a normal archived run, made by its own process.
  for (const char* s : {"seed-1", "seed-3"}) {
    const json cfg = json::parse(read_file(dir + "/" + s + "/config.json"));
    EXPECT_EQ(cfg["run"]["seed"], std::string(s) == "seed-1" ? 1 : 3);
    EXPECT_EQ(cfg["prefs"]["total_labels"], 20);
    EXPECT_NE(read_file(dir + "/" + s + "/command.txt").find("--run-dir"), std::string::npos);
    EXPECT_TRUE(fs::exists(dir + "/" + s + "/report.html"));
  }
  const std::string html = read_file(dir + "/report.html");
  for (const char* s : {"failed", "already holds a run", "IQM", "Learning curves", "seed-1/report.html"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  EXPECT_NE(r.out.find("2 of 3 seeds finished"), std::string::npos) << r.out;
  // The sweep's runs are in the archive.
  r = run_prefrl("runs list --root " + fs::path(dir).parent_path().string());
  EXPECT_NE(r.out.find(fs::path(dir).filename().string() + "/seed-3"), std::string::npos) << r.out;
  // And the report can be written again from the sweep directory.
  r = run_prefrl("report " + dir + " --out " + dir + "/again.html");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  fs::remove_all(dir);
}

TEST(Observability, RunsServeShowsTheArchiveLive) {
  const std::string root = temp_path("serve");
  ASSERT_EQ(run_prefrl("train --env cartpole --steps 2048 --labels 10 --seed 4 --set run.eval_episodes=1 --run-dir " +
                       root + "/one").exit_code, 0);
  // Started by pid, with its stdout on a pipe: the first line says where it serves.
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  std::vector<std::string> args = {PREFRL_BINARY, "runs", "serve", "--port", "0", "--root", root};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, PREFRL_BINARY, &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  FILE* p = ::fdopen(out[0], "r");
  char line[4096] = {0};
  ASSERT_NE(std::fgets(line, sizeof line, p), nullptr);
  const std::string first = line;
  const size_t at = first.find("http://127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << first;
  const int port = std::stoi(first.substr(at + 17));
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/api/runs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"one\""), std::string::npos) << r->body;
  r = c.Get("/runs/one");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("True return"), std::string::npos);
  ::kill(pid, SIGTERM);  // stops cleanly
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::fclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  fs::remove_all(root);
}

void expect_usage_error(const std::string& args, const std::string& must_contain) {
  SCOPED_TRACE(args);
  auto r = run_prefrl(args);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find(must_contain), std::string::npos) << r.out;
  EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

TEST(Observability, MistakesExitTwoWithOneLine) {
  const std::string nowhere = temp_path("nowhere");
  expect_usage_error("runs list --root " + nowhere, "is not a directory");
  expect_usage_error("runs show no-such-run --root " + nowhere, "no run 'no-such-run'");
  expect_usage_error("runs compare only-one", "RUNS");
  expect_usage_error("runs compare a b --root " + nowhere, "no run 'a'");
  expect_usage_error("runs bogus", "A subcommand is required");
  expect_usage_error("report no-such-run --root " + nowhere, "no run or sweep 'no-such-run'");
  expect_usage_error("report /tmp --out /tmp/x.html", "not a run directory");
  expect_usage_error("reproduce no-such-run --root " + nowhere, "no run 'no-such-run'");
  expect_usage_error("sweep --env nosuchenv --seeds 2", "unknown environment 'nosuchenv'");
  expect_usage_error("sweep --env cartpole --seeds 0", "--seeds");
  expect_usage_error("sweep --env cartpole --seeds 2 --seed 3", "--seed");
  expect_usage_error("sweep --env cartpole --seeds 2 --teacher human", "scripted teacher");
  expect_usage_error("sweep --env cartpole --seeds 2 --threshold abc", "--threshold");
  expect_usage_error("sweep --env cartpole --seeds 2 --set health.loss_ratio_low=5 --set health.loss_ratio_high=2",
                     "health.loss_ratio_low");
  expect_usage_error("train --env cartpole --set health.sps_drop=2", "health.sps_drop");
  expect_usage_error("train --env cartpole --set run.heartbeat_s=0", "run.heartbeat_s");
  expect_usage_error("runs serve --root " + nowhere, "is not a directory");
  expect_usage_error("runs serve --port 99999", "server.port");
  EXPECT_FALSE(fs::exists(nowhere));
}

}  // namespace
}  // namespace prefrl
