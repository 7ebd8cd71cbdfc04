#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "prefrl/core/error.h"
#include "prefrl/tracking/metrics.h"
#include "prefrl/tracking/run_dir.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("prefrl_tracking_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

TEST(MetricWriter, WritesOneJsonObjectPerLine) {
  const std::string dir = temp_dir("metrics");
  fs::create_directories(dir);
  {
    MetricWriter w(dir + "/metrics.jsonl");
    w.log("charts/episodic_return", 12.5, 100);
    w.log("reward/true_corr", std::nan(""), 200);
    w.log("losses/x", -INFINITY, 300);
  }
  std::ifstream f(dir + "/metrics.jsonl");
  std::string line;
  std::vector<nlohmann::json> rows;
  while (std::getline(f, line)) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["name"], "charts/episodic_return");
  EXPECT_EQ(rows[0]["value"].get<double>(), 12.5);
  EXPECT_EQ(rows[0]["step"].get<int64_t>(), 100);
  EXPECT_TRUE(rows[0].contains("wall_time"));
  EXPECT_TRUE(rows[1]["value"].is_null());
  EXPECT_EQ(rows[1]["nonfinite"], "nan");
  EXPECT_EQ(rows[2]["nonfinite"], "-inf");
  fs::remove_all(dir);
}

TEST(RunDir, CreatesAndRefusesExistingRun) {
  const std::string dir = temp_dir("run");
  RunDir run = RunDir::create(dir);
  EXPECT_TRUE(fs::is_directory(dir + "/checkpoints"));
  run.write_json("config.json", {{"a", 1}});
  EXPECT_EQ(run.read_json("config.json")["a"], 1);
  { std::ofstream(dir + "/metrics.jsonl") << "{}\n"; }
  EXPECT_THROW(RunDir::create(dir), UsageError);
  EXPECT_NO_THROW(RunDir::open(dir));
  EXPECT_THROW(RunDir::open(dir + "/nope"), UsageError);
  fs::remove_all(dir);
}

TEST(RunDir, UnwritableDirectoryIsAUsageError) {
  if (::geteuid() == 0) {
    // root can write anywhere; a path under a regular file can't be created by anyone.
    const std::string f = temp_dir("file");
    { std::ofstream(f) << "x"; }
    EXPECT_THROW(RunDir::create(f + "/sub"), UsageError);
    fs::remove(f);
  } else {
    EXPECT_THROW(RunDir::create("/proc/prefrl_cannot_create"), UsageError);
  }
}

TEST(RunDir, AtomicWriteLeavesNoTemporary) {
  const std::string dir = temp_dir("atomic");
  fs::create_directories(dir);
  write_file_atomic(dir + "/x.json", "{\"v\": 1}\n");
  write_file_atomic(dir + "/x.json", "{\"v\": 2}\n");
  std::ifstream f(dir + "/x.json");
  EXPECT_EQ(nlohmann::json::parse(f)["v"], 2);
  EXPECT_FALSE(fs::exists(dir + "/x.json.tmp"));
  fs::remove_all(dir);
}

TEST(Memory, ResidentMemoryIsPositive) { EXPECT_GT(resident_memory_mb(), 0.0); }

}  // namespace
}  // namespace prefrl
