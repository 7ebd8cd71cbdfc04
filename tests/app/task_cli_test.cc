// `--task`: training on a task file (the example under examples/puck_reach) archives the file
// and its model in the run, and eval and resume then work from the archive alone; bad task
// input is one line and exit 2 before any work.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::run_prefrl;
using testing::temp_path;

TEST(TaskCli, ATaskFileRunIsArchivedAndEvaluatedAndResumedFromTheArchive) {
  const fs::path dir = temp_path("task_cli");
  fs::create_directories(dir);
  fs::copy(fs::path(PREFRL_TEST_DATA) / ".." / ".." / "examples" / "puck_reach", dir / "puck",
           fs::copy_options::recursive);
  const std::string run = (dir / "run").string();
  auto r = run_prefrl("train --task " + (dir / "puck" / "puck_reach.toml").string() +
                      " --steps 4096 --labels 20 --seed 3 --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(fs::is_regular_file(dir / "run" / "task" / "puck_reach.toml"));
  EXPECT_TRUE(fs::is_regular_file(dir / "run" / "task" / "models" / "puck.xml"));
  const nlohmann::json cfg = nlohmann::json::parse(read_file(run + "/config.json"));
  EXPECT_EQ(cfg["env"]["name"], "puck_reach");
  EXPECT_EQ(cfg["env"]["task"], "task/puck_reach.toml");
  fs::remove_all(dir / "puck");  // from now on only the archive has the task
  r = run_prefrl("eval " + run + " --episodes 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"episodes\":2"), std::string::npos) << r.out;
  r = run_prefrl("train --resume " + run + " --steps 6144 --override");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(read_file(run + "/summary.json").find("\"env_steps\": 6144"), std::string::npos);
  // The archive records each file's size and CRC-32C; a changed copy is refused, with its name.
  const nlohmann::json manifest = nlohmann::json::parse(read_file(run + "/task/manifest.json"));
  EXPECT_TRUE(manifest["files"].contains("puck_reach.toml"));
  EXPECT_TRUE(manifest["files"].contains("models/puck.xml"));
  { std::ofstream(run + "/task/models/puck.xml", std::ios::app) << "<!-- edited -->\n"; }
  r = run_prefrl("eval " + run + " --episodes 1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("has changed since the run archived it"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(TaskCli, BadTaskInputIsOneLineAndExitTwo) {
  const fs::path dir = temp_path("task_cli_bad");
  fs::create_directories(dir);
  auto r = run_prefrl("train --task " + (dir / "missing.toml").string() + " --run-dir " + (dir / "r").string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("no such task file"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "r"));
  const std::string example = (fs::path(PREFRL_TEST_DATA) / ".." / ".." / "examples" / "puck_reach" / "puck_reach.toml").string();
  r = run_prefrl("train --task " + example + " --env cartpole --run-dir " + (dir / "r").string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--env and --task both given"), std::string::npos) << r.out;
  r = run_prefrl("config --task " + example);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("puck_reach"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl
