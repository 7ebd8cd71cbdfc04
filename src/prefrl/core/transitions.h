// The transition store: the steps the trainer collects, kept once, in one allocation per
// column, and read in place by every consumer. The environments' steps are written into it as
// they happen; r̂ and the reward model's normaliser read the rollout; the policy learns from
// the rollout's rewards; queries cut clips from the rollout and the steps before it; checkpoints
// save those steps. Nothing is ever copied from one place in it to another.
//
//   rows (time) form a ring of C = T * ceil((H + T) / T) rows, in slots of T rows:
//     [ slot 0 | slot 1 | ... ]   each rollout fills the next slot; the H rows before it are the
//                                  history clips may reach back to
//   row r, env i  => transition r * N + i of every column
//
// A rollout is always one slot, so its columns are contiguous (T x N x width) arrays; a
// trajectory (history + rollout) may wrap around the ring's end, which TrajectoryView hides.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prefrl {

// One environment's consecutive steps, read in place: step t of a column of width w is at
// column + index(t) * w, index(t) = ((first + t) mod ring) * stride (stride N for a store, 1 for
// a per-env array; ring 0: no wrap).
struct TrajectoryView {
  int T = 0;                          // steps
  int64_t D = 0, A = 0, S = 0;        // observation, action and state widths (S may be 0)
  int64_t stride = 1;                 // transitions between consecutive rows
  int64_t first = 0;                  // row of step 0
  int64_t ring = 0;                   // rows before the rows wrap around to row 0 (0: never)
  const float* obs = nullptr;         // observation before each action
  const float* actions = nullptr;     // executed actions
  const float* true_rewards = nullptr;
  const uint8_t* terminated = nullptr;
  const uint8_t* truncated = nullptr;
  const float* final_obs = nullptr;   // terminal observation, valid where an episode ended
  const float* states = nullptr;      // state behind each observation (S > 0)
  const float* final_states = nullptr;
  int64_t start_env_step = 0;         // global env step counter before step 0
  int64_t num_envs = 1;               // global env steps per step: the VecEnv's size N
  int env_index = 0;
  bool obs_bytes = false;             // observations of a uint8 space: clips keep them as bytes

  int size() const { return T; }
  // Index of step t (0 <= t < T) in a column of width 1.
  int64_t index(int t) const {
    int64_t r = first + t;
    if (ring > 0 && r >= ring) r -= ring;
    return r * stride;
  }
  const float* obs_at(int t) const { return obs + index(t) * D; }
  const float* action_at(int t) const { return actions + index(t) * A; }
  const float* final_obs_at(int t) const { return final_obs + index(t) * D; }
  const float* state_at(int t) const { return states + index(t) * S; }
  const float* final_state_at(int t) const { return final_states + index(t) * S; }
  float true_reward(int t) const { return true_rewards[index(t)]; }
  bool terminated_at(int t) const { return terminated[index(t)] != 0; }
  bool truncated_at(int t) const { return truncated[index(t)] != 0; }
};

// Columns a consumer of the store adds for its own per-step data of the rollout (an agent's
// observations as its networks saw them, log-probabilities, values, advantages): T x N x width
// values each, zeroed, starting on a cache line, allocated once and never moved. Row t holds
// rollout step t of every environment, as the store's rollout columns do.
class RolloutColumns {
 public:
  RolloutColumns(int N, int T) : N_(N), T_(T) {}
  int num_envs() const { return N_; }
  int rollout_steps() const { return T_; }
  // A new column; throws UsageError if `name` is taken or width < 1.
  float* add_floats(const std::string& name, int64_t width);
  uint8_t* add_bytes(const std::string& name, int64_t width);
  // A column by name (for readers that did not add it); nullptr if there is none.
  const float* floats(const std::string& name) const;
  const uint8_t* bytes(const std::string& name) const;
  std::vector<std::string> names() const;
  // Bytes held by every column.
  int64_t bytes_held() const;
  // Drops every column (their pointers become invalid).
  void clear() { cols_.clear(); }

 private:
  struct Free { void operator()(void* p) const; };
  struct Column {
    std::string name;
    int64_t width = 0;
    bool floats = true;
    size_t bytes = 0;
    std::unique_ptr<void, Free> data;
  };
  void* add(const std::string& name, int64_t width, size_t elem, bool floats);
  const Column* find(const std::string& name) const;
  int N_, T_;
  std::vector<Column> cols_;
};

class TransitionStore {
 public:
  // N environments; observations, actions and states of widths D, A, S (S 0: none kept);
  // rollouts of T steps; H steps kept from before each rollout (for clips reaching back).
  TransitionStore(int N, int T, int64_t D, int64_t A, int64_t S, int H);

  int num_envs() const { return N_; }
  int rollout_steps() const { return T_; }
  int history_capacity() const { return H_; }
  int64_t obs_size() const { return D_; }
  int64_t act_size() const { return A_; }
  int64_t state_size() const { return S_; }
  int64_t transitions() const { return static_cast<int64_t>(T_) * N_; }  // per rollout
  // Observations of a uint8 space (byte / 255 values): clips cut from the store keep them as
  // bytes (TrajectoryView::obs_bytes). The store's own columns are floats, as networks read them.
  void set_obs_bytes(bool on) { obs_bytes_ = on; }
  bool obs_bytes() const { return obs_bytes_; }

  // Starts a rollout whose first step is global step `global_step` in the next slot: the newest
  // H valid steps before it are its history; its broken flags are cleared.
  void begin_rollout(int64_t global_step);
  // Forgets every step, the rollout's too: no clip spans what came before (a broken rollout).
  void forget();
  // Valid history rows before the rollout (0 after forget()).
  int valid_history() const { return valid_ > T_ ? valid_ - T_ : 0; }

  // Rollout step t (0 <= t < T): (N x width) rows.
  float* obs(int t) { return obs_.data() + row(t) * D_; }
  float* actions(int t) { return actions_.data() + row(t) * A_; }
  float* final_obs(int t) { return final_obs_.data() + row(t) * D_; }
  float* states(int t) { return states_.data() + row(t) * S_; }
  float* final_states(int t) { return final_states_.data() + row(t) * S_; }
  float* true_rewards(int t) { return true_rewards_.data() + row(t); }   // what the teacher judges
  float* task_rewards(int t) { return task_rewards_.data() + row(t); }   // by the task's own rules
  float* learned(int t) { return learned_.data() + row(t); }             // r̂ given to the policy
  uint8_t* terminated(int t) { return terminated_.data() + row(t); }
  uint8_t* truncated(int t) { return truncated_.data() + row(t); }
  uint8_t* success(int t) { return success_.data() + row(t); }            // valid where an episode ended
  uint8_t* broken(int t) { return broken_.data() + row(t); }              // env restarted (non-finite)
  const float* obs(int t) const { return obs_.data() + row(t) * D_; }
  const float* actions(int t) const { return actions_.data() + row(t) * A_; }
  const float* true_rewards(int t) const { return true_rewards_.data() + row(t); }
  const float* task_rewards(int t) const { return task_rewards_.data() + row(t); }
  const float* learned(int t) const { return learned_.data() + row(t); }
  const uint8_t* terminated(int t) const { return terminated_.data() + row(t); }
  const uint8_t* truncated(int t) const { return truncated_.data() + row(t); }
  const uint8_t* success(int t) const { return success_.data() + row(t); }
  const uint8_t* broken(int t) const { return broken_.data() + row(t); }

  // Consumers' own per-step data of the rollout (an agent's, via Agent::keep_rollout_in).
  RolloutColumns& columns() { return columns_; }
  const RolloutColumns& columns() const { return columns_; }

  // Env i's valid steps, oldest history step first, up to the rollout's last step written.
  TrajectoryView trajectory(int i) const;
  // Checkpoints: env i's valid steps are set from `v` (the newest H + T of them), as if they had
  // been collected up to the current slot's end; every env must be given the same number of
  // steps and start step.
  void set_trajectory(int i, const TrajectoryView& v);

 private:
  int64_t row(int t) const { return (static_cast<int64_t>(slot_) * T_ + t) * N_; }  // rollout step t, env 0
  int64_t end_row() const { return static_cast<int64_t>(slot_ + 1) * T_; }  // after the current slot
  int N_, T_, H_;
  int64_t D_, A_, S_;
  int slots_;                 // C / T
  int slot_;                  // the current rollout's slot
  int valid_ = 0;             // valid rows, ending at the current slot's end
  bool obs_bytes_ = false;
  int64_t first_step_ = 0;    // global step of the first valid row
  std::vector<float> obs_, actions_, final_obs_, states_, final_states_;
  std::vector<float> true_rewards_, task_rewards_, learned_;
  std::vector<uint8_t> terminated_, truncated_, success_, broken_;
  RolloutColumns columns_;
};

}  // namespace prefrl
