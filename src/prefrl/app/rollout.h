// Collection: the trainer's first named part. Steps the environments with the policy for one
// rollout, writes what they did, in the environment's own terms, into the transition store
// (core/transitions.h: the rollout and the steps before it that clips may reach back to), and
// tallies the episodes that ended.
//
//   (policy, environments) => collect() => store(): rollout rows (T x N steps) after H history rows
//   store() + r̂ => tally() => finished episodes' true / predicted returns
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/core/transitions.h"
#include "prefrl/envs/env.h"
#include "prefrl/rl/agent.h"

namespace prefrl {


// Episodes that ended during one rollout (true return never shown to the learner).
struct EpisodeTally {
  std::vector<double> true_returns, predicted_returns, lengths, successes;
  std::vector<int> envs;  // which environment each episode ran in
};

// A policy whose every action is, with probability epsilon, replaced by one drawn uniformly
// from the action space (a Box's bounds must be finite); the others are base's. Draws only
// from its own rng, and one draw per action even when not replaced, so that the same seed
// explores the same way whatever the actions were.
class EpsilonPolicy : public ActingPolicy {
 public:
  EpsilonPolicy(ActingPolicy& base, const Space& action, double epsilon, uint64_t seed);
  // Throws UsageError unless epsilon is in [0, 1] and a Box's bounds are finite.
  static void check(const Space& action, double epsilon);
  void act(const float* obs, int n, float* actions, bool deterministic) override;

 private:
  ActingPolicy& base_;
  Space action_;
  double epsilon_;
  Rng rng_;
};

// Seconds spent in the phases of one iteration.
struct PhaseTimes {
  double env = 0, inference = 0, reward_predict = 0, ppo = 0, reward_train = 0, query = 0, db = 0, wait = 0;
};

// The environments, what the policy sees next, and the store of the newest rollout and the
// steps behind it.
class Collector {
 public:
  // N environments of `env_name` seeded from env_seed; `termination_penalty`: where the task
  // can terminate, its terminations replaced by that penalty (VecEnv::replace_termination);
  // `segment_steps`: clip length (the history keeps segment_steps - 1 steps before each rollout).
  // keep_states false: no physical states are kept, even where observations do not determine
  // them (for collectors whose steps are never rendered).
  Collector(const std::string& env_name, int N, int T, uint64_t env_seed, std::optional<float> termination_penalty,
            int segment_steps, bool keep_states = true);

  // One rollout of T steps from every environment with the agent's policy => store().
  // An environment whose observation or reward is not finite (a diverged simulation) restarts;
  // the rollout is then not learned from (nonfinite()) and no clip spans it (the store forgets
  // it and what came before). Advances *global_step by T x N.
  void collect(Agent& agent, int64_t* global_step, PhaseTimes* times);
  // The same with a policy that learns nothing (evaluation): actions from policy.act().
  void collect(ActingPolicy& policy, bool deterministic, int64_t* global_step, PhaseTimes* times);
  // The episodes that ended in the newest rollout; the store's learned rewards must hold r̂.
  EpisodeTally tally();

  VecEnv& envs() { return *envs_; }
  // The penalty that replaces terminations, if it does (the learner then never sees one).
  std::optional<float> termination_penalty() const { return penalty_; }
  const EnvSpec& spec() const { return spec_; }
  int64_t obs_size() const { return D_; }
  int64_t act_size() const { return A_; }
  int64_t state_size() const { return S_; }  // 0 where observations determine the state
  TransitionStore& store() { return store_; }
  const TransitionStore& store() const { return store_; }
  bool nonfinite() const { return nonfinite_; }
  // What the policy sees next: (N x D) observations and (N x S) states behind them.
  std::vector<float>& policy_obs() { return policy_obs_; }
  std::vector<float>& policy_states() { return policy_states_; }
  // Running per-env episode sums (true return by the task's rules, r̂, length).
  std::vector<double>& episode_true() { return ep_true_; }
  std::vector<double>& episode_predicted() { return ep_pred_; }
  std::vector<int>& episode_length() { return ep_len_; }

 private:
  // The one stepping loop: act(t, obs, actions) chooses, record(t) follows each step.
  template <class Act, class Record>
  void collect_steps(Act&& act, Record&& record, int64_t* global_step, PhaseTimes* times);

  std::unique_ptr<VecEnv> envs_;
  EnvSpec spec_;
  std::optional<float> penalty_;
  int N_, T_;
  int64_t D_, A_, S_;
  TransitionStore store_;
  std::vector<float> act_buf_;                     // (N x A)
  std::vector<float> policy_obs_, policy_states_;  // (N x D), (N x S)
  std::vector<uint8_t> step_terminated_, step_truncated_;  // (N) as the policy records them
  bool nonfinite_ = false;
  std::vector<double> ep_true_, ep_pred_;  // (N)
  std::vector<int> ep_len_;                // (N)
};

}  // namespace prefrl
