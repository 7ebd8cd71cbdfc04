// Teachers: the oracle reads true returns; B-Pref's simulated teachers add its imperfections;
// people answer through the labeling page, and the trainer waits for them only where they ask it to.
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

namespace {
std::string num(double x) { return fmt::format("{:g}", x); }
}  // namespace

SimulatedTeacher::SimulatedTeacher(std::string name, const TeacherKnobs& knobs, uint64_t seed, double tie_tolerance)
    : name_(std::move(name)), k_(knobs), tol_(tie_tolerance), rng_(seed) {
  const std::string who = name_ + " teacher: ";
  if (!(k_.beta == -1.0 || (k_.beta > 0.0 && std::isfinite(k_.beta))))
    throw UsageError(who + "beta " + num(k_.beta) + " must be -1 (perfectly rational) or a finite number > 0");
  if (!(k_.gamma > 0.0 && k_.gamma <= 1.0)) throw UsageError(who + "gamma " + num(k_.gamma) + " must be in (0, 1]");
  if (!(k_.eps_mistake >= 0.0 && k_.eps_mistake <= 1.0))
    throw UsageError(who + "eps_mistake " + num(k_.eps_mistake) + " must be in [0, 1]");
  if (!(k_.error_rate >= 0.0 && k_.error_rate <= 1.0))
    throw UsageError(who + "error_rate " + num(k_.error_rate) + " must be in [0, 1]");
  if (!(k_.skip >= 0.0 && std::isfinite(k_.skip))) throw UsageError(who + "skip " + num(k_.skip) + " must be >= 0");
  if (!(k_.equal >= 0.0 && std::isfinite(k_.equal)))
    throw UsageError(who + "equal " + num(k_.equal) + " must be >= 0");
  if (!(tie_tolerance >= 0.0 && std::isfinite(tie_tolerance)))
    throw UsageError(who + "tie_tolerance " + num(tie_tolerance) + " must be a finite number >= 0");
}

void SimulatedTeacher::set_typical_return(double segment_return) {
  if (!std::isfinite(segment_return))
    throw RuntimeError(name_ + " teacher: the typical clip return " + num(segment_return) + " is not finite");
  scale_ = std::fabs(segment_return);
}

std::vector<uint64_t> SimulatedTeacher::rng_state() const { return random() ? rng_.state() : std::vector<uint64_t>{}; }

void SimulatedTeacher::set_rng_state(const std::vector<uint64_t>& state) {
  if (!state.empty()) rng_.set_state(state);
}

Choice SimulatedTeacher::judge(const Segment& left, const Segment& right) {
  const double r0 = left.true_return(), r1 = right.true_return();
  if (std::isnan(r0) || std::isnan(r1))
    throw RuntimeError(name_ + " teacher: true return is NaN (segment " + std::to_string(left.id) + ": " +
                       std::to_string(r0) + ", segment " + std::to_string(right.id) + ": " + std::to_string(r1) + ")");
  if (uses_scale() && std::isnan(scale_))
    throw RuntimeError(name_ + " teacher: its skip / equal thresholds need the typical clip return, and none was set");
  if (k_.skip > 0 && std::max(r0, r1) <= k_.skip * scale_) return Choice::kSkip;
  // Myopic sums: B-Pref multiplies steps [0, t] by gamma for every t < L - 1.
  auto myopic = [&](const Segment& s) {
    if (k_.gamma == 1.0) return s.true_return();
    double g = 0.0;
    for (float r : s.true_rewards) g = g * k_.gamma + r;
    return g;
  };
  const double g0 = myopic(left), g1 = myopic(right);
  bool prefer_right = g1 > g0;
  if (k_.beta > 0) {
    const double p_right = 1.0 / (1.0 + std::exp(k_.beta * (g0 - g1)));
    prefer_right = rng_.uniform() < p_right;
  }
  if (k_.eps_mistake > 0 && rng_.uniform() < k_.eps_mistake) prefer_right = !prefer_right;
  Choice c = prefer_right ? Choice::kRight : Choice::kLeft;
  if (r0 == r1 || std::fabs(r0 - r1) <= tol_ || std::fabs(r0 - r1) < k_.equal * scale_) c = Choice::kEqual;
  if (k_.error_rate > 0 && rng_.bernoulli(k_.error_rate)) c = rng_.integer(2) == 0 ? Choice::kLeft : Choice::kRight;
  return c;
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

bool teacher_reads_true_reward(const std::string& kind) {
  for (const char* k : {"oracle", "mistake", "noisy", "skip", "myopic", "equal"}) if (kind == k) return true;
  return false;
}

TeacherKnobs teacher_knobs(const TeacherConfig& cfg) {
  TeacherKnobs k = cfg.knobs;
  const TeacherKnobs oracle;
  auto named = [&](double& knob, double oracle_value, const char* kind, double value) {
    if (cfg.kind == kind && knob == oracle_value) knob = value;
  };
  named(k.eps_mistake, oracle.eps_mistake, "mistake", 0.1);
  named(k.beta, oracle.beta, "noisy", 1.0);
  named(k.skip, oracle.skip, "skip", 0.1);
  named(k.gamma, oracle.gamma, "myopic", 0.9);
  named(k.equal, oracle.equal, "equal", 0.1);
  if (cfg.kind == "script") k.error_rate = cfg.script_error_rate;
  SimulatedTeacher check(cfg.kind, k, 0);  // throws for a knob out of range
  return k;
}

std::string describe_knobs(const TeacherKnobs& k) {
  const TeacherKnobs o;
  std::string out;
  auto add = [&](const char* name, double v, double d) {
    if (v != d) out += (out.empty() ? "" : ", ") + std::string(name) + " " + num(v);
  };
  add("beta", k.beta, o.beta);
  add("gamma", k.gamma, o.gamma);
  add("eps_mistake", k.eps_mistake, o.eps_mistake);
  add("skip", k.skip, o.skip);
  add("equal", k.equal, o.equal);
  add("error_rate", k.error_rate, o.error_rate);
  return out.empty() ? "none" : out;
}

std::unique_ptr<Teacher> make_teacher(const TeacherConfig& cfg, double tie_tolerance, uint64_t seed,
                                      const PeopleSettings& people, const PrefStore& store) {
  if (cfg.kind == "human") return std::make_unique<PeopleTeacher>(people, store);
  if (teacher_reads_true_reward(cfg.kind) || cfg.kind == "script")
    return std::make_unique<SimulatedTeacher>(cfg.kind, teacher_knobs(cfg), seed, tie_tolerance);
  throw UsageError("teacher.kind '" + cfg.kind +
                   "' is not one of: oracle, mistake, noisy, skip, myopic, equal, script, human");
}

}  // namespace prefrl
