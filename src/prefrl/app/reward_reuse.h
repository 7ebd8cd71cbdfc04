// Reusing reward models: `prefrl reward train --prefs DATASET` trains one offline from a
// preference dataset into a reward bundle (docs/bundle.md, "Reward bundles"), and
// `prefrl train --reward-from RUN_OR_BUNDLE` starts a run from a trained one (a run's final
// model, an export bundle's or a reward bundle's).
#pragma once
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "prefrl/app/train_config.h"

namespace prefrl {

inline constexpr const char* kRewardBundleFormat = "prefrl-reward";
inline constexpr int kRewardBundleVersion = 1;

struct OfflineRewardOptions {
  std::string prefs;  // the dataset
  std::string out;    // the bundle directory to create
  int rounds = 0;     // training rounds (0: reward.epochs_per_round passes x 20 rounds, as below)
};
// Trains cfg.reward's model on every answer of the dataset (held-out share as in training:
// reward.val_fraction), one metrics.jsonl record per round (losses, accuracies, L2), normalises
// its output over the dataset's clips, and writes the bundle (reward.pt TorchScript,
// reward_state.pt prefrl's own, reward_card.json, metrics.jsonl) => its card.
nlohmann::json train_reward_offline(const TrainConfig& cfg, const OfflineRewardOptions& o, std::ostream& log);

// Where a reward model to start from is: its prefrl state file and the config it was built with.
struct RewardSource {
  std::string path;        // as given
  std::string kind;        // "run" | "export bundle" | "reward bundle"
  std::string state_file;  // prefrl's RewardModel::save file
  TrainConfig cfg;         // its env.* and reward.* settings are what matter
};
// UsageError naming the path if it is none of the three, or lacks the state file.
RewardSource resolve_reward_source(const std::string& path);

// cfg with the source's reward.* settings (the model's architecture), checked to be for the
// same environment: UsageError naming both.
void adopt_reward_source(TrainConfig& cfg, const RewardSource& src);

}  // namespace prefrl
