// Cutting segments from trajectories (see segments.h for the rules) and the segment pool.
#include "prefrl/prefs/segments.h"

#include <algorithm>
#include <string>

#include "prefrl/core/error.h"

namespace prefrl {
namespace {

// Throws UsageError unless every per-step array of `traj` has the size its shapes imply.
void check_trajectory(const Trajectory& traj) {
  const int64_t T = traj.size();
  const int64_t D = traj.obs_size, A = traj.act_size;
  auto expect = [&](const char* name, size_t got, int64_t want) {
    if (static_cast<int64_t>(got) != want) {
      throw UsageError("cut_segments: trajectory of env " + std::to_string(traj.env_index) +
                       " has " + std::to_string(got) + " values in '" + name + "', expected " +
                       std::to_string(want) + " (T=" + std::to_string(T) + ", obs_size=" +
                       std::to_string(D) + ", act_size=" + std::to_string(A) + ")");
    }
  };
  if (D <= 0 || A < 0 || traj.state_size < 0) {
    throw UsageError("cut_segments: trajectory has obs_size " + std::to_string(D) + ", act_size " +
                     std::to_string(A) + " and state_size " + std::to_string(traj.state_size) +
                     "; expected obs_size > 0, act_size >= 0 and state_size >= 0");
  }
  if (traj.num_envs < 1) {
    throw UsageError("cut_segments: trajectory has num_envs " + std::to_string(traj.num_envs) +
                     ", expected >= 1");
  }
  expect("obs", traj.obs.size(), T * D);
  expect("actions", traj.actions.size(), T * A);
  expect("terminated", traj.terminated.size(), T);
  expect("truncated", traj.truncated.size(), T);
  expect("final_obs", traj.final_obs.size(), T * D);
  expect("states", traj.states.size(), T * traj.state_size);
  expect("final_states", traj.final_states.size(), T * traj.state_size);
}

// Number of real (non-padding) steps of the window starting at `s`, or 0 if no valid window
// of `length` steps starts there: it would cross a truncation or the trajectory's end.
int real_steps(const Trajectory& traj, int s, int length) {
  const int T = traj.size();
  for (int i = 0; i < length; ++i) {
    const int t = s + i;
    if (t >= T) return 0;                       // ran off the end without a termination
    if (traj.terminated[t]) return i + 1;       // the rest is absorbing padding
    if (traj.truncated[t] && i < length - 1) return 0;  // the next step is another episode
  }
  return length;
}

// Copies the window starting at `s` with `real` real steps into a Segment of `length` steps.
Segment make_segment(const Trajectory& traj, int s, int length, int real) {
  const int64_t D = traj.obs_size, A = traj.act_size;
  Segment seg;
  seg.length = length;
  seg.obs_size = D;
  seg.act_size = A;
  seg.env_step = traj.start_env_step + static_cast<int64_t>(s) * traj.num_envs;
  seg.env_index = traj.env_index;
  seg.obs.assign(traj.obs.begin() + s * D, traj.obs.begin() + (s + real) * D);
  seg.actions.assign(traj.actions.begin() + s * A, traj.actions.begin() + (s + real) * A);
  seg.true_rewards.assign(traj.true_rewards.begin() + s, traj.true_rewards.begin() + s + real);
  seg.absorbing.assign(real, 0);
  const int64_t S = traj.state_size;
  seg.state_size = S;
  seg.states.assign(traj.states.begin() + s * S, traj.states.begin() + (s + real) * S);
  if (real < length) {
    // Absorbing padding: the terminal observation (and state) of the last real step, zero
    // action, reward 0.
    const int last = s + real - 1;
    const auto fin = traj.final_obs.begin() + last * D;
    for (int i = real; i < length; ++i) seg.obs.insert(seg.obs.end(), fin, fin + D);
    const auto fin_state = traj.final_states.begin() + last * S;
    for (int i = real; i < length; ++i) seg.states.insert(seg.states.end(), fin_state, fin_state + S);
    seg.actions.resize(static_cast<size_t>(length) * A, 0.0f);
    seg.true_rewards.resize(length, 0.0f);
    seg.absorbing.resize(length, 1);
  }
  return seg;
}

}  // namespace

std::vector<Segment> cut_segments(const Trajectory& traj, int length, int count, Rng& rng) {
  if (length < 1) throw UsageError("cut_segments: segment length " + std::to_string(length) + " must be >= 1");
  if (count < 0) throw UsageError("cut_segments: count " + std::to_string(count) + " must be >= 0");
  check_trajectory(traj);

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
