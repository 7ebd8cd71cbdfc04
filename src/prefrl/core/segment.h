// A segment: a fixed-length window of consecutive steps of one environment, the unit a
// teacher compares. An episode that ends inside the window is padded with its absorbing
// terminal state: those steps have absorbing=1, true reward 0, the terminal observation
// (kept for display), and zero actions. Learners must feed absorbing steps to models as an
// "absorbing" input (see reward/), never as ordinary steps, so that episode length alone
// carries no signal.
#pragma once
#include <cstdint>
#include <vector>

namespace prefrl {

struct Segment {
  int64_t id = -1;          // database id; -1 until stored
  int length = 0;           // L: steps in the window
  int64_t obs_size = 0;     // D: floats per observation
  int64_t act_size = 0;     // A: floats per action (1 for discrete: the index)
  std::vector<float> obs;          // (L x D) observation before each step's action
  std::vector<float> actions;      // (L x A)
  std::vector<float> true_rewards; // (L) hidden from learners; teachers and metrics only
  std::vector<uint8_t> absorbing;  // (L) 1 for padded steps after the episode ended
  // The physical state behind each observation, kept where observations do not determine it
  // (EnvSpec::obs_determines_state false, e.g. MuJoCo), so that clips can be rendered for
  // people; never read by learners. Padded steps repeat the terminal state.
  int64_t state_size = 0;          // S: floats per state; 0 when no states are kept
  std::vector<float> states;       // (L x S) Env::get_state() before each step's action
  int64_t env_step = 0;     // global environment step when the window was collected
  int env_index = 0;        // which environment of the VecEnv produced it

  double true_return() const {
    double s = 0.0;
    for (float r : true_rewards) s += r;
    return s;
  }
};

// A teacher's answer: which of two segments is better.
enum class Choice { kLeft, kRight, kEqual, kSkip };

const char* choice_name(Choice c);        // "left" | "right" | "equal" | "skip"
bool parse_choice(const char* s, Choice* out);
// Probability that left is preferred, as a training target: 1, 0, 0.5; skip has none (-1).
inline float choice_target(Choice c) {
  switch (c) {
    case Choice::kLeft: return 1.0f;
    case Choice::kRight: return 0.0f;
    case Choice::kEqual: return 0.5f;
    default: return -1.0f;
  }
}

// A labeled pair ready for training: both segments and the target P(left better).
struct LabeledPair {
  int64_t label_id = -1;
  int64_t query_id = -1;
  Segment left, right;
  float target = 0.5f;   // 1 left better, 0 right better, 0.5 equal
};

}  // namespace prefrl
