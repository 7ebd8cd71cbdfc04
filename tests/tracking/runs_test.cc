// The run archive read back (status of finished, failed, running and crashed runs; list, show,
// compare), metrics comparison, sweep statistics and figures, and the HTML reports, on
// synthetic run directories.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "prefrl/core/error.h"
#include "prefrl/tracking/metrics.h"
#include "prefrl/tracking/progress.h"
#include "prefrl/tracking/report.h"
#include "prefrl/tracking/runs.h"
#include "prefrl/tracking/sweep.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace prefrl {
namespace {

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() / ("prefrl_archive_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A run directory with config, meta, metrics and (unless summary is null) summary.json.
  fs::path make_run(const fs::path& dir, int64_t seed, const json& summary, double lr = 0.001,
                    const std::string& token = "") {
    fs::create_directories(dir);
    json cfg = {{"env", {{"name", "cartpole"}, {"num_envs", 8}}},
                {"run", {{"seed", seed}, {"total_steps", 1000}}},
                {"ppo", {{"lr", lr}}},
                {"teacher", {{"kind", "oracle"}}},
                {"server", {{"token", token}}},
                {"prefs", {{"total_labels", 50}}}};
    std::ofstream(dir / "config.json") << cfg.dump(2);
    std::ofstream(dir / "meta.json") << json{{"prefrl_version", "0.1.0"}, {"git_commit", "abc123"},
                                             {"git_dirty", false}, {"build_type", "Release"},
                                             {"libtorch_version", "2.1.2"}, {"mujoco_version", "2.2.2"},
                                             {"started_at", "2024-01-01T00:00:0" + std::to_string(seed % 10) + "Z"}}
                                            .dump();
    std::ofstream(dir / "command.txt") << "prefrl train --env cartpole --seed " << seed << "\n";
    std::ofstream m(dir / "metrics.jsonl");
    for (int i = 1; i <= 10; ++i) {
      m << json{{"name", "charts/episodic_return"}, {"value", 10.0 * i + seed}, {"step", 100 * i}, {"wall_time", 0.1 * i}}.dump() << "\n";
      m << json{{"name", "time/env_s"}, {"value", 0.01 * i}, {"step", 100 * i}, {"wall_time", 0.1 * i}}.dump() << "\n";
      m << json{{"name", "prefs/labels"}, {"value", 5 * i}, {"step", 100 * i}, {"wall_time", 0.1 * i}}.dump() << "\n";
    }
    if (!summary.is_null()) std::ofstream(dir / "summary.json") << summary.dump();
    return dir;
  }
  static json finished(double ret) {
    return {{"status", "finished"}, {"env_steps", 1000}, {"labels", 50}, {"wall_s", 2.5},
            {"eval", {{"episodes", 5}, {"mean_return", ret}, {"std_return", 0.0}}}, {"train_return", ret - 1},
            {"val_accuracy", 0.9}, {"final_true_corr", 0.8}};
  }
  static json running_as(const json& process) {
    return {{"status", "running"}, {"env_steps", 300}, {"total_steps", 1000}, {"labels", 20}, {"wall_s", 1.0},
            {"train_return", 12.0}, {"heartbeat_s", 2.0}, {"process", process}};
  }
  fs::path root_;
};

TEST_F(ArchiveTest, StatusOfFinishedFailedRunningAndCrashedRuns) {
  make_run(root_ / "a-finished", 1, finished(500));
  json failed = finished(0);
  failed["status"] = "failed";
  failed["error"] = "PPO: observation of env 3 has element 1 = nan";
  make_run(root_ / "b-failed", 2, failed);
  json me = process_identity();
  me["heartbeat"] = unix_time_now();
  make_run(root_ / "c-running", 3, running_as(me));
  // A process that has ended: a child we started and reaped.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int st = 0;
  waitpid(child, &st, 0);
  json gone = process_identity();
  gone["pid"] = child;
  gone["heartbeat"] = unix_time_now();
  make_run(root_ / "d-crashed", 4, running_as(gone));
  json reused = process_identity();  // our own pid, but another start time: pid reused
  reused["start_ticks"] = reused["start_ticks"].get<int64_t>() - 1;
  make_run(root_ / "e-pid-reused", 5, running_as(reused));
  json elsewhere = me;
  elsewhere["host"] = "some-other-host";
  elsewhere["heartbeat"] = unix_time_now() - 3600;
  make_run(root_ / "f-silent-elsewhere", 6, running_as(elsewhere));
  make_run(root_ / "g-no-summary", 7, nullptr);
  fs::create_directories(root_ / "not-a-run");

  const auto runs = find_runs(root_.string());
  ASSERT_EQ(runs.size(), 7u);
  std::map<std::string, RunInfo> by;
  for (const auto& r : runs) by[r.name] = r;
  EXPECT_EQ(by["a-finished"].status, "finished");
  EXPECT_EQ(by["a-finished"].final_return(), 500);
  EXPECT_EQ(by["b-failed"].status, "failed");
  EXPECT_NE(by["b-failed"].status_detail.find("observation of env 3"), std::string::npos);
  EXPECT_EQ(by["c-running"].status, "running");
  EXPECT_EQ(by["c-running"].final_return(), 12.0);  // recent training return while running
  EXPECT_EQ(by["d-crashed"].status, "crashed");
  EXPECT_NE(by["d-crashed"].status_detail.find("ended without writing a final status"), std::string::npos);
  EXPECT_EQ(by["e-pid-reused"].status, "crashed");
  EXPECT_EQ(by["f-silent-elsewhere"].status, "crashed");
  EXPECT_NE(by["f-silent-elsewhere"].status_detail.find("no heartbeat from host some-other-host"), std::string::npos);
  EXPECT_EQ(by["g-no-summary"].status, "crashed");

  const std::string table = runs_list_text(runs);
  for (const char* s : {"run", "env", "teacher", "seed", "steps", "labels", "final return", "status", "a-finished",
                        "500.00", "crashed", "running", "failed", "300/1000"})
    EXPECT_NE(table.find(s), std::string::npos) << s << "\n" << table;
  EXPECT_THROW(find_runs((root_ / "nope").string()), UsageError);
  EXPECT_THROW(load_run((root_ / "not-a-run").string()), UsageError);
  EXPECT_THROW(resolve_run("no-such-run", root_.string()), UsageError);
  EXPECT_EQ(resolve_run("a-finished", root_.string()).status, "finished");
}

TEST_F(ArchiveTest, ShowAndCompareHighlightDifferencesAndHideSecrets) {
  make_run(root_ / "r1", 1, finished(480), 0.001, "s3cret-token-value");
  make_run(root_ / "r2", 2, finished(500), 0.002);
  std::ofstream(root_ / "r2" / "health.jsonl")
      << json{{"name", "entropy_collapsed"}, {"step", 700}, {"message", "policy entropy fell"}}.dump() << "\n";
  const RunInfo a = resolve_run("r1", root_.string()), b = resolve_run("r2", root_.string());
  const std::string show = run_show_text(b);
  for (const char* s : {"finished", "prefrl train --env cartpole --seed 2", "commit abc123", "LibTorch 2.1.2",
                        "MuJoCo 2.2.2", "eval return 500.00", "entropy_collapsed", "policy entropy fell"})
    EXPECT_NE(show.find(s), std::string::npos) << s << "\n" << show;
  EXPECT_NE(run_show_text(a).find("no warnings"), std::string::npos);

  const std::string cmp = runs_compare_text({a, b}, false, false);
  EXPECT_NE(cmp.find("3 of 8 config keys differ"), std::string::npos) << cmp;  // ppo.lr, run.seed, server.token
  // Differing rows are marked; equal rows are not.
  auto row_of = [&](const std::string& key) {
    const size_t p = cmp.find(key);
    const size_t s = cmp.rfind('\n', p) + 1;
    return cmp.substr(s, cmp.find('\n', p) - s);
  };
  EXPECT_EQ(row_of("ppo.lr")[0], '*') << cmp;
  EXPECT_EQ(row_of("run.seed")[0], '*') << cmp;
  EXPECT_EQ(row_of("env.num_envs")[0], ' ') << cmp;
  EXPECT_EQ(cmp.find("s3cret"), std::string::npos) << cmp;
  EXPECT_NE(cmp.find("(hidden)"), std::string::npos) << cmp;
  EXPECT_NE(cmp.find("480.00"), std::string::npos);
  const std::string only = runs_compare_text({a, b}, true, true);
  EXPECT_EQ(only.find("env.num_envs"), std::string::npos) << only;
  EXPECT_NE(only.find("\033[1;33m"), std::string::npos);  // highlighted on a terminal
}

TEST_F(ArchiveTest, MetricsComparisonIgnoresOnlyWhatMeasuresTheMachine) {
  make_run(root_ / "x", 1, finished(1));
  make_run(root_ / "y", 1, finished(1));
  // Same learning, different machine: other times and wall clock.
  {
    std::ifstream in(root_ / "y" / "metrics.jsonl");
    std::string line, out;
    while (std::getline(in, line)) {
      json j = json::parse(line);
      j["wall_time"] = j["wall_time"].get<double>() * 3;
      if (j["name"] == "time/env_s") j["value"] = 99.0;
      out += j.dump() + "\n";
    }
    std::ofstream(root_ / "y" / "metrics.jsonl") << out;
  }
  MetricsComparison c = compare_metrics((root_ / "x" / "metrics.jsonl").string(), (root_ / "y" / "metrics.jsonl").string());
  EXPECT_TRUE(c.agree);
  EXPECT_EQ(c.lines_a, 20);  // time/env_s lines excluded
  EXPECT_EQ(c.lines_b, 20);
  // One learning value differs: found, with both lines.
  {
    std::ofstream(root_ / "y" / "metrics.jsonl", std::ios::app)
        << json{{"name", "prefs/labels"}, {"value", 51}, {"step", 1100}, {"wall_time", 9}}.dump() << "\n";
  }
  c = compare_metrics((root_ / "x" / "metrics.jsonl").string(), (root_ / "y" / "metrics.jsonl").string());
  EXPECT_FALSE(c.agree);
  EXPECT_EQ(c.first_difference, 20);
  EXPECT_EQ(c.line_a, "");
  EXPECT_NE(c.line_b.find("\"value\":51"), std::string::npos) << c.line_b;
  EXPECT_THROW(compare_metrics((root_ / "nope.jsonl").string(), (root_ / "x" / "metrics.jsonl").string()), RuntimeError);
}

TEST_F(ArchiveTest, ReadMetricsToleratesATornLastLineOnly) {
  make_run(root_ / "t", 1, finished(1));
  const std::string path = (root_ / "t" / "metrics.jsonl").string();
  { std::ofstream(path, std::ios::app) << "{\"name\":\"charts/episodic_ret"; }
  MetricSeries ms = read_metrics(path);
  ASSERT_EQ(ms["charts/episodic_return"].size(), 10u);
  EXPECT_EQ(ms["charts/episodic_return"][9].step, 1000);
  EXPECT_EQ(ms["charts/episodic_return"][9].value, 101.0);
  { std::ofstream(path, std::ios::app) << "\n{\"name\":\"x\",\"value\":1,\"step\":1}\n"; }
  EXPECT_THROW(read_metrics(path), RuntimeError);
  EXPECT_TRUE(read_metrics((root_ / "none.jsonl").string()).empty());
}

TEST(SweepStats, MeanStdIqmAndBootstrap) {
  EXPECT_DOUBLE_EQ(mean_value({1, 2, 3, 4}), 2.5);
  EXPECT_NEAR(sample_std({2, 4, 4, 4, 5, 5, 7, 9}), 2.138089935, 1e-9);
  EXPECT_TRUE(std::isnan(sample_std({1})));
  EXPECT_DOUBLE_EQ(interquartile_mean({1, 2, 3, 4, 5, 6, 7, 8}), 4.5);  // drops 2 at each end
  EXPECT_DOUBLE_EQ(interquartile_mean({100, 1, 3, 2, 4}), 3.0);       // n = 5: drops 1 at each end
  EXPECT_DOUBLE_EQ(interquartile_mean({7}), 7.0);
  EXPECT_TRUE(std::isnan(interquartile_mean({})));
  const std::vector<double> x = {480, 500, 500, 350, 500, 495, 410};
  const auto ci = iqm_bootstrap_ci(x, 0.95, 5000, 0);
  const double iqm = interquartile_mean(x);
  EXPECT_LE(ci.first, iqm);
  EXPECT_GE(ci.second, iqm);
  EXPECT_LT(ci.first, ci.second);
  EXPECT_GE(ci.first, 350);
  EXPECT_LE(ci.second, 500);
  EXPECT_EQ(iqm_bootstrap_ci(x, 0.95, 5000, 0), ci);  // fixed seed: the same interval
  const auto flat = iqm_bootstrap_ci({5, 5, 5}, 0.95, 100, 1);
  EXPECT_EQ(flat.first, 5);
  EXPECT_EQ(flat.second, 5);
  EXPECT_EQ(default_pass_threshold("cartpole"), 475);
  EXPECT_TRUE(std::isnan(default_pass_threshold("movingdot")));
}

// A sweep of a task with no true reward: its seeds finish without a final return; they count
// as finished (and `prefrl sweep` exits 0), and the statistics are over none.
TEST_F(ArchiveTest, SeedsOfATaskWithNoTrueRewardFinishWithoutReturns) {
  const fs::path sw = root_ / "sweep-free";
  json record = {{"env", "free"}, {"status", "finished"}, {"command", "prefrl sweep ..."}, {"runs", json::array()}};
  for (int s = 1; s <= 2; ++s) {
    json sum = finished(0);
    sum["has_true_reward"] = false;
    sum["train_return"] = nullptr;  // as such a run writes it
    sum["final_true_corr"] = nullptr;
    sum["eval"] = {{"episodes", 5}, {"mean_return", nullptr}, {"metrics", {{"turns", {{"mean", 1.5 * s}}}}}};
    make_run(sw / ("seed-" + std::to_string(s)), s, sum);
    record["runs"].push_back({{"seed", s}, {"run", "seed-" + std::to_string(s)}, {"exit_code", 0}});
  }
  std::ofstream(sw / "sweep.json") << record.dump();
  const json f = sweep_figures(load_sweep(sw.string()));
  EXPECT_EQ(f["n_finished"], 2);
  EXPECT_EQ(f["n_returns"], 0);
  EXPECT_EQ(f["seeds"][1]["metrics"]["turns"], 3.0);
  const std::string text = sweep_summary_text(f);
  EXPECT_NE(text.find("2 of 2 seeds finished; no final return: the task has no true reward"), std::string::npos) << text;
}

TEST_F(ArchiveTest, SweepFiguresKeepFailedAndCrashedSeeds) {
  const fs::path sw = root_ / "sweep-x";
  json record = {{"env", "cartpole"}, {"threshold", 475.0}, {"status", "finished"}, {"command", "prefrl sweep ..."},
                 {"runs", json::array()}};
  make_run(sw / "seed-1", 1, finished(500));
  make_run(sw / "seed-2", 2, finished(400));
  make_run(sw / "seed-3", 3, finished(490));
  json gone = process_identity();
  gone["pid"] = 999999999;
  make_run(sw / "seed-4", 4, running_as(gone));  // killed: summary still says running
  fs::create_directories(sw / "seed-5");          // never started training: only its output
  std::ofstream(sw / "seed-5" / "output.txt") << "prefrl: run directory 'x' already holds a run\n";
  for (int s = 1; s <= 5; ++s)
    record["runs"].push_back({{"seed", s}, {"run", "seed-" + std::to_string(s)}, {"exit_code", s == 4 ? 137 : s == 5 ? 2 : 0}});
  std::ofstream(sw / "sweep.json") << record.dump();

  const SweepInfo info = load_sweep(sw.string());
  const json f = sweep_figures(info);
  ASSERT_EQ(f["seeds"].size(), 5u);
  EXPECT_EQ(f["n_seeds"], 5);
  EXPECT_EQ(f["n_finished"], 3);
  EXPECT_EQ(f["seeds"][3]["status"], "crashed");
  EXPECT_EQ(f["seeds"][3]["exit_code"], 137);
  EXPECT_TRUE(f["seeds"][3]["final_return"].is_null());
  EXPECT_EQ(f["seeds"][4]["status"], "failed");
  EXPECT_NE(f["seeds"][4]["detail"].get<std::string>().find("already holds a run"), std::string::npos);
  EXPECT_NEAR(f["mean"].get<double>(), (500 + 400 + 490) / 3.0, 1e-9);
  EXPECT_NEAR(f["iqm"].get<double>(), (500 + 400 + 490) / 3.0, 1e-9);  // n = 3: nothing to trim
  EXPECT_EQ(f["passed"], 2);  // 500 and 490 reach 475; the crashed and failed seeds do not
  const std::string text = sweep_summary_text(f);
  EXPECT_NE(text.find("3 of 5 seeds finished"), std::string::npos) << text;
  EXPECT_NE(text.find("2 of 5 seeds reach the threshold 475.00"), std::string::npos) << text;
  EXPECT_NE(text.find("crashed"), std::string::npos) << text;

  // Runs inside a sweep are listed under it.
  const auto runs = find_runs(root_.string());
  ASSERT_EQ(runs.size(), 4u);  // seed-5 holds no run
  EXPECT_EQ(runs[0].name, "sweep-x/seed-1");

  const std::string html = sweep_report_html(info);
  for (const char* s : {"Sweep sweep-x", "crashed", "failed", "already holds a run", "IQM", "2 / 5",
                        "True return", "Learning curves", "<svg", "mean ± std of seeds"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no link outside but the SVG namespace
}

TEST_F(ArchiveTest, RunReportHoldsPlotsConfigWarningsAndNoSecrets) {
  make_run(root_ / "r", 1, finished(500), 0.001, "s3cret-token-value");
  std::ofstream(root_ / "r" / "health.jsonl")
      << json{{"name", "nonfinite"}, {"step", 300}, {"message", "non-finite values: <3> PPO minibatches"}}.dump() << "\n";
  const std::string html = run_report_html(load_run((root_ / "r").string()));
  for (const char* s : {"<!DOCTYPE html>", "True return", "Predicted return", "Reward model accuracy", "Policy entropy",
                        "Steps per second", "Labels", "nonfinite", "&lt;3&gt; PPO minibatches", "ppo.lr",
                        "commit abc123", "500.00", "stroke-dasharray"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  EXPECT_EQ(html.find("s3cret"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http-equiv=\"refresh\""), std::string::npos);  // finished: a file does not refresh
  const std::string out = (root_ / "out.html").string();
  write_report((root_ / "r").string(), out);
  EXPECT_TRUE(fs::file_size(out) > 1000);
  EXPECT_THROW(write_report((root_ / "nope").string(), out), UsageError);
  EXPECT_THROW(write_report((root_ / "r").string(), (root_ / "no" / "dir" / "x.html").string()), UsageError);
}

TEST(Report, ChartsAndGrid) {
  Chart c;
  c.title = "a <b>";
  c.lines.push_back({"x", "#000", {{0, 1}, {10, 2}, {20, std::nan("")}, {30, 3}}});
  const std::string svg = svg_chart(c);
  EXPECT_NE(svg.find("a &lt;b&gt;"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), 'M') - std::count(c.title.begin(), c.title.end(), 'M'), 2)
      << "a NaN splits the line into two paths' moves";  // (the only 'M's are path moves)
  // A band is one closed path: upper edge left to right, lower edge back (valid path syntax).
  Chart banded;
  banded.bands.push_back({"#00f", {0, 10, 20}, {1, 2, 3}, {2, 4, 6}});
  const std::string b = svg_chart(banded);
  const size_t at = b.find("fill-opacity=\"0.18\"");
  ASSERT_NE(at, std::string::npos);
  const std::string d = b.substr(b.rfind("d=\"", at) + 3, b.find('"', b.rfind("d=\"", at) + 3) - b.rfind("d=\"", at) - 3);
  EXPECT_EQ(d[0], 'M');
  EXPECT_EQ(d.back(), 'Z');
  EXPECT_EQ(std::count(d.begin(), d.end(), 'L'), 5) << d;  // 6 points: M and 5 lines
  EXPECT_EQ(d.find("LL"), std::string::npos) << d;
  Chart empty;
  empty.title = "t";
  EXPECT_NE(svg_chart(empty).find("no data yet"), std::string::npos);
  const auto [grid, values] = common_grid({{{10, 1}, {20, 3}, {100, 5}}, {{50, 7}}}, 4);
  ASSERT_EQ(grid.size(), 4u);
  EXPECT_EQ(grid[0], 25);
  EXPECT_EQ(grid[3], 100);
  EXPECT_EQ(values[0][0], 2);   // mean of the points in (0, 25]
  EXPECT_EQ(values[0][1], 2);   // carried forward
  EXPECT_EQ(values[0][3], 5);
  EXPECT_TRUE(std::isnan(values[1][0]));  // before its first point
  EXPECT_EQ(values[1][1], 7);
  EXPECT_EQ(html_escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

TEST(Progress, BarFillsWithTheFractionDone) {
  EXPECT_EQ(progress_bar(0.0, 10), "[..........]");
  EXPECT_EQ(progress_bar(0.5, 10), "[#####.....]");
  EXPECT_EQ(progress_bar(1.0, 10), "[##########]");
  EXPECT_EQ(progress_bar(2.0, 4), "[####]");   // clamped
  EXPECT_EQ(progress_bar(-1.0, 4), "[....]");
  EXPECT_EQ(progress_bar(std::nan(""), 4), "[....]");
  EXPECT_EQ(progress_bar(0.3).size(), 26u);  // 24 cells by default
}

}  // namespace
}  // namespace prefrl
