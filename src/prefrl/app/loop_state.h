// LoopState: everything the training loop carries from one iteration to the next, besides the
// policy (policy.pt) and the reward model (reward.pt). A checkpoint is these three files; this
// struct is the one place its contents are listed. trainer.bin holds the binary part (one
// serialiser, `fields`, reads and writes it, so the two cannot drift apart); the manifest's
// `info` holds the counters and statistics as JSON (`info` / `from_info`).
//
// trainer.bin format (little-endian; vectors are a u64 count then the elements):
//   u64 magic "PREFCKPT", u64 N, N x {f64[] state, u64[] rng, i64 elapsed}, u8[] task_over,
//   f32[] policy_obs, f32[] policy_states, f64[] ep_true, f64[] ep_pred, i32[] ep_len,
//   N x {history: f32[] obs, actions, final_obs, states, final_states, true_rewards,
//        u8[] terminated, truncated, i64 start_env_step},
//   u64 pool size, that many segments, u64[] segment_rng, query_rng, teacher_rng,
//   u8[] torch_rng, f64[] corr_pred, corr_truth
// The checkpoint's format version is the manifest's "format" (checkpoint.cc): 1, unchanged by
// this struct, so checkpoints written before it resume.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "prefrl/core/segment.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/prefs/segments.h"
#include "prefrl/reward/reward_model.h"

namespace prefrl {

struct Checkpoint;

// The loop's counters (manifest info).
struct LoopCounters {
  int64_t step = 0;              // environment steps so far (all N envs)
  int64_t iterations = 0;        // training iterations done (pre-training excluded)
  int64_t updates = 0;           // policy updates applied
  int64_t labels_requested = 0;  // queries asked (each wants its answers)
  int64_t last_label_id = 0;     // labels up to here are in the reward model
  int64_t labels_used = 0;       // labeled pairs the reward model has
  int64_t skipped_minibatches = 0, discarded_rollouts = 0, diverged_rounds = 0;  // non-finite values skipped, in all
};

struct LoopState {
  // ---- trainer.bin ----
  std::vector<std::vector<double>> env_state;   // (N) each env's physical state
  std::vector<std::vector<uint64_t>> env_rng;   // (N) each env's RNG
  std::vector<int64_t> env_elapsed;             // (N) steps into the current episode
  std::vector<uint8_t> task_over;               // (N) penalty mode: the task's episode already ended
  std::vector<float> policy_obs, policy_states; // (N x D), (N x S) what the policy sees next
  std::vector<double> ep_true, ep_pred;         // (N) running episode sums
  std::vector<int> ep_len;                      // (N)
  std::vector<Trajectory> history;              // (N) the steps clips are cut from
  std::vector<Segment> pool;                    // candidate clips, oldest first
  std::vector<uint64_t> segment_rng, query_rng, teacher_rng;
  std::vector<uint8_t> torch_rng;               // LibTorch's default CPU generator
  std::vector<double> corr_pred, corr_truth;    // the reward/true_corr window, oldest first

  // ---- manifest info ----
  LoopCounters counters;
  PrefStore::HighWater db;                         // the store's highest ids at the checkpoint
  double last_disagreement = 0;
  RewardTrainStats rstats;                      // the latest reward round's
  std::vector<double> recent_returns;           // true returns of the last 20 episodes
  std::vector<std::pair<int64_t, double>> return_curve;  // the labeling page's curve
  nlohmann::json health;                        // HealthMonitor::state()
  double wall_s = 0;                            // training seconds so far
  int64_t metrics_bytes = 0, health_bytes = 0;  // lengths of metrics.jsonl and health.jsonl
  nlohmann::json event_files;                   // TensorBoard event file => length
  nlohmann::json config;                        // the resolved config

  // Reads or writes trainer.bin's fields in order: Ar is a reader or a writer (loop_state.cc).
  template <class Ar>
  void fields(Ar& ar);
  std::string trainer_bin() const;
  nlohmann::json info() const;
  // Reads a checkpoint's trainer.bin and info; throws RuntimeError naming the file when either is
  // malformed or does not fit N environments of D floats.
  static LoopState read(const Checkpoint& c, int N, int64_t D);
};

}  // namespace prefrl
