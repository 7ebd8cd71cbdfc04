// Nothing lost: a run killed (SIGKILL), stopped (SIGINT) or out of disk space, resumed with
// `prefrl train --resume`, ends exactly as the same seed run without interruption; damaged
// checkpoints fall back to the previous one; a foreign database is refused untouched.
#include <gtest/gtest.h>
#include <httplib.h>

#include <iostream>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sqlite3.h>
#include <thread>

#include "prefrl/app/checkpoint.h"
#include "prefrl/tracking/metrics.h"
#include "sql_util.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

using testing::read_file;
using testing::run_prefrl;
using testing::sql_int;
using testing::temp_path;

// Small enough for a few seconds, long enough for many checkpoints (every 2 iterations); with
// clips of exploring episodes, whose draws come from the iteration, not from a checkpoint.
const std::string kArgs =
    "train --env cartpole --steps 12288 --labels 60 --seed 5 --threads 1 --set run.eval_episodes=2 "
    "--set run.progress_every_s=0 --set run.checkpoint_every=2 --set run.checkpoint_keep=100 "
    "--set prefs.pool_capacity=200 --set prefs.explore_clips=2 --set prefs.explore_steps=100";

// The uninterrupted run, trained once for all tests: ctest runs each test in a process of its
// own, so it is kept in the temporary directory under a name given by the binary's build time
// and shared (made in a directory of its own, then renamed into place).
class Resume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto stamp = fs::last_write_time(PREFRL_BINARY).time_since_epoch().count();
    const std::string prefix = "prefrl_resume_baseline_";
    baseline_ = (fs::temp_directory_path() / (prefix + std::to_string(stamp))).string();
    if (fs::exists(baseline_ + "/summary.json") &&
        nlohmann::json::parse(read_file(baseline_ + "/summary.json"), nullptr, false).value("status", "") == "finished")
      return;
    const std::string mine = baseline_ + ".tmp" + std::to_string(::getpid());
    fs::remove_all(mine);
    auto r = run_prefrl(kArgs + " --run-dir " + mine);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    // Only the first checkpoint is needed (its file sizes, by the full-disk test).
    const std::vector<std::string> ckpts = list_checkpoints(mine + "/checkpoints");
    for (size_t k = 1; k < ckpts.size(); ++k) fs::remove_all(ckpts[k]);
    std::error_code ec;
    fs::rename(mine, baseline_, ec);
    if (ec) fs::remove_all(mine);  // another test process made it first
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path(), ec)) {  // older builds' baselines
      const std::string name = e.path().filename().string();
      if (name.rfind(prefix, 0) == 0 && e.path().string() != baseline_ && name.find(".tmp") == std::string::npos)
        fs::remove_all(e.path(), ec);
    }
  }
  static std::string baseline_;
};
std::string Resume::baseline_;

// Starts `prefrl <args>` (output to out_file) => its pid.
pid_t spawn_prefrl(const std::string& args, const std::string& out_file) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string cmd = "exec " + std::string(PREFRL_BINARY) + " " + args + " > " + out_file + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for pid => its exit code, or 128 + the signal that ended it.
int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string integrity(const std::string& db_path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr);
  std::string out = "(no result)";
  if (sqlite3_step(st) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

nlohmann::json deterministic_summary(const std::string& dir) {
  auto j = nlohmann::json::parse(read_file(dir + "/summary.json"));
  j.erase("wall_s");
  j.erase("process");
  for (const char* machine : {"sps_falling", "memory_growing", "label_wait"}) j["health"].erase(machine);
  return j;
}

// The resumed run's metrics, summary and database agree with the uninterrupted run's.
void expect_same_as(const std::string& base, const std::string& dir) {
  const MetricsComparison c = compare_metrics(base + "/metrics.jsonl", dir + "/metrics.jsonl");
  EXPECT_GT(c.lines_a, 500);
  EXPECT_TRUE(c.agree) << "line " << c.first_difference << " of " << c.lines_a << "/" << c.lines_b << ":\n"
                       << c.line_a << "\n" << c.line_b;
  EXPECT_EQ(deterministic_summary(base), deterministic_summary(dir));
  const std::string a = base + "/prefs.db", b = dir + "/prefs.db";
  for (const char* sql : {"SELECT count(*) FROM labels", "SELECT count(*) FROM queries", "SELECT count(*) FROM segments",
                          "SELECT count(*) FROM (SELECT query_id FROM labels GROUP BY query_id HAVING count(*) > 1)"}) {
    EXPECT_EQ(sql_int(a, sql), sql_int(b, sql)) << sql;
  }
  EXPECT_EQ(sql_int(b, "SELECT count(*) FROM (SELECT query_id FROM labels GROUP BY query_id HAVING count(*) > 1)"), 0);
  EXPECT_EQ(integrity(b), "ok");
}

TEST_F(Resume, KilledAtARandomMomentAndResumedEndsExactlyAsUninterrupted) {
  const std::string dir = temp_path("resume_kill");
  // A random moment of training: from its first metric line (the process has started, which
  // takes a while on a loaded machine) to the end of the baseline's training time.
  const double train_s = nlohmann::json::parse(read_file(baseline_ + "/summary.json"))["wall_s"].get<double>();
  std::random_device rd;
  const double at_s = std::uniform_real_distribution<double>(0.0, 1.0)(rd) * train_s;
  const pid_t pid = spawn_prefrl(kArgs + " --run-dir " + dir, dir + ".out");
  for (int i = 0; i < 3000 && !fs::exists(dir + "/metrics.jsonl"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::duration<double>(at_s));
  ::kill(pid, SIGKILL);
  const int killed = wait_exit(pid);
  RecordProperty("killed_after_s", std::to_string(at_s));
  const size_t ckpts = list_checkpoints(dir + "/checkpoints").size();
  // The kill may also land after the run wrote its final summary, while the process exits:
  // then too there is nothing to resume (--resume refuses a finished run).
  const bool finished = killed == 0 || (fs::exists(dir + "/summary.json") &&
                                        nlohmann::json::parse(read_file(dir + "/summary.json")).value("status", "") ==
                                            "finished");
  if (finished) {
    std::cout << "the run finished before the kill at " << at_s << " s (exit " << killed << "); compared as it is\n";
  } else {
    auto r = run_prefrl("train --resume " + dir);
    ASSERT_EQ(r.exit_code, 0) << "killed " << at_s << " s into training (exit " << killed << ", " << ckpts
                              << " checkpoints)\n" << r.out;
    EXPECT_NE(read_file(dir + "/log.txt").find("resume:"), std::string::npos);
  }
  expect_same_as(baseline_, dir);
  fs::remove_all(dir);
  fs::remove(dir + ".out");
}

TEST_F(Resume, SigintStopsGracefullySaysWhereAndResumes) {
  const std::string dir = temp_path("resume_int");
  const pid_t pid = spawn_prefrl(kArgs + " --run-dir " + dir, dir + ".out");
  // Once the first checkpoint exists, ask it to stop.
  for (int i = 0; i < 600 && list_checkpoints(dir + "/checkpoints").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGINT);
  const int rc = wait_exit(pid);
  const std::string out = read_file(dir + ".out");
  if (rc == 0) GTEST_SKIP() << "the run finished before SIGINT arrived";
  EXPECT_EQ(rc, 130) << out;
  EXPECT_NE(out.find("stopped by SIGINT at step"), std::string::npos) << out;
  EXPECT_NE(out.find("continue with: prefrl train --resume " + dir), std::string::npos) << out;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/summary.json"))["status"], "stopped");
  auto r = run_prefrl("train --resume " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_same_as(baseline_, dir);
  // A finished run has nothing to resume.
  auto again = run_prefrl("train --resume " + dir);
  EXPECT_EQ(again.exit_code, 2) << again.out;
  EXPECT_NE(again.out.find("has finished; nothing to resume"), std::string::npos) << again.out;
  fs::remove_all(dir);
  fs::remove(dir + ".out");
}

// A run stopped part-way (SIGKILL once two checkpoints exist) for the damage tests.
std::string stopped_run(const std::string& name) {
  const std::string dir = temp_path(name);
  const pid_t pid = spawn_prefrl(kArgs + " --run-dir " + dir, dir + ".out");
  for (int i = 0; i < 1000 && list_checkpoints(dir + "/checkpoints").size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ::kill(pid, SIGKILL);
  wait_exit(pid);
  fs::remove(dir + ".out");
  return dir;
}

TEST_F(Resume, CorruptNewestCheckpointIsNamedAndThePreviousOneUsed) {
  const std::string dir = stopped_run("resume_corrupt");
  const std::vector<std::string> ckpts = list_checkpoints(dir + "/checkpoints");
  ASSERT_GE(ckpts.size(), 2u);
  // The newest checkpoint loses half of reward.pt: the one before it is used instead, and the
  // damaged one is set aside (never loaded again).
  const std::string newest = ckpts.back(), previous = ckpts[ckpts.size() - 2];
  fs::resize_file(newest + "/reward.pt", fs::file_size(newest + "/reward.pt") / 2);
  auto r = run_prefrl("train --resume " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("checkpoint skipped: '" + newest + "/reward.pt' is truncated"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resume: from " + previous), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the damaged checkpoint is kept as " + newest + ".damaged"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(newest + ".damaged/reward.pt"));
  expect_same_as(baseline_, dir);
  fs::remove_all(dir);
}

TEST_F(Resume, FlippedByteInCheckpointIsDetected) {
  const std::string dir = stopped_run("resume_flip");
  const std::vector<std::string> ckpts = list_checkpoints(dir + "/checkpoints");
  ASSERT_GE(ckpts.size(), 2u);
  const std::string f = ckpts.back() + "/trainer.bin";
  std::string bytes = read_file(f);
  bytes[bytes.size() / 2] ^= 0x40;
  std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes;
  std::string problem;
  EXPECT_FALSE(verify_checkpoint(ckpts.back(), &problem));
  EXPECT_EQ(problem, "'" + f + "' is corrupt (its CRC-32C does not match the manifest)");
  EXPECT_TRUE(verify_checkpoint(ckpts[ckpts.size() - 2], &problem)) << problem;
  fs::remove_all(dir);
}

TEST_F(Resume, ForeignDatabaseIsRefusedAndLeftUntouched) {
  const std::string dir = stopped_run("resume_foreign");
  const std::string junk = "this is somebody's notes file, not a preference database\n";
  std::ofstream(dir + "/prefs.db", std::ios::binary | std::ios::trunc) << junk;
  fs::remove(dir + "/prefs.db-wal");
  fs::remove(dir + "/prefs.db-shm");
  const std::string metrics_before = read_file(dir + "/metrics.jsonl");
  auto r = run_prefrl("train --resume " + dir);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find(dir + "/prefs.db"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_EQ(read_file(dir + "/prefs.db"), junk);
  EXPECT_EQ(read_file(dir + "/metrics.jsonl"), metrics_before);
  fs::remove_all(dir);
}

TEST_F(Resume, CorruptDatabaseIsRefusedAndLeftUntouched) {
  const std::string dir = stopped_run("resume_corrupt_db");
  const std::string db_path = dir + "/prefs.db";
  {  // Everything into the main file, then garbage over one of its pages.
    sqlite3* db = nullptr;
    sqlite3_open(db_path.c_str(), &db);
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    std::fstream f(db_path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);  // page 2: a b-tree page's header and cell pointers
    const std::string junk(64, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  const std::string bytes_before = read_file(db_path), metrics_before = read_file(dir + "/metrics.jsonl");
  auto r = run_prefrl("train --resume " + dir);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("preference database '" + db_path + "' is corrupt"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_EQ(read_file(db_path), bytes_before);
  EXPECT_EQ(read_file(dir + "/metrics.jsonl"), metrics_before);
  fs::remove_all(dir);
}

TEST_F(Resume, FullDiskStopsWithAClearMessageAndTheLastCheckpointIntact) {
  // A file-size limit (ulimit -f, 1 KiB blocks) some file of the run reaches part-way: the
  // database's write-ahead log, metrics.jsonl or a checkpoint file, whichever grows first.
  // Start just above the first checkpoint's largest file and double until a checkpoint was
  // written before the failure.
  int64_t first = 0;
  for (const auto& e : fs::directory_iterator(list_checkpoints(baseline_ + "/checkpoints").front()))
    first = std::max<int64_t>(first, static_cast<int64_t>(e.file_size()));
  const std::string dir = temp_path("resume_full");
  std::string out;
  int rc = -1;
  int64_t limit_kb = first / 1024 + 16;
  for (int attempt = 0; attempt < 6; ++attempt, limit_kb *= 2) {
    fs::remove_all(dir);
    const std::string cmd = "sh -c 'ulimit -f " + std::to_string(limit_kb) + "; exec " + PREFRL_BINARY + " " + kArgs +
                            " --run-dir " + dir + "' 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    out.clear();
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = ::pclose(p);
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (rc != 1 || !list_checkpoints(dir + "/checkpoints").empty()) break;
  }
  RecordProperty("ulimit_f_kb", std::to_string(limit_kb));
  ASSERT_EQ(rc, 1) << "ulimit -f " << limit_kb << ":\n" << out;
  EXPECT_TRUE(out.find("File too large") != std::string::npos) << out;
  EXPECT_NE(out.find("the last checkpoint is " + dir + "/checkpoints/ckpt-"), std::string::npos) << out;
  std::vector<std::string> problems;
  const auto good = find_checkpoint(dir + "/checkpoints", &problems);
  ASSERT_TRUE(good) << out;
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/summary.json"))["status"], "failed");
  // With space again, the run resumes and ends as if nothing had happened.
  auto r = run_prefrl("train --resume " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_same_as(baseline_, dir);
  fs::remove_all(dir);
}

TEST_F(Resume, ChangedFlagNeedsOverrideAndIsRecorded) {
  const std::string dir = stopped_run("resume_override");
  const std::string metrics_before = read_file(dir + "/metrics.jsonl");
  auto r = run_prefrl("train --resume " + dir + " --steps 16384");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("run.total_steps would change from 12288 to 16384"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(dir + "/metrics.jsonl"), metrics_before);
  auto env = run_prefrl("train --resume " + dir + " --env pendulum");
  EXPECT_EQ(env.exit_code, 2) << env.out;
  auto override_only = run_prefrl("train --env cartpole --override");
  EXPECT_EQ(override_only.exit_code, 2) << override_only.out;
  auto bad = run_prefrl("train --resume " + dir + " --set ppo.lr=banana --override");
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find("banana"), std::string::npos) << bad.out;
  auto ok = run_prefrl("train --resume " + dir + " --steps 14336 --override");
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  const auto record = nlohmann::json::parse(read_file(dir + "/resumes.jsonl").substr(0, read_file(dir + "/resumes.jsonl").find('\n')));
  EXPECT_EQ(record["overrides"]["run.total_steps"]["from"], "12288");
  EXPECT_EQ(record["overrides"]["run.total_steps"]["to"], "14336");
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/config.json"))["run"]["total_steps"], 14336);
  EXPECT_GE(nlohmann::json::parse(read_file(dir + "/summary.json"))["env_steps"].get<int64_t>(), 14336);
  fs::remove_all(dir);
}

TEST(ResumeUsage, MissingOrNonRunDirectoryIsAUsageError) {
  auto r = run_prefrl("train --resume /nonexistent/run");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("/nonexistent/run"), std::string::npos) << r.out;
  const std::string dir = temp_path("resume_empty");
  fs::create_directories(dir);
  auto e = run_prefrl("train --resume " + dir);
  EXPECT_EQ(e.exit_code, 2) << e.out;
  auto both = run_prefrl("train --resume " + dir + " --run-dir " + dir);
  EXPECT_EQ(both.exit_code, 2) << both.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl

namespace prefrl {
namespace {

// Waits (up to 60 s) for `re` in the file => its first group, or "".
std::string wait_in_file(const std::string& path, const std::string& re) {
  const std::regex r(re);
  for (int i = 0; i < 3000; ++i) {
    std::smatch m;
    const std::string text = read_file(path);
    if (std::regex_search(text, m, r)) return m[1].str();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

// A person answering every query the page gets, until told to stop; counts the answers the
// server confirmed (200).
struct Labeler {
  std::atomic<bool> stop{false};
  std::atomic<int> given{0};
  std::thread thread;
  void start(int port) {
    stop = false;
    thread = std::thread([this, port] {
      httplib::Client c("127.0.0.1", port);
      c.set_connection_timeout(1);
      c.set_read_timeout(2);
      while (!stop) {
        auto r = c.Get("/api/query/next?labeler=ann");
        if (!r || r->status != 200) { std::this_thread::sleep_for(std::chrono::milliseconds(20)); continue; }
        const nlohmann::json q = nlohmann::json::parse(r->body)["query"];
        if (q.is_null()) { std::this_thread::sleep_for(std::chrono::milliseconds(20)); continue; }
        auto l = c.Post("/api/label", nlohmann::json{{"query_id", q["id"]}, {"choice", "left"}, {"labeler", "ann"}}.dump(),
                        "application/json");
        if (l && l->status == 200) ++given;
      }
    });
  }
  void join() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

TEST(ResumeHuman, KilledWhilePeopleLabelResumesWithEveryLabelKeptOnce) {
  const std::string dir = temp_path("resume_human");
  const std::string args = "train --env cartpole --teacher human --port 0 --labels 24 --steps 8192 --seed 3 --threads 1 "
                           "--set prefs.initial_fraction=0.25 --set server.undo_window_s=0 --set server.frame_size=16 "
                           "--set server.max_label_lag=0 --set run.checkpoint_every=1 --set run.progress_every_s=0 "
                           "--set run.eval_episodes=1 --run-dir " + dir;
  const pid_t pid = spawn_prefrl(args, dir + ".out");
  const std::string port = wait_in_file(dir + ".out", R"(labeling page: http://127\.0\.0\.1:(\d+)/)");
  ASSERT_FALSE(port.empty()) << read_file(dir + ".out");
  Labeler ann;
  ann.start(std::stoi(port));
  for (int i = 0; i < 3000 && (ann.given < 12 || list_checkpoints(dir + "/checkpoints").empty()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ::kill(pid, SIGKILL);
  wait_exit(pid);
  ann.join();
  const int before = ann.given;
  ASSERT_GE(before, 12) << read_file(dir + ".out");
  // Resumed: the people go on labeling on the new page.
  const pid_t pid2 = spawn_prefrl("train --resume " + dir, dir + ".out2");
  const std::string port2 = wait_in_file(dir + ".out2", R"(labeling page: http://127\.0\.0\.1:(\d+)/)");
  ASSERT_FALSE(port2.empty()) << read_file(dir + ".out2");
  ann.start(std::stoi(port2));
  const int rc = wait_exit(pid2);
  ann.join();
  ASSERT_EQ(rc, 0) << read_file(dir + ".out2");
  EXPECT_GT(ann.given, before);
  // Every confirmed answer is in the database exactly once (an answer committed just as the
  // trainer was killed may be there without its reply having arrived).
  const std::string db = dir + "/prefs.db";
  EXPECT_GE(sql_int(db, "SELECT count(*) FROM labels"), ann.given);
  EXPECT_LE(sql_int(db, "SELECT count(*) FROM labels"), ann.given + 1);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM (SELECT query_id FROM labels GROUP BY query_id HAVING count(*) > 1)"), 0);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM (SELECT 1 FROM queries GROUP BY left_id, right_id HAVING count(*) > 1)"), 0);
  EXPECT_EQ(integrity(db), "ok");
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/summary.json"))["status"], "finished");
  auto verify = run_prefrl("runs verify " + dir);
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
  fs::remove_all(dir);
  fs::remove(dir + ".out");
  fs::remove(dir + ".out2");
}

}  // namespace
}  // namespace prefrl
