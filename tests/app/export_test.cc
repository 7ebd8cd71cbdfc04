// prefrl export: bundles of a state task (pendulum), a MuJoCo task (hopper) and pixels
// (movingdot) reproduce prefrl's outputs in Python (Debian's python3-torch, no prefrl code) and
// `eval --exported` equals `eval RUN`; every sanity check refuses a bundle it should; bad
// runs and damaged bundles are named, exit 2, and nothing is written.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "prefrl/app/export.h"
#include "prefrl/app/torchscript.h"
#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

using testing::read_file;
using testing::run_prefrl;
using testing::temp_path;

using testing::kQuiet;

// Runs Debian's Python on the bundle parity checker; => its exit status and output.
testing::CommandResult python_parity(const std::string& bundle) {
  return testing::run_command("/usr/bin/python3 " + std::string(PREFRL_TEST_DATA) + "/../python/check_bundle.py " + bundle);
}

nlohmann::json card_of(const std::string& bundle) { return nlohmann::json::parse(read_file(bundle + "/model_card.json")); }

bool check_passed(const nlohmann::json& card, const std::string& name) {
  for (const auto& c : card["checks"])
    if (c["name"] == name) return c["passed"].get<bool>();
  ADD_FAILURE() << "no check named '" << name << "' in " << card["checks"].dump();
  return false;
}

struct ServedTask {
  const char* name;
  std::string train;
};

class ExportServing : public ::testing::TestWithParam<ServedTask> {};

TEST_P(ExportServing, PythonReproducesPrefrlAndEvalExportedEqualsEvalRun) {
  const ServedTask& t = GetParam();
  const std::string run = temp_path(std::string("export_") + t.name), bundle = run + "_bundle";
  fs::remove_all(bundle);
  auto r = run_prefrl(t.train + kQuiet + " --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // --force: a run this short need not have improved; the parity checks must pass regardless.
  r = run_prefrl("export " + run + " --out " + bundle + " --force --check-episodes 2 --parity-steps 1000");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* f : {"policy.pt", "reward.pt", "model_card.json", "MODEL_CARD.md", "parity/obs.npy"})
    EXPECT_TRUE(fs::exists(bundle + "/" + f)) << f;
  const nlohmann::json card = card_of(bundle);
  EXPECT_EQ(card["format"], "prefrl-bundle");
  EXPECT_TRUE(check_passed(card, "policy reproduces prefrl")) << r.out;
  EXPECT_TRUE(check_passed(card, "reward model reproduces prefrl")) << r.out;
  EXPECT_TRUE(check_passed(card, "act deterministic")) << r.out;
  EXPECT_TRUE(check_passed(card, "parameters finite")) << r.out;
  EXPECT_EQ(card["labels"]["by_teacher"]["oracle"], card["labels"]["total"]);
  EXPECT_GT(card["labels"]["total"].get<int>(), 0);

  const auto py = python_parity(bundle);
  EXPECT_EQ(py.exit_code, 0) << py.out;
  const auto gaps = nlohmann::json::parse(py.out.substr(py.out.find('{')), nullptr, false);
  ASSERT_FALSE(gaps.is_discarded()) << py.out;
  EXPECT_EQ(gaps["observations"], 1000);
  EXPECT_LE(gaps["worst"].get<double>(), 1e-6) << py.out;

  // README's "Take the result out" snippet (python/run_exported.py) steps a Gymnasium-API
  // environment with the bundle (a stand-in for Gymnasium, which is not in Debian).
  if (std::string(t.name) == "pendulum") {
    const std::string src = std::string(PREFRL_TEST_DATA) + "/..";
    const std::string script = read_file(src + "/../python/run_exported.py");
    ASSERT_FALSE(script.empty());
    EXPECT_NE(read_file(src + "/../README.md").find(script), std::string::npos)
        << "README's snippet and python/run_exported.py differ";
    const testing::CommandResult py = testing::run_command("PYTHONPATH=" + src + "/python/gymnasium_standin /usr/bin/python3 " +
                                                           src + "/../python/run_exported.py " + bundle);
    const std::string& out = py.out;
    EXPECT_EQ(py.exit_code, 0) << out;
    EXPECT_NE(out.find("episode 2: return -"), std::string::npos) << out;
  }

  // The bundle evaluates as its run does, to the last digit, deterministic and sampled.
  for (const char* mode : {"", " --stochastic"}) {
    const auto a = run_prefrl("eval " + run + " --json --episodes 3" + mode);
    const auto b = run_prefrl("eval --exported " + bundle + " --json --episodes 3" + mode);
    ASSERT_EQ(a.exit_code, 0) << a.out;
    ASSERT_EQ(b.exit_code, 0) << b.out;
    EXPECT_EQ(a.out, b.out) << mode;
  }
  fs::remove_all(run);
  fs::remove_all(bundle);
}

INSTANTIATE_TEST_SUITE_P(
    Tasks, ExportServing,
    ::testing::Values(ServedTask{"pendulum", "train --env pendulum --steps 8192 --labels 40 --seed 3 --set prefs.segment_length=25"},
                      ServedTask{"hopper", "train --env hopper --steps 4096 --labels 20 --seed 2"},
                      ServedTask{"movingdot", "train --env movingdot --steps 4096 --labels 20 --seed 1"}),
    [](const ::testing::TestParamInfo<ServedTask>& i) { return std::string(i.param.name); });

// A policy that learned nothing (lr 0, no observation normalisation: the initial policy
// itself) and a validation threshold no model can pass: refused with one line per failed
// check and nothing written; --force writes it and the card says which checks it overrode.
TEST(Export, FailedChecksRefuseTheBundleUnlessForced) {
  const std::string run = temp_path("export_refuse"), bundle = run + "_bundle";
  fs::remove_all(bundle);
  auto r = run_prefrl("train --env pendulum --steps 4096 --labels 30 --seed 4 --set prefs.segment_length=25 "
                      "--set ppo.lr=0 --set ppo.norm_obs=false --set server.token=s3cr3t-t0ken" + kQuiet +
                      " --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_prefrl("export " + run + " --out " + bundle + " --min-val-accuracy 1 --check-episodes 2");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("export refused: policy improved on the initial one"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("export refused: reward validation accuracy"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("export refused: policy reproduces prefrl"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(bundle));
  EXPECT_FALSE(fs::exists(bundle + ".tmp"));
  r = run_prefrl("export " + run + " --out " + bundle + " --min-val-accuracy 1 --check-episodes 2 --force");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json card = card_of(bundle);
  EXPECT_EQ(card["forced"], nlohmann::json({"policy improved on the initial one", "reward validation accuracy"}));
  EXPECT_NE(read_file(bundle + "/MODEL_CARD.md").find("--force"), std::string::npos);
  // Secrets stay out of the card: the run's server.token is "(hidden)".
  EXPECT_EQ(card["config"]["server"]["token"], "(hidden)");
  for (const char* f : {"/model_card.json", "/MODEL_CARD.md"})
    EXPECT_EQ(read_file(bundle + f).find("s3cr3t-t0ken"), std::string::npos) << f;

  // --out exists: refused.
  r = run_prefrl("export " + run + " --out " + bundle + " --force");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("exists"), std::string::npos) << r.out;
  // A checkpoint instead of the final files; a checkpoint that is not there.
  r = run_prefrl("export " + run + " --out " + bundle + "_ckpt --checkpoint latest --force --check-episodes 1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(card_of(bundle + "_ckpt")["source"].get<std::string>().rfind("ckpt-", 0), 0u);
  r = run_prefrl("export " + run + " --out " + bundle + "_none --checkpoint ckpt-999999");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("ckpt-999999"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(bundle + "_none"));

  // Damaged bundles: named, exit 2.
  const std::string bad = run + "_bad";
  auto damaged = [&](const std::function<void()>& damage, const std::string& expect) {
    fs::remove_all(bad);
    fs::copy(bundle, bad, fs::copy_options::recursive);
    damage();
    const auto e = run_prefrl("eval --exported " + bad + " --episodes 1");
    EXPECT_EQ(e.exit_code, 2) << e.out;
    EXPECT_NE(e.out.find(expect), std::string::npos) << e.out;
  };
  damaged([&] {
    std::fstream f(bad + "/policy.pt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }, "policy.pt: CRC-32C");
  damaged([&] { fs::resize_file(bad + "/reward.pt", fs::file_size(bad + "/reward.pt") / 2); }, "reward.pt");
  damaged([&] {
    nlohmann::json c = card_of(bad);
    c["version"] = 99;
    std::ofstream(bad + "/model_card.json") << c.dump();
  }, "format version 99");
  damaged([&] { fs::remove(bad + "/model_card.json"); }, "model_card.json: missing");
  for (const std::string& d : {run, bundle, bundle + "_ckpt", bad}) fs::remove_all(d);
}

// Runs that cannot be exported: one still running, one with nothing saved.
TEST(Export, RunningRunsAndRunsWithoutCheckpointsAreRefused) {
  const std::string run = temp_path("export_bad_runs");
  fs::create_directories(run);
  std::ofstream(run + "/config.json") << R"({"env": {"name": "pendulum"}})";
  auto r = run_prefrl("export " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("no final policy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no checkpoint"), std::string::npos) << r.out;
  testing::mark_running_by_this_process(run);
  r = run_prefrl("export " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("still running"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(run + "/export"));
  fs::remove_all(run);
}

// Each check on its own, provoked the way it can fail.
TEST(ExportChecks, EachCheckFailsWhereItShould) {
  torch::set_num_threads(1);
  const EnvSpec& spec = env_spec("pendulum");
  PPOConfig cfg;
  PPOAgent agent(cfg, spec, 1, 5);
  Rng rng(3);
  const int64_t n = 64;
  std::vector<float> obs(static_cast<size_t>(n * spec.observation.numel()));
  for (auto& x : obs) x = static_cast<float>(rng.normal());
  agent.rollout_act(0, obs.data(), std::vector<float>(spec.action.numel()).data());  // moves the normaliser off identity
  const PolicyParts parts = agent.export_parts();

  // Parity: the module of the agent's own parts passes; perturbed parameters fail.
  torch::jit::Module good = policy_module(parts, spec);
  EXPECT_TRUE(check_policy_parity(good, agent, spec, obs.data(), n, 1e-6).passed);
  PolicyParts off = parts;
  off.params[off.layout.actor.back().b] += 1e-3f;
  torch::jit::Module bad = policy_module(off, spec);
  const ExportCheck failed = check_policy_parity(bad, agent, spec, obs.data(), n, 1e-6);
  EXPECT_FALSE(failed.passed);
  EXPECT_GT(failed.figures["head"].get<double>(), 1e-4);

  // act(): deterministic for the exported module, not for one that samples.
  const torch::Tensor x = torch::from_blob(obs.data(), {n, spec.observation.numel()}, torch::kFloat32);
  EXPECT_TRUE(check_act_deterministic(good, x).passed);
  torch::jit::Module noisy("Noisy");
  noisy.define("def act(self, obs: Tensor) -> Tensor:\n    return torch.rand([obs.size(0), 1])\n");
  EXPECT_FALSE(check_act_deterministic(noisy, x).passed);

  // Finite parameters.
  EXPECT_TRUE(check_finite(parts.params, nullptr).passed);
  std::vector<float> nan_params = parts.params;
  nan_params[3] = std::nanf("");
  EXPECT_FALSE(check_finite(nan_params, nullptr).passed);

  // Reward parity and a non-finite reward module.
  RewardConfig rcfg;
  rcfg.ensemble_size = 2;
  RewardModel reward(rcfg, spec.observation.shape, spec.action.numel(), false, 0, false, 9);
  std::vector<float> act(static_cast<size_t>(n * spec.action.numel()));
  for (auto& a : act) a = static_cast<float>(rng.normal());
  torch::jit::Module rm = reward.to_torchscript();
  EXPECT_TRUE(check_reward_parity(rm, reward, obs.data(), act.data(), n, 1e-6).passed);
  EXPECT_TRUE(check_finite(parts.params, &rm).passed);
  {
    torch::NoGradGuard g;
    rm.attr("fc0_b").toTensor().add_(0.01);
  }
  EXPECT_FALSE(check_reward_parity(rm, reward, obs.data(), act.data(), n, 1e-6).passed);
  {
    torch::NoGradGuard g;
    rm.attr("fc0_b").toTensor()[0][0][0] = std::numeric_limits<float>::infinity();
  }
  EXPECT_FALSE(check_finite(parts.params, &rm).passed);

  // Improvement and validation accuracy.
  EXPECT_TRUE(check_improvement(-150, -1200, "true return", 5).passed);
  EXPECT_FALSE(check_improvement(-1200, -1200, "true return", 5).passed);
  EXPECT_FALSE(check_improvement(std::nan(""), -1200, "true return", 5).passed);
  EXPECT_TRUE(check_val_accuracy(0.8, 0.6).passed);
  EXPECT_FALSE(check_val_accuracy(0.6, 0.6).passed);
  EXPECT_FALSE(check_val_accuracy(std::nullopt, 0.6).passed);
}

}  // namespace
}  // namespace prefrl
