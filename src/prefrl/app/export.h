// `prefrl export`: a run's policy and reward model as a self-contained bundle (TorchScript
// modules, a model card, the observations the sanity checks compared on), checked before it
// is written; and a bundle read back (`prefrl eval --exported`). Format: docs/bundle.md.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "prefrl/reward/reward_model.h"
#include "prefrl/rl/agent.h"
#include "prefrl/rl/ppo.h"

namespace prefrl {

inline constexpr const char* kBundleFormat = "prefrl-bundle";
inline constexpr int kBundleVersion = 1;

struct ExportOptions {
  std::string run;                 // the run directory
  std::string out;                 // the bundle directory (default RUN/export); must not exist
  std::string checkpoint;          // a checkpoint of the run (ckpt-<step> or latest) instead of its final files
  bool force = false;              // write despite failed checks (recorded in the card)
  double min_val_accuracy = 0.6;   // the reward model's held-out accuracy must exceed this
  int check_episodes = 5;          // episodes of the final and the initial policy compared
  int parity_steps = 1000;         // recorded observations the modules are compared on
  double tolerance = 1e-6;         // |exported - prefrl| <= tolerance * max(1, |prefrl|)
};

// One sanity check's verdict, as the card records it.
struct ExportCheck {
  std::string name;
  bool passed = false;
  std::string detail;  // the figures in words
  nlohmann::json figures = nlohmann::json::object();
};

// The sanity checks export_run runs (each on its own, for tests):
// every policy parameter and every floating tensor of the reward module finite;
ExportCheck check_finite(const std::vector<float>& policy_params, const torch::jit::Module* reward_module);
// the final policy's mean return (true, else learned) above the initial policy's;
ExportCheck check_improvement(double final_value, double initial_value, const std::string& by, int episodes);
// the reward model's held-out accuracy above the threshold (none recorded: fails);
ExportCheck check_val_accuracy(std::optional<double> accuracy, double threshold);
// act() twice on the same observations (n x D) gives the same actions;
ExportCheck check_act_deterministic(torch::jit::Module& policy, const torch::Tensor& obs);
// the policy module's distribution, value and act() against the agent's own on obs (n x D):
// |exported - prefrl| <= tolerance * max(1, |prefrl|) everywhere (act: against the agent's
// deterministic actions clipped to the action space, as executed);
ExportCheck check_policy_parity(torch::jit::Module& policy, PPOAgent& agent, const EnvSpec& spec, const float* obs,
                                int64_t n, double tolerance);
// the reward module's forward() and members() against predict() and member_rewards().
ExportCheck check_reward_parity(torch::jit::Module& reward_module, RewardModel& reward, const float* obs,
                                const float* act, int64_t n, double tolerance);

// Checks the run and writes the bundle; progress and each check's figures go to `log`.
// Refuses (UsageError: one line per failed check, nothing written) unless o.force. Bad input
// (a run still running, no checkpoint, an existing --out) is a UsageError naming it.
// => the bundle's directory.
std::string export_run(const ExportOptions& o, std::ostream& log);

// A bundle read back, every file checked against the card's sizes and CRC-32Cs and the
// card's format and version (UsageError naming the file and the mismatch).
struct Bundle {
  std::string dir;
  nlohmann::json card;
  std::shared_ptr<torch::jit::Module> policy;
  std::shared_ptr<torch::jit::Module> reward;  // null without a learned reward model
};
Bundle load_bundle(const std::string& dir);

// The bundle's policy acting: its forward() (the distribution's parameters) then prefrl's own
// choice of actions (choose_actions: the mode, or a draw from the evaluation RNG the run's
// policy had), so it acts exactly as `prefrl eval RUN` does.
std::unique_ptr<ActingPolicy> bundle_policy(const Bundle& b);

// The bundle's reward model as eval's per-step reward: r̂ (n) of obs (n x D), act (n x A).
std::function<void(const float*, const float*, int64_t, float*)> bundle_reward(const Bundle& b);

}  // namespace prefrl
