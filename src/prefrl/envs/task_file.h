// MuJoCo task files: a task described in TOML (docs/tasks.md) around an MJCF model of the
// user's, without writing C++. The file names the model (relative to the file), the
// observation (named pieces in order), the actuators, frame skip, time limit, reset noise, the
// camera for clips, a termination condition and the true reward (read only by scripted
// teachers and metrics, never by the learner); conditions and rewards are muParser
// expressions over named quantities of the state before and after the step.
//
//   register_task_file("my_task.toml") => "my_task"    then an environment like any other
//
// Every mistake is a UsageError naming the file, and the line and column or the field, the bad
// value and what is allowed, before any training starts.
#pragma once
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "prefrl/envs/env.h"
#include "prefrl/envs/external_env.h"
#include "prefrl/envs/mujoco_render.h"

namespace prefrl {

// One piece of the observation: the addresses it reads from one mjData array, in order.
struct TaskObsPiece {
  enum class Source { kQpos, kQvel, kBodyPos, kSensor, kQfrcConstraint, kExpression, kBodyQuat, kBodyVel,
                      kContactForce };
  Source source = Source::kQpos;
  // indices into d->qpos / qvel / xpos / sensordata / qfrc_constraint / xquat / cvel / cfrc_ext
  std::vector<int> addresses;
  std::vector<std::string> expressions;  // kExpression: one value each, of the state after the step
  double clip = std::numeric_limits<double>::infinity();  // each value clipped to +-clip
  std::string what;              // for messages and docs: "qpos[rootz, rooty]"
};

struct TaskSpec {
  std::string file;              // the task file, as given
  std::string name;              // the environment's name (default: the file's stem)
  std::string reference;         // what it must agree with (default: "task file <its file name>")
  std::string model;             // the MJCF file, resolved against the task file's directory
  int frame_skip = 1;            // mj_step calls per environment step
  int time_limit = 1000;         // environment steps per episode
  // Resets: qpos0 + noise and zero + noise, each uniform U(+-scale) or normal scale N(0, 1).
  std::string qpos_distribution = "uniform", qvel_distribution = "uniform";
  double qpos_noise = 0, qvel_noise = 0;
  // Two joints placed uniformly in a disc after the qpos noise (a target), optionally still.
  struct ResetDisc {
    std::array<int, 2> qpos{}, dof{};  // their qpos and dof addresses
    double radius = 0;
    bool still = false;
  };
  std::optional<ResetDisc> reset_disc;
  std::vector<TaskObsPiece> observation;
  std::vector<int> actuators;    // the actions, in order (indices of the model's actuators)
  std::string terminate;         // expression; nonzero ends the episode (empty: never)
  std::string reward;            // expression: the true reward of a step (empty: the task has none)
  std::string teacher_score;     // [teacher] score: what a script teacher sums over a clip (or empty)
  // [metrics]: name => expression of a step; evaluation reports each one's sum over an episode.
  std::vector<std::pair<std::string, std::string>> metrics;
  MujocoCamera camera;
};

// How a run uses a task file: what its rewards (the figures teachers judge and metrics read)
// are. By default the true reward ([reward]), or none when the task declares none. With a
// script teacher (teacher.kind=script) they are the teacher's score instead, and the task is
// run as one without a true reward (true-return metrics off).
struct TaskOptions {
  bool judge_by_score = false;
  std::string score;             // teacher.score; empty: the task file's [teacher] score
  bool operator==(const TaskOptions& o) const { return judge_by_score == o.judge_by_score && score == o.score; }
};

// Reads and checks a task file: the model compiles, every name exists (with the nearest valid
// names when it does not), the expressions parse and name known quantities. Throws UsageError.
TaskSpec load_task_file(const std::string& path);

// The quantities expressions may name for `spec`'s model, after the step (the `prev_` ones:
// before it): joints (1-dof) by name (position) and name_vel, bodies' name_x/_y/_z, sensors by
// name (name_0, name_1, ... for several values), a_0 ... (the action), action_sq (its sum of
// squares), dt (seconds per step) and t (steps taken in the episode).
std::vector<std::string> task_quantities(const TaskSpec& spec);

// A task file of an external environment holds only an [external] table: `cmd` (the worker
// command, run in the task file's directory), optionally `num_workers` and `step_timeout_s`
// (docs/env_protocol.md). Those options, or nullopt for a MuJoCo task file. Throws UsageError
// for a malformed one.
std::optional<ExternalEnvOptions> external_task(const std::string& path);

// Loads the task file and registers its environment under its name (register_env); returns
// the name. Registering the same file again returns the name without registering twice; with
// other options, environments made from then on follow the new ones. Throws UsageError (an
// unparsable score, a script teacher with no score). An external task file registers its
// environment with register_external_env.
std::string register_task_file(const std::string& path, const TaskOptions& options = {});

// The factory of a built-in MuJoCo task from its embedded task file (src/prefrl/envs/mjcf/
// <file>.toml) under `name`: the built-in environments take the task files' code path.
EnvFactory builtin_task_factory(const std::string& file, const std::string& name);

}  // namespace prefrl
