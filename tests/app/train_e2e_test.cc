// Tiny end-to-end runs of the real `prefrl train`: the run directory holds everything, the
// reward model beats chance on held-out labels, the same seed gives the same metrics, and
// `prefrl eval --json` judges the result.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <set>
#include <sstream>

#include "prefrl/tracking/metrics.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

using testing::read_file;
using testing::run_prefrl;
using testing::temp_path;

const char* kTinyPendulum =
    "train --env pendulum --steps 12288 --labels 60 --seed 3 --set prefs.segment_length=25 "
    "--set run.eval_episodes=2 --set run.progress_every_s=0";

// summary.json minus what measures the machine: wall time, the process, wall-clock health checks.
nlohmann::json deterministic_summary(const std::string& path) {
  auto j = nlohmann::json::parse(read_file(path));
  j.erase("wall_s");
  j.erase("process");
  for (const char* machine : {"sps_falling", "memory_growing", "label_wait"}) j["health"].erase(machine);
  return j;
}

TEST(TrainE2E, RunDirectoryHoldsEverythingAndRewardBeatsChance) {
  const std::string dir = temp_path("e2e");
  auto r = run_prefrl(std::string(kTinyPendulum) + " --run-dir " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* f : {"config.json", "command.txt", "meta.json", "log.txt", "metrics.jsonl", "prefs.db",
                        "summary.json", "checkpoints/policy.pt", "checkpoints/reward.pt"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  }
  auto meta = nlohmann::json::parse(read_file(dir + "/meta.json"));
  EXPECT_EQ(meta["seed"], 3);
  EXPECT_TRUE(meta.contains("git_commit"));
  EXPECT_TRUE(meta.contains("libtorch_version"));
  EXPECT_NE(read_file(dir + "/command.txt").find("--env pendulum"), std::string::npos);
  auto cfg = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(cfg["prefs"]["total_labels"], 60);
  EXPECT_EQ(cfg["run"]["total_steps"], 12288);

  bool has_events = false;
  for (const auto& e : fs::directory_iterator(dir))
    has_events |= e.path().filename().string().rfind("events.out.tfevents.", 0) == 0 && fs::file_size(e.path()) > 100;
  EXPECT_TRUE(has_events) << "no TensorBoard event file in " << dir;
  auto summary = nlohmann::json::parse(read_file(dir + "/summary.json"));
  EXPECT_EQ(summary["status"], "finished");
  EXPECT_EQ(summary["labels"], 60);
  EXPECT_GE(summary["env_steps"].get<int64_t>(), 12288);
  // The reward model beats chance on labels it never trained on.
  ASSERT_TRUE(summary["val_accuracy"].is_number()) << summary.dump();
  EXPECT_GT(summary["val_accuracy"].get<double>(), 0.6) << summary.dump();

  // Every label is in the database, committed, with its teacher.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir + "/prefs.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM labels WHERE teacher = 'oracle'", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 60);
  sqlite3_finalize(st);
  sqlite3_close(db);

  // Metrics named as documented, against environment steps.
  std::istringstream in(read_file(dir + "/metrics.jsonl"));
  std::string line;
  std::set<std::string> names;
  while (std::getline(in, line)) names.insert(nlohmann::json::parse(line)["name"].get<std::string>());
  for (const char* n : {"charts/episodic_return", "charts/predicted_return", "charts/SPS", "losses/entropy",
                        "losses/approx_kl", "reward/val_accuracy", "reward/true_corr", "prefs/labels",
                        "time/env_s", "time/ppo_update_s", "sys/rss_mb"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }

  // Evaluation prints the documented JSON.
  auto ev = run_prefrl("eval " + dir + " --episodes 3 --json");
  ASSERT_EQ(ev.exit_code, 0) << ev.out;
  auto j = nlohmann::json::parse(ev.out);
  EXPECT_EQ(j["episodes"], 3);
  EXPECT_TRUE(j["mean_return"].is_number());
  EXPECT_TRUE(j["std_return"].is_number());
  auto ev2 = run_prefrl("eval " + dir + " --episodes 3 --json");
  EXPECT_EQ(ev.out, ev2.out);  // fixed evaluation seed => same figures

  // --trace writes every counted step; its rewards add up to the returns, its steps to the
  // lengths (pendulum's episodes all last its 200-step limit), and it changes nothing.
  const std::string trace = dir + "/trace.jsonl";
  auto ev3 = run_prefrl("eval " + dir + " --episodes 3 --json --trace " + trace);
  ASSERT_EQ(ev3.exit_code, 0) << ev3.out;
  EXPECT_EQ(ev.out, ev3.out);
  ASSERT_EQ(j["lengths"].size(), 3u);
  std::vector<double> sums(3, 0.0), predicted(3, 0.0);
  std::vector<int> counts(3, 0);
  std::ifstream tin(trace);
  std::string tl;
  while (std::getline(tin, tl)) {
    auto step = nlohmann::json::parse(tl);
    const int e = step["episode"].get<int>();
    ASSERT_TRUE(e >= 0 && e < 3) << tl;
    EXPECT_EQ(step["t"].get<int>(), counts[e]) << tl;
    EXPECT_EQ(step["obs"].size(), 3u);
    EXPECT_EQ(step["action"].size(), 1u);
    EXPECT_TRUE(step["predicted"].is_number()) << tl;  // the run learned its reward: r̂ per step
    const bool last = counts[e] + 1 == j["lengths"][e].get<int>();
    EXPECT_EQ(step["terminated"].get<bool>() || step["truncated"].get<bool>(), last) << tl;
    sums[e] += step["reward"].get<double>();
    predicted[e] += step["predicted"].get<double>();
    ++counts[e];
  }
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(counts[e], j["lengths"][e].get<int>());
    EXPECT_NEAR(sums[e], j["returns"][e].get<double>(), 1e-6);
    EXPECT_EQ(counts[e], 200);
    // Each episode's predicted return is the sum of the r̂ the trace shows for its steps.
    EXPECT_NEAR(predicted[e], j["predicted_returns"][e].get<double>(), 1e-3 * (1 + std::fabs(predicted[e])));
  }
  EXPECT_NEAR(j["mean_predicted_return"].get<double>(), (predicted[0] + predicted[1] + predicted[2]) / 3,
              1e-3 * (1 + std::fabs(predicted[0])));
  // --reward-from the run itself is the run's own reward model; a run without one is refused.
  auto ev4 = run_prefrl("eval " + dir + " --episodes 3 --json --reward-from " + dir);
  ASSERT_EQ(ev4.exit_code, 0) << ev4.out;
  EXPECT_EQ(ev.out, ev4.out);
  auto bad = run_prefrl("eval " + dir + " --episodes 1 --reward-from " + dir + "/no-such-run");
  EXPECT_NE(bad.exit_code, 0) << bad.out;
  fs::remove_all(dir);
}

TEST(TrainE2E, SameSeedSameMetrics) {
  const std::string a = temp_path("det_a"), b = temp_path("det_b");
  const std::string args = "train --env cartpole --steps 6144 --labels 30 --seed 11 --set run.eval_episodes=2";
  auto ra = run_prefrl(args + " --run-dir " + a);
  auto rb = run_prefrl(args + " --run-dir " + b);
  ASSERT_EQ(ra.exit_code, 0) << ra.out;
  ASSERT_EQ(rb.exit_code, 0) << rb.out;
  // The same comparison as `prefrl reproduce`: every line but wall_time and the series that
  // measure the machine (tracking/metrics.h: measures_machine).
  const MetricsComparison c = compare_metrics(a + "/metrics.jsonl", b + "/metrics.jsonl");
  EXPECT_GT(c.lines_a, 500);
  EXPECT_TRUE(c.agree) << "line " << c.first_difference << ":\n" << c.line_a << "\n" << c.line_b;
  EXPECT_EQ(deterministic_summary(a + "/summary.json"), deterministic_summary(b + "/summary.json"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(TrainE2E, MovingDotPixelsRunEndToEnd) {
  const std::string dir = temp_path("dot");
  auto r = run_prefrl("train --env movingdot --steps 2048 --labels 12 --seed 1 --set run.eval_episodes=2 --run-dir " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto summary = nlohmann::json::parse(read_file(dir + "/summary.json"));
  EXPECT_EQ(summary["status"], "finished");
  EXPECT_TRUE(summary["eval"]["success_rate"].is_number());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl
