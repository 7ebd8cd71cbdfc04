// The whole configuration of a training run: every hyperparameter with a default, a
// one-line doc and bounds (see core/config.h). Resolution order, later wins:
// defaults < preset (`--preset`, default: the environment's own) < --config FILE < --set
// key=value < dedicated flags (--labels, --steps, --seed, --teacher, --threads).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "prefrl/server/label_server.h"
#include "prefrl/core/config.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/atari_env.h"
#include "prefrl/envs/env_config.h"
#include "prefrl/prefs/prefs_config.h"
#include "prefrl/reward/reward_model.h"
#include "prefrl/rl/a2c.h"
#include "prefrl/rl/ppo.h"
#include "prefrl/teachers/teacher.h"
#include "prefrl/tracking/health.h"

namespace prefrl {

struct RunConfig {
  int64_t seed = 1;               // seeds every random stream of the run
  int64_t total_steps = 100000;   // environment steps, including pre-training collection
  int threads = 1;                // LibTorch intra-op threads
  std::string policy_reward = "learned";  // what the policy learns from: r̂, or the true reward (baseline)
  std::string reward_from;        // the reward model the run starts from (a run, an export or a reward bundle)
  int eval_episodes = 20;         // deterministic episodes evaluated at the end (summary.json)
  int checkpoint_every = 0;       // also checkpoint every N training iterations (0: by time only)
  double checkpoint_every_s = 120;  // also checkpoint when this many seconds passed since the last (0: off)
  int checkpoint_keep = 2;        // checkpoints kept (the newest; older ones are the fallback)
  double progress_every_s = 2.0;  // seconds between progress lines (display only)
  int metrics_every = 1;          // training iterations per record of metrics and health checks
  bool tensorboard = true;        // also write every metric to a TensorBoard event file
  double heartbeat_s = 2.0;       // seconds between rewrites of the "running" summary.json
  int true_corr_clips = 8;        // fresh clips scored per iteration for reward/true_corr
  int true_corr_window = 32;      // reward/true_corr: over the latest this many scored clips

  template <class V>
  void visit(V& v) {
    v.num("seed", seed, "seed of every random stream of the run", 0, 9.0e15);
    v.num("total_steps", total_steps, "environment steps in total (pre-training included)", 1, 1e12);
    v.num("threads", threads, "LibTorch intra-op threads", 1, 256);
    v.text("policy_reward", policy_reward,
           "reward the policy learns from: learned (from preferences) or true (baseline: no labels used)",
           {"learned", "true"});
    v.text("reward_from", reward_from,
           "start from this reward model (--reward-from: a run directory, a prefrl export bundle or a prefrl reward "
           "train bundle; its reward.* settings replace the run's): fixed unless the run asks labels; empty: a new one",
           {});
    v.num("eval_episodes", eval_episodes, "deterministic evaluation episodes at the end (0: none)", 0, 100000);
    v.num("checkpoint_every", checkpoint_every,
          "resumable checkpoint every N training iterations (0: by time only); one is always written at the end "
          "of training and on SIGINT/SIGTERM", 0, 1e9);
    v.num("checkpoint_every_s", checkpoint_every_s,
          "resumable checkpoint when this many seconds passed since the last one (0: off)", 0.0, 1e9);
    v.num("checkpoint_keep", checkpoint_keep, "checkpoints kept: the newest, and older ones to fall back on", 1, 1000);
    v.num("progress_every_s", progress_every_s, "seconds between progress lines", 0.0, 1e6);
    v.num("metrics_every", metrics_every,
          "training iterations per record of metrics (and per health-check sample): phase times, steps, episodes and "
          "counts summed over them, losses and entropy averaged over their updates, the rest as at the last; a record "
          "is also written before every checkpoint (1: every iteration; A2C's short rollouts want more)", 1, 1e9);
    v.flag("tensorboard", tensorboard, "also write every metric to a TensorBoard event file in the run directory");
    v.num("heartbeat_s", heartbeat_s,
          "seconds between rewrites of summary.json while running (progress and heartbeat; shows crashed runs)",
          0.1, 86400.0);
    v.num("true_corr_clips", true_corr_clips,
          "fresh clips (evenly spread over the new ones) the reward model scores each iteration for the "
          "predicted-vs-true correlation reward/true_corr", 1, 1000000);
    v.num("true_corr_window", true_corr_window,
          "reward/true_corr is the Pearson correlation over the latest this many scored clips (each scored by the "
          "model of its iteration, before any label on it)", 2, 1000000);
  }
};

struct TrainConfig {
  EnvConfig env;
  AtariConfig atari;
  RunConfig run;
  AgentConfig agent;
  PPOConfig ppo;
  A2CConfig a2c;
  RewardConfig reward;
  PrefsConfig prefs;
  TeacherConfig teacher;
  ServerConfig server;
  HealthConfig health;

  template <class V>
  void visit(V& v) {
    v.group("env", env);
    v.group("atari", atari);
    v.group("run", run);
    v.group("agent", agent);
    v.group("ppo", ppo);
    v.group("a2c", a2c);
    v.group("reward", reward);
    v.group("prefs", prefs);
    v.group("teacher", teacher);
    v.group("server", server);
    v.group("health", health);
  }

  // Cross-field checks (e.g. minibatch <= rollout size); throws UsageError naming values.
  void validate() const;
  void validate_teacher() const;  // part of validate(): the teacher fits the task's rewards
  // Steps per clip: prefs.segment_seconds of simulated time at the environment's fps where
  // set (at least 1, at most the time limit), else prefs.segment_length.
  int segment_steps() const;
  // Steps per environment in each rollout the agent learns from (its algorithm's num_steps).
  int rollout_steps() const { return agent.algorithm == "a2c" ? a2c.num_steps : ppo.num_steps; }
};

// A named set of key=value settings tuned for an environment.
struct Preset {
  std::string name;
  std::string env;          // environment it is for
  std::string description;
  std::vector<std::string> settings;  // "key=value" applied over the defaults
};

const std::vector<Preset>& presets();
// Finds a preset by name; throws UsageError listing known presets.
const Preset& find_preset(const std::string& name);
// Applies a preset's settings to cfg (sets env.name too).
void apply_preset(TrainConfig& cfg, const Preset& p);

}  // namespace prefrl
