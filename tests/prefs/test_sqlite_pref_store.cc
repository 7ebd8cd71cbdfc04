// SqlitePrefStore (and open_pref_store): round trips, label bookkeeping, refusal of foreign files, undo rules, durability
// across reopen, two connections, and a writer killed with SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/prefs/sqlite_pref_store.h"

namespace prefrl {

// The store's connection, for checking its per-connection settings (a friend of the class).
struct SqlitePrefStoreTestAccess {
  static sqlite3* handle(SqlitePrefStore& s) { return s.db_; }
};

namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class PrefDBTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("prefrl_test_prefdb_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// A segment with varied floats, including -0, a denormal, infinities and a NaN payload in obs.
Segment make_segment(int L, int64_t D, int64_t A, uint64_t seed, int absorbing_from = -1) {
  Rng rng(seed);
  Segment s;
  s.length = L;
  s.obs_size = D;
  s.act_size = A;
  for (int64_t i = 0; i < L * D; ++i) s.obs.push_back(static_cast<float>(rng.normal()));
  for (int64_t i = 0; i < L * A; ++i) s.actions.push_back(static_cast<float>(rng.uniform(-1, 1)));
  for (int i = 0; i < L; ++i) s.true_rewards.push_back(static_cast<float>(rng.normal()));
  for (int i = 0; i < L; ++i) s.absorbing.push_back(absorbing_from >= 0 && i >= absorbing_from ? 1 : 0);
  if (L * D >= 5) {
    s.obs[0] = -0.0f;
    s.obs[1] = std::numeric_limits<float>::denorm_min();
    s.obs[2] = std::numeric_limits<float>::infinity();
    s.obs[3] = -std::numeric_limits<float>::infinity();
    uint32_t nan_bits = 0x7fc12345u;  // quiet NaN with a payload
    std::memcpy(&s.obs[4], &nan_bits, 4);
  }
  s.env_step = static_cast<int64_t>(seed) * 1000 + 7;
  s.env_index = static_cast<int>(seed % 4);
  return s;
}

// Bitwise equality of two float arrays (NaN payloads and -0 included).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

void expect_same_segment(const Segment& a, const Segment& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.obs_size, b.obs_size);
  EXPECT_EQ(a.act_size, b.act_size);
  EXPECT_EQ(a.env_step, b.env_step);
  EXPECT_EQ(a.env_index, b.env_index);
  EXPECT_TRUE(same_bits(a.obs, b.obs));
  EXPECT_TRUE(same_bits(a.actions, b.actions));
  EXPECT_TRUE(same_bits(a.true_rewards, b.true_rewards));
  EXPECT_EQ(a.absorbing, b.absorbing);
  EXPECT_EQ(a.state_size, b.state_size);
  EXPECT_TRUE(same_bits(a.states, b.states));
}

// Gives a segment render states: S floats per step.
Segment with_states(Segment s, int64_t S, uint64_t seed) {
  Rng rng(seed);
  s.state_size = S;
  s.states.clear();
  for (int64_t i = 0; i < s.length * S; ++i) s.states.push_back(static_cast<float>(rng.normal()));
  return s;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs SQL on a raw SQLite connection (outside the store), failing the test on error.
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << msg;
}

// The first column of the first row of `sql` on a raw SQLite connection, as text.
std::string raw_one(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  EXPECT_EQ(sqlite3_step(st), SQLITE_ROW) << sql;
  const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  std::string v = t ? t : "";
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

// Expects opening `path` to throw UsageError mentioning the path and `reason`, and the file's
// bytes to be unchanged.
void expect_refused(const std::string& path, const std::string& reason) {
  const std::string before = read_bytes(path);
  try {
    SqlitePrefStore db(path);
    ADD_FAILURE() << "opened " << path;
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(path), before) << "file was modified";
}

// Stores two segments and `n` queries between them.
std::vector<int64_t> add_pair_queries(PrefStore& db, int n, int answers_wanted = 1) {
  Segment a = make_segment(3, 2, 1, 1), b = make_segment(3, 2, 1, 2);
  db.add_segment(a);
  db.add_segment(b);
  std::vector<Query> qs(n);
  for (int i = 0; i < n; ++i) {
    qs[i].left_id = a.id;
    qs[i].right_id = b.id;
    qs[i].env_step = i;
    qs[i].source = "uniform";
    qs[i].answers_wanted = answers_wanted;
  }
  return db.add_queries(qs);
}

TEST_F(PrefDBTest, SegmentsRoundTripBitExact) {
  SqlitePrefStore db(file("p.db"));
  std::vector<Segment> segs = {make_segment(5, 3, 2, 11), make_segment(25, 4, 1, 12, 20),
                               make_segment(1, 1, 0, 13, 0), make_segment(7, 6, 3, 14, 3),
                               with_states(make_segment(6, 11, 3, 15, 4), 12, 15)};
  for (auto& s : segs) {
    const int64_t id = db.add_segment(s);
    EXPECT_EQ(id, s.id);
  }
  EXPECT_EQ(db.count_segments(), 5);
  for (const auto& s : segs) {
    auto got = db.get_segment(s.id);
    ASSERT_TRUE(got.has_value());
    expect_same_segment(*got, s);
  }
  EXPECT_FALSE(db.get_segment(999).has_value());

  std::vector<Segment> batch = {make_segment(2, 2, 2, 21), make_segment(2, 2, 2, 22)};
  auto ids = db.add_segments(batch);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], batch[0].id);
  EXPECT_EQ(ids[1], ids[0] + 1);
  expect_same_segment(*db.get_segment(ids[1]), batch[1]);
}

TEST_F(PrefDBTest, BadSegmentShapeIsRefusedAndBatchIsAllOrNothing) {
  SqlitePrefStore db(file("p.db"));
  Segment bad = make_segment(4, 2, 1, 1);
  bad.obs.pop_back();
  EXPECT_THROW(db.add_segment(bad), UsageError);
  Segment flag = make_segment(4, 2, 1, 2);
  flag.absorbing[1] = 2;
  EXPECT_THROW(db.add_segment(flag), UsageError);
  Segment states = with_states(make_segment(4, 2, 1, 4), 3, 4);
  states.states.pop_back();  // 11 floats for 4 steps of 3
  try {
    db.add_segment(states);
    ADD_FAILURE() << "stored a segment with too few states";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'states' has 11 values, expected 12"), std::string::npos) << e.what();
  }
  std::vector<Segment> batch = {make_segment(4, 2, 1, 3), bad};
  EXPECT_THROW(db.add_segments(batch), UsageError);
  EXPECT_EQ(batch[0].id, -1);
  EXPECT_EQ(db.count_segments(), 0);
}

TEST_F(PrefDBTest, QueriesRoundTripAndPendingOldestFirst) {
  SqlitePrefStore db(file("p.db"));
  Segment a = make_segment(3, 2, 1, 1), b = make_segment(3, 2, 1, 2), c = make_segment(3, 2, 1, 3);
  db.add_segment(a);
  db.add_segment(b);
  db.add_segment(c);
  Query q1{-1, a.id, b.id, 100, "initial", 0.0, "", 1};
  Query q2{-1, c.id, a.id, 200, "disagreement", 0.75, "", 2};
  Query q3{-1, b.id, c.id, 300, "uniform", 0.0, "", 1};
  db.add_query(q1);
  db.add_query(q2);
  db.add_query(q3);
  EXPECT_EQ(q1.status, "pending");
  EXPECT_LT(q1.id, q2.id);
  EXPECT_LT(q2.id, q3.id);

  auto got = db.get_query(q2.id);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->left_id, c.id);
  EXPECT_EQ(got->right_id, a.id);
  EXPECT_EQ(got->env_step, 200);
  EXPECT_EQ(got->source, "disagreement");
  EXPECT_DOUBLE_EQ(got->score, 0.75);
  EXPECT_EQ(got->status, "pending");
  EXPECT_EQ(got->answers_wanted, 2);
  EXPECT_FALSE(db.get_query(12345).has_value());

  auto pending = db.pending_queries();
  ASSERT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending[0].id, q1.id);
  EXPECT_EQ(pending[1].id, q2.id);
  EXPECT_EQ(pending[2].id, q3.id);
  EXPECT_EQ(db.pending_queries(2).size(), 2u);
  EXPECT_EQ(db.count_pending(), 3);

  db.add_label(q1.id, Choice::kLeft, "oracle", "oracle");
  pending = db.pending_queries();
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].id, q2.id);
  EXPECT_EQ(db.count_pending(), 2);
  EXPECT_EQ(db.get_query(q1.id)->status, "labeled");
}

TEST_F(PrefDBTest, BadQueriesAreRefused) {
  SqlitePrefStore db(file("p.db"));
  Segment a = make_segment(3, 2, 1, 1);
  db.add_segment(a);
  Query same{-1, a.id, a.id, 0, "uniform", 0.0, "", 1};
  EXPECT_THROW(db.add_query(same), UsageError);
  Query unknown{-1, a.id, 77, 0, "uniform", 0.0, "", 1};
  try {
    db.add_query(unknown);
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown segment id 77"), std::string::npos) << e.what();
  }
  Segment b = make_segment(3, 2, 1, 2);
  db.add_segment(b);
  Query zero{-1, a.id, b.id, 0, "uniform", 0.0, "", 0};
  EXPECT_THROW(db.add_query(zero), UsageError);
  Query nan{-1, a.id, b.id, 0, "uniform", std::nan(""), "", 1};
  EXPECT_THROW(db.add_query(nan), UsageError);
  std::vector<Query> batch = {Query{-1, a.id, b.id, 0, "uniform", 0.0, "", 1}, unknown};
  EXPECT_THROW(db.add_queries(batch), UsageError);
  EXPECT_EQ(batch[0].id, -1);
  EXPECT_EQ(db.count_pending(), 0);
}

TEST_F(PrefDBTest, LabelsAndLabeledPairs) {
  SqlitePrefStore db(file("p.db"));
  auto qids = add_pair_queries(db, 5);
  const int64_t l1 = db.add_label(qids[0], Choice::kLeft, "oracle", "o");
  const int64_t l2 = db.add_label(qids[1], Choice::kRight, "oracle", "o");
  const int64_t l3 = db.add_label(qids[2], Choice::kSkip, "human", "ann");
  const int64_t l4 = db.add_label(qids[3], Choice::kEqual, "human", "bob");
  EXPECT_LT(l1, l2);
  EXPECT_EQ(db.count_labels(), 4);  // the skip counts as an answer
  EXPECT_EQ(db.count_pending(), 1);
  EXPECT_EQ(db.get_query(qids[2])->status, "labeled");

  auto labels = db.labels();
  ASSERT_EQ(labels.size(), 4u);
  EXPECT_EQ(labels[2].id, l3);
  EXPECT_EQ(labels[2].choice, Choice::kSkip);
  EXPECT_EQ(labels[2].teacher, "human");
  EXPECT_EQ(labels[2].labeler, "ann");
  EXPECT_EQ(labels[2].query_id, qids[2]);
  EXPECT_GT(labels[2].created_at, 1.5e9);
  EXPECT_FALSE(labels[2].undone);
  EXPECT_FALSE(labels[2].used);

  auto pairs = db.labeled_pairs();
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0].label_id, l1);
  EXPECT_FLOAT_EQ(pairs[0].target, 1.0f);
  EXPECT_EQ(pairs[1].label_id, l2);
  EXPECT_FLOAT_EQ(pairs[1].target, 0.0f);
  EXPECT_EQ(pairs[2].label_id, l4);
  EXPECT_FLOAT_EQ(pairs[2].target, 0.5f);
  EXPECT_EQ(pairs[2].query_id, qids[3]);
  const auto q = *db.get_query(qids[0]);
  expect_same_segment(pairs[0].left, *db.get_segment(q.left_id));
  expect_same_segment(pairs[0].right, *db.get_segment(q.right_id));

  auto later = db.labeled_pairs(l2);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].label_id, l4);
  EXPECT_TRUE(db.labeled_pairs(l4).empty());
}

TEST_F(PrefDBTest, AnswersWantedTwoCollectsTwoLabels) {
  SqlitePrefStore db(file("p.db"));
  auto qids = add_pair_queries(db, 1, 2);
  db.add_label(qids[0], Choice::kLeft, "human", "ann");
  EXPECT_EQ(db.get_query(qids[0])->status, "pending");
  EXPECT_EQ(db.count_pending(), 1);
  db.add_label(qids[0], Choice::kRight, "human", "bob");
  EXPECT_EQ(db.get_query(qids[0])->status, "labeled");
  EXPECT_EQ(db.count_pending(), 0);
  EXPECT_EQ(db.labeled_pairs().size(), 2u);
  try {
    db.add_label(qids[0], Choice::kEqual, "human", "cy");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "query " + std::to_string(qids[0]) + " already has its 2 answer(s)");
  }
  EXPECT_EQ(db.count_labels(), 2);
}

TEST_F(PrefDBTest, AddLabelsCommitsABatchAllOrNothing) {
  SqlitePrefStore db(file("p.db"));
  auto qids = add_pair_queries(db, 4);
  const std::vector<int64_t> ids = db.add_labels({{qids[0], Choice::kLeft, "oracle", "oracle"},
                                                  {qids[1], Choice::kRight, "oracle", "oracle"},
                                                  {qids[2], Choice::kEqual, "oracle", "oracle"}});
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_LT(ids[0], ids[1]);
  EXPECT_LT(ids[1], ids[2]);
  EXPECT_EQ(db.count_labels(), 3);
  EXPECT_EQ(db.count_pending(), 1);
  auto pairs = db.labeled_pairs();
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[1].label_id, ids[1]);
  EXPECT_FLOAT_EQ(pairs[1].target, 0.0f);
  EXPECT_FLOAT_EQ(pairs[2].target, 0.5f);
  EXPECT_TRUE(db.add_labels({}).empty());
  // The second entry answers a query that already has its answer: nothing of the batch is stored.
  try {
    db.add_labels({{qids[3], Choice::kLeft, "oracle", "oracle"}, {qids[0], Choice::kLeft, "oracle", "other"}});
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "query " + std::to_string(qids[0]) + " already has its 1 answer(s)");
  }
  EXPECT_EQ(db.count_labels(), 3);
  EXPECT_EQ(db.get_query(qids[3])->status, "pending");
}

TEST_F(PrefDBTest, BatchCommitsSeveralCallsTogetherOrNothing) {
  SqlitePrefStore db(file("p.db"));
  SqlitePrefStore other(file("p.db"));  // a second connection sees only committed data
  std::vector<int64_t> qids;
  {
    PrefStore::Batch batch(db);
    qids = add_pair_queries(db, 3);
    db.add_labels({{qids[0], Choice::kLeft, "oracle", "oracle"}});
    // A failing call inside the batch undoes only itself.
    EXPECT_THROW(db.add_labels({{qids[1], Choice::kLeft, "oracle", "oracle"}, {qids[0], Choice::kRight, "oracle", "x"}}),
                 UsageError);
    EXPECT_EQ(db.count_labels(), 1);
    EXPECT_EQ(other.count_segments(), 0);
    batch.commit();
  }
  EXPECT_EQ(other.count_segments(), 2);
  EXPECT_EQ(other.count_pending(), 2);
  EXPECT_EQ(other.count_labels(), 1);
  {
    PrefStore::Batch batch(db);
    db.add_label(qids[1], Choice::kRight, "oracle", "oracle");
    EXPECT_EQ(db.count_labels(), 2);
  }  // not committed: rolled back
  EXPECT_EQ(db.count_labels(), 1);
  EXPECT_EQ(other.count_labels(), 1);
  db.add_label(qids[1], Choice::kRight, "oracle", "oracle");  // plain calls commit on their own again
  EXPECT_EQ(other.count_labels(), 2);
}

TEST_F(PrefDBTest, UnknownQueryIdIsAUsageError) {
  SqlitePrefStore db(file("p.db"));
  add_pair_queries(db, 1);
  try {
    db.add_label(12345, Choice::kLeft, "oracle", "o");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "unknown query id 12345");
  }
  EXPECT_EQ(db.count_labels(), 0);
}

TEST_F(PrefDBTest, ClaimLabelsMarksThemUsedOldestFirstAndStopsAtYoungOnes) {
  SqlitePrefStore db(file("p.db"));
  auto qids = add_pair_queries(db, 4);
  const int64_t l1 = db.add_label(qids[0], Choice::kLeft, "human", "ann");
  const int64_t l2 = db.add_label(qids[1], Choice::kSkip, "human", "ann");
  const int64_t l3 = db.add_label(qids[2], Choice::kEqual, "human", "bob");
  int64_t last = 0;
  // Nothing is old enough yet.
  EXPECT_TRUE(db.claim_labels(0, 0.0, &last).empty());
  EXPECT_EQ(last, 0);
  for (const Label& l : db.labels()) EXPECT_FALSE(l.used);
  // Everything: skips are claimed (marked used) but are not training pairs.
  std::vector<LabeledPair> got = db.claim_labels(0, 1e300, &last);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].label_id, l1);
  EXPECT_FLOAT_EQ(got[0].target, 1.0f);
  EXPECT_EQ(got[1].label_id, l3);
  EXPECT_FLOAT_EQ(got[1].target, 0.5f);
  EXPECT_EQ(last, l3);
  for (const Label& l : db.labels()) EXPECT_TRUE(l.used) << l.id;
  EXPECT_THROW(db.undo_label(l2), UsageError);  // claimed labels cannot be undone
  // Claimed labels are not claimed again; a new one is.
  EXPECT_TRUE(db.claim_labels(last, 1e300, &last).empty());
  const int64_t l4 = db.add_label(qids[3], Choice::kRight, "human", "ann");
  got = db.claim_labels(last, 1e300, &last);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].label_id, l4);
  EXPECT_EQ(last, l4);
}

TEST_F(PrefDBTest, ALabelerAnswersAQueryOnce) {
  SqlitePrefStore db(file("p.db"));
  Segment a = make_segment(3, 2, 1, 1), b = make_segment(3, 2, 1, 2);
  db.add_segment(a);
  db.add_segment(b);
  Query q;
  q.left_id = a.id;
  q.right_id = b.id;
  q.source = "uniform";
  q.answers_wanted = 3;
  db.add_query(q);
  db.add_label(q.id, Choice::kLeft, "human", "ann");
  EXPECT_TRUE(db.has_answered(q.id, "ann"));
  EXPECT_FALSE(db.has_answered(q.id, "bob"));
  try {
    db.add_label(q.id, Choice::kRight, "human", "ann");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("already answered"), std::string::npos) << e.what();
  }
  db.add_label(q.id, Choice::kRight, "human", "bob");
  EXPECT_EQ(db.count_labels_by("ann"), 1);
  EXPECT_EQ(db.count_labels_by("bob"), 1);
  EXPECT_EQ(db.get_query(q.id)->status, "pending");  // wants 3
  db.add_label(q.id, Choice::kEqual, "human", "cy");
  EXPECT_EQ(db.get_query(q.id)->status, "labeled");
}

TEST_F(PrefDBTest, UndoRules) {
  SqlitePrefStore db(file("p.db"));
  auto qids = add_pair_queries(db, 3);
  const int64_t l1 = db.add_label(qids[0], Choice::kLeft, "human", "ann");
  const int64_t l2 = db.add_label(qids[1], Choice::kRight, "human", "ann");
  const int64_t l3 = db.add_label(qids[2], Choice::kLeft, "human", "bob");
  EXPECT_EQ(db.last_label_by("ann")->id, l2);
  EXPECT_EQ(db.last_label_by("bob")->id, l3);
  EXPECT_FALSE(db.last_label_by("nobody").has_value());

  // A used label cannot be undone.
  db.mark_used({l1});
  EXPECT_TRUE(db.labels()[0].used);
  try {
    db.undo_label(l1);
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("used to train"), std::string::npos) << e.what();
  }
  EXPECT_EQ(db.get_query(qids[0])->status, "labeled");

  // Undoing returns the query to pending and hides the label everywhere.
  EXPECT_TRUE(db.undo_label(l2));
  EXPECT_EQ(db.get_query(qids[1])->status, "pending");
  EXPECT_EQ(db.count_pending(), 1);
  EXPECT_EQ(db.count_labels(), 2);
  for (const auto& p : db.labeled_pairs()) EXPECT_NE(p.label_id, l2);
  EXPECT_EQ(db.labeled_pairs().size(), 2u);
  EXPECT_EQ(db.last_label_by("ann")->id, l1);
  try {
    db.undo_label(l2);
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("already undone"), std::string::npos) << e.what();
  }
  EXPECT_THROW(db.undo_label(999), UsageError);

  // The query can be answered again.
  const int64_t l4 = db.add_label(qids[1], Choice::kLeft, "human", "ann");
  EXPECT_GT(l4, l3);
  EXPECT_EQ(db.get_query(qids[1])->status, "labeled");
  auto pairs = db.labeled_pairs();
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs.back().label_id, l4);

  // mark_used is all-or-nothing and names an unknown id.
  try {
    db.mark_used({l3, 4242});
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("4242"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(db.last_label_by("bob")->used);
}

TEST_F(PrefDBTest, SurvivesCloseAndReopen) {
  const std::string path = file("p.db");
  std::vector<Segment> segs = {make_segment(4, 3, 2, 5, 2), make_segment(4, 3, 2, 6)};
  std::vector<int64_t> qids;
  {
    SqlitePrefStore db(path);
    db.add_segments(segs);
    Query q{-1, segs[0].id, segs[1].id, 42, "initial", 0.0, "", 1};
    qids.push_back(db.add_query(q));
    Query q2{-1, segs[1].id, segs[0].id, 43, "uniform", 0.0, "", 1};
    qids.push_back(db.add_query(q2));
    db.add_label(qids[0], Choice::kEqual, "oracle", "o");
  }
  SqlitePrefStore db(path);
  EXPECT_EQ(db.integrity_check(), "ok");
  expect_same_segment(*db.get_segment(segs[0].id), segs[0]);
  expect_same_segment(*db.get_segment(segs[1].id), segs[1]);
  EXPECT_EQ(db.count_pending(), 1);
  EXPECT_EQ(db.pending_queries()[0].id, qids[1]);
  ASSERT_EQ(db.labeled_pairs().size(), 1u);
  EXPECT_FLOAT_EQ(db.labeled_pairs()[0].target, 0.5f);
  EXPECT_GT(db.file_size(), 0);
  db.add_label(qids[1], Choice::kRight, "oracle", "o");
  EXPECT_EQ(db.count_labels(), 2);
}

TEST_F(PrefDBTest, FileIsIdentifiedAndConfigured) {
  const std::string path = file("p.db");
  { SqlitePrefStore db(path); }
  SqlitePrefStore db(path);
  auto one = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(SqlitePrefStoreTestAccess::handle(db), sql, -1, &st, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(st), SQLITE_ROW);
    std::string v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
  };
  EXPECT_EQ(one("PRAGMA application_id"), std::to_string(kPrefDBApplicationId));
  EXPECT_EQ(one("PRAGMA user_version"), "2");
  EXPECT_EQ(one("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(one("PRAGMA synchronous"), "2");  // FULL
  EXPECT_EQ(one("PRAGMA foreign_keys"), "1");
  EXPECT_EQ(one("SELECT value FROM meta WHERE key = 'schema_version'"), "2");
  EXPECT_EQ(one("SELECT value FROM meta WHERE key = 'format'"), "prefrl preference database");
  EXPECT_EQ(read_bytes(path).substr(0, 16), std::string("SQLite format 3\0", 16));
}

TEST_F(PrefDBTest, EmptyExistingFileGetsTheSchema) {
  const std::string path = file("empty.db");
  { std::ofstream(path, std::ios::binary); }
  ASSERT_EQ(fs::file_size(path), 0u);
  SqlitePrefStore db(path);
  EXPECT_EQ(db.integrity_check(), "ok");
  add_pair_queries(db, 1);
  EXPECT_EQ(db.count_pending(), 1);
}

TEST_F(PrefDBTest, RefusesSQLiteFileOfAnotherApplication) {
  const std::string path = file("other.db");
  raw_exec(path, "PRAGMA application_id = 42; CREATE TABLE t(x); INSERT INTO t VALUES (1);");
  expect_refused(path, "application_id 42");
  EXPECT_FALSE(fs::exists(path + "-wal"));
}

TEST_F(PrefDBTest, RefusesSQLiteFileWithoutApplicationId) {
  const std::string path = file("plain.db");
  raw_exec(path, "CREATE TABLE labels(x); INSERT INTO labels VALUES (1);");
  expect_refused(path, "without prefrl's application_id");
}

TEST_F(PrefDBTest, RefusesNonSQLiteFiles) {
  const std::string path = file("random.bin");
  {
    Rng rng(7);
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(rng.integer(256)));
  }
  expect_refused(path, "not an SQLite file");
  const std::string text = file("notes.txt");
  { std::ofstream(text) << "hello\n"; }
  expect_refused(text, "not an SQLite file");
  // An SQLite header followed by garbage: SQLite itself rejects it.
  const std::string fake = file("fake.db");
  {
    std::ofstream out(fake, std::ios::binary);
    out.write("SQLite format 3\0", 16);
    Rng rng(8);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>(rng.integer(256)));
  }
  const std::string before = read_bytes(fake);
  EXPECT_THROW(SqlitePrefStore db(fake), UsageError);
  EXPECT_EQ(read_bytes(fake), before);
}

TEST_F(PrefDBTest, RefusesFutureSchemaVersion) {
  const std::string path = file("future.db");
  {
    SqlitePrefStore db(path);
    add_pair_queries(db, 2);
  }
  raw_exec(path, "PRAGMA user_version = 3;");
  expect_refused(path, "unknown schema version 3");
  raw_exec(path, "PRAGMA user_version = 2;");
  SqlitePrefStore db(path);
  EXPECT_EQ(db.count_pending(), 2);
}

TEST_F(PrefDBTest, UpgradesAVersionOneFileInPlace) {
  // A version-1 file (as an older prefrl wrote it: no state columns) opens as version 2: its
  // segments read back without states, its queries and labels are all there, and new segments
  // keep their states.
  const std::string path = file("v1.db");
  int64_t old_id = -1;
  Segment old_seg = make_segment(5, 3, 2, 31);
  {
    SqlitePrefStore db(path);
    old_id = db.add_segment(old_seg);
    add_pair_queries(db, 2);
    db.add_label(db.pending_queries()[0].id, Choice::kLeft, "oracle", "o");
  }
  raw_exec(path,
           "ALTER TABLE segments DROP COLUMN states; ALTER TABLE segments DROP COLUMN state_size;"
           "UPDATE meta SET value = '1' WHERE key = 'schema_version'; PRAGMA user_version = 1;");
  {
    SqlitePrefStore db(path);
    EXPECT_EQ(db.integrity_check(), "ok");
    expect_same_segment(*db.get_segment(old_id), old_seg);
    EXPECT_EQ(db.count_segments(), 3);
    EXPECT_EQ(db.count_labels(), 1);
    EXPECT_EQ(db.count_pending(), 1);
    Segment fresh = with_states(make_segment(4, 2, 1, 32), 5, 32);
    db.add_segment(fresh);
    expect_same_segment(*db.get_segment(fresh.id), fresh);
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto one = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(raw, sql, -1, &st, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(st), SQLITE_ROW);
    std::string v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
  };
  EXPECT_EQ(one("PRAGMA user_version"), "2");
  EXPECT_EQ(one("SELECT value FROM meta WHERE key = 'schema_version'"), "2");
  EXPECT_EQ(one("SELECT count(*) FROM meta WHERE key = 'upgraded_from_1_at'"), "1");
  sqlite3_close(raw);
}

TEST_F(PrefDBTest, CorruptRowNamesTheSegment) {
  SqlitePrefStore db(file("p.db"));
  Segment a = make_segment(4, 2, 1, 1);
  db.add_segment(a);
  raw_exec(file("p.db"), "UPDATE segments SET obs = x'0102' WHERE id = " + std::to_string(a.id));
  try {
    db.get_segment(a.id);
    ADD_FAILURE();
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("segment " + std::to_string(a.id)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("obs"), std::string::npos) << e.what();
  }
}

TEST_F(PrefDBTest, TwoConnectionsSeeEachOthersCommits) {
  const std::string path = file("p.db");
  SqlitePrefStore trainer(path);
  SqlitePrefStore server(path);
  auto qids = add_pair_queries(trainer, 4);
  EXPECT_EQ(server.count_pending(), 4);
  server.add_label(qids[0], Choice::kLeft, "human", "ann");
  EXPECT_EQ(trainer.count_labels(), 1);
  EXPECT_EQ(trainer.labeled_pairs().size(), 1u);
  trainer.add_label(qids[1], Choice::kRight, "oracle", "o");
  EXPECT_EQ(server.count_labels(), 2);
  EXPECT_THROW(server.add_label(qids[1], Choice::kLeft, "human", "ann"), UsageError);
  trainer.mark_used({server.last_label_by("ann")->id});
  EXPECT_THROW(server.undo_label(server.last_label_by("ann")->id), UsageError);
  EXPECT_EQ(server.count_pending(), 2);
  EXPECT_EQ(trainer.integrity_check(), "ok");
}

TEST_F(PrefDBTest, ConcurrentWritersLoseNothing) {
  const std::string path = file("p.db");
  std::vector<int64_t> qids;
  {
    SqlitePrefStore db(path);
    qids = add_pair_queries(db, 80);
  }
  // Two threads, each with its own connection, label disjoint halves at the same time.
  auto writer = [&](int parity, const char* who) {
    SqlitePrefStore db(path);
    for (size_t i = parity; i < qids.size(); i += 2) db.add_label(qids[i], Choice::kLeft, "human", who);
  };
  std::thread a(writer, 0, "ann"), b(writer, 1, "bob");
  a.join();
  b.join();
  SqlitePrefStore db(path);
  EXPECT_EQ(db.count_labels(), 80);
  EXPECT_EQ(db.count_pending(), 0);
  EXPECT_EQ(db.integrity_check(), "ok");
}

// A writer killed with SIGKILL mid-stream: the file stays consistent and holds a prefix of
// the labels it wrote, each one whole.
TEST_F(PrefDBTest, KilledWriterLeavesAConsistentPrefix) {
  const std::string path = file("crash.db");
  constexpr int kQueries = 20000;
  std::vector<int64_t> qids;
  {
    SqlitePrefStore db(path);
    qids = add_pair_queries(db, kQueries);
  }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    try {
      SqlitePrefStore db(path);
      for (int i = 0; i < kQueries; ++i) {
        db.add_label(qids[i], i % 3 == 0 ? Choice::kLeft : Choice::kRight, "oracle", "crash");
        if (i == 24) (void)!::write(fds[1], "x", 1);
      }
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  char c = 0;
  ASSERT_EQ(::read(fds[0], &c, 1), 1) << "writer died before 25 labels";
  ::close(fds[0]);
  ::usleep(20 * 1000);
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));

  SqlitePrefStore db(path);
  EXPECT_EQ(db.integrity_check(), "ok");
  const auto labels = db.labels();
  const int64_t n = static_cast<int64_t>(labels.size());
  ASSERT_GE(n, 25);
  RecordProperty("labels_before_kill", static_cast<int>(n));
  std::printf("writer killed after %lld labels\n", static_cast<long long>(n));
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(labels[i].id, i + 1);
    ASSERT_EQ(labels[i].query_id, qids[i]);
    ASSERT_EQ(labels[i].choice, i % 3 == 0 ? Choice::kLeft : Choice::kRight);
    ASSERT_EQ(labels[i].labeler, "crash");
  }
  EXPECT_EQ(db.count_pending(), kQueries - n);
  const auto pending = db.pending_queries(1);
  if (n < kQueries) {
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0].id, qids[n]);
    EXPECT_EQ(db.get_query(qids[n - 1])->status, "labeled");
  }
  // The database keeps working after recovery.
  if (n < kQueries) db.add_label(qids[n], Choice::kEqual, "oracle", "after");
  EXPECT_EQ(db.integrity_check(), "ok");
}

TEST_F(PrefDBTest, CountsAreWhatRunsVerifyCompares) {
  SqlitePrefStore db(file("p.db"));
  EXPECT_EQ(db.counts().segments, 0);
  const auto qids = add_pair_queries(db, 3);  // the same pair, three times
  Segment c = make_segment(3, 2, 1, 3);
  db.add_segment(c);
  Query q;
  q.left_id = 1;
  q.right_id = c.id;
  q.source = "uniform";
  db.add_query(q);
  db.add_label(qids[0], Choice::kLeft, "human", "ann");
  db.add_label(qids[1], Choice::kSkip, "human", "ann");
  db.add_label(qids[2], Choice::kRight, "human", "ann");
  db.undo_label(db.last_label_by("ann")->id);
  const PrefStore::Counts n = db.counts();
  EXPECT_EQ(n.segments, 3);
  EXPECT_EQ(n.queries, 4);
  EXPECT_EQ(n.labels, 2);  // the skip counts, the undone one does not
  EXPECT_EQ(n.pairs_asked_twice, 1);
  EXPECT_EQ(n.over_answered, 0);
  EXPECT_TRUE(db.verify().empty());
}

TEST_F(PrefDBTest, VerifyFindsAnOverAnsweredQuery) {
  const std::string path = file("p.db");
  SqlitePrefStore db(path);
  const auto qids = add_pair_queries(db, 2);
  db.add_label(qids[0], Choice::kLeft, "human", "ann");
  EXPECT_TRUE(db.verify().empty());
  // Written by hand, past add_label's checks: a second answer to a query that wanted one.
  raw_exec(path, "INSERT INTO labels (query_id, choice, teacher, labeler, created_at) VALUES (" +
                     std::to_string(qids[0]) + ", 'right', 'human', 'bob', 0)");
  EXPECT_EQ(raw_one(path, "SELECT count(*) FROM labels"), "2");
  EXPECT_EQ(db.counts().over_answered, 1);
  const std::vector<std::string> problems = db.verify();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "1 queries have more labels than they asked for");
  // Undone, the extra answer no longer counts.
  raw_exec(path, "UPDATE labels SET undone = 1 WHERE labeler = 'bob'");
  EXPECT_TRUE(db.verify().empty());
}

TEST_F(PrefDBTest, StoresOpenByUrl) {
  const std::string path = file("p.db");
  {
    std::unique_ptr<PrefStore> db = open_pref_store("sqlite:" + path);
    EXPECT_EQ(db->path(), path);
    PrefStore::Batch batch(*db);  // a batch through the interface
    add_pair_queries(*db, 2);
    batch.commit();
  }
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(raw_one(path, "PRAGMA application_id"), std::to_string(kPrefDBApplicationId));
  // A plain path is an SQLite file too (run directories name prefs.db so).
  EXPECT_EQ(open_pref_store(path)->count_pending(), 2);
  // A relative sqlite: URL, and a path with a ':' after a '/' (no scheme).
  fs::create_directories(dir_ / "a:b");
  {
    const fs::path cwd = fs::current_path();
    fs::current_path(dir_);
    EXPECT_EQ(open_pref_store("sqlite:p.db")->count_pending(), 2);
    EXPECT_EQ(open_pref_store("./a:b/q.db")->count_pending(), 0);
    fs::current_path(cwd);
  }
  EXPECT_TRUE(fs::exists(dir_ / "a:b" / "q.db"));
  {
    const fs::path cwd = fs::current_path();
    fs::current_path(dir_);
    EXPECT_THROW(open_pref_store("a:b/r.db"), UsageError);  // reads as scheme "a"
    EXPECT_EQ(open_pref_store(sqlite_store_url("a:b/r.db"))->count_pending(), 0);  // any path
    fs::current_path(cwd);
  }
  EXPECT_TRUE(fs::exists(dir_ / "a:b" / "r.db"));
  // A batch rolled back through the interface stores nothing.
  {
    std::unique_ptr<PrefStore> db = open_pref_store(path);
    PrefStore::Batch batch(*db);
    add_pair_queries(*db, 5);
  }
  EXPECT_EQ(open_pref_store(path)->count_pending(), 2);
  // Unknown schemes are refused, naming the URL and the schemes allowed; nothing is created.
  for (const std::string url : {std::string("postgresql://localhost/prefs"), std::string("mysql:") + path,
                                std::string("file:") + file("x.db")}) {
    try {
      open_pref_store(url);
      ADD_FAILURE() << "opened " << url;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + url + "'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("sqlite:PATH"), std::string::npos) << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(file("x.db")));
  EXPECT_THROW(open_pref_store("sqlite:"), UsageError);
  EXPECT_THROW(open_pref_store("sqlite://" + path), UsageError);
  // The backend's own refusals come through unchanged.
  std::ofstream(file("not.db")) << "not a database";
  EXPECT_THROW(open_pref_store("sqlite:" + file("not.db")), UsageError);
}

}  // namespace
}  // namespace prefrl
