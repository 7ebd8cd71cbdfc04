// Teachers answer queries. The trainer asks every kind the same way (DESIGN.md, "Teachers"):
//
//   room(due) => how many queries may be asked now        (people: at most max_pending unanswered)
//   answer(left, right) => an answer now, or none          (scripted: now; people: later, in the store)
//   final_before() => labels created before then are final (people may undo within the undo window)
//   wait_for_first_labels / pace => block while people are behind (scripted teachers never wait)
//
// Scripted teachers (oracle, noisy) read the clips' true rewards and answer at once; people
// answer later through the labeling page, whose answers the trainer polls from the preference
// store. The trainer has no branch on which.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/core/segment.h"

namespace prefrl {

class PrefStore;

// What the trainer does while a teacher makes it wait (see PeopleTeacher).
struct WaitHooks {
  std::function<bool()> stop;                                   // true: stop waiting (a signal arrived)
  std::function<void(int64_t have, int64_t want)> show;         // every poll: the count so far
  std::function<void(double waited_s)> waited;                  // every poll: seconds waited so far
  std::function<void(double waited_s)> over;                    // the wait ended after waited_s
  std::function<void(const std::string&)> say;                  // one line in the run's log
  std::function<void(int64_t need)> first_labels_in;            // pre-training's first labels are all in
};

class Teacher {
 public:
  virtual ~Teacher() = default;
  virtual std::string name() const = 0;  // stored with each label ("oracle", ...); people: their own names
  // Of `due` queries, how many may be asked now; `initial`: pre-training's batch, which is
  // always asked whole.
  virtual int64_t room(int64_t due, bool initial) const { return due; }
  // True when it answers the same pair the same way again (a resumed run then re-chooses the
  // stopped run's queries and takes their answers from the store instead of asking again).
  virtual bool repeatable() const { return false; }
  // Answers each query wants (people: from different labelers).
  virtual int answers_wanted() const { return 1; }
  // The answer to a query now, or nullopt when it comes later through the store.
  virtual std::optional<Choice> answer(const Segment& left, const Segment& right) = 0;
  // Labels created (unix time) before this are final and may be used; scripted teachers' at once.
  virtual double final_before() const { return std::numeric_limits<double>::infinity(); }
  // Pre-training: blocks until the first `need` labels are in the store (and may still be undone
  // for the undo window). Returns the seconds waited. A teacher that answers at once never waits.
  virtual double wait_for_first_labels(int64_t need, const WaitHooks& hooks) { return 0.0; }
  // Each iteration, after queries were asked (`asked` in all): blocks while the teacher is
  // further behind than it lets training run ahead. Returns the seconds waited.
  virtual double pace(int64_t asked, const WaitHooks& hooks) { return 0.0; }
  // Random state, for checkpoints (empty for a deterministic teacher).
  virtual std::vector<uint64_t> rng_state() const { return {}; }
  virtual void set_rng_state(const std::vector<uint64_t>& state) {}
};

// A teacher that reads the clips' true rewards and answers at once.
class ScriptedTeacher : public Teacher {
 public:
  virtual Choice judge(const Segment& left, const Segment& right) = 0;
  std::optional<Choice> answer(const Segment& left, const Segment& right) override { return judge(left, right); }
  bool repeatable() const override { return true; }
};

// Prefers the segment with the higher true return; "equal" when the returns are equal
// within `tie_tolerance` (absolute).
class OracleTeacher : public ScriptedTeacher {
 public:
  // Throws UsageError unless tie_tolerance is a finite number >= 0.
  explicit OracleTeacher(double tie_tolerance = 0.0);
  std::string name() const override { return "oracle"; }
  Choice judge(const Segment& left, const Segment& right) override;
 private:
  double tol_;
};

// The oracle's answer replaced by a uniformly random one (left/right) with probability
// `error_rate`, e.g. to test robustness.
class NoisyTeacher : public ScriptedTeacher {
 public:
  // Throws UsageError unless error_rate is in [0, 1]. Deterministic given `seed`.
  NoisyTeacher(double error_rate, uint64_t seed, double tie_tolerance = 0.0);
  std::string name() const override { return "noisy"; }
  Choice judge(const Segment& left, const Segment& right) override;
  std::vector<uint64_t> rng_state() const override { return rng_.state(); }
  void set_rng_state(const std::vector<uint64_t>& state) override { rng_.set_state(state); }
 private:
  OracleTeacher oracle_;
  double error_rate_;
  Rng rng_;
};

// How people label (server.* keys; the labeling server itself lives in server/).
struct PeopleSettings {
  int answers_per_query = 1;   // answers each query collects
  double undo_window_s = 10;   // a label waits this long before training uses it
  int max_pending = 30;        // at most this many unanswered queries are asked ahead
  int max_label_lag = -1;      // >= 0: training pauses while more asked queries are unanswered
  std::string url;             // the labeling page, named in the waiting lines
  int64_t labels_before = 0;   // labels in the store the run did not ask for (imported): not waited for
};

// People in a browser: queries wait in the store until someone answers them on the labeling
// page; the trainer polls the answers. Reads the store through the trainer's connection.
class PeopleTeacher : public Teacher {
 public:
  PeopleTeacher(const PeopleSettings& settings, const PrefStore& store);
  std::string name() const override { return "human"; }
  int64_t room(int64_t due, bool initial) const override;
  int answers_wanted() const override { return s_.answers_per_query; }
  std::optional<Choice> answer(const Segment&, const Segment&) override { return std::nullopt; }
  double final_before() const override;
  double wait_for_first_labels(int64_t need, const WaitHooks& hooks) override;
  double pace(int64_t asked, const WaitHooks& hooks) override;

 private:
  // Blocks until the store holds `want` labels (or hooks.stop()); says so every 10 s if asked.
  double wait_for(int64_t want, bool say_every_10s, const WaitHooks& hooks);
  PeopleSettings s_;
  const PrefStore& store_;
};

// Prefers the segment with the larger summed score (a task file's [teacher] score or
// teacher.score, which the environment reports in the clips' reward slot, Segment::true_rewards,
// in place of a true reward), with a uniformly random answer (left/right) with probability
// `error_rate`. Stands in for a person on tasks that have no true reward.
class ScoreTeacher : public NoisyTeacher {
 public:
  using NoisyTeacher::NoisyTeacher;
  std::string name() const override { return "script"; }
};

struct TeacherConfig {
  std::string kind = "oracle";  // who answers queries
  double error_rate = 0.1;      // noisy teacher: probability of a random answer
  std::string score;            // script teacher: the expression it sums over a clip (empty: the task file's)
  double script_error_rate = 0.0;  // script teacher: probability of a random answer

  template <class V>
  void visit(V& v) {
    v.text("kind", kind, "who answers queries: oracle (true return), noisy (oracle with random errors), "
           "script (the larger summed score: a task file's [teacher] score or teacher.score; for tasks with no "
           "true reward), human (people in a browser; see server.*)", {"oracle", "noisy", "script", "human"});
    v.num("error_rate", error_rate, "noisy teacher: probability of a random answer", 0.0, 1.0);
    v.text("score", score,
           "script teacher: an expression of a step over the task file's quantities (docs/tasks.md); the clip with "
           "the larger sum is preferred; empty: the task file's [teacher] score");
    v.num("script_error_rate", script_error_rate, "script teacher: probability of a random answer", 0.0, 1.0);
  }
};

// True when teachers of this kind answer through the labeling page (it must be served).
bool teacher_needs_people(const TeacherConfig& cfg);

// The teacher of a run: scripted ones from `cfg` (`seed` for the noisy one's RNG), people with
// `people` reading `store`.
std::unique_ptr<Teacher> make_teacher(const TeacherConfig& cfg, double tie_tolerance, uint64_t seed,
                                      const PeopleSettings& people, const PrefStore& store);

}  // namespace prefrl
