#include "prefrl/app/reward_reuse.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <torch/script.h>

#include "prefrl/app/artifacts.h"
#include "prefrl/app/checkpoint.h"
#include "prefrl/app/dataset.h"
#include "prefrl/app/evaluate.h"
#include "prefrl/app/export.h"
#include "prefrl/app/task_archive.h"
#include "prefrl/core/error.h"
#include "prefrl/reward/reward_model.h"
#include "prefrl/tracking/run_dir.h"
#include "prefrl_version.h"

namespace prefrl {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kOfflineRewardSeedOffset = 4099;  // the offline model's seed: apart from a run's streams
constexpr int kDefaultRounds = 20;

double num_or_nan(double x) { return std::isfinite(x) ? x : std::nan(""); }
nlohmann::json json_num(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }
}  // namespace

nlohmann::json train_reward_offline(const TrainConfig& cfg_in, const OfflineRewardOptions& o, std::ostream& log) {
  if (o.out.empty()) throw UsageError("reward train: --out DIR is required");
  if (fs::exists(o.out)) throw UsageError("'" + o.out + "' exists; give --out a new directory");
  TrainConfig cfg = cfg_in;
  const Dataset d = read_dataset(o.prefs);
  check_compatible(d, task_spec(cfg), o.prefs);
  std::vector<LabeledPair> pairs;
  for (size_t k = 0; k < d.answers.size(); ++k) {
    const DatasetAnswer& a = d.answers[k];
    if (a.choice == Choice::kSkip) continue;
    LabeledPair p;
    p.label_id = static_cast<int64_t>(k) + 1;  // the answer's position in the dataset
    p.left = d.clip(a.left);
    p.right = d.clip(a.right);
    p.target = choice_target(a.choice);
    pairs.push_back(std::move(p));
  }
  if (pairs.empty()) throw UsageError(o.prefs + ": no answers to train on (skips are not)");
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<RewardModel> model = make_reward_model(cfg, static_cast<uint64_t>(cfg.run.seed) + kOfflineRewardSeedOffset);
  model->add_pairs(pairs);
  const int rounds = o.rounds > 0 ? o.rounds : kDefaultRounds;
  const std::string tmp = o.out + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    std::ofstream metrics(tmp + "/metrics.jsonl");
    RewardTrainStats st;
    for (int r = 1; r <= rounds; ++r) {
      st = model->train_round();
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const auto& [name, v] : std::vector<std::pair<const char*, double>>{
               {"reward/train_loss", st.train_loss}, {"reward/val_loss", st.val_loss},
               {"reward/train_accuracy", st.train_accuracy}, {"reward/val_accuracy", st.val_accuracy},
               {"reward/l2", st.l2}, {"reward/updates", static_cast<double>(st.updates)}})
        metrics << nlohmann::json{{"name", name}, {"step", r}, {"value", json_num(v)}, {"wall_time", wall}}.dump() << "\n";
      if (r == 1 || r == rounds || r % 5 == 0)
        log << fmt::format("round {:>3}/{}: train loss {:.4f}, val loss {:.4f}, train accuracy {:.3f}, val accuracy {:.3f}, "
                           "L2 {:.3g}{}\n", r, rounds, st.train_loss, st.val_loss, st.train_accuracy, st.val_accuracy,
                           st.l2, st.diverged ? " (diverged: rolled back)" : "");
    }
    metrics.close();
    if (cfg.reward.normalise_on != "labeled")
      log << "note: reward.normalise_on=" << cfg.reward.normalise_on
          << " normalises over a run's rollouts; offline, the output is normalised over the dataset's clips\n";
    model->update_normalisation_on_labeled();
    model->save(tmp + "/reward_state.pt");
    TrainConfig libtorch_cfg = cfg;
    libtorch_cfg.reward.fast_mlp = false;  // the module is compared with LibTorch's operators, as export does
    std::unique_ptr<RewardModel> reference = load_reward_model(libtorch_cfg, tmp + "/reward_state.pt");
    reference->to_torchscript().save(tmp + "/reward.pt");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const EnvSpec& spec = env_spec(cfg.env.name);
    nlohmann::json config = config_to_json(cfg);
    nlohmann::json card = {{"format", kRewardBundleFormat},
                           {"version", kRewardBundleVersion},
                           {"dataset", fs::absolute(o.prefs).lexically_normal().string()},
                           {"task_hash", d.task.hash},
                           {"env", env_spec_json(spec, atari_frame_skip(spec.name, cfg.atari.frame_skip))},
                           {"config", config},
                           {"answers", d.answers.size()},
                           {"pairs", pairs.size()},
                           {"rounds", rounds},
                           {"train_pairs", st.n_train},
                           {"val_pairs", st.n_val},
                           {"train_loss", json_num(st.train_loss)},
                           {"val_loss", json_num(st.val_loss)},
                           {"train_accuracy", json_num(st.train_accuracy)},
                           {"val_accuracy", json_num(num_or_nan(st.val_accuracy))},
                           {"seconds", seconds},
                           {"prefrl", std::string(PREFRL_VERSION) + " (" + PREFRL_GIT_COMMIT + ")"},
                           {"reward_model", {{"members", reference->encoding().members},
                                             {"uses_action", reference->encoding().act_width > 0},
                                             {"subtract_absorbing", reference->encoding().subtract_absorbing}}}};
    card["files"] = file_manifest(tmp);
    write_file_synced(tmp + "/reward_card.json", card.dump(2) + "\n");
    fs::rename(tmp, o.out);
    log << fmt::format("wrote {}: {} pairs ({} held out), val accuracy {:.3f}, {:.1f} s\n", o.out, pairs.size(), st.n_val,
                       st.val_accuracy, seconds);
    return card;
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

RewardSource resolve_reward_source(const std::string& path) {
  RewardSource s;
  s.path = path;
  if (!fs::is_directory(path)) throw UsageError("--reward-from: '" + path + "' is not a directory (a run or a bundle)");
  auto config_from = [&](const nlohmann::json& j, const std::string& where) {
    try {
      config_from_json(s.cfg, with_task_registered(j, path));
    } catch (const UsageError& e) {
      throw UsageError("--reward-from: the config in " + where + " is unusable: " + e.what());
    }
  };
  if (fs::exists(path + "/reward_card.json")) {
    const nlohmann::json card = read_json_object(path + "/reward_card.json", "a prefrl reward bundle");
    if (card.value("format", "") != kRewardBundleFormat || card.value("version", -1) != kRewardBundleVersion)
      throw UsageError(path + "/reward_card.json: format " + card.value("format", nlohmann::json("?")).dump() + " version " +
                       card.value("version", nlohmann::json(nullptr)).dump() + "; this prefrl reads " + kRewardBundleFormat +
                       " version " + std::to_string(kRewardBundleVersion));
    check_manifest(path, card.value("files", nlohmann::json::object()), "reward_card.json");
    s.kind = "reward bundle";
    s.state_file = path + "/reward_state.pt";
    config_from(card.at("config"), path + "/reward_card.json");
  } else if (fs::exists(path + "/model_card.json")) {
    const Bundle b = load_bundle(path);  // every file checked
    if (!b.card["files"].contains("reward_state.pt"))
      throw UsageError(path + ": the bundle has no reward model state (reward_state.pt): its run trained on the true "
                       "reward, or it was exported by an older prefrl");
    s.kind = "export bundle";
    s.state_file = path + "/reward_state.pt";
    config_from(b.card.at("config"), path + "/model_card.json");
  } else if (fs::exists(path + "/config.json")) {
    s.kind = "run";
    config_from(read_run_config(RunDir::open(path)), path + "/config.json");
    if (s.cfg.run.policy_reward != "learned")
      throw UsageError("--reward-from: run '" + path + "' trained on the true reward: it has no reward model");
    s.state_file = path + "/checkpoints/reward.pt";
  } else {
    throw UsageError("--reward-from: '" + path + "' is neither a run directory (config.json), an export bundle "
                     "(model_card.json) nor a reward bundle (reward_card.json)");
  }
  if (!fs::exists(s.state_file)) throw UsageError("--reward-from: " + s.state_file + ": missing (no final reward model)");
  return s;
}

void adopt_reward_source(TrainConfig& cfg, const RewardSource& src) {
  if (src.cfg.env.name != cfg.env.name)
    throw UsageError("--reward-from: " + src.path + " holds a reward model for " + src.cfg.env.name + ", not for " +
                     cfg.env.name);
  if (task_spec(src.cfg).spec.at("env") != task_spec(cfg).spec.at("env"))
    throw UsageError("--reward-from: " + src.path + "'s environment spec differs from the run's (" +
                     task_spec(src.cfg).spec.at("env").dump() + " vs " + task_spec(cfg).spec.at("env").dump() + ")");
  if (src.cfg.env.termination != cfg.env.termination)
    throw UsageError("--reward-from: " + src.path + "'s model was built for env.termination=" + src.cfg.env.termination +
                     ", the run has " + cfg.env.termination);
  cfg.reward = src.cfg.reward;
}

}  // namespace prefrl
