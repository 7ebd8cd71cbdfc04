// `prefrl train --teacher human` and `prefrl label`, end to end through the real binary and
// the JSON API: pre-training waits for people, training then runs to the end with queries
// still pending, and `prefrl label` serves those afterwards.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "prefrl/prefs/sqlite_pref_store.h"
#include "test_util.h"

namespace prefrl {
namespace {

using nlohmann::json;
using testing::Running;
using testing::read_file;
using testing::temp_path;

// Answers every query the server hands `labeler`, left always; returns how many.
int answer_all(httplib::Client& c, const std::string& labeler) {
  int n = 0;
  for (;;) {
    auto r = c.Get(("/api/query/next?labeler=" + labeler).c_str());
    if (!r || r->status != 200) return n;
    json q = json::parse(r->body)["query"];
    if (q.is_null()) return n;
    auto l = c.Post("/api/label", json{{"query_id", q["id"]}, {"choice", "left"}, {"labeler", labeler}}.dump(),
                    "application/json");
    if (!l || l->status != 200) return n;
    ++n;
  }
}

TEST(HumanTeacher, PreTrainingWaitsForPeopleAndPrefrlLabelServesTheRest) {
  const std::string dir = temp_path("human");
  Running train("train --env cartpole --teacher human --port 0 --labels 12 --steps 4096 --seed 3 --run-dir " + dir +
                " --set prefs.initial_fraction=0.5 --set server.undo_window_s=0 --set server.frame_size=32"
                " --set health.label_wait_s=0.5");
  const std::string port = train.wait_for(R"(labeling page: http://127\.0\.0\.1:(\d+)/)");
  ASSERT_FALSE(port.empty()) << train.out();
  ASSERT_FALSE(train.wait_for("waiting for the first labels: 0 of 6 given").empty()) << train.out();
  // Nobody labels for longer than health.label_wait_s: the trainer warns, while it waits.
  ASSERT_FALSE(train.wait_for(R"(health warning \[label_wait\] at step \d+: waiting for people's labels)").empty())
      << train.out();
  httplib::Client c("127.0.0.1", std::stoi(port));
  // The run is on the dashboard, running.
  auto runs = c.Get("/api/runs");
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->status, 200);
  bool listed = false;
  const json listing = json::parse(runs->body);
  for (const auto& r : listing["runs"])
    listed |= r["name"] == std::filesystem::path(dir).filename().string() && r["status"] == "running";
  EXPECT_TRUE(listed) << runs->body;
  auto st = c.Get("/api/status");
  ASSERT_TRUE(st);
  json status = json::parse(st->body);
  EXPECT_EQ(status["run"]["phase"], "waiting");
  EXPECT_EQ(status["run"]["labels_needed"], 6);
  EXPECT_EQ(status["pending"], 6);
  // The page itself is served by the trainer.
  auto index = c.Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  int given = answer_all(c, "ann");
  EXPECT_GE(given, 6);
  ASSERT_EQ(train.finish(), 0) << train.out();
  EXPECT_NE(train.out().find("the first 6 labels are in"), std::string::npos) << train.out();
  json summary = json::parse(read_file(dir + "/summary.json"));
  EXPECT_EQ(summary["status"], "finished");
  EXPECT_EQ(summary["health"]["label_wait"], 1);
  EXPECT_NE(read_file(dir + "/health.jsonl").find("\"label_wait\""), std::string::npos);

  int64_t pending = 0;
  {
    SqlitePrefStore db(dir + "/prefs.db");
    pending = db.count_pending();
    EXPECT_EQ(db.count_labels(), given);
    for (const Label& l : db.labels()) {
      EXPECT_EQ(l.teacher, "human");
      EXPECT_EQ(l.labeler, "ann");
    }
  }
  ASSERT_GT(pending, 0) << "training should end with queries still pending";

  Running label("label " + dir + " --port 0 --exit-when-done");
  const std::string port2 = label.wait_for(R"(labeling page: http://127\.0\.0\.1:(\d+)/)");
  ASSERT_FALSE(port2.empty()) << label.out();
  httplib::Client c2("127.0.0.1", std::stoi(port2));
  EXPECT_EQ(answer_all(c2, "bea"), pending);
  ASSERT_EQ(label.finish(), 0) << label.out();
  SqlitePrefStore db(dir + "/prefs.db");
  EXPECT_EQ(db.count_pending(), 0);
  EXPECT_EQ(db.count_labels(), given + pending);
  EXPECT_EQ(db.integrity_check(), "ok");
  std::filesystem::remove_all(dir);
}

TEST(HumanTeacher, BusyPortAndBadServerSettingsAreUsageErrors) {
  httplib::Server blocker;
  const int port = blocker.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  const std::string dir = temp_path("human_busy");
  auto r = testing::run_prefrl("train --env cartpole --teacher human --port " + std::to_string(port) + " --run-dir " + dir);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("cannot serve on 127.0.0.1:" + std::to_string(port)), std::string::npos) << r.out;
  auto bad = testing::run_prefrl("train --env cartpole --teacher human --port 70000 --run-dir " + dir + "x");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("server.port"), std::string::npos) << bad.out;
  auto tok = testing::run_prefrl("train --env cartpole --teacher human --token 'a b' --run-dir " + dir + "y");
  EXPECT_EQ(tok.exit_code, 2);
  EXPECT_NE(tok.out.find("token"), std::string::npos) << tok.out;
  auto norun = testing::run_prefrl("label /nonexistent/run");
  EXPECT_EQ(norun.exit_code, 2) << norun.out;
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(dir + "x");
  std::filesystem::remove_all(dir + "y");
}

}  // namespace
}  // namespace prefrl
