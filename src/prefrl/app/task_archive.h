// Task files in runs: a run trained on a task file (`--task`, docs/tasks.md) keeps a copy of
// it and of its model under RUN/task/, and its config.json names that copy (env.task, relative
// to the run directory), so that eval, resume, reproduce and runs verify work from the archive
// alone, whatever happened to the original files.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "prefrl/app/train_config.h"
#include "prefrl/tracking/run_dir.h"

namespace prefrl {

// A config as JSON whose env.task (if any) is resolved against `base_dir` (a run directory, or
// the directory of a config file) and registered (register_task_file), so that env.name, the
// task's name, is known when the config is read; env.task becomes an absolute path. An external
// env (env.cmd) is registered likewise (register_external_env: its worker is asked its SPEC).
nlohmann::json with_task_registered(nlohmann::json config, const std::string& base_dir);

// Registers cfg's task file (if any) again with the options its teacher implies (a script
// teacher: rewards are its score), and cfg's external env (if any) with its env.num_workers and
// env.step_timeout_s, before cfg is validated or trained on.
void register_task_for(const TrainConfig& cfg);

// Reads RUN/config.json with its task registered (with_task_registered).
nlohmann::json read_run_config(const RunDir& run);
// An archived config (a run's, a bundle's, a dataset's) as today's keys read it: one written
// before B-Pref's teachers keeps its teacher's answers (the earlier noisy teacher is the oracle
// with teacher.error_rate; other teachers did not read error_rate).
nlohmann::json migrated_config(nlohmann::json config);

// For a config with a task file (cfg.env.task, absolute): copies the task file and its model
// into RUN/task/ (the model at the same path relative to the task file) and returns the config
// as config.json holds it (env.task relative to the run). Without a task: config_to_json(cfg).
nlohmann::json archive_task(const TrainConfig& cfg, const RunDir& run);

}  // namespace prefrl
