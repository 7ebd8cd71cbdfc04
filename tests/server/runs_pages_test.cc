// The run dashboard over real HTTP: /runs and /api/runs list the runs and sweeps under the
// server's runs root, /runs/NAME serves a report, secrets stay hidden, names cannot reach
// outside the root, and the token rules hold.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "prefrl/prefs/sqlite_pref_store.h"
#include "prefrl/server/label_server.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RunsPagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("prefrl_test_runs_pages_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    root_ = dir_ / "runs";
    make_run(root_ / "cartpole-oracle-s1", 1, "finished");
    make_run(root_ / "sweep-cartpole" / "seed-1", 1, "finished");
    make_run(root_ / "sweep-cartpole" / "seed-2", 2, "failed");
    std::ofstream(root_ / "sweep-cartpole" / "sweep.json")
        << json{{"env", "cartpole"}, {"status", "finished"}, {"threshold", 475.0}, {"command", "prefrl sweep"},
                {"runs", {{{"seed", 1}, {"run", "seed-1"}, {"exit_code", 0}}, {{"seed", 2}, {"run", "seed-2"}, {"exit_code", 1}}}}}
               .dump();
    fs::create_directories(dir_ / "secret");
    std::ofstream(dir_ / "secret" / "config.json") << "{\"outside\": true}";
    { SqlitePrefStore db((dir_ / "prefs.db").string()); }
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  void make_run(const fs::path& d, int seed, const std::string& status) {
    fs::create_directories(d);
    std::ofstream(d / "config.json") << json{{"env", {{"name", "cartpole"}}}, {"run", {{"seed", seed}, {"total_steps", 512}}},
                                             {"teacher", {{"kind", "oracle"}}}, {"server", {{"token", "hunter2-secret"}}}}
                                            .dump();
    std::ofstream(d / "meta.json") << json{{"git_commit", "abc"}, {"started_at", "2024-01-01T00:00:00Z"}}.dump();
    std::ofstream(d / "summary.json") << json{{"status", status}, {"env_steps", 512}, {"labels", 10}, {"wall_s", 1.0},
                                              {"eval", {{"episodes", 2}, {"mean_return", 100.0 + seed}}}}
                                             .dump();
    std::ofstream m(d / "metrics.jsonl");
    for (int i = 1; i <= 4; ++i)
      m << json{{"name", "charts/episodic_return"}, {"value", 10.0 * i}, {"step", 128 * i}, {"wall_time", 0.1}}.dump() << "\n";
  }
  // A labeling server with the run dashboard of `root`; dashboard_only: no database (`prefrl runs serve`).
  void start(const std::string& root, const std::string& token = "", bool dashboard_only = false) {
    ServerConfig cfg;
    cfg.port = 0;
    cfg.token = token;
    server_ = dashboard_only ? std::make_unique<LabelServer>(cfg, "", "", "", root)
                             : std::make_unique<LabelServer>(cfg, (dir_ / "prefs.db").string(), "cartpole", "test-run", root);
    server_->start();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  // GET path => its status (-1 if no response), body into *body.
  int status_of(const std::string& path, std::string* body = nullptr, const httplib::Headers& headers = {}) {
    auto r = client_->Get(path.c_str(), headers);
    if (!r) return -1;
    if (body) *body = r->body;
    return r->status;
  }
  fs::path dir_, root_;
  std::unique_ptr<LabelServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(RunsPagesTest, IndexAndReportsOfRunsAndSweeps) {
  start(root_.string());
  auto r = client_->Get("/runs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  for (const char* s : {"cartpole-oracle-s1", "sweep-cartpole/seed-2", "href=\"/runs/sweep-cartpole\"", "failed"})
    EXPECT_NE(r->body.find(s), std::string::npos) << s;
  EXPECT_NE(r->body.find("http-equiv=\"refresh\""), std::string::npos);  // the index refreshes itself

  r = client_->Get("/runs/cartpole-oracle-s1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("True return"), std::string::npos);
  EXPECT_NE(r->body.find("<svg"), std::string::npos);
  EXPECT_EQ(r->body.find("hunter2"), std::string::npos);

  r = client_->Get("/runs/sweep-cartpole");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("Sweep sweep-cartpole"), std::string::npos);
  EXPECT_NE(r->body.find("href=\"/runs/sweep-cartpole/seed-1\""), std::string::npos);
  r = client_->Get("/runs/sweep-cartpole/seed-2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("sweep-cartpole/seed-2"), std::string::npos);
}

TEST_F(RunsPagesTest, JsonApi) {
  start(root_.string());
  auto r = client_->Get("/api/runs");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  json j = json::parse(r->body);
  ASSERT_EQ(j["runs"].size(), 3u);
  std::map<std::string, json> by;
  for (const auto& run : j["runs"]) by[run["name"]] = run;
  EXPECT_EQ(by["cartpole-oracle-s1"]["status"], "finished");
  EXPECT_EQ(by["cartpole-oracle-s1"]["final_return"], 101.0);
  EXPECT_EQ(by["sweep-cartpole/seed-2"]["status"], "failed");
  ASSERT_EQ(j["sweeps"].size(), 1u);
  EXPECT_EQ(j["sweeps"][0]["name"], "sweep-cartpole");
  EXPECT_EQ(j["sweeps"][0]["n_finished"], 1);

  r = client_->Get("/api/runs/cartpole-oracle-s1");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  j = json::parse(r->body);
  EXPECT_EQ(j["kind"], "run");
  EXPECT_EQ(j["config"]["server"]["token"], "(hidden)");
  EXPECT_EQ(r->body.find("hunter2"), std::string::npos);
  ASSERT_EQ(j["metrics"]["charts/episodic_return"].size(), 4u);
  EXPECT_EQ(j["metrics"]["charts/episodic_return"][3][0], 512);
  EXPECT_EQ(j["metrics"]["charts/episodic_return"][3][1], 40.0);
  EXPECT_TRUE(j["health"].is_array());

  r = client_->Get("/api/runs/sweep-cartpole");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  j = json::parse(r->body);
  EXPECT_EQ(j["kind"], "sweep");
  EXPECT_EQ(j["figures"]["seeds"][1]["status"], "failed");
}

TEST_F(RunsPagesTest, NamesCannotLeaveTheRoot) {
  start(root_.string());
  for (const char* path : {"/runs/nope", "/api/runs/nope", "/runs/..", "/runs/../secret", "/api/runs/../secret",
                           "/runs/%2e%2e/secret", "/runs/sweep-cartpole/..", "/runs/.hidden", "/runs/a/b/c",
                           "/api/runs/sweep-cartpole/seed-1/../../../secret"}) {
    std::string body;
    EXPECT_EQ(status_of(path, &body), 404) << path << ": " << body;
    EXPECT_EQ(body.find("outside"), std::string::npos) << path;
  }
}

TEST_F(RunsPagesTest, TokenRulesApply) {
  start(root_.string(), "a-long-token-123");
  EXPECT_EQ(status_of("/runs"), 401);
  EXPECT_EQ(status_of("/api/runs/cartpole-oracle-s1"), 401);
  EXPECT_EQ(status_of("/runs?token=a-long-token-123"), 200);
  EXPECT_EQ(status_of("/api/runs", nullptr, {{"Authorization", "Bearer a-long-token-123"}}), 200);
}

TEST_F(RunsPagesTest, TheDashboardAloneHasNoLabelingRoutes) {
  start(root_.string(), "", /*dashboard_only=*/true);
  EXPECT_EQ(server_->runs_url(), "http://127.0.0.1:" + std::to_string(server_->port()) + "/runs");
  auto r = client_->Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->get_header_value("Location"), "/runs");
  r = client_->Get("/runs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("cartpole-oracle-s1"), std::string::npos);
  for (const char* path : {"/api/status", "/api/query/next?labeler=a", "/app.js", "/media/segment/1.png"})
    EXPECT_EQ(status_of(path), 404) << path;
  r = client_->Post("/api/label", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
}

TEST_F(RunsPagesTest, WithoutARunsRootThereIsNothingToShow) {
  start("");
  std::string body;
  EXPECT_EQ(status_of("/runs", &body), 404);
  EXPECT_NE(body.find("no runs directory"), std::string::npos);
  EXPECT_EQ(status_of("/api/runs"), 404);
  EXPECT_EQ(status_of("/"), 200);  // the labeling page is still there
}

}  // namespace
}  // namespace prefrl
