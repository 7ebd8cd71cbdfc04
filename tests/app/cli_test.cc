// The command line: users' mistakes get one line naming the value, exit code 2, and no work.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "prefrl/app/task_archive.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

using testing::run_prefrl;
using testing::temp_path;

void expect_usage_error(const std::string& args, const std::string& must_contain) {
  SCOPED_TRACE(args);
  const std::string dir = temp_path("usage");
  auto r = run_prefrl(args + " --run-dir " + dir);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find(must_contain), std::string::npos) << r.out;
  // One line, and no work started: no run directory.
  EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_FALSE(fs::exists(dir));
}

// A run archived before B-Pref's teachers (no teacher.beta) keeps its teacher's answers: the
// earlier noisy teacher (random answers at teacher.error_rate) is the oracle with that rate; no
// other teacher read error_rate (its old default, 0.1, sits in every such config).
TEST(Cli, ConfigsFromBeforeBPrefTeachersKeepTheirAnswers) {
  const nlohmann::json old_noisy = {{"teacher", {{"kind", "noisy"}, {"error_rate", 0.25}}}, {"seed", 3}};
  nlohmann::json m = migrated_config(old_noisy);
  EXPECT_EQ(m["teacher"]["kind"], "oracle");
  EXPECT_EQ(m["teacher"]["error_rate"], 0.25);
  EXPECT_EQ(m["seed"], 3);
  m = migrated_config({{"teacher", {{"kind", "oracle"}, {"error_rate", 0.1}}}});
  EXPECT_EQ(m["teacher"]["kind"], "oracle");
  EXPECT_EQ(m["teacher"]["error_rate"], 0.0);
  const nlohmann::json today = {{"teacher", {{"kind", "noisy"}, {"error_rate", 0.1}, {"beta", -1.0}}}};
  EXPECT_EQ(migrated_config(today), today);  // written with B-Pref's teachers: as it is
  EXPECT_EQ(migrated_config({{"run", {{"seed", 1}}}}), nlohmann::json({{"run", {{"seed", 1}}}}));
}

TEST(Cli, UsageErrorsExitTwoBeforeAnyWork) {
  expect_usage_error("train --env nosuchenv", "unknown environment 'nosuchenv'");
  expect_usage_error("train --env cartpole --set ppo.nope=1", "unknown config key 'ppo.nope'");
  expect_usage_error("train --env cartpole --set ppo.lr=7", "ppo.lr");
  expect_usage_error("train --env cartpole --labels -3", "prefs.total_labels");
  expect_usage_error("train --env cartpole --steps abc", "expected a number, got 'abc'");
  expect_usage_error("train --env cartpole --teacher alien", "'alien' is not one of: oracle, mistake, noisy, skip");
  expect_usage_error("train --env cartpole --teacher noisy --set teacher.beta=0", "beta 0 must be -1");
  expect_usage_error("train --env cartpole --teacher myopic --set teacher.gamma=0", "gamma 0 must be in (0, 1]");
  expect_usage_error("train --env cartpole --teacher human --set teacher.eps_mistake=0.2", "would be ignored");
  expect_usage_error("train --env cartpole --set teacher.script_error_rate=0.2", "read by the script teacher only");
  expect_usage_error("train --env cartpole --preset pendulum", "is for environment 'pendulum'");
  expect_usage_error("train --env cartpole --preset nope", "unknown preset 'nope'");
  expect_usage_error("train --env cartpole --config /nonexistent.toml", "cannot read config file");
  expect_usage_error("train --env cartpole --bogus-flag", "bogus-flag");
  expect_usage_error("train --env cartpole --set ppo.minibatch_size=100000", "minibatch_size");
}

TEST(Cli, UnwritableRunDirectoryIsAUsageError) {
  const std::string file = temp_path("afile");
  { std::ofstream(file) << "x"; }
  auto r = run_prefrl("train --env cartpole --steps 100 --run-dir " + file + "/run");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("cannot create run directory"), std::string::npos) << r.out;
  fs::remove(file);
}

TEST(Cli, ConfigFileWithBadKeysIsRefused) {
  const std::string file = temp_path("cfg") + ".toml";
  { std::ofstream(file) << "[ppo]\nlr = 0.001\nnot_a_key = 3\n"; }
  auto r = run_prefrl("config --env cartpole --config " + file);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("unknown config key 'ppo.not_a_key'"), std::string::npos) << r.out;
  { std::ofstream(file) << "[ppo]\nlr = \"fast\"\n"; }
  r = run_prefrl("config --env cartpole --config " + file);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("expected a number"), std::string::npos) << r.out;
  { std::ofstream(file) << "[ppo]\nlr = 0.0042\n"; }
  r = run_prefrl("config --env cartpole --config " + file);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("0.0042"), std::string::npos) << r.out;
  fs::remove(file);
}

TEST(Cli, ConfigFileBadInputOfEveryClassIsOneLineExitTwoAndNoWork) {
  // One case per class through the binary; every class in-process: tests/core/config_test.cc
  // and the fuzz corpus (tests/data/fuzz/config/).
  const std::string file = temp_path("cfg_classes") + ".toml";
  const std::pair<const char*, const char*> cases[] = {
      {"[ppo]\nlr = \"fast\"\n", "config key 'ppo.lr': expected a number, got \"fast\""},  // wrong type
      {"[ppo]\nlearning_rate = 0.1\n", "unknown config key 'ppo.learning_rate'"},           // unknown key
      {"[ppo]\nlr = 7.0\n", "config key 'ppo.lr': value 7 is out of range [0, 1]"},          // out of range
      {"[ppo\nlr = 1\n", "is not valid TOML"},                                                 // syntax
  };
  for (const auto& [text, words] : cases) {
    { std::ofstream(file, std::ios::trunc) << text; }
    expect_usage_error("train --env cartpole --config " + file, words);
  }
  expect_usage_error("train --env cartpole --set ppo.hidden=64,99999999999", "ppo.hidden");
  fs::remove(file);
}

TEST(Cli, HelpAndListings) {
  for (const char* cmd : {"--help", "train --help", "eval --help", "env --help", "env replay --help", "presets --help"}) {
    auto r = run_prefrl(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.out;
  }
  auto r = run_prefrl("env list");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* env : {"cartpole", "pendulum", "mountaincar_continuous", "acrobot", "movingdot"}) {
    EXPECT_NE(r.out.find(env), std::string::npos) << env;
  }
  r = run_prefrl("presets");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("pendulum-peer"), std::string::npos);
}

TEST(Cli, ReplayRejectsBadInput) {
  const std::string actions = temp_path("actions") + ".json";
  { std::ofstream(actions) << "[0, 1, 7]"; }
  auto r = run_prefrl("env replay --env cartpole --state '[0,0,0,0]' --actions " + actions);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("action 2"), std::string::npos) << r.out;
  r = run_prefrl("env replay --env cartpole --state '[0,0]' --actions " + actions);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("4 numbers"), std::string::npos) << r.out;
  fs::remove(actions);
}

}  // namespace
}  // namespace prefrl
