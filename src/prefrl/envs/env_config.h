// The env.* config group: which environment a run trains on and how episodes end (see
// core/config.h for the visitor; app/train_config.h gathers the groups).
#pragma once
#include <string>

#include "prefrl/envs/env.h"

namespace prefrl {

struct EnvConfig {
  std::string name = "cartpole";  // environment (prefrl env list)
  std::string task;               // MuJoCo task file the environment is read from (--task), or empty
  std::string cmd;                // external environment: the worker command (--env-cmd), or empty
  std::string cmd_dir;            // ... and the directory it runs in
  int num_workers = 1;            // external environment: worker processes
  double step_timeout_s = 30.0;   // external environment: longest wait for a worker's reply
  int num_envs = 8;               // environments stepped together
  std::string termination = "end";   // end: episodes end as the task says | penalty: they run to the time limit
  double termination_penalty = 100.0;  // penalty mode: the step after a would-be termination earns -this

  template <class V>
  void visit(V& v) {
    v.text("name", name, "environment name", env_names());
    v.text("task", task,
           "the MuJoCo task file (docs/tasks.md) env.name is read from, set by --task; in a run's config.json, "
           "its archived copy (relative to the run directory); empty for the built-in environments");
    v.text("cmd", cmd,
           "an external environment's worker command (--env-cmd; docs/env_protocol.md), run as `sh -c CMD` in "
           "env.cmd_dir; env.name is the name its SPEC gives; empty for prefrl's own environments");
    v.text("cmd_dir", cmd_dir, "the directory env.cmd runs in (where --env-cmd was given; absolute)");
    v.num("num_workers", num_workers,
          "external environment: worker processes, each hosting a contiguous block of the env.num_envs environments "
          "(at most env.num_envs)", 1, 256);
    v.num("step_timeout_s", step_timeout_s,
          "external environment: the longest wait for a worker's reply (a slower worker is killed and the run "
          "stops, naming it)", 0.001, 86400);
    v.num("num_envs", num_envs, "environments stepped together", 1, 4096);
    v.text("termination", termination,
           "while training: end (episodes end where the task ends them) or penalty (the paper's MuJoCo setting: "
           "episodes run to the time limit; a step on which the task would have ended shows the ended state, "
           "the next step earns -termination_penalty whatever its action and the body starts afresh within the "
           "episode, so episode length carries no signal; true returns are still reported by the task's rules, "
           "and evaluation always uses them)",
           {"end", "penalty"});
    v.num("termination_penalty", termination_penalty,
          "termination=penalty: the reward of the step after a would-be termination (its negative)", -1e9, 1e9);
  }
};

}  // namespace prefrl
