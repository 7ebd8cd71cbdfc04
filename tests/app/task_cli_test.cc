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

// A model in several files (an <include> and a mesh under the compiler's meshdir) is archived
// whole: eval works from the archive once the originals are gone.
TEST(TaskCli, AModelsIncludesAndMeshesAreArchivedWithIt) {
  const fs::path dir = temp_path("task_cli_include");
  fs::create_directories(dir / "t" / "models" / "parts");
  fs::create_directories(dir / "t" / "models" / "meshes");
  std::ofstream(dir / "t" / "models" / "main.xml") << R"(<mujoco model="inc">
  <compiler meshdir="meshes"/>
  <asset><mesh name="tet" file="tet.obj"/></asset>
  <include file="parts/body.xml"/>
</mujoco>
)";
  std::ofstream(dir / "t" / "models" / "parts" / "body.xml") << R"(<mujoco>
  <worldbody>
    <body name="puck" pos="0 0 0.1">
      <joint name="x" type="slide" axis="1 0 0"/>
      <geom type="mesh" mesh="tet" mass="1"/>
    </body>
  </worldbody>
  <actuator><motor joint="x" ctrllimited="true" ctrlrange="-1 1"/></actuator>
</mujoco>
)";
  std::ofstream(dir / "t" / "models" / "meshes" / "tet.obj")
      << "v 0 0 0\nv 0.1 0 0\nv 0 0.1 0\nv 0 0 0.1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n";
  std::ofstream(dir / "t" / "inc.toml") << "model = \"models/main.xml\"\n[episode]\ntime_limit = 50\n"
                                            "[[observation]]\nqpos = \"all\"\n[[observation]]\nqvel = \"all\"\n"
                                            "[reward]\nexpression = \"x\"\n";
  const std::string run = (dir / "run").string();
  auto r = run_prefrl("train --task " + (dir / "t" / "inc.toml").string() + " --steps 2048 --labels 6 --seed 1 "
                      "--set run.eval_episodes=1 --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* f : {"inc.toml", "models/main.xml", "models/parts/body.xml", "models/meshes/tet.obj"})
    EXPECT_TRUE(fs::is_regular_file(fs::path(run) / "task" / f)) << f;
  const nlohmann::json manifest = nlohmann::json::parse(read_file(run + "/task/manifest.json"));
  EXPECT_EQ(manifest["files"].size(), 4u) << manifest.dump();
  fs::remove_all(dir / "t");
  r = run_prefrl("eval " + run + " --episodes 1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
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
  EXPECT_NE(r.out.find("give one of --env, --task and --env-cmd"), std::string::npos) << r.out;
  r = run_prefrl("config --task " + example);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("puck_reach"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

// A task with no true reward: the oracle (and the true-reward baseline) are refused with the
// reason; the script teacher trains on its score; summary, eval and metrics say what is absent
// and report episode lengths and the task's [metrics]; resume keeps the teacher's score.
TEST(TaskCli, ATaskWithNoTrueRewardTrainsFromAScriptTeacherAndSaysWhatIsAbsent) {
  const fs::path dir = temp_path("task_cli_free");
  fs::create_directories(dir);
  fs::copy(fs::path(PREFRL_TEST_DATA) / ".." / ".." / "examples" / "puck_reach", dir / "puck",
           fs::copy_options::recursive);
  std::string toml = read_file((dir / "puck" / "puck_reach.toml").string());
  toml.replace(toml.find("name = \"puck_reach\""), 19, "name = \"puck_free\"");
  const size_t from = toml.find("[reward]"), to = toml.find("[camera]");
  toml.replace(from, to - from, "[metrics]\ndistance = \"sqrt((px - 0.5)^2 + (py - 0.5)^2)\"\n\n");
  const std::string task = (dir / "puck" / "free.toml").string();
  { std::ofstream(task) << toml; }
  const std::string run = (dir / "run").string();
  auto r = run_prefrl("train --task " + task + " --teacher oracle --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("teacher.kind 'oracle' answers by the true reward, and task 'puck_free' has none (its task "
                       "file declares no [reward]); use --teacher script"), std::string::npos) << r.out;
  r = run_prefrl("train --task " + task + " --teacher script --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("has no [teacher] score"), std::string::npos) << r.out;
  r = run_prefrl("train --task " + task + " --teacher script --set teacher.score=pz --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("'pz' is not a quantity of the model; did you mean px"), std::string::npos) << r.out;
  r = run_prefrl("train --task " + (dir / "puck" / "puck_reach.toml").string() + " --set teacher.score=px --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("teacher.score is read by the script teacher only"), std::string::npos) << r.out;
  r = run_prefrl("train --env cartpole --teacher script --run-dir " + run);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("is not read from a task file"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(run));

  r = run_prefrl("train --task " + task + " --teacher script --set 'teacher.score=-sqrt((px-0.5)^2+(py-0.5)^2)' "
                 "--steps 4096 --labels 20 --seed 3 --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("has no true reward (its rewards are the script teacher's score)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no true return (the task has none)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("| true corr"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no predicted-vs-true correlation (the task has no true reward)"), std::string::npos) << r.out;
  const nlohmann::json sum = nlohmann::json::parse(read_file(run + "/summary.json"));
  EXPECT_FALSE(sum["has_true_reward"].get<bool>());
  EXPECT_TRUE(sum["eval"]["mean_return"].is_null());
  EXPECT_TRUE(sum["final_return"].is_null());
  EXPECT_EQ(sum["undefined"]["eval.mean_return"], "the task has no true reward");
  EXPECT_EQ(sum["undefined"]["final_true_corr"], "the task has no true reward");
  EXPECT_EQ(sum["health_off"]["true_corr_low"], "the task has no true reward");
  EXPECT_FALSE(sum["health"].contains("true_corr_low"));
  EXPECT_GT(sum["eval"]["mean_length"].get<double>(), 0);
  EXPECT_GT(sum["eval"]["metrics"]["distance"]["mean"].get<double>(), 0);
  const std::string metrics = read_file(run + "/metrics.jsonl");
  EXPECT_EQ(metrics.find("charts/episodic_return"), std::string::npos);
  EXPECT_EQ(metrics.find("reward/true_corr"), std::string::npos);
  EXPECT_EQ(metrics.find("health/true_corr_low"), std::string::npos);
  EXPECT_NE(metrics.find("charts/episodic_length"), std::string::npos);
  const nlohmann::json cfg = nlohmann::json::parse(read_file(run + "/config.json"));
  EXPECT_EQ(cfg["teacher"]["kind"], "script");
  r = run_prefrl("eval " + run + " --episodes 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("no return (the task has no true reward)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("distance"), std::string::npos) << r.out;
  r = run_prefrl("report " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string html = read_file(run + "/report.html");
  EXPECT_NE(html.find("absent: the task has no true reward"), std::string::npos);
  EXPECT_NE(html.find("check true_corr_low was off: the task has no true reward"), std::string::npos);
  EXPECT_NE(html.find("eval distance (task metric, per episode)"), std::string::npos);
  r = run_prefrl("train --resume " + run + " --steps 6144 --override");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(read_file(run + "/summary.json").find("\"env_steps\": 6144"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl
