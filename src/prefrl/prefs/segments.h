// Cutting fixed-length segments out of rollouts, and the pool of recent candidates.
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/core/segment.h"
#include "prefrl/core/transitions.h"

namespace prefrl {

// One environment's trajectory, owning its arrays: T consecutive steps (tests and checkpoints;
// the trainer cuts clips from TransitionStore::trajectory views in place).
struct Trajectory {
  int64_t obs_size = 0, act_size = 0;
  std::vector<float> obs;            // (T x D) observation before each action
  std::vector<float> actions;        // (T x A)
  std::vector<float> true_rewards;   // (T)
  std::vector<uint8_t> terminated;   // (T) the step's transition ended the episode in a terminal state
  std::vector<uint8_t> truncated;    // (T) the step hit the time limit
  std::vector<float> final_obs;      // (T x D) terminal observation, valid where terminated
  // Optional physical states for rendering (see Segment::states); empty when state_size is 0.
  int64_t state_size = 0;            // S
  std::vector<float> states;         // (T x S) state behind each observation in obs
  std::vector<float> final_states;   // (T x S) state behind final_obs, valid where terminated
  int64_t start_env_step = 0;        // global env step counter before t=0 (for Segment::env_step)
  int64_t num_envs = 1;              // global env steps per t: the VecEnv's size N
  int env_index = 0;
  int size() const { return static_cast<int>(true_rewards.size()); }
  // The arrays read in place (stride 1). Throws UsageError unless they have the sizes T and the
  // widths imply.
  TrajectoryView view() const;
  // A copy of the steps of `v`.
  static Trajectory copy_of(const TrajectoryView& v);
};

// Cuts up to `count` segments of `length` steps at random start positions from `traj`.
// A window may run into a terminal step: the steps after it are absorbing padding
// (true reward 0, terminal observation and state, zero action, absorbing=1). A window never crosses a
// time-limit truncation or the end of the trajectory (unless it ended by termination), and
// a window never starts on an absorbing step.
// Valid starts are sampled without replacement (all of them if fewer than `count`) and the
// segments are returned in trajectory order; the result depends only on the inputs and rng.
// Segment::env_step = start_env_step + start * num_envs: the global step counter (all N envs
// together, the x-axis of every metric) just before the window's first step was taken.
// Where traj.obs_bytes, the segments keep their observations as bytes (Segment::obs_bytes);
// throws RuntimeError if a value is not a byte / 255.
std::vector<Segment> cut_segments(const TrajectoryView& traj, int length, int count, Rng& rng);
inline std::vector<Segment> cut_segments(const Trajectory& traj, int length, int count, Rng& rng) {
  return cut_segments(traj.view(), length, count, rng);
}

// Recent candidate segments for queries, newest kept when full.
class SegmentPool {
 public:
  explicit SegmentPool(size_t capacity) : capacity_(capacity) {}
  void add(Segment seg);
  size_t size() const { return segs_.size(); }
  const Segment& at(size_t i) const { return segs_[i]; }
  // Records that segment i is stored in the database under `id` (so it is stored once).
  void set_id(size_t i, int64_t id) { segs_[i].id = id; }
  void clear() { segs_.clear(); }
 private:
  size_t capacity_;
  std::deque<Segment> segs_;
};

}  // namespace prefrl
