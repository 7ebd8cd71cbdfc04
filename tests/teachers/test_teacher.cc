// Teachers: the oracle compares true returns; B-Pref's simulated teachers err as defined there; people
// answer later, through the store, and make the trainer wait only as their settings say.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/teachers/teacher.h"

namespace prefrl {
namespace {

// A segment whose true rewards sum to `ret` (spread over 4 steps).
Segment with_return(double ret) {
  Segment s;
  s.length = 4;
  s.true_rewards = {static_cast<float>(ret / 4), static_cast<float>(ret / 4), static_cast<float>(ret / 4),
                    static_cast<float>(ret / 4)};
  s.absorbing.assign(4, 0);
  return s;
}

// Random pairs with returns far enough apart that the oracle never says "equal".
std::vector<std::pair<Segment, Segment>> random_pairs(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::pair<Segment, Segment>> out;
  while (static_cast<int>(out.size()) < n) {
    const double a = std::round(rng.uniform(-20, 20)), b = std::round(rng.uniform(-20, 20));
    if (a != b) out.emplace_back(with_return(a), with_return(b));
  }
  return out;
}

TEST(OracleTeacher, HigherTrueReturnWins) {
  OracleTeacher oracle;
  EXPECT_EQ(oracle.name(), "oracle");
  EXPECT_EQ(oracle.judge(with_return(4), with_return(2)), Choice::kLeft);
  EXPECT_EQ(oracle.judge(with_return(-4), with_return(2)), Choice::kRight);
  EXPECT_EQ(oracle.judge(with_return(2), with_return(2)), Choice::kEqual);
}

TEST(OracleTeacher, TieTolerance) {
  OracleTeacher oracle(0.5);
  EXPECT_EQ(oracle.judge(with_return(2.4), with_return(2)), Choice::kEqual);
  EXPECT_EQ(oracle.judge(with_return(2), with_return(2.4)), Choice::kEqual);
  EXPECT_EQ(oracle.judge(with_return(3), with_return(2)), Choice::kLeft);
  EXPECT_EQ(oracle.judge(with_return(1), with_return(2)), Choice::kRight);
  EXPECT_THROW(OracleTeacher(-0.1), UsageError);
  EXPECT_THROW(OracleTeacher(std::nan("")), UsageError);
}

TEST(OracleTeacher, NaNReturnIsAnError) {
  OracleTeacher oracle;
  EXPECT_THROW(oracle.judge(with_return(std::nan("")), with_return(1)), RuntimeError);
}

// A segment with these per-step true rewards.
Segment with_rewards(std::vector<float> r) {
  Segment s;
  s.length = static_cast<int>(r.size());
  s.true_rewards = std::move(r);
  s.absorbing.assign(s.true_rewards.size(), 0);
  return s;
}

TeacherKnobs knobs_with(double TeacherKnobs::*knob, double value) {
  TeacherKnobs k;
  k.*knob = value;
  return k;
}

TEST(SimulatedTeacher, DefaultKnobsAreTheOracle) {
  OracleTeacher oracle(0.1);
  SimulatedTeacher t("oracle", TeacherKnobs{}, 123, 0.1);
  EXPECT_EQ(t.name(), "oracle");
  for (const auto& [l, r] : random_pairs(500, 1)) EXPECT_EQ(t.judge(l, r), oracle.judge(l, r));
  EXPECT_EQ(t.judge(with_return(1), with_return(1.05)), Choice::kEqual);
  EXPECT_EQ(t.judge(with_return(2), with_return(2)), Choice::kEqual);
  EXPECT_TRUE(t.rng_state().empty());  // deterministic: nothing for a checkpoint to keep
  EXPECT_FALSE(t.uses_scale());
  EXPECT_THROW(t.judge(with_return(std::nan("")), with_return(1)), RuntimeError);
}

TEST(SimulatedTeacher, MyopiaWeighsTheLastStepsMost) {
  // Left 1 at its first step, right 0.9 at its last: gamma 0.9 => 0.9^3 = 0.729 < 0.9.
  const Segment early = with_rewards({1, 0, 0, 0}), late = with_rewards({0, 0, 0, 0.9f});
  SimulatedTeacher rational("oracle", TeacherKnobs{}, 1);
  SimulatedTeacher myopic("myopic", knobs_with(&TeacherKnobs::gamma, 0.9), 1);
  EXPECT_EQ(rational.judge(early, late), Choice::kLeft);
  EXPECT_EQ(myopic.judge(early, late), Choice::kRight);
  EXPECT_EQ(myopic.judge(late, early), Choice::kLeft);
  // 1 two steps before the end: 0.81 < 0.9 still; three steps of 0.3 = 0.3 (0.81 + 0.9 + 1) = 0.813 > 0.81.
  EXPECT_EQ(myopic.judge(with_rewards({0, 1, 0, 0}), late), Choice::kRight);
  EXPECT_EQ(myopic.judge(with_rewards({0, 0.3f, 0.3f, 0.3f}), with_rewards({0, 1, 0, 0})), Choice::kLeft);
  EXPECT_TRUE(myopic.rng_state().empty());
}

TEST(SimulatedTeacher, SkipWhenNeitherClipExceedsTheThreshold) {
  SimulatedTeacher t("skip", knobs_with(&TeacherKnobs::skip, 0.1), 1);
  EXPECT_TRUE(t.uses_scale());
  EXPECT_THROW(t.judge(with_return(1), with_return(2)), RuntimeError);  // no scale yet
  t.set_typical_return(-10);  // the magnitude: delta_skip = 0.1 x 10 = 1
  EXPECT_EQ(t.judge(with_return(0.5), with_return(1.0)), Choice::kSkip);   // max 1 <= 1
  EXPECT_EQ(t.judge(with_return(-3), with_return(-2)), Choice::kSkip);
  EXPECT_EQ(t.judge(with_return(0.5), with_return(1.5)), Choice::kRight);  // max 1.5 > 1
  EXPECT_EQ(t.judge(with_return(2), with_return(-5)), Choice::kLeft);
  t.set_typical_return(20);  // delta_skip = 2
  EXPECT_EQ(t.judge(with_return(0.5), with_return(1.5)), Choice::kSkip);
  EXPECT_THROW(t.set_typical_return(std::nan("")), RuntimeError);
}

TEST(SimulatedTeacher, EqualWhenTheReturnsAreClose) {
  SimulatedTeacher t("equal", knobs_with(&TeacherKnobs::equal, 0.1), 1);
  t.set_typical_return(10);  // delta_equal = 1
  EXPECT_EQ(t.judge(with_return(2), with_return(2.9)), Choice::kEqual);
  EXPECT_EQ(t.judge(with_return(2.9), with_return(2)), Choice::kEqual);
  EXPECT_EQ(t.judge(with_return(2), with_return(3.5)), Choice::kRight);  // 1.5 apart
  EXPECT_EQ(t.judge(with_return(4), with_return(2)), Choice::kLeft);
  EXPECT_EQ(t.judge(with_return(-2), with_return(-2.5)), Choice::kEqual);
  EXPECT_TRUE(t.rng_state().empty());
}

TEST(SimulatedTeacher, MistakesFlipTheAnswerAtTheirRate) {
  SimulatedTeacher always("mistake", knobs_with(&TeacherKnobs::eps_mistake, 1.0), 3);
  EXPECT_EQ(always.judge(with_return(4), with_return(2)), Choice::kRight);
  EXPECT_EQ(always.judge(with_return(2), with_return(4)), Choice::kLeft);
  EXPECT_EQ(always.judge(with_return(2), with_return(2)), Choice::kEqual);  // equal stays equal
  OracleTeacher oracle;
  SimulatedTeacher a("mistake", knobs_with(&TeacherKnobs::eps_mistake, 0.1), 5),
      b("mistake", knobs_with(&TeacherKnobs::eps_mistake, 0.1), 5);
  int flipped = 0;
  for (const auto& [l, r] : random_pairs(4000, 4)) {
    const Choice c = a.judge(l, r);
    EXPECT_EQ(c, b.judge(l, r));  // same seed, same answers
    flipped += c != oracle.judge(l, r);
  }
  EXPECT_NEAR(flipped / 4000.0, 0.1, 0.015);
  EXPECT_FALSE(a.rng_state().empty());
}

TEST(SimulatedTeacher, BoltzmannAnswersByTheReturnGap) {
  // beta 1: P(right) = 1 / (1 + e^(beta (R0 - R1))): 0.2689 for returns (1, 0), 0.0474 for (3, 0).
  SimulatedTeacher t("noisy", knobs_with(&TeacherKnobs::beta, 1.0), 11);
  for (const auto& [gap, p] : {std::pair{1.0, 0.268941}, std::pair{3.0, 0.047426}, std::pair{0.0, 0.5}}) {
    int right = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) right += t.judge(with_return(gap), with_return(0)) == Choice::kRight;
    if (gap == 0.0) EXPECT_EQ(right, 0);  // equal returns are "equal", whatever was drawn
    else EXPECT_NEAR(right / static_cast<double>(n), p, 0.01) << "gap " << gap;
  }
  // beta 10: nearly rational
  SimulatedTeacher sharp("noisy", knobs_with(&TeacherKnobs::beta, 10.0), 12);
  int wrong = 0;
  for (int i = 0; i < 2000; ++i) wrong += sharp.judge(with_return(1), with_return(0)) != Choice::kLeft;
  EXPECT_LE(wrong, 2);  // P = e^-10 = 4.5e-5
}

TEST(SimulatedTeacher, RandomAnswersAreACoinFlip) {
  OracleTeacher oracle;
  SimulatedTeacher t("oracle", knobs_with(&TeacherKnobs::error_rate, 1.0), 7);
  int agree = 0, lefts = 0;
  for (const auto& [l, r] : random_pairs(4000, 2)) {
    const Choice c = t.judge(l, r);
    ASSERT_TRUE(c == Choice::kLeft || c == Choice::kRight);
    agree += c == oracle.judge(l, r);
    lefts += c == Choice::kLeft;
  }
  EXPECT_NEAR(agree / 4000.0, 0.5, 0.04);
  EXPECT_NEAR(lefts / 4000.0, 0.5, 0.04);
  SimulatedTeacher part("oracle", knobs_with(&TeacherKnobs::error_rate, 0.2), 99);
  agree = 0;
  for (const auto& [l, r] : random_pairs(4000, 3)) agree += part.judge(l, r) == oracle.judge(l, r);
  EXPECT_NEAR(agree / 4000.0, 0.9, 0.03);  // 80% truthful + half of the 20% guesses
}

TEST(SimulatedTeacher, CheckpointedRandomStateResumesTheAnswers) {
  TeacherKnobs k;
  k.beta = 0.5;
  k.eps_mistake = 0.2;
  SimulatedTeacher a("noisy", k, 21);
  const auto pairs = random_pairs(200, 6);
  for (size_t i = 0; i < 100; ++i) a.judge(pairs[i].first, pairs[i].second);
  SimulatedTeacher b("noisy", k, 999);
  b.set_rng_state(a.rng_state());
  for (size_t i = 100; i < 200; ++i) EXPECT_EQ(a.judge(pairs[i].first, pairs[i].second), b.judge(pairs[i].first, pairs[i].second));
}

TEST(SimulatedTeacher, KnobsOutOfRangeAreUsageErrors) {
  EXPECT_THROW(SimulatedTeacher("t", knobs_with(&TeacherKnobs::beta, 0.0), 1), UsageError);
  EXPECT_THROW(SimulatedTeacher("t", knobs_with(&TeacherKnobs::beta, -0.5), 1), UsageError);
  EXPECT_THROW(SimulatedTeacher("t", knobs_with(&TeacherKnobs::gamma, 0.0), 1), UsageError);
  EXPECT_THROW(SimulatedTeacher("t", knobs_with(&TeacherKnobs::gamma, 1.1), 1), UsageError);
  EXPECT_THROW(SimulatedTeacher("t", knobs_with(&TeacherKnobs::eps_mistake, 1.5), 1), UsageError);
  EXPECT_THROW(SimulatedTeacher("t", knobs_with(&TeacherKnobs::error_rate, -0.1), 1), UsageError);
  EXPECT_THROW(SimulatedTeacher("t", knobs_with(&TeacherKnobs::skip, -1), 1), UsageError);
  EXPECT_THROW(SimulatedTeacher("t", knobs_with(&TeacherKnobs::equal, std::nan("")), 1), UsageError);
  EXPECT_THROW(SimulatedTeacher("t", TeacherKnobs{}, 1, -0.1), UsageError);
}

TEST(TeacherKnobs, NamedTeachersAndOverrides) {
  TeacherConfig cfg;
  EXPECT_EQ(describe_knobs(teacher_knobs(cfg)), "none");
  cfg.kind = "mistake";
  EXPECT_EQ(teacher_knobs(cfg).eps_mistake, 0.1);
  cfg.kind = "noisy";
  EXPECT_EQ(teacher_knobs(cfg).beta, 1.0);
  EXPECT_EQ(describe_knobs(teacher_knobs(cfg)), "beta 1");
  cfg.kind = "skip";
  EXPECT_EQ(teacher_knobs(cfg).skip, 0.1);
  cfg.kind = "myopic";
  EXPECT_EQ(teacher_knobs(cfg).gamma, 0.9);
  cfg.kind = "equal";
  EXPECT_EQ(teacher_knobs(cfg).equal, 0.1);
  EXPECT_EQ(teacher_knobs(cfg).beta, -1.0);  // only its own knob
  cfg.kind = "noisy";
  cfg.knobs.beta = 5;
  cfg.knobs.eps_mistake = 0.05;  // a named teacher with another imperfection added
  EXPECT_EQ(teacher_knobs(cfg).beta, 5.0);
  EXPECT_EQ(describe_knobs(teacher_knobs(cfg)), "beta 5, eps_mistake 0.05");
  cfg = TeacherConfig{};
  cfg.kind = "script";
  cfg.script_error_rate = 0.3;
  EXPECT_EQ(teacher_knobs(cfg).error_rate, 0.3);
  cfg.knobs.gamma = 0;
  EXPECT_THROW(teacher_knobs(cfg), UsageError);
  EXPECT_TRUE(teacher_reads_true_reward("myopic"));
  EXPECT_FALSE(teacher_reads_true_reward("script"));
  EXPECT_FALSE(teacher_reads_true_reward("human"));
}

// A store in a fresh file with `queries` pending queries between two stored clips.
struct Store {
  explicit Store(int queries)
      : path((std::filesystem::temp_directory_path() /
              ("prefrl_test_teacher_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db")).string()) {
    std::filesystem::remove(path);
    db = open_pref_store(sqlite_store_url(path));
    std::vector<Segment> segs = {with_return(1), with_return(2)};
    for (Segment& s : segs) { s.obs_size = 1; s.act_size = 1; s.obs.assign(4, 0.f); s.actions.assign(4, 0.f); }
    db->add_segments(segs);
    std::vector<Query> qs(queries);
    for (Query& q : qs) { q.left_id = segs[0].id; q.right_id = segs[1].id; q.source = "uniform"; }
    ids = db->add_queries(qs);
  }
  ~Store() { db.reset(); std::filesystem::remove(path); }
  void answer(size_t k) { db->add_labels({{ids[k], Choice::kLeft, "human", "ada"}}); }
  std::string path;
  std::unique_ptr<PrefStore> db;
  std::vector<int64_t> ids;
};

// Hooks that count what the teacher did.
struct Recorder {
  std::atomic<bool> stop{false};
  int shows = 0, overs = 0, firsts = 0;
  int64_t last_have = -1, last_want = -1;
  std::vector<std::string> lines;
  WaitHooks hooks() {
    WaitHooks h;
    h.stop = [this] { return stop.load(); };
    h.show = [this](int64_t have, int64_t want) { ++shows; last_have = have; last_want = want; };
    h.waited = [](double) {};
    h.over = [this](double) { ++overs; };
    h.say = [this](const std::string& l) { lines.push_back(l); };
    h.first_labels_in = [this](int64_t) { ++firsts; };
    return h;
  }
};

TEST(MakeTeacher, EveryKindThroughOneFactory) {
  Store store(0);
  PeopleSettings people;
  TeacherConfig cfg;
  cfg.kind = "oracle";
  auto oracle = make_teacher(cfg, 0.0, 1, people, *store.db);
  EXPECT_EQ(oracle->name(), "oracle");
  EXPECT_TRUE(oracle->repeatable());
  EXPECT_EQ(oracle->answer(with_return(3), with_return(1)), Choice::kLeft);
  for (const char* kind : {"mistake", "noisy", "skip", "myopic", "equal", "script"}) {
    cfg.kind = kind;
    auto t = make_teacher(cfg, 0.0, 1, people, *store.db);
    EXPECT_EQ(t->name(), kind);
    EXPECT_TRUE(t->repeatable());
  }
  cfg.kind = "skip";
  EXPECT_TRUE(make_teacher(cfg, 0.0, 1, people, *store.db)->uses_scale());
  cfg.kind = "human";
  auto human = make_teacher(cfg, 0.0, 1, people, *store.db);
  EXPECT_EQ(human->name(), "human");
  EXPECT_FALSE(human->repeatable());
  EXPECT_FALSE(human->answer(with_return(3), with_return(1)).has_value());  // answered later, in the store
  cfg.kind = "ghost";
  EXPECT_THROW(make_teacher(cfg, 0.0, 1, people, *store.db), UsageError);
  EXPECT_TRUE(teacher_needs_people(TeacherConfig{"human"}));
  EXPECT_FALSE(teacher_needs_people(TeacherConfig{"noisy"}));
}

TEST(ScriptedTeacher, NeverMakesTheTrainerWait) {
  OracleTeacher oracle;
  Recorder rec;
  EXPECT_EQ(oracle.room(12, false), 12);
  EXPECT_EQ(oracle.answers_wanted(), 1);
  EXPECT_TRUE(std::isinf(oracle.final_before()));
  EXPECT_EQ(oracle.wait_for_first_labels(5, rec.hooks()), 0.0);
  EXPECT_EQ(oracle.pace(5, rec.hooks()), 0.0);
  EXPECT_EQ(rec.shows + rec.overs + rec.firsts, 0);
}

TEST(PeopleTeacher, NeverMoreThanMaxPendingAheadExceptTheFirstBatch) {
  Store store(2);
  PeopleSettings s;
  s.max_pending = 3;
  s.answers_per_query = 2;
  PeopleTeacher people(s, *store.db);
  EXPECT_EQ(people.room(10, /*initial=*/false), 1);  // 2 pending of 3
  EXPECT_EQ(people.room(10, /*initial=*/true), 10);
  EXPECT_EQ(people.answers_wanted(), 2);
  store.answer(0);  // answered: one pending left
  EXPECT_EQ(people.room(10, false), 2);
}

TEST(PeopleTeacher, LabelsAreFinalAfterTheUndoWindow) {
  Store store(0);
  PeopleSettings s;
  s.undo_window_s = 30;
  PeopleTeacher people(s, *store.db);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(people.final_before(), now - 30, 5);
}

TEST(PeopleTeacher, PacingWaitsForTheAnswersOnlyWhenAskedTo) {
  Store store(3);
  Recorder rec;
  PeopleSettings s;
  s.undo_window_s = 0;
  s.max_label_lag = -1;
  EXPECT_EQ(PeopleTeacher(s, *store.db).pace(3, rec.hooks()), 0.0);  // never waits
  EXPECT_EQ(rec.shows + rec.overs, 0);
  s.max_label_lag = 1;  // at most one of the 3 asked unanswered
  PeopleTeacher people(s, *store.db);
  std::thread labeler([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    auto other = open_pref_store(sqlite_store_url(store.path));  // people answer through the server's own connection
    other->add_labels({{store.ids[0], Choice::kRight, "human", "bo"}, {store.ids[1], Choice::kEqual, "human", "bo"}});
  });
  const double waited = people.pace(3, rec.hooks());
  labeler.join();
  EXPECT_GE(waited, 0.1);
  EXPECT_GE(rec.shows, 1);
  EXPECT_EQ(rec.last_have, 0);
  EXPECT_EQ(rec.last_want, 2);
  EXPECT_EQ(rec.overs, 1);
  EXPECT_EQ(store.db->count_labels(), 2);
}

TEST(PeopleTeacher, FirstLabelsAreAwaitedAndAStopEndsTheWait) {
  Store store(2);
  PeopleSettings s;
  s.undo_window_s = 0;
  s.url = "http://127.0.0.1:1/";
  PeopleTeacher people(s, *store.db);
  Recorder stopped;
  stopped.stop = true;
  people.wait_for_first_labels(2, stopped.hooks());
  EXPECT_EQ(stopped.firsts, 0);  // stopped before they were in
  EXPECT_EQ(stopped.overs, 1);
  Recorder rec;
  store.answer(0);
  store.answer(1);
  people.wait_for_first_labels(2, rec.hooks());
  EXPECT_EQ(rec.firsts, 1);
  EXPECT_EQ(rec.shows, 0);  // already in: no poll
  ASSERT_FALSE(rec.lines.empty());
  EXPECT_NE(rec.lines.back().find("the first 2 labels are in"), std::string::npos);
}

}  // namespace
}  // namespace prefrl
