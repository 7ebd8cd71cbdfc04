// Exploring clips (prefs.explore_clips): the epsilon policy's rate and draws, the clips they give,
// and a run that asks about them.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "prefrl/app/queries.h"
#include "prefrl/app/rollout.h"
#include "prefrl/core/error.h"
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

// Always the same action (discrete: `discrete_action`; continuous: 0.5 everywhere).
class FixedPolicy : public ActingPolicy {
 public:
  FixedPolicy(int64_t width, float value) : width_(width), value_(value) {}
  void act(const float*, int n, float* actions, bool deterministic) override {
    EXPECT_TRUE(deterministic);
    std::fill_n(actions, n * width_, value_);
  }

 private:
  int64_t width_;
  float value_;
};

TEST(EpsilonPolicy, ZeroKeepsEveryActionAndOneDrawsUniformly) {
  const Space five = Space::discrete_n(5);
  FixedPolicy base(1, 3.0f);
  std::vector<float> obs(64, 0.0f), a(64);
  EpsilonPolicy never(base, five, 0.0, 7);
  never.act(obs.data(), 64, a.data(), true);
  for (float x : a) EXPECT_EQ(x, 3.0f);

  EpsilonPolicy always(base, five, 1.0, 7);
  std::map<int, int> hits;
  for (int r = 0; r < 500; ++r) {
    always.act(obs.data(), 64, a.data(), true);
    for (float x : a) ++hits[static_cast<int>(x)];
  }
  ASSERT_EQ(hits.size(), 5u);  // 32,000 draws: 6,400 each expected, sd ~72
  for (const auto& [k, n] : hits) {
    EXPECT_GE(k, 0);
    EXPECT_LT(k, 5);
    EXPECT_NEAR(n, 6400, 400) << "action " << k;
  }
}

TEST(EpsilonPolicy, ReplacesAtItsRateWithDrawsThatDoNotDependOnTheActions) {
  const Space five = Space::discrete_n(5);
  FixedPolicy zeros(1, 0.0f), threes(1, 3.0f);
  EpsilonPolicy a(zeros, five, 0.25, 11), b(threes, five, 0.25, 11);
  std::vector<float> obs(100, 0.0f), xa(100), xb(100);
  int changed = 0, total = 0;
  for (int r = 0; r < 400; ++r) {
    a.act(obs.data(), 100, xa.data(), true);
    b.act(obs.data(), 100, xb.data(), true);
    for (int i = 0; i < 100; ++i) {
      // The same draws: where one was replaced, so was the other, and by the same action.
      const bool ra = xa[i] != 0.0f, rb = xb[i] != 3.0f;
      if (ra) ASSERT_EQ(xa[i], xb[i]);
      if (rb && xb[i] != 0.0f) ASSERT_EQ(xa[i], xb[i]);
      changed += ra;
      ++total;
    }
  }
  // P(an action other than 0) = 0.25 x 4/5 = 0.2: 8,000 of 40,000, sd 80.
  EXPECT_NEAR(changed, 8000, 400);
}

TEST(EpsilonPolicy, ContinuousActionsAreDrawnInsideTheBoxAndUnboundedBoxesAreRefused) {
  const Space box = Space::box({2}, {-1.0f, 0.0f}, {1.0f, 4.0f});
  FixedPolicy base(2, 0.5f);
  EpsilonPolicy p(base, box, 0.5, 3);
  std::vector<float> obs(10, 0.0f), a(20);
  int replaced = 0;
  for (int r = 0; r < 200; ++r) {
    p.act(obs.data(), 10, a.data(), true);
    for (int i = 0; i < 10; ++i) {
      const float x = a[2 * i], y = a[2 * i + 1];
      if (x == 0.5f && y == 0.5f) continue;  // kept
      ++replaced;
      EXPECT_GE(x, -1.0f); EXPECT_LE(x, 1.0f);
      EXPECT_GE(y, 0.0f); EXPECT_LE(y, 4.0f);
    }
  }
  EXPECT_NEAR(replaced, 1000, 100);  // 2,000 actions at rate 0.5, sd ~22
  const Space open = Space::box({1}, {-INFINITY}, {INFINITY});
  EXPECT_THROW(EpsilonPolicy(base, open, 0.5, 3), UsageError);
}

const std::string kMovingdot =
    "train --preset movingdot --env movingdot --steps 8192 --labels 40 --threads 1 --set run.eval_episodes=2 "
    "--set run.progress_every_s=0 --set prefs.explore_clips=4 --set prefs.explore_epsilon=0.5";

TEST(ExploreClips, ARunAsksAboutClipsOfExploringEpisodesAndTheSameSeedRepeatsIt) {
  const std::string a = temp_path("explore_a"), b = temp_path("explore_b");
  for (const std::string& dir : {a, b}) {
    auto r = run_prefrl(kMovingdot + " --seed 3 --run-dir " + dir);
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  EXPECT_NE(read_file(a + "/log.txt").find("exploring clips: 4 per iteration, from episodes of 50 steps"),
            std::string::npos);
  // 8 envs: clips of exploring episodes carry env_index >= 8, and some were asked about.
  const std::string db = a + "/prefs.db";
  const int64_t explored = sql_int(
      db, "SELECT count(*) FROM queries q JOIN segments s ON s.id = q.left_id OR s.id = q.right_id "
          "WHERE s.env_index >= 8");
  const int64_t asked_after_start = sql_int(db, "SELECT count(*) FROM queries WHERE source != 'initial'");
  EXPECT_GT(asked_after_start, 0);
  EXPECT_GT(explored, 0);
  // The metric counts them: its records sum to the queries (after pre-training) with such a clip.
  const int64_t explored_queries = sql_int(
      db, "SELECT count(DISTINCT q.id) FROM queries q JOIN segments s ON s.id = q.left_id OR s.id = q.right_id "
          "WHERE s.env_index >= 8 AND q.source != 'initial'");
  double metric_sum = 0;
  int records = 0;
  std::istringstream lines(read_file(a + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["name"] == "prefs/explored_queries") {
      metric_sum += j["value"].get<double>();
      ++records;
    }
  }
  EXPECT_GT(records, 0);
  EXPECT_GT(explored_queries, 0);
  EXPECT_EQ(static_cast<int64_t>(metric_sum), explored_queries);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM segments WHERE env_index >= 12"), 0);  // 4 exploring envs
  const MetricsComparison c = compare_metrics(a + "/metrics.jsonl", b + "/metrics.jsonl");
  EXPECT_TRUE(c.agree) << "line " << c.first_difference << ":\n" << c.line_a << "\n" << c.line_b;
  EXPECT_EQ(sql_int(a + "/prefs.db", "SELECT count(*) FROM segments"),
            sql_int(b + "/prefs.db", "SELECT count(*) FROM segments"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(ExploreClips, EpisodesShorterThanAClipAreRefused) {
  const std::string dir = temp_path("explore_short");
  auto r = run_prefrl(kMovingdot + " --seed 1 --set prefs.explore_steps=10 --run-dir " + dir);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("exploring episodes of 10 steps are shorter than a clip (25 steps)"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl
