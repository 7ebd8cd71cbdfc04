// Teachers: the oracle reads true returns; the noisy teacher sometimes guesses; people answer
// through the labeling page, and the trainer waits for them only where they ask it to.
#include "prefrl/teachers/teacher.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <thread>
#include <string>

#include "prefrl/core/error.h"
#include "prefrl/prefs/pref_store.h"

namespace prefrl {

OracleTeacher::OracleTeacher(double tie_tolerance) : tol_(tie_tolerance) {
  if (!(tie_tolerance >= 0.0 && std::isfinite(tie_tolerance)))
    throw UsageError("oracle teacher: tie_tolerance " + std::to_string(tie_tolerance) +
                     " must be a finite number >= 0");
}

Choice OracleTeacher::judge(const Segment& left, const Segment& right) {
  const double a = left.true_return(), b = right.true_return();
  if (std::isnan(a) || std::isnan(b))
    throw RuntimeError("oracle teacher: true return is NaN (segment " + std::to_string(left.id) + ": " +
                       std::to_string(a) + ", segment " + std::to_string(right.id) + ": " +
                       std::to_string(b) + ")");
  if (a == b || std::fabs(a - b) <= tol_) return Choice::kEqual;  // a == b: equal infinities
  return a > b ? Choice::kLeft : Choice::kRight;
}

NoisyTeacher::NoisyTeacher(double error_rate, uint64_t seed, double tie_tolerance)
    : oracle_(tie_tolerance), error_rate_(error_rate), rng_(seed) {
  if (!(error_rate >= 0.0 && error_rate <= 1.0))
    throw UsageError("noisy teacher: error_rate " + std::to_string(error_rate) + " must be in [0, 1]");
}

Choice NoisyTeacher::judge(const Segment& left, const Segment& right) {
  const Choice truth = oracle_.judge(left, right);
  if (!rng_.bernoulli(error_rate_)) return truth;
  return rng_.integer(2) == 0 ? Choice::kLeft : Choice::kRight;
}

PeopleTeacher::PeopleTeacher(const PeopleSettings& settings, const PrefStore& store) : s_(settings), store_(store) {}

int64_t PeopleTeacher::room(int64_t due, bool initial) const {
  // Never more than max_pending unanswered queries ahead of the people (the first batch, which
  // pre-training waits for, is asked whole).
  return initial ? due : std::min<int64_t>(due, s_.max_pending - store_.count_pending());
}

double PeopleTeacher::final_before() const {
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return now - s_.undo_window_s;
}

double PeopleTeacher::wait_for(int64_t want, bool say_every_10s, const WaitHooks& hooks) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const auto t0 = Clock::now();
  auto last_line = Clock::now() - std::chrono::hours(1);
  auto given = [&] { return store_.count_labels() - s_.labels_before; };
  for (int64_t have = given(); have < want && !hooks.stop(); have = given()) {
    hooks.show(have, want);
    if (say_every_10s && since(last_line) >= 10.0) {
      hooks.say(fmt::format("waiting for the first labels: {} of {} given; label at {}", have, want, s_.url));
      last_line = Clock::now();
    }
    hooks.waited(since(t0));
    std::this_thread::sleep_for(std::chrono::milliseconds(say_every_10s ? 200 : 20));
  }
  const double waited = since(t0);
  hooks.over(waited);
  return waited;
}

double PeopleTeacher::wait_for_first_labels(int64_t need, const WaitHooks& hooks) {
  const double waited = wait_for(need, true, hooks);
  if (hooks.stop()) return waited;
  hooks.first_labels_in(need);
  hooks.say(fmt::format("the first {} labels are in; training starts in {:g} s (the undo window)", need,
                        s_.undo_window_s));
  std::this_thread::sleep_for(std::chrono::duration<double>(s_.undo_window_s));
  return waited;
}

double PeopleTeacher::pace(int64_t asked, const WaitHooks& hooks) {
  if (s_.max_label_lag < 0) return 0.0;
  // Paced by the people (opt-in): pause while more than max_label_lag of the queries asked so
  // far are unanswered (0: every label is in before training goes on, as with a script).
  const double waited = wait_for(asked - s_.max_label_lag, false, hooks);
  if (s_.max_label_lag == 0 && s_.undo_window_s > 0)
    std::this_thread::sleep_for(std::chrono::duration<double>(s_.undo_window_s));
  return waited;
}

bool teacher_needs_people(const TeacherConfig& cfg) { return cfg.kind == "human"; }

std::unique_ptr<Teacher> make_teacher(const TeacherConfig& cfg, double tie_tolerance, uint64_t seed,
                                      const PeopleSettings& people, const PrefStore& store) {
  if (cfg.kind == "human") return std::make_unique<PeopleTeacher>(people, store);
  if (cfg.kind == "oracle") return std::make_unique<OracleTeacher>(tie_tolerance);
  if (cfg.kind == "noisy") return std::make_unique<NoisyTeacher>(cfg.error_rate, seed, tie_tolerance);
  if (cfg.kind == "script") return std::make_unique<ScoreTeacher>(cfg.script_error_rate, seed, tie_tolerance);
  throw UsageError("teacher.kind '" + cfg.kind + "' is not one of: oracle, noisy, script, human");
}

}  // namespace prefrl
