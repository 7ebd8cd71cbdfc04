// The labeling server over real HTTP: the JSON API, leases between pages, k answers per
// query, undo, media, and every kind of bad input (status, message, database unchanged).
#include <gtest/gtest.h>
#include <httplib.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"
#include "prefrl/prefs/sqlite_pref_store.h"
#include "prefrl/server/clip_media.h"
#include "prefrl/server/label_server.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Pendulum clips of random actions (so that they render), `L` steps each.
std::vector<Segment> pendulum_segments(int count, int L, uint64_t seed) {
  auto env = make_env("pendulum");
  env->seed(seed);
  const int64_t D = env->spec().observation.numel();
  std::vector<float> obs(D);
  Rng rng(seed);
  std::vector<Segment> out;
  for (int k = 0; k < count; ++k) {
    env->reset(obs.data());
    Segment s;
    s.length = L;
    s.obs_size = D;
    s.act_size = 1;
    for (int t = 0; t < L; ++t) {
      s.obs.insert(s.obs.end(), obs.begin(), obs.end());
      float a = static_cast<float>(rng.uniform(-2, 2));
      StepResult r = env->step(&a, obs.data());
      s.actions.push_back(a);
      s.true_rewards.push_back(r.reward);
      s.absorbing.push_back(0);
    }
    s.env_step = k * L;
    out.push_back(s);
  }
  return out;
}

// Everything the API could change, as text: labels and the status of queries.
std::string fingerprint(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  std::string out;
  for (const char* sql : {"SELECT id, query_id, choice, teacher, labeler, undone, used FROM labels ORDER BY id",
                          "SELECT id, status FROM queries ORDER BY id", "SELECT count(*) FROM segments"}) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const unsigned char* t = sqlite3_column_text(st, c);
        out += t ? reinterpret_cast<const char*>(t) : "NULL";
        out += '|';
      }
      out += '\n';
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

class LabelServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("prefrl_test_server_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_path_ = (dir_ / "prefs.db").string();
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  // A database with `n` pending queries over 2n pendulum clips; starts a server on it.
  void start(int n, ServerConfig cfg = {}, int answers = 1) {
    {
      SqlitePrefStore db(db_path_);
      std::vector<Segment> segs = pendulum_segments(2 * n, 12, 5);
      db.add_segments(segs);
      std::vector<Query> qs;
      for (int i = 0; i < n; ++i) {
        Query q;
        q.left_id = segs[2 * i].id;
        q.right_id = segs[2 * i + 1].id;
        q.source = "uniform";
        q.answers_wanted = answers;
        qs.push_back(q);
      }
      db.add_queries(qs);
    }
    cfg.port = 0;
    cfg.frame_size = 32;
    server_ = std::make_unique<LabelServer>(cfg, db_path_, "pendulum", "test-run");
    server_->start();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  json next(const std::string& labeler, const std::string& client) {
    auto r = client_->Get(("/api/query/next?labeler=" + labeler + "&client=" + client).c_str());
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body);
  }
  httplib::Result post(const std::string& path, const std::string& body) {
    return client_->Post(path.c_str(), body, "application/json");
  }
  // Expects `status` and a JSON {"error": ...} containing `words`, and no change to the DB.
  void expect_refused(const httplib::Result& r, int status, const std::string& words, const std::string& before) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    json j = json::parse(r->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r->body;
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_NE(j["error"].get<std::string>().find(words), std::string::npos) << j["error"];
    EXPECT_EQ(fingerprint(db_path_), before);
  }
  fs::path dir_;
  std::string db_path_;
  std::unique_ptr<LabelServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(LabelServerTest, LabelsAreCommittedBeforeTheReply) {
  start(3);
  json q = next("ada", "page1");
  ASSERT_FALSE(q["query"].is_null());
  EXPECT_EQ(q["pending"], 3);
  const int64_t id = q["query"]["id"];
  auto r = post("/api/label", json{{"query_id", id}, {"choice", "right"}, {"labeler", "ada"}, {"client", "page1"}}.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["labels"], 1);
  EXPECT_EQ(j["your_labels"], 1);
  EXPECT_EQ(j["pending"], 2);
  SqlitePrefStore db(db_path_);  // another connection sees it at once
  std::vector<Label> labels = db.labels();
  ASSERT_EQ(labels.size(), 1u);
  EXPECT_EQ(labels[0].query_id, id);
  EXPECT_EQ(labels[0].choice, Choice::kRight);
  EXPECT_EQ(labels[0].teacher, "human");
  EXPECT_EQ(labels[0].labeler, "ada");
  // status
  auto s = client_->Get("/api/status?labeler=ada");
  ASSERT_TRUE(s);
  json st = json::parse(s->body);
  EXPECT_EQ(st["labels"], 1);
  EXPECT_EQ(st["your_labels"], 1);
  EXPECT_EQ(st["pending"], 2);
  EXPECT_EQ(st["env"], "pendulum");
}

TEST_F(LabelServerTest, EachPageGetsADifferentQuery) {
  start(3);
  json a = next("ada", "pageA"), b = next("bob", "pageB"), c = next("cy", "pageC");
  EXPECT_NE(a["query"]["id"], b["query"]["id"]);
  EXPECT_NE(a["query"]["id"], c["query"]["id"]);
  EXPECT_NE(b["query"]["id"], c["query"]["id"]);
  // A page asking again keeps its query; a fourth page finds none free.
  EXPECT_EQ(next("ada", "pageA")["query"]["id"], a["query"]["id"]);
  EXPECT_TRUE(next("dee", "pageD")["query"].is_null());
  // Another page may not answer a query held by someone else.
  const std::string before = fingerprint(db_path_);
  expect_refused(post("/api/label", json{{"query_id", a["query"]["id"]}, {"choice", "left"}, {"labeler", "bob"},
                                         {"client", "pageB"}}.dump()),
                 409, "held by another page", before);
}

TEST_F(LabelServerTest, KAnswersFromDifferentLabelers) {
  start(1, {}, 2);
  json a = next("ada", "pa");
  const int64_t id = a["query"]["id"];
  ASSERT_EQ(post("/api/label", json{{"query_id", id}, {"choice", "left"}, {"labeler", "ada"}, {"client", "pa"}}.dump())->status, 200);
  // Still pending for others, but not for ada again.
  EXPECT_TRUE(next("ada", "pa")["query"].is_null());
  json b = next("bob", "pb");
  ASSERT_FALSE(b["query"].is_null());
  EXPECT_EQ(b["query"]["id"], id);
  const std::string before = fingerprint(db_path_);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", "left"}, {"labeler", "ada"}}.dump()), 409,
                 "already answered", before);
  ASSERT_EQ(post("/api/label", json{{"query_id", id}, {"choice", "equal"}, {"labeler", "bob"}, {"client", "pb"}}.dump())->status, 200);
  SqlitePrefStore db(db_path_);
  EXPECT_EQ(db.count_pending(), 0);
  EXPECT_EQ(db.count_labels(), 2);
  const std::string done = fingerprint(db_path_);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", "left"}, {"labeler", "cy"}}.dump()), 409,
                 "already answered", done);
}

TEST_F(LabelServerTest, UndoReturnsTheQueryToTheSamePageUntilItIsUsed) {
  start(3);
  json a = next("ada", "pa");
  const int64_t id = a["query"]["id"];
  ASSERT_EQ(post("/api/label", json{{"query_id", id}, {"choice", "left"}, {"labeler", "ada"}, {"client", "pa"}}.dump())->status, 200);
  json other = next("bob", "pb");  // bob takes another query meanwhile
  auto u = post("/api/undo", json{{"labeler", "ada"}, {"client", "pa"}}.dump());
  ASSERT_TRUE(u);
  ASSERT_EQ(u->status, 200) << u->body;
  EXPECT_EQ(json::parse(u->body)["query_id"], id);
  EXPECT_EQ(next("ada", "pa")["query"]["id"], id);  // shown again
  EXPECT_NE(other["query"]["id"], id);
  {
    SqlitePrefStore db(db_path_);
    EXPECT_EQ(db.count_labels(), 0);
    EXPECT_EQ(db.count_pending(), 3);
  }
  // Nothing left to undo.
  std::string before = fingerprint(db_path_);
  expect_refused(post("/api/undo", json{{"labeler", "ada"}}.dump()), 404, "no label to undo", before);
  // A label training has claimed cannot be undone.
  ASSERT_EQ(post("/api/label", json{{"query_id", id}, {"choice", "right"}, {"labeler", "ada"}, {"client", "pa"}}.dump())->status, 200);
  {
    SqlitePrefStore db(db_path_);
    int64_t last = 0;
    EXPECT_EQ(db.claim_labels(0, 1e300, &last).size(), 1u);
  }
  before = fingerprint(db_path_);
  expect_refused(post("/api/undo", json{{"labeler", "ada"}}.dump()), 409, "already been used", before);
}

TEST_F(LabelServerTest, BadInputGets4xxAndChangesNothing) {
  ServerConfig cfg;
  cfg.max_body_bytes = 1024;
  start(2, cfg);
  const int64_t id = next("ada", "pa")["query"]["id"];
  const std::string before = fingerprint(db_path_);
  expect_refused(post("/api/label", "{not json"), 400, "malformed JSON", before);
  expect_refused(post("/api/label", "[1, 2]"), 400, "JSON object", before);
  expect_refused(post("/api/label", json{{"choice", "left"}, {"labeler", "ada"}}.dump()), 400, "query_id", before);
  expect_refused(post("/api/label", json{{"query_id", "7"}, {"choice", "left"}, {"labeler", "ada"}}.dump()), 400, "query_id", before);
  expect_refused(post("/api/label", json{{"query_id", 999999}, {"choice", "left"}, {"labeler", "ada"}}.dump()), 404,
                 "unknown query id 999999", before);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", "up"}, {"labeler", "ada"}}.dump()), 400,
                 "left, right, equal, skip", before);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", 1}, {"labeler", "ada"}}.dump()), 400, "choice", before);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", "left"}}.dump()), 400, "labeler", before);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", "left"}, {"labeler", ""}}.dump()), 400, "labeler", before);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", "left"}, {"labeler", std::string(65, 'x')}}.dump()), 400,
                 "labeler", before);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", "left"}, {"labeler", "eve"}, {"client", "other"}}.dump()),
                 409, "held by another page", before);
  expect_refused(post("/api/label", std::string(2048, ' ')), 413, "too large", before);
  expect_refused(post("/api/undo", "nope"), 400, "malformed JSON", before);
  expect_refused(post("/api/undo", json{{"labeler", 3}}.dump()), 400, "labeler", before);
  auto r = client_->Get("/api/query/next");
  expect_refused(r, 400, "labeler", before);
  expect_refused(client_->Get("/media/segment/999999.png"), 404, "unknown segment", before);
  // A name full of SQL is just a name (prepared statements only).
  const std::string sql_name = "a'); DROP TABLE labels;--";
  ASSERT_EQ(next(sql_name, "pa")["query"]["id"], id);
  ASSERT_EQ(post("/api/label", json{{"query_id", id}, {"choice", "left"}, {"labeler", sql_name}, {"client", "pa"}}.dump())->status, 200);
  {
    SqlitePrefStore db(db_path_);
    ASSERT_EQ(db.labels().size(), 1u);
    EXPECT_EQ(db.labels()[0].labeler, sql_name);
  }
  // Answered queries: the second answer is refused.
  const std::string after = fingerprint(db_path_);
  expect_refused(post("/api/label", json{{"query_id", id}, {"choice", "right"}, {"labeler", "bob"}}.dump()), 409,
                 "already answered", after);
}

TEST_F(LabelServerTest, StaticFilesOnlyFromTheEmbeddedWebRoot) {
  start(1);
  auto index = client_->Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_NE(index->body.find("Left is better"), std::string::npos);
  EXPECT_NE(index->get_header_value("Content-Type").find("text/html"), std::string::npos);
  for (const char* ok : {"/app.js", "/style.css", "/index.html"}) {
    auto r = client_->Get(ok);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << ok;
  }
  const std::string before = fingerprint(db_path_);
  for (const char* bad : {"/../CMakeLists.txt", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd", "/web/app.js",
                          "/etc/passwd", "/prefs.db", "/.%2e/prefs.db", "/label_server_test.cc"}) {
    auto r = client_->Get(bad);
    ASSERT_TRUE(r) << bad;
    EXPECT_GE(r->status, 400) << bad;
    EXPECT_LT(r->status, 500) << bad;
    EXPECT_EQ(r->body.find("root:"), std::string::npos);
    EXPECT_EQ(r->body.find("SQLite format"), std::string::npos);
  }
  EXPECT_EQ(fingerprint(db_path_), before);
}

TEST_F(LabelServerTest, MediaIsASpriteSheetOfEveryFrame) {
  start(1);
  json q = next("ada", "pa")["query"];
  const json& left = q["left"];
  auto r = client_->Get(left["url"].get<std::string>().c_str());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  std::vector<uint8_t> rgb;
  int w = 0, h = 0;
  ASSERT_TRUE(decode_png(r->body, &rgb, &w, &h));
  const int frames = left["frames"], cols = left["columns"], fw = left["frame_width"], fh = left["frame_height"];
  EXPECT_EQ(frames, 12);
  EXPECT_EQ(w, cols * fw);
  EXPECT_EQ(h, ((frames + cols - 1) / cols) * fh);
  // Frames differ (the pendulum moves) and are not blank.
  auto frame_sum = [&](int k) {
    long s = 0;
    const int ox = (k % cols) * fw, oy = (k / cols) * fh;
    for (int y = 0; y < fh; ++y)
      for (int x = 0; x < fw; ++x)
        for (int c = 0; c < 3; ++c) s += rgb[(static_cast<size_t>(oy + y) * w + ox + x) * 3 + c] * (1 + x + 3 * y);
    return s;
  };
  EXPECT_NE(frame_sum(0), frame_sum(frames - 1));
  EXPECT_GT(left["fps"].get<double>(), 0.0);
}

TEST_F(LabelServerTest, MujocoClipsRenderFromTheirStoredStates) {
  // Hopper observations omit x: the clips carry qpos ++ qvel per step, and the server's worker
  // threads (each with its own GL context) render them, several at once.
  auto env = make_env("hopper");
  const int L = 10;
  std::vector<Segment> segs;
  std::vector<float> obs(11);
  env->seed(4);
  for (int k = 0; k < 4; ++k) {
    env->reset(obs.data());
    Segment s;
    s.length = L;
    s.obs_size = 11;
    s.act_size = 3;
    s.state_size = 12;
    for (int t = 0; t < L; ++t) {
      s.obs.insert(s.obs.end(), obs.begin(), obs.end());
      const std::vector<double> st = env->get_state();
      s.states.insert(s.states.end(), st.begin(), st.end());
      const float a[3] = {1.0f, -1.0f, 0.5f};
      const StepResult r = env->step(a, obs.data());
      s.actions.insert(s.actions.end(), a, a + 3);
      s.true_rewards.push_back(r.reward);
      s.absorbing.push_back(0);
    }
    segs.push_back(s);
  }
  {
    SqlitePrefStore db(db_path_);
    db.add_segments(segs);
  }
  ServerConfig cfg;
  cfg.port = 0;
  cfg.frame_size = 32;
  server_ = std::make_unique<LabelServer>(cfg, db_path_, "hopper", "test-run");
  server_->start();
  std::vector<std::string> bodies(segs.size());
  std::vector<int> status(segs.size(), 0);
  std::vector<std::thread> pages;
  for (size_t k = 0; k < segs.size(); ++k) {
    pages.emplace_back([&, k] {
      httplib::Client c("127.0.0.1", server_->port());
      auto r = c.Get(("/media/segment/" + std::to_string(segs[k].id) + ".png").c_str());
      if (r) { status[k] = r->status; bodies[k] = r->body; }
    });
  }
  for (auto& t : pages) t.join();
  for (size_t k = 0; k < segs.size(); ++k) {
    ASSERT_EQ(status[k], 200) << bodies[k];
    std::vector<uint8_t> rgb;
    int w = 0, h = 0;
    ASSERT_TRUE(decode_png(bodies[k], &rgb, &w, &h));
    EXPECT_EQ(w, 4 * 32);  // 10 frames: 4 columns, 3 rows
    EXPECT_EQ(h, 3 * 32);
    // The sheet is the one render_clip makes in this thread from the same stored states.
    const ClipSheet here = render_clip("hopper", segs[k], 32);
    std::vector<uint8_t> mine;
    ASSERT_TRUE(decode_png(here.png, &mine, &w, &h));
    EXPECT_EQ(rgb, mine) << "segment " << k;
  }
}

TEST_F(LabelServerTest, TokenRequiredWhenSetOrNotLoopback) {
  ServerConfig cfg;
  cfg.token = "s3cret-token";
  start(1, cfg);
  const std::string before = fingerprint(db_path_);
  expect_refused(client_->Get("/api/status"), 401, "token", before);
  expect_refused(client_->Get("/"), 401, "token", before);
  expect_refused(client_->Get("/api/status?token=wrong-token!"), 401, "token", before);
  expect_refused(post("/api/label", json{{"query_id", 1}, {"choice", "left"}, {"labeler", "ada"}}.dump()), 401, "token",
                 before);
  auto ok = client_->Get("/api/status?token=s3cret-token");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  httplib::Headers bearer = {{"Authorization", "Bearer s3cret-token"}};
  EXPECT_EQ(client_->Get("/api/status", bearer)->status, 200);
  httplib::Headers cookie = {{"Cookie", "other=1; prefrl_token=s3cret-token"}};
  EXPECT_EQ(client_->Get("/app.js", cookie)->status, 200);
  EXPECT_NE(server_->url().find("?token=s3cret-token"), std::string::npos);

  // Any address but loopback: a token is generated and put in the URL.
  ServerConfig open;
  open.host = "0.0.0.0";
  open.port = 0;
  LabelServer wide(open, db_path_, "pendulum", "r");
  EXPECT_GE(wide.token().size(), 16u);
  EXPECT_NE(wide.url().find("?token=" + wide.token()), std::string::npos);
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(is_loopback_host("192.168.1.4"));
}

TEST_F(LabelServerTest, ABusyPortIsAUsageError) {
  start(1);
  ServerConfig cfg;
  cfg.port = server_->port();
  LabelServer second(cfg, db_path_, "pendulum", "r");
  EXPECT_THROW(second.start(), UsageError);
}

TEST(ClipMedia, PngRoundTripAndEveryEnvRendersItsClips) {
  std::vector<uint8_t> rgb(5 * 3 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 7);
  std::vector<uint8_t> back;
  int w = 0, h = 0;
  ASSERT_TRUE(decode_png(encode_png(rgb.data(), 5, 3), &back, &w, &h));
  EXPECT_EQ(w, 5);
  EXPECT_EQ(h, 3);
  EXPECT_EQ(back, rgb);
  EXPECT_FALSE(decode_png("not a png", &back, &w, &h));
  for (const std::string& name : env_names()) {
    auto env = make_env(name);
    const EnvSpec& spec = env->spec();
    std::vector<float> obs(spec.observation.numel());
    env->seed(3);
    env->reset(obs.data());
    Segment s;
    s.length = 4;
    s.obs_size = spec.observation.numel();
    s.act_size = 1;
    std::vector<std::vector<uint8_t>> live;  // the environment's own frames, 24x24
    for (int t = 0; t < 4; ++t) {
      s.obs.insert(s.obs.end(), obs.begin(), obs.end());
      const std::vector<double> state = env->get_state();
      s.states.insert(s.states.end(), state.begin(), state.end());  // kept where obs do not suffice
      live.emplace_back(24 * 24 * 3);
      env->render(24, 24, live.back().data());
      std::vector<float> a(spec.action.discrete ? 1 : spec.action.numel(), 0.0f);
      env->step(a.data(), obs.data());
      s.actions.push_back(0);
      s.true_rewards.push_back(0);
      s.absorbing.push_back(t == 3);
    }
    if (spec.obs_determines_state) {
      s.states.clear();
    } else {
      EXPECT_THROW(render_clip(name, s, 24), UsageError) << name << ": no states, no clip";
      s.state_size = spec.state_size;
    }
    ClipSheet sheet = render_clip(name, s, 24);
    EXPECT_EQ(sheet.frames, 4) << name;
    EXPECT_EQ(sheet.columns, 2) << name;
    ASSERT_TRUE(decode_png(sheet.png, &back, &w, &h)) << name;
    EXPECT_EQ(w, 48);
    EXPECT_EQ(h, 48);
    if (!spec.obs_determines_state) {
      // Frame 1 (top right) of the sheet is the live frame of step 1 (states are stored as
      // floats: a pixel may differ by a rounding of the pose, no more).
      int differing = 0;
      for (int y = 0; y < 24; ++y)
        for (int x = 0; x < 24 * 3; ++x) differing += back[(y * 48) * 3 + 24 * 3 + x] != live[1][y * 24 * 3 + x];
      EXPECT_LE(differing, 24) << name;
    }
  }
}

}  // namespace
}  // namespace prefrl
