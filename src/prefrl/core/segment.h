// A segment: a fixed-length window of consecutive steps of one environment, the unit a
// teacher compares. An episode that ends inside the window is padded with its absorbing
// terminal state: those steps have absorbing=1, true reward 0, the terminal observation
// (kept for display), and zero actions. Learners must feed absorbing steps to models as an
// "absorbing" input (see reward/), never as ordinary steps, so that episode length alone
// carries no signal.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace prefrl {

// Observations of a uint8 space (Space::dtype, envs/env.h) are the floats byte / 255 wherever
// they are computed with (environments write them, networks read them), and the bytes wherever
// they are kept (segments, the preference store), a quarter of the size. The two conversions
// are exact inverses: obs_to_byte(byte_to_obs(b)) == b for every byte.
inline float byte_to_obs(uint8_t b) { return static_cast<float>(b) / 255.0f; }
// The byte whose float x is; false if x is not byte_to_obs of any byte.
// (Branch-free, so that loops over it vectorise: x is clamped to [0, 1] first, NaN to 0, and a
// clamped or rounded value that is not x fails the final comparison. For a byte's float,
// x * 255 is within an ulp of the byte, so adding 0.5 and truncating gives it.)
inline bool obs_to_byte(float x, uint8_t* b) {
  const float c = std::min(1.0f, std::max(0.0f, x));
  *b = static_cast<uint8_t>(static_cast<int>(c * 255.0f + 0.5f));
  return byte_to_obs(*b) == x;
}
// obs_to_byte over n values: false if any is not a byte / 255 (out then holds garbage there).
inline bool obs_to_bytes(const float* x, size_t n, uint8_t* out) {
  bool ok = true;
  for (size_t k = 0; k < n; ++k) ok &= obs_to_byte(x[k], &out[k]);
  return ok;
}

struct Segment {
  int64_t id = -1;          // database id; -1 until stored
  int length = 0;           // L: steps in the window
  int64_t obs_size = 0;     // D: floats per observation
  int64_t act_size = 0;     // A: floats per action (1 for discrete: the index)
  std::vector<float> obs;          // (L x D) observation before each step's action (float spaces)
  std::vector<uint8_t> obs_bytes;  // (L x D) the same as bytes, for uint8 spaces (obs then empty)
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

  // Whether the observations are kept as bytes (a uint8 space).
  bool obs_in_bytes() const { return !obs_bytes.empty(); }
  // Observation values kept, floats or bytes: L x D when well formed.
  size_t obs_count() const { return obs_in_bytes() ? obs_bytes.size() : obs.size(); }
  // Step t's observation as floats: in place, or decoded into *scratch (resized to D).
  const float* obs_row(int t, std::vector<float>* scratch) const {
    if (!obs_in_bytes()) return obs.data() + static_cast<size_t>(t) * obs_size;
    scratch->resize(static_cast<size_t>(obs_size));
    const uint8_t* b = obs_bytes.data() + static_cast<size_t>(t) * obs_size;
    for (int64_t j = 0; j < obs_size; ++j) (*scratch)[j] = byte_to_obs(b[j]);
    return scratch->data();
  }
  // obs => obs_bytes (obs emptied); false, changing nothing, if a value is not a byte / 255.
  bool pack_obs() {
    if (obs_in_bytes() || obs.empty()) return true;
    std::vector<uint8_t> b(obs.size());
    if (!obs_to_bytes(obs.data(), obs.size(), b.data())) return false;
    obs_bytes = std::move(b);
    obs.clear();
    return true;
  }
  // Whether both hold the same observation values, whichever way each keeps them (a clip
  // stored as floats by an older prefrl equals the same clip kept as bytes).
  bool same_obs(const Segment& o) const {
    if (obs_in_bytes() == o.obs_in_bytes()) return obs == o.obs && obs_bytes == o.obs_bytes;
    const Segment& b = obs_in_bytes() ? *this : o;
    const Segment& f = obs_in_bytes() ? o : *this;
    if (b.obs_bytes.size() != f.obs.size()) return false;
    for (size_t k = 0; k < f.obs.size(); ++k)
      if (byte_to_obs(b.obs_bytes[k]) != f.obs[k]) return false;
    return true;
  }
  // obs_bytes => obs (obs_bytes emptied).
  void unpack_obs() {
    if (!obs_in_bytes()) return;
    obs.resize(obs_bytes.size());
    for (size_t k = 0; k < obs_bytes.size(); ++k) obs[k] = byte_to_obs(obs_bytes[k]);
    obs_bytes.clear();
  }

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
