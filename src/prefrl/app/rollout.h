// Collection: the trainer's first named part. Steps the environments with the policy for one
// rollout, records what they did in the environment's own terms, keeps the recent history that
// clips are cut from, and tallies the episodes that ended.
//
//   (policy, environments) => collect() => RolloutRecord (T x N steps) + SegmentHistory
//   RolloutRecord + r̂ => tally() => finished episodes' true / predicted returns
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "prefrl/envs/env.h"
#include "prefrl/prefs/segments.h"

namespace prefrl {

class Agent;

// What one rollout saw, in the environment's own terms (raw observations, executed actions).
struct RolloutRecord {
  int T = 0, N = 0;
  int64_t D = 0, A = 0;
  std::vector<float> obs;           // (T x N x D) observation before each action
  std::vector<float> actions;       // (T x N x A) executed (clipped) actions
  std::vector<float> true_rewards;  // (T x N) what the teacher judges (penalty mode: with penalties)
  std::vector<float> task_rewards;  // (T x N) by the task's own rules (VecEnv::task_rewards)
  std::vector<uint8_t> terminated;  // (T x N)
  std::vector<uint8_t> truncated;   // (T x N)
  std::vector<uint8_t> success;     // (T x N), valid where an episode ended
  std::vector<float> final_obs;     // (T x N x D), valid where an episode ended
  std::vector<float> learned;       // (T x N) r̂ given to the policy
  // Physical states for rendering clips, where observations do not determine them (S > 0).
  int64_t S = 0;
  std::vector<float> states;        // (T x N x S) state behind each observation in obs
  std::vector<float> final_states;  // (T x N x S) state behind final_obs, valid where an episode ended
  std::vector<uint8_t> broken;      // (T x N) the env's observation or reward was not finite: it restarted

  void resize(int t, int n, int64_t d, int64_t a, int64_t s);
  int64_t steps() const { return static_cast<int64_t>(T) * N; }
};

// Per-environment history of recent steps, long enough to cut segments longer than one
// rollout: the previous (segment_length - 1) steps plus the newest rollout.
class SegmentHistory {
 public:
  SegmentHistory(int num_envs, int64_t D, int64_t A, int64_t S, int keep);
  // Appends env i's steps of the rollout, starting at global step `start_step`, then trims.
  void append(const RolloutRecord& r, int64_t start_step);
  // Forgets every env's history (segments never span a discarded rollout).
  void clear();
  const Trajectory& at(int i) const { return trajs_[i]; }
  Trajectory& at(int i) { return trajs_[i]; }
  int size() const { return static_cast<int>(trajs_.size()); }

 private:
  int keep_;
  std::vector<Trajectory> trajs_;
};

// Episodes that ended during one rollout (true return never shown to the learner).
struct EpisodeTally {
  std::vector<double> true_returns, predicted_returns, lengths, successes;
};

// Seconds spent in the phases of one iteration.
struct PhaseTimes {
  double env = 0, inference = 0, reward_predict = 0, ppo = 0, reward_train = 0, query = 0, db = 0, wait = 0;
};

// The environments, what the policy sees next, the newest rollout and the history behind it.
class Collector {
 public:
  // N environments of `env_name` seeded from env_seed; `termination_penalty`: where the task
  // can terminate, its terminations replaced by that penalty (VecEnv::replace_termination);
  // `segment_steps`: clip length (the history keeps segment_steps - 1 steps before each rollout).
  Collector(const std::string& env_name, int N, int T, uint64_t env_seed, std::optional<float> termination_penalty,
            int segment_steps);

  // One rollout of T steps from every environment with the agent's policy => roll(), history().
  // An environment whose observation or reward is not finite (a diverged simulation) restarts;
  // the rollout is then not learned from (nonfinite()). Advances *global_step by T x N.
  void collect(Agent& agent, int64_t* global_step, PhaseTimes* times);
  // The episodes that ended in the newest rollout; roll().learned must hold r̂.
  EpisodeTally tally();

  VecEnv& envs() { return *envs_; }
  // The penalty that replaces terminations, if it does (the learner then never sees one).
  std::optional<float> termination_penalty() const { return penalty_; }
  const EnvSpec& spec() const { return spec_; }
  int64_t obs_size() const { return D_; }
  int64_t act_size() const { return A_; }
  int64_t state_size() const { return S_; }  // 0 where observations determine the state
  RolloutRecord& roll() { return roll_; }
  const SegmentHistory& history() const { return history_; }
  SegmentHistory& history() { return history_; }
  bool nonfinite() const { return nonfinite_; }
  // What the policy sees next: (N x D) observations and (N x S) states behind them.
  std::vector<float>& policy_obs() { return policy_obs_; }
  std::vector<float>& policy_states() { return policy_states_; }
  // Running per-env episode sums (true return by the task's rules, r̂, length).
  std::vector<double>& episode_true() { return ep_true_; }
  std::vector<double>& episode_predicted() { return ep_pred_; }
  std::vector<int>& episode_length() { return ep_len_; }

 private:
  std::unique_ptr<VecEnv> envs_;
  EnvSpec spec_;
  std::optional<float> penalty_;
  int N_, T_;
  int64_t D_, A_, S_;
  RolloutRecord roll_;
  SegmentHistory history_;
  std::vector<float> act_buf_;                     // (N x A)
  std::vector<float> policy_obs_, policy_states_;  // (N x D), (N x S)
  std::vector<uint8_t> step_terminated_, step_truncated_;  // (N) as the policy records them
  bool nonfinite_ = false;
  std::vector<double> ep_true_, ep_pred_;  // (N)
  std::vector<int> ep_len_;                // (N)
};

}  // namespace prefrl
