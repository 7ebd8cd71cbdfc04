// Agents: what the trainer, evaluation and rendering ask of a learning algorithm, whichever it
// is. PPO (ppo.h) is the first implementation; `agent.algorithm` chooses one, and each
// algorithm has its own config group (ppo.*).
//
//   keep_rollout_in(store.columns())              the agent's per-step data lives in the trainer's store
//   rollout:  for t in 0..T-1: rollout_act(t, obs, actions); env.step; rollout_record(t, ...)
//             set_rewards(r̂ of the rollout)
//   update(next_obs, progress) => AgentStats      (or discard_rollout() for a rollout not to learn from)
//   act(obs, n, actions, deterministic)           evaluation; stores nothing
//   snapshot()                                    a frozen copy of the acting policy
//   save(path) / load(path)                       checkpoints
#pragma once
#include <cstdint>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "prefrl/core/transitions.h"
#include "prefrl/envs/env.h"

namespace prefrl {

struct PPOConfig;
struct A2CConfig;

// What an update reports. `metrics` are the algorithm's own figures (name, value), logged in
// this order when at least one minibatch was applied; the rest is what the health checks and
// the progress line read of any algorithm.
struct AgentStats {
  std::vector<std::pair<const char*, double>> metrics;
  double entropy = 0;              // policy entropy (nats) of the update (0 without one)
  int64_t applied = 0;             // gradient steps applied
  int64_t skipped_nonfinite = 0;   // gradient steps skipped because a loss was NaN/Inf
};

// An acting policy: raw observations (n x D) => actions (n x A); deterministic: the mode
// (argmax / mean), else sampled. Stores nothing.
class ActingPolicy {
 public:
  virtual ~ActingPolicy() = default;
  virtual void act(const float* obs, int n, float* actions, bool deterministic) = 0;
};

class Agent : public ActingPolicy {
 public:
  virtual std::string algorithm() const = 0;  // "ppo", ...

  // The per-step data of each rollout the agent learns from (what it acted on, its own
  // estimates) is kept in `columns` from now on (the trainer's transition store's), under names
  // starting with algorithm() + "/"; until called, in columns of the agent's own. `columns` must
  // be for the agent's N environments and rollout length, and outlive the agent's use of it.
  // Call before a rollout starts.
  virtual void keep_rollout_in(RolloutColumns& columns) = 0;
  // The rollout length the agent learns from (rows of its RolloutColumns).
  virtual int rollout_steps() const = 0;

  // Rollout step t: acts on raw observations (N x D) => actions (N x A), storing what the
  // update needs (continuous actions are unclipped samples; the environment clips).
  virtual void rollout_act(int t, const float* obs, float* actions) = 0;
  // After the environments' step: flags (N) and final observations (N x D) where episodes ended.
  virtual void rollout_record(int t, const uint8_t* terminated, const uint8_t* truncated, const float* final_obs) = 0;
  // Rewards (T x N, row t = step t) the policy learns from for the rollout just collected.
  virtual void set_rewards(const float* rewards) = 0;
  // Learns from the rollout; progress in [0, 1] is the fraction of training done.
  virtual AgentStats update(const float* next_obs, double progress) = 0;
  // Drops the rollout collected so far without learning from it.
  virtual void discard_rollout() = 0;

  // A frozen copy of the acting policy (parameters and observation statistics as they are now),
  // unaffected by later updates: for evaluation, export and remote actors.
  virtual std::unique_ptr<ActingPolicy> snapshot() const = 0;

  // Checkpoints: everything the algorithm needs to continue exactly (parameters, optimiser,
  // normalisers, RNGs). Call between updates.
  virtual void save(const std::string& path) const = 0;
  virtual void load(const std::string& path) = 0;
};

struct AgentConfig {
  std::string algorithm = "ppo";  // the learning algorithm; its settings are its own group

  template <class V>
  void visit(V& v) {
    v.text("algorithm", algorithm, "the policy's learning algorithm (its settings: the group of the same name)",
           {"ppo", "a2c"});
  }
};

// The agent a policy file (Agent::save) describes, for N environments, loaded from it: the file
// holds its algorithm, settings and spaces, so no config is needed. Throws RuntimeError naming
// the file when it cannot be read, is malformed, or predates self-describing files.
std::unique_ptr<Agent> load_agent(const std::string& path, int num_envs);
// Whether the file at `path` is a policy file that describes itself (false for one written
// before they did, or for a file that is not a policy file).
bool policy_file_describes_itself(const std::string& path);

// The agent of `cfg.algorithm` (its settings: `ppo` or `a2c`) for N environments of `spec`,
// seeded with `seed`.
std::unique_ptr<Agent> make_agent(const AgentConfig& cfg, const PPOConfig& ppo, const A2CConfig& a2c,
                                  const EnvSpec& spec, int num_envs, uint64_t seed);

}  // namespace prefrl
