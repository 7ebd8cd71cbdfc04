// Cutting segments from trajectories (see segments.h for the rules) and the segment pool.
#include "prefrl/prefs/segments.h"

#include <algorithm>
#include <string>

#include "prefrl/core/error.h"

namespace prefrl {
namespace {

// Number of real (non-padding) steps of the window starting at `s`, or 0 if no valid window
// of `length` steps starts there: it would cross a truncation or the trajectory's end.
int real_steps(const TrajectoryView& traj, int s, int length) {
  const int T = traj.size();
  for (int i = 0; i < length; ++i) {
    const int t = s + i;
    if (t >= T) return 0;                          // ran off the end without a termination
    if (traj.terminated_at(t)) return i + 1;       // the rest is absorbing padding
    if (traj.truncated_at(t) && i < length - 1) return 0;  // the next step is another episode
  }
  return length;
}

// Appends steps [s, s + n) of a column of the view of `width` per step to `out`.
void append_steps(std::vector<float>* out, const TrajectoryView& v, const float* col, int s, int n, int64_t width) {
  for (int t = s; t < s + n; ++t) {
    const float* p = col + v.index(t) * width;
    out->insert(out->end(), p, p + width);
  }
}

// Appends steps [s, s + n) of a uint8 space's observations as bytes; false if a value is not a
// byte / 255.
bool append_obs_bytes(std::vector<uint8_t>* out, const TrajectoryView& v, int s, int n) {
  bool ok = true;
  for (int t = s; t < s + n; ++t) {
    const size_t at = out->size();
    out->resize(at + static_cast<size_t>(v.D));
    ok &= obs_to_bytes(v.obs + v.index(t) * v.D, static_cast<size_t>(v.D), out->data() + at);
  }
  return ok;
}

// Copies the window starting at `s` with `real` real steps into a Segment of `length` steps
// (a uint8 space's observations straight into bytes).
Segment make_segment(const TrajectoryView& traj, int s, int length, int real) {
  const int64_t D = traj.D, A = traj.A, S = traj.S;
  Segment seg;
  seg.length = length;
  seg.obs_size = D;
  seg.act_size = A;
  seg.env_step = traj.start_env_step + static_cast<int64_t>(s) * traj.num_envs;
  seg.env_index = traj.env_index;
  bool bytes_ok = true;
  if (traj.obs_bytes) {
    seg.obs_bytes.reserve(static_cast<size_t>(length) * D);
    bytes_ok = append_obs_bytes(&seg.obs_bytes, traj, s, real);
  } else {
    seg.obs.reserve(static_cast<size_t>(length) * D);
    append_steps(&seg.obs, traj, traj.obs, s, real, D);
  }
  append_steps(&seg.actions, traj, traj.actions, s, real, A);
  for (int t = s; t < s + real; ++t) seg.true_rewards.push_back(traj.true_reward(t));
  seg.absorbing.assign(real, 0);
  seg.state_size = S;
  append_steps(&seg.states, traj, traj.states, s, real, S);
  if (real < length) {
    // Absorbing padding: the terminal observation (and state) of the last real step, zero
    // action, reward 0.
    const int last = s + real - 1;
    const float* fin = traj.final_obs_at(last);
    if (traj.obs_bytes) {
      std::vector<uint8_t> b(static_cast<size_t>(D));
      bytes_ok &= obs_to_bytes(fin, b.size(), b.data());
      for (int i = real; i < length; ++i) seg.obs_bytes.insert(seg.obs_bytes.end(), b.begin(), b.end());
    } else {
      for (int i = real; i < length; ++i) seg.obs.insert(seg.obs.end(), fin, fin + D);
    }
    const float* fin_state = traj.final_state_at(last);
    for (int i = real; i < length; ++i) seg.states.insert(seg.states.end(), fin_state, fin_state + S);
    seg.actions.resize(static_cast<size_t>(length) * A, 0.0f);
    seg.true_rewards.resize(length, 0.0f);
    seg.absorbing.resize(length, 1);
  }
  if (!bytes_ok) {
    throw RuntimeError("cut_segments: env " + std::to_string(traj.env_index) +
                       " has a uint8 observation space, but an observation value is not a byte / 255");
  }
  return seg;
}

}  // namespace

TrajectoryView Trajectory::view() const {
  const int64_t T = size();
  const int64_t D = obs_size, A = act_size;
  auto expect = [&](const char* name, size_t got, int64_t want) {
    if (static_cast<int64_t>(got) != want) {
      throw UsageError("cut_segments: trajectory of env " + std::to_string(env_index) + " has " +
                       std::to_string(got) + " values in '" + name + "', expected " + std::to_string(want) +
                       " (T=" + std::to_string(T) + ", obs_size=" + std::to_string(D) + ", act_size=" +
                       std::to_string(A) + ")");
    }
  };
  expect("obs", obs.size(), T * D);
  expect("actions", actions.size(), T * A);
  expect("terminated", terminated.size(), T);
  expect("truncated", truncated.size(), T);
  expect("final_obs", final_obs.size(), T * D);
  expect("states", states.size(), T * state_size);
  expect("final_states", final_states.size(), T * state_size);
  TrajectoryView v;
  v.T = static_cast<int>(T);
  v.D = D; v.A = A; v.S = state_size;
  v.stride = 1;
  v.obs = obs.data(); v.actions = actions.data(); v.true_rewards = true_rewards.data();
  v.terminated = terminated.data(); v.truncated = truncated.data(); v.final_obs = final_obs.data();
  v.states = states.data(); v.final_states = final_states.data();
  v.start_env_step = start_env_step;
  v.num_envs = num_envs;
  v.env_index = env_index;
  return v;
}

Trajectory Trajectory::copy_of(const TrajectoryView& v) {
  Trajectory tr;
  tr.obs_size = v.D; tr.act_size = v.A; tr.state_size = v.S;
  tr.start_env_step = v.start_env_step; tr.num_envs = v.num_envs; tr.env_index = v.env_index;
  append_steps(&tr.obs, v, v.obs, 0, v.T, v.D);
  append_steps(&tr.actions, v, v.actions, 0, v.T, v.A);
  append_steps(&tr.final_obs, v, v.final_obs, 0, v.T, v.D);
  append_steps(&tr.states, v, v.states, 0, v.T, v.S);
  append_steps(&tr.final_states, v, v.final_states, 0, v.T, v.S);
  for (int t = 0; t < v.T; ++t) {
    tr.true_rewards.push_back(v.true_reward(t));
    tr.terminated.push_back(v.terminated_at(t));
    tr.truncated.push_back(v.truncated_at(t));
  }
  return tr;
}

std::vector<Segment> cut_segments(const TrajectoryView& traj, int length, int count, Rng& rng) {
  if (length < 1) throw UsageError("cut_segments: segment length " + std::to_string(length) + " must be >= 1");
  if (count < 0) throw UsageError("cut_segments: count " + std::to_string(count) + " must be >= 0");
  if (traj.D <= 0 || traj.A < 0 || traj.S < 0) {
    throw UsageError("cut_segments: trajectory has obs_size " + std::to_string(traj.D) + ", act_size " +
                     std::to_string(traj.A) + " and state_size " + std::to_string(traj.S) +
                     "; expected obs_size > 0, act_size >= 0 and state_size >= 0");
  }
  if (traj.num_envs < 1) {
    throw UsageError("cut_segments: trajectory has num_envs " + std::to_string(traj.num_envs) + ", expected >= 1");
  }

  // Valid start positions and their number of real steps, in trajectory order.
  std::vector<int> starts, reals;
  for (int s = 0; s < traj.size(); ++s) {
    const int real = real_steps(traj, s, length);
    if (real > 0) { starts.push_back(s); reals.push_back(real); }
  }

  // Partial Fisher–Yates: the first k entries of `order` are a uniform sample without
  // replacement. Chosen windows are then returned in trajectory order.
  const size_t k = std::min(starts.size(), static_cast<size_t>(count));
  std::vector<size_t> order(starts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (size_t i = 0; i < k; ++i) std::swap(order[i], order[i + rng.integer(order.size() - i)]);
  order.resize(k);
  std::sort(order.begin(), order.end());

  std::vector<Segment> out;
  out.reserve(k);
  for (size_t j : order) out.push_back(make_segment(traj, starts[j], length, reals[j]));
  return out;
}

void SegmentPool::add(Segment seg) {
  segs_.push_back(std::move(seg));
  while (segs_.size() > capacity_) segs_.pop_front();
}

}  // namespace prefrl
