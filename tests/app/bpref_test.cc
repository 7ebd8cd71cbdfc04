// B-Pref in a run: the named teacher's knob in the log, its answers in prefs.db under its name,
// skipped queries counted against the budget and in prefs/skipped_queries; the query schemes
// choosing a run's queries.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "sql_util.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

using testing::read_file;
using testing::run_prefrl;
using testing::sql_int;
using testing::temp_path;

double metric_sum(const std::string& run, const std::string& name, int* records) {
  double sum = 0;
  *records = 0;
  std::istringstream lines(read_file(run + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["name"] != name) continue;
    sum += j["value"].get<double>();
    ++*records;
  }
  return sum;
}

const std::string kCartpole = "train --env cartpole --steps 6144 --labels 60 --seed 2 --set run.eval_episodes=1";

TEST(BPrefTeachers, ASkipTeacherSkipsAndTheBudgetCountsIt) {
  const std::string dir = temp_path("bpref_skip");
  // delta_skip far above any clip's return: every query skipped.
  auto r = run_prefrl(kCartpole + " --teacher skip --set teacher.skip=1000 --run-dir " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(read_file(dir + "/log.txt").find("teacher skip: skip 1000"), std::string::npos);
  const std::string db = dir + "/prefs.db";
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM queries"), 60);  // the whole budget asked
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM labels WHERE choice = 'skip' AND labeler = 'skip'"), 60);
  int records = 0;
  const double skipped = metric_sum(dir, "prefs/skipped_queries", &records);
  EXPECT_GT(records, 0);
  EXPECT_EQ(static_cast<int64_t>(skipped),
            sql_int(db, "SELECT count(*) FROM labels l JOIN queries q ON q.id = l.query_id "
                        "WHERE l.choice = 'skip' AND q.source != 'initial'"));
  EXPECT_GT(skipped, 0);
  fs::remove_all(dir);
}

TEST(BPrefTeachers, NamedTeachersAnswerUnderTheirNamesAndAnOracleRunHasNoSkipMetric) {
  const std::string base = temp_path("bpref_named");
  for (const auto& [kind, knob] : {std::pair{"myopic", "gamma 0.9"}, std::pair{"noisy", "beta 1"}}) {
    const std::string dir = base + "/" + kind;
    auto r = run_prefrl(kCartpole + " --teacher " + kind + " --run-dir " + dir);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(read_file(dir + "/log.txt").find(std::string("teacher ") + kind + ": " + knob), std::string::npos);
    EXPECT_EQ(sql_int(dir + "/prefs.db", std::string("SELECT count(*) FROM labels WHERE labeler = '") + kind + "'"), 60);
    EXPECT_EQ(sql_int(dir + "/prefs.db", "SELECT count(*) FROM labels WHERE choice = 'skip'"), 0);
  }
  const std::string oracle = base + "/oracle";
  auto r = run_prefrl(kCartpole + " --run-dir " + oracle);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  int records = 0;
  metric_sum(oracle, "prefs/skipped_queries", &records);
  EXPECT_EQ(records, 0);
  EXPECT_EQ(read_file(oracle + "/log.txt").find("teacher oracle:"), std::string::npos);
  fs::remove_all(base);
}

TEST(BPrefQueries, EverySchemeChoosesARunsQueries) {
  const std::string base = temp_path("bpref_queries");
  for (const std::string method : {"entropy", "kcenter", "kcenter_disagreement", "kcenter_entropy"}) {
    const std::string dir = base + "/" + method;
    auto r = run_prefrl(kCartpole + " --set prefs.selection=" + method + " --run-dir " + dir);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const std::string db = dir + "/prefs.db";
    EXPECT_EQ(sql_int(db, "SELECT count(*) FROM queries"), 60) << method;
    EXPECT_GT(sql_int(db, "SELECT count(*) FROM queries WHERE source = '" + method + "'"), 0) << method;
    EXPECT_EQ(sql_int(db, "SELECT count(*) FROM queries WHERE source NOT IN ('initial', '" + method + "')"), 0);
  }
  fs::remove_all(base);
}

}  // namespace
}  // namespace prefrl
