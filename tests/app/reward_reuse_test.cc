// Reusing reward models: `prefrl reward train --prefs` trains one offline from a dataset into a
// reward bundle; `prefrl train --reward-from` starts a run from a reward bundle, an export
// bundle or a run, fixed (no labels asked) unless --labels N; bad sources are refused by name.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "prefrl/app/evaluate.h"
#include "prefrl/app/task_archive.h"
#include "prefrl/app/train_config.h"
#include "prefrl/core/rng.h"
#include "prefrl/prefs/sqlite_pref_store.h"
#include "prefrl/tracking/run_dir.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

using testing::read_file;
using testing::run_prefrl;
using testing::temp_path;

using testing::kQuiet;
const std::string kPendulum = "train --env pendulum --set prefs.segment_length=25" + kQuiet;

using testing::json_of;

// r̂ of a run's final reward model (or a bundle's state) on fixed pendulum observations.
std::vector<float> predictions(const std::string& run_config_dir, const std::string& state_file) {
  TrainConfig cfg;
  config_from_json(cfg, read_run_config(RunDir::open(run_config_dir)));
  std::unique_ptr<RewardModel> m = load_reward_model(cfg, state_file);
  Rng rng(11);
  const int64_t n = 64;
  std::vector<float> obs(n * 3), act(n), out(n);
  for (float& x : obs) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  for (float& a : act) a = static_cast<float>(rng.uniform(-2.0, 2.0));
  m->predict(obs.data(), act.data(), n, out.data());
  return out;
}

int64_t labels_in(const std::string& db) { return fs::exists(db) ? SqlitePrefStore(db).count_labels() : 0; }

TEST(RewardReuse, OfflineRewardBundleTrainsAFixedRewardRunAndRunsContinueFromModels) {
  const std::string src = temp_path("rr_src"), ds = src + "_ds", rb = src + "_rb", fixed = src + "_fixed",
                    more = src + "_more", viaexport = src + "_viaexport", bundle = src + "_bundle";
  for (const std::string& d : {ds, rb, bundle}) fs::remove_all(d);
  auto r = run_prefrl(kPendulum + " --steps 8192 --labels 60 --seed 8 --run-dir " + src);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(run_prefrl("prefs export " + src + " --out " + ds).exit_code, 0);

  r = run_prefrl("reward train --prefs " + ds + " --out " + rb + " --rounds 5 --set prefs.segment_length=25");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* f : {"reward.pt", "reward_state.pt", "reward_card.json", "metrics.jsonl"})
    EXPECT_TRUE(fs::exists(rb + "/" + f)) << f;
  const nlohmann::json card = json_of(rb + "/reward_card.json");
  EXPECT_EQ(card["format"], "prefrl-reward");
  EXPECT_EQ(card["pairs"].get<int>() , 60);
  EXPECT_EQ(card["train_pairs"].get<int>() + card["val_pairs"].get<int>(), 60);
  EXPECT_TRUE(card["val_accuracy"].is_number()) << card.dump();
  int rounds = 0;
  std::ifstream m(rb + "/metrics.jsonl");
  for (std::string line; std::getline(m, line);) rounds += nlohmann::json::parse(line)["name"] == "reward/val_accuracy";
  EXPECT_EQ(rounds, 5);

  // A fixed reward: no labels asked, the model the run ends with is the bundle's.
  r = run_prefrl(kPendulum + " --steps 4096 --seed 9 --reward-from " + rb + " --run-dir " + fixed);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("fixed, no labels are asked"), std::string::npos) << r.out;
  EXPECT_EQ(json_of(fixed + "/summary.json")["labels"], 0);
  EXPECT_EQ(labels_in(fixed + "/prefs.db"), 0);
  EXPECT_EQ(json_of(fixed + "/config.json")["run"]["reward_from"], fs::absolute(rb).lexically_normal().string());
  EXPECT_EQ(predictions(fixed, fixed + "/checkpoints/reward.pt"), predictions(fixed, rb + "/reward_state.pt"));

  // From a run, with new labels: the model trains on from the run's.
  r = run_prefrl(kPendulum + " --steps 4096 --seed 10 --labels 10 --reward-from " + src + " --run-dir " + more);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(json_of(more + "/summary.json")["labels"], 10);
  EXPECT_NE(predictions(more, more + "/checkpoints/reward.pt"), predictions(more, src + "/checkpoints/reward.pt"));

  // From an export bundle (its reward_state.pt).
  r = run_prefrl("export " + src + " --out " + bundle + " --force --check-episodes 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_prefrl(kPendulum + " --steps 2048 --seed 11 --reward-from " + bundle + " --run-dir " + viaexport);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(predictions(viaexport, viaexport + "/checkpoints/reward.pt"), predictions(src, src + "/checkpoints/reward.pt"));
  for (const std::string& d : {src, ds, rb, fixed, more, viaexport, bundle}) fs::remove_all(d);
}

TEST(RewardReuse, SourcesThatCannotBeUsedAreRefusedByName) {
  const std::string cart = temp_path("rr_cart"), truth = temp_path("rr_true"), target = temp_path("rr_target");
  auto r = run_prefrl("train --env cartpole --steps 2048 --labels 10 --seed 1" + kQuiet + " --run-dir " + cart);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_prefrl(kPendulum + " --steps 2048 --reward-from " + cart + " --run-dir " + target);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("holds a reward model for cartpole, not for pendulum"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(target));
  r = run_prefrl("train --env pendulum --steps 2048 --set run.policy_reward=true" + kQuiet + " --run-dir " + truth);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_prefrl(kPendulum + " --steps 2048 --reward-from " + truth + " --run-dir " + target);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("trained on the true reward"), std::string::npos) << r.out;
  r = run_prefrl(kPendulum + " --steps 2048 --reward-from " + target + "_nowhere --run-dir " + target);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("is not a directory"), std::string::npos) << r.out;
  r = run_prefrl("reward train --prefs " + target + "_nowhere --out " + target + "_rb");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_FALSE(fs::exists(target + "_rb"));
  EXPECT_FALSE(fs::exists(target));
  for (const std::string& d : {cart, truth, target}) fs::remove_all(d);
}

}  // namespace
}  // namespace prefrl
