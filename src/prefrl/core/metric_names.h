// Metric names: constants, slash-grouped, always logged against environment steps.
// Names under time/ and sys/, charts/SPS, charts/rollout_SPS and the wall-clock health checks
// measure the machine, not the learning: they are the only values that may differ between two
// runs with the same seed (measures_machine() in metrics.h; docs/run_dir.md).
#pragma once

namespace prefrl::metric {

inline constexpr const char* kEpisodicReturn = "charts/episodic_return";    // true return of finished episodes
inline constexpr const char* kEpisodicLength = "charts/episodic_length";
inline constexpr const char* kPredictedReturn = "charts/predicted_return";  // learned-reward return of the same episodes
inline constexpr const char* kSuccessRate = "charts/success_rate";          // envs with a success criterion
inline constexpr const char* kSPS = "charts/SPS";                          // env steps / wall time of the iteration
inline constexpr const char* kRolloutSPS = "charts/rollout_SPS";           // env steps / (env + inference time)
inline constexpr const char* kLearningRate = "charts/learning_rate";

inline constexpr const char* kPolicyLoss = "losses/policy_loss";
inline constexpr const char* kValueLoss = "losses/value_loss";
inline constexpr const char* kEntropy = "losses/entropy";
inline constexpr const char* kApproxKL = "losses/approx_kl";
inline constexpr const char* kClipFrac = "losses/clipfrac";
inline constexpr const char* kExplainedVariance = "losses/explained_variance";
inline constexpr const char* kSkippedUpdates = "losses/skipped_nonfinite";

inline constexpr const char* kRewardTrainLoss = "reward/train_loss";
inline constexpr const char* kRewardValLoss = "reward/val_loss";
inline constexpr const char* kRewardTrainAccuracy = "reward/train_accuracy";
inline constexpr const char* kRewardValAccuracy = "reward/val_accuracy";
inline constexpr const char* kRewardTrueCorr = "reward/true_corr";
inline constexpr const char* kRewardDisagreement = "reward/ensemble_disagreement";
inline constexpr const char* kRewardL2 = "reward/l2";
inline constexpr const char* kRewardDiverged = "reward/diverged_rounds";    // rounds rolled back this iteration

inline constexpr const char* kLabels = "prefs/labels";  // labels given during the run
inline constexpr const char* kLabelsImported = "prefs/labels_imported";  // answers it started with (prefs.import_from)
inline constexpr const char* kPendingQueries = "prefs/pending_queries";
inline constexpr const char* kLabelRate = "prefs/label_rate";   // labels per 1000 env steps this iteration
inline constexpr const char* kDbBytes = "prefs/db_bytes";
inline constexpr const char* kPoolSize = "prefs/pool_size";          // candidate clips in the segment pool
// Queries asked in the record with a clip of an exploring episode (prefs.explore_clips > 0 only).
inline constexpr const char* kExploredQueries = "prefs/explored_queries";
// Queries of the record the teacher skipped (B-Pref's skip teacher: teacher.skip > 0 only).
inline constexpr const char* kSkippedQueries = "prefs/skipped_queries";
inline constexpr const char* kUnusedLabels = "prefs/unused_labels";  // labels committed, not yet trained on

inline constexpr const char* kRssMb = "sys/rss_mb";

// Phases timed per iteration: time/<phase>_s.
inline constexpr const char* kTimeEnv = "time/env_s";
inline constexpr const char* kTimeInference = "time/inference_s";
inline constexpr const char* kTimeRewardPredict = "time/reward_predict_s";
inline constexpr const char* kTimePPO = "time/ppo_update_s";
inline constexpr const char* kTimeRewardTrain = "time/reward_train_s";
inline constexpr const char* kTimeQuery = "time/query_selection_s";
inline constexpr const char* kTimeDb = "time/database_s";
inline constexpr const char* kTimeLabelWait = "time/label_wait_s";   // waiting for people's labels
inline constexpr const char* kTimeIteration = "time/iteration_s";    // the whole iteration

// health/<check>: HealthMonitor::metric_name (tracking/health.h).

}  // namespace prefrl::metric
