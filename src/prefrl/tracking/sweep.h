// Many seeds as one experiment: `prefrl sweep` runs each seed as its own process (the prefrl
// binary itself, `prefrl train ... --seed S --run-dir SWEEP/seed-S`), each a normal archived
// run, then aggregates them into SWEEP/sweep.json and SWEEP/report.html (docs/run_dir.md).
//
// Aggregates are over the seeds that finished; every other seed (failed, crashed, still
// running) stays in the table with its status and counts as not passing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefrl/tracking/runs.h"

namespace prefrl {

// ---- Statistics --------------------------------------------------------------------------
double mean_value(const std::vector<double>& x);    // NaN if empty
double sample_std(const std::vector<double>& x);    // n - 1 in the denominator; NaN if n < 2
// Interquartile mean: the mean of the middle half, dropping floor(n/4) values at each end
// (scipy.stats.trim_mean(x, 0.25)); NaN if empty.
double interquartile_mean(std::vector<double> x);
// Percentile-bootstrap confidence interval of the IQM: `resamples` resamples with
// replacement drawn from Rng(seed) => {lo, hi} at `level` (e.g. 0.95). {NaN, NaN} if empty.
std::pair<double, double> iqm_bootstrap_ci(const std::vector<double>& x, double level, int resamples, uint64_t seed);

// The default success threshold on the final (evaluation) return for an environment, as
// Gymnasium's reward_threshold where it defines one; NaN if none (pass --threshold).
double default_pass_threshold(const std::string& env);

// ---- Running -------------------------------------------------------------------------------
struct SweepPlan {
  std::string binary;                 // the prefrl executable
  std::string dir;                    // the sweep directory (created)
  std::string env;
  std::string task;                   // the task file env is read from (then forwarded as --task), or empty
  std::string env_cmd;                // an external env's command (then forwarded as --env-cmd), or empty
  std::vector<int64_t> seeds;
  int jobs = 1;                       // processes at once
  double threshold = 0;               // pass mark on the final return (NaN: none)
  std::vector<std::string> train_args;  // forwarded to each `prefrl train` (flags other than --env/--seed/--run-dir)
  std::string command;                // the sweep's own command line, for the record
};

// Runs every seed (at most plan.jobs at once), showing progress (a bar on a terminal, a line per
// seed otherwise), then writes sweep.json and report.html. Returns the aggregated sweep.json.
// Throws UsageError if the directory already holds a sweep.
nlohmann::json run_sweep(const SweepPlan& plan);

// ---- Reading back ------------------------------------------------------------------------
struct SweepSeed {
  int64_t seed = 0;
  std::string run;        // run directory, relative to the sweep directory
  int exit_code = -1;     // the process's exit code; -1 unknown; 128 + n for signal n
  RunInfo info;           // loaded from the run directory (status "crashed" if it holds no run)
};
struct SweepInfo {
  std::string path;
  nlohmann::json record;  // sweep.json as written
  std::vector<SweepSeed> seeds;
  std::string status;     // running | finished | crashed (the sweep process itself)
};
bool is_sweep_dir(const std::string& dir);
SweepInfo load_sweep(const std::string& dir);  // UsageError if dir holds no sweep.json
// Figures over the seeds as they are now: per seed {seed, run, status, final_return, labels,
// env_steps, wall_s, exit_code}, and aggregates {n_seeds, n_finished (ran to their end),
// n_returns (of those, with a final return: a task with no true reward has none), mean, std, iqm,
// iqm_ci95, threshold, passed}.
nlohmann::json sweep_figures(const SweepInfo& sweep);
// One line per seed and the aggregates, as `prefrl sweep` prints at the end.
std::string sweep_summary_text(const nlohmann::json& figures);

}  // namespace prefrl
