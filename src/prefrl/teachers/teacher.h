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
  // B-Pref's scale for its thresholds: the typical true return of a clip, set before each batch
  // of queries; uses_scale: the teacher has thresholds that read it.
  virtual void set_typical_return(double segment_return) {}
  virtual bool uses_scale() const { return false; }
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

// The imperfections of B-Pref's simulated teachers (Lee et al. 2021, "B-Pref: Benchmarking
// Preference-Based Reinforcement Learning"), as its get_label applies them, and prefrl's
// older random answers. All at their defaults: the oracle.
struct TeacherKnobs {
  double beta = -1;         // rationality: > 0 answers by Boltzmann (Bradley-Terry) with this inverse temperature; -1 perfectly rational
  double gamma = 1;         // myopia: step t of a clip of L counts gamma^(L-1-t) (the last step fully)
  double eps_mistake = 0;   // probability the answer is flipped
  double skip = 0;          // a query is skipped when neither clip's return exceeds skip x the typical clip return
  double equal = 0;         // "equal" when the returns differ by less than equal x the typical clip return
  double error_rate = 0;    // probability of a uniformly random answer (left / right) in place of the teacher's
};

// A teacher that reads the clips' true rewards (or a script's score) with B-Pref's
// imperfections. A pair of returns R0 (left), R1 (right), each the plain sum over the clip:
//   skip  (skip > 0):  max(R0, R1) <= skip x scale          => skip (no label; the query counts)
//   then, with the myopic sums G0, G1 (weights gamma^(L-1-t)):
//   beta > 0: right with probability 1 / (1 + exp(beta (G0 - G1))); beta = -1: right iff G1 > G0
//   a mistake: the answer flipped with probability eps_mistake
//   equal: |R0 - R1| < equal x scale, or <= tie_tolerance (prefs.tie_tolerance)  => equal
//   random: with probability error_rate, left or right uniformly (prefrl's earlier noisy teacher)
// `scale` is the typical return of a clip (set_typical_return: B-Pref's mean episode return x
// segment length / episode length; only its magnitude is used, so that the thresholds also
// mean something where returns are negative). Random numbers are drawn only for the knobs in
// use, in the order above: the default knobs are the deterministic oracle.
class SimulatedTeacher : public ScriptedTeacher {
 public:
  // Throws UsageError unless beta is -1 or > 0, gamma in (0, 1], eps_mistake and error_rate in
  // [0, 1], skip and equal >= 0 and tie_tolerance a finite number >= 0.
  SimulatedTeacher(std::string name, const TeacherKnobs& knobs, uint64_t seed, double tie_tolerance = 0.0);
  std::string name() const override { return name_; }
  Choice judge(const Segment& left, const Segment& right) override;
  void set_typical_return(double segment_return) override;
  bool uses_scale() const override { return k_.skip > 0 || k_.equal > 0; }
  const TeacherKnobs& knobs() const { return k_; }
  // Empty when no knob draws random numbers (the oracle's checkpoints carry no teacher state).
  std::vector<uint64_t> rng_state() const override;
  void set_rng_state(const std::vector<uint64_t>& state) override;

 private:
  bool random() const { return k_.beta > 0 || k_.eps_mistake > 0 || k_.error_rate > 0; }
  std::string name_;
  TeacherKnobs k_;
  double tol_;
  double scale_ = std::numeric_limits<double>::quiet_NaN();
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

struct TeacherConfig {
  std::string kind = "oracle";  // who answers queries
  TeacherKnobs knobs;           // B-Pref's imperfections (the named teachers set their own; see teacher_knobs)
  std::string score;            // script teacher: the expression it sums over a clip (empty: the task file's)
  double script_error_rate = 0.0;  // script teacher: probability of a random answer

  template <class V>
  void visit(V& v) {
    v.text("kind", kind, "who answers queries: oracle (true return); B-Pref's imperfect teachers (true return): "
           "mistake (eps_mistake 0.1), noisy (beta 1), skip (skip 0.1), myopic (gamma 0.9), equal (equal 0.1); "
           "script (the larger summed score: a task file's [teacher] score or teacher.score; for tasks with no "
           "true reward); human (people in a browser; see server.*)",
           {"oracle", "mistake", "noisy", "skip", "myopic", "equal", "script", "human"});
    v.num("beta", knobs.beta, "rationality (B-Pref): > 0 answers by Boltzmann with this inverse temperature, "
          "-1 perfectly rational; -1: the named teacher's (noisy: 1)", -1.0, std::numeric_limits<double>::infinity());
    v.num("gamma", knobs.gamma, "myopia (B-Pref): step t of a clip of L counts gamma^(L-1-t); 1: the named "
          "teacher's (myopic: 0.9)", 0.0, 1.0);
    v.num("eps_mistake", knobs.eps_mistake, "probability of a flipped answer (B-Pref); 0: the named teacher's "
          "(mistake: 0.1)", 0.0, 1.0);
    v.num("skip", knobs.skip, "skip a query when neither clip's return exceeds this x the typical clip return "
          "(B-Pref's delta_skip; counts against the budget); 0: the named teacher's (skip: 0.1)", 0.0, std::numeric_limits<double>::infinity());
    v.num("equal", knobs.equal, "answer equal when the returns differ by less than this x the typical clip "
          "return (B-Pref's delta_equal); 0: the named teacher's (equal: 0.1)", 0.0, std::numeric_limits<double>::infinity());
    v.num("error_rate", knobs.error_rate, "probability of a uniformly random answer (left / right) in place of a "
          "true-reward teacher's (prefrl's earlier noisy teacher; the script teacher's is script_error_rate)",
          0.0, 1.0);
    v.text("score", score,
           "script teacher: an expression of a step over the task file's quantities (docs/tasks.md); the clip with "
           "the larger sum is preferred; empty: the task file's [teacher] score");
    v.num("script_error_rate", script_error_rate, "script teacher: probability of a random answer", 0.0, 1.0);
  }
};

// The knobs a scripted teacher of `cfg` answers with: each one the key's value, or, where the
// key is at its default (the oracle's), the named teacher's (mistake: eps_mistake 0.1, noisy:
// beta 1, skip: skip 0.1, myopic: gamma 0.9, equal: equal 0.1); the script teacher's random
// answers are script_error_rate. Throws UsageError for a knob out of its range (beta must be -1
// or > 0).
TeacherKnobs teacher_knobs(const TeacherConfig& cfg);
// "beta 1, gamma 0.9, ..." of the knobs that differ from the oracle's ("none" when none do).
std::string describe_knobs(const TeacherKnobs& k);
// True when the teacher reads the clips' true rewards (the oracle and B-Pref's teachers).
bool teacher_reads_true_reward(const std::string& kind);

// True when teachers of this kind answer through the labeling page (it must be served).
bool teacher_needs_people(const TeacherConfig& cfg);

// The teacher of a run: scripted ones from `cfg` (`seed` for their random answers), people with
// `people` reading `store`.
std::unique_ptr<Teacher> make_teacher(const TeacherConfig& cfg, double tie_tolerance, uint64_t seed,
                                      const PeopleSettings& people, const PrefStore& store);

}  // namespace prefrl
