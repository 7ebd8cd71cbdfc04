// The preference-learning loop with a scripted teacher: collect => select queries => label
// => train reward model => update policy, one deterministic interleaved schedule.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "prefrl/app/checkpoint.h"
#include "prefrl/app/train_config.h"
#include "prefrl/rl/agent.h"
#include "prefrl/tracking/run_dir.h"

namespace prefrl {

struct TrainResult {
  std::string status = "finished";   // "finished" | "failed" | "stopped" (SIGINT/SIGTERM; resumable)
  int64_t env_steps = 0;
  int64_t total_steps = 0;            // the budget (run.total_steps)
  int64_t labels = 0;                 // labels given during the run (imported ones not counted)
  int64_t labels_imported = 0;        // answers the run started with (prefs.import_from)
  double wall_s = 0;
  double train_return = std::nan("");  // mean true return of the last 20 training episodes
  double eval_mean_return = 0, eval_std_return = 0, eval_success_rate = 0;
  int eval_episodes = 0;
  double final_true_corr = 0;         // predicted vs true returns, segments of the final policy
  double heldout_true_corr = 0;       // the same, clips of held-out (validation) pairs from all of training
  double val_accuracy = 0;
  // Figures that are undefined, and why in words (summary.json "undefined"; never a fake 0):
  // final_true_corr, heldout_true_corr.
  std::map<std::string, std::string> undefined;
  bool has_true_reward = true;        // false: the task has none, and no figure above comes from one
  double eval_mean_length = std::nan("");
  nlohmann::json eval_metrics = nlohmann::json::object();  // the task's [metrics]: name => {mean, std}
  nlohmann::json health = nlohmann::json::object();     // warnings fired per health check
  std::map<std::string, std::string> health_off;        // checks that were off, and why
  nlohmann::json nonfinite = nlohmann::json::object();  // non-finite events that were skipped, by kind
  nlohmann::json to_json() const;
};

// Runs the whole loop in `run` (which already holds config.json, command.txt, meta.json).
// Writes metrics.jsonl, health.jsonl, prefs.db, checkpoints/ and summary.json (status
// "running" with the process's identity at start and every run.heartbeat_s; the result at
// the end).
//
// resume: continue the run in `run` from its newest good checkpoint (checkpoints/, format in
// docs/run_dir.md): metrics.jsonl, health.jsonl and TensorBoard files are cut back to the
// checkpoint, and what the stopped run asked and was answered after it is taken from
// prefs.db rather than asked again (no label is ever stored twice). A run with no good
// checkpoint starts over, reusing its database in the same way. Damaged checkpoints are
// reported in the log and skipped.
TrainResult train(const TrainConfig& cfg, const RunDir& run, RunLog& log, bool resume = false);

// The policy `cfg`'s run started from (its seed's initial parameters), for num_envs envs.
std::unique_ptr<Agent> initial_agent(const TrainConfig& cfg, int num_envs);

// Loads every part of a verified checkpoint as a resume would (policy, reward model, trainer
// state, environment states, health monitor) into throwaway components built from cfg.
// Throws RuntimeError naming the file that does not load.
void check_checkpoint(const TrainConfig& cfg, const Checkpoint& c);

// Asks a running train() to stop at the end of its iteration, checkpoint and return with
// status "stopped" (async-signal-safe: a SIGINT/SIGTERM handler may call it).
void request_stop(int signal_number);
// The signal that asked for the stop, or 0.
int stop_requested();

}  // namespace prefrl
