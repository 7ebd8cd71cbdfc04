// The env.* config group: which environment a run trains on and how episodes end (see
// core/config.h for the visitor; app/train_config.h gathers the groups).
#pragma once
#include <string>

#include "prefrl/envs/env.h"

namespace prefrl {

struct EnvConfig {
  std::string name = "cartpole";  // environment (prefrl env list)
  std::string task;               // MuJoCo task file the environment is read from (--task), or empty
  int num_envs = 8;               // environments stepped together
  std::string termination = "end";   // end: episodes end as the task says | penalty: they run to the time limit
  double termination_penalty = 100.0;  // penalty mode: the step after a would-be termination earns -this

  template <class V>
  void visit(V& v) {
    v.text("name", name, "environment name", env_names());
    v.text("task", task,
           "the MuJoCo task file (docs/tasks.md) env.name is read from, set by --task; in a run's config.json, "
           "its archived copy (relative to the run directory); empty for the built-in environments");
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
