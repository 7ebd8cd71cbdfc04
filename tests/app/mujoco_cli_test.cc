// MuJoCo environments through the real `prefrl` binary: `env replay` takes qpos ++ qvel,
// `env render` writes videos FFmpeg decodes (MuJoCo and 2-D environments, random actions or a
// run's policy), and a tiny hopper run stores the states its clips are rendered from.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "prefrl/app/evaluate.h"
#include "prefrl/app/render_video.h"
#include "prefrl/app/train_config.h"
#include "prefrl/app/video.h"
#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"
#include "prefrl/prefs/sqlite_pref_store.h"
#include "prefrl/rl/ppo.h"
#include "prefrl/server/clip_media.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

using testing::run_prefrl;
using testing::read_file;
using testing::temp_path;

std::string json_array(const std::vector<double>& v) {
  nlohmann::json a = v;
  return a.dump();
}

// Runs `prefrl env replay` for `env_name` from `state` with `actions`; checks every printed
// line against the environment stepped in this process.
void expect_replay_matches(const std::string& env_name, const std::vector<double>& state,
                           const std::vector<std::vector<float>>& actions) {
  SCOPED_TRACE(env_name);
  const std::string file = temp_path("mj_actions_" + env_name) + ".json";
  { std::ofstream(file) << nlohmann::json(actions).dump(); }
  auto r = run_prefrl("env replay --env " + env_name + " --state '" + json_array(state) + "' --actions " + file);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto env = make_env(env_name);
  std::vector<float> obs(env->spec().observation.numel());
  env->set_state(state, obs.data());
  std::istringstream lines(r.out);
  std::string line;
  size_t k = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(k, actions.size()) << line;
    const StepResult want = env->step(actions[k].data(), obs.data());
    const auto got = nlohmann::json::parse(line);
    ASSERT_EQ(got["obs"].size(), obs.size());
    for (size_t i = 0; i < obs.size(); ++i) EXPECT_EQ(got["obs"][i].get<float>(), obs[i]) << "step " << k << " obs " << i;
    EXPECT_EQ(got["reward"].get<float>(), want.reward) << "step " << k;
    EXPECT_EQ(got["terminated"].get<bool>(), want.terminated) << "step " << k;
    EXPECT_EQ(got["truncated"].get<bool>(), want.truncated) << "step " << k;
    ++k;
  }
  EXPECT_EQ(k, actions.size());
  fs::remove(file);
}

TEST(MujocoCli, ReplayTakesQposThenQvel) {
  // Hopper: qpos (rootx 0.3, rootz 1.2, rooty 0.05, thigh, leg, foot) ++ qvel (6).
  const std::vector<double> hopper = {0.3, 1.2, 0.05, -0.1, -0.2, 0.1, 0.5, 0.0, -0.3, 0.2, 0.1, -0.1};
  std::vector<std::vector<float>> actions;
  for (int t = 0; t < 30; ++t) actions.push_back({0.5f, -0.5f * (t % 3), 1.5f});  // 1.5: clipped
  expect_replay_matches("hopper", hopper, actions);
  // The double pendulum: its observation carries constraint forces, its reward the tip.
  expect_replay_matches("inverted_double_pendulum", {0.1, 0.05, -0.02, 0.0, 0.3, 0.0},
                        std::vector<std::vector<float>>(20, {0.2f}));
  // The state is qpos ++ qvel: 12 numbers for the hopper, no fewer.
  const std::string file = temp_path("mj_one_action") + ".json";
  { std::ofstream(file) << "[[0, 0, 0]]"; }
  auto r = run_prefrl("env replay --env hopper --state '[0, 1.25, 0, 0, 0, 0]' --actions " + file);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("12 numbers"), std::string::npos) << r.out;
  fs::remove(file);
}

TEST(MujocoCli, RenderWritesVideosFFmpegDecodes) {
  const std::string dir = temp_path("mj_videos");
  fs::create_directories(dir);
  auto r = run_prefrl("env render --env hopper --steps 24 --out " + dir + "/hopper.webm --size 64x48 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("25 frames at 125 fps"), std::string::npos) << r.out;
  VideoInfo v = probe_video(dir + "/hopper.webm");
  EXPECT_EQ(v.frames, 25);
  EXPECT_EQ(v.width, 64);
  EXPECT_EQ(v.height, 48);
  EXPECT_NEAR(v.fps, 125.0, 1e-6);
  EXPECT_TRUE(v.codec == "vp8" || v.codec == "libvpx" || v.codec == "vp9") << v.codec;
  // A 2-D environment (software-drawn) into MP4.
  r = run_prefrl("env render --env cartpole --steps 10 --out " + dir + "/cartpole.mp4");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  v = probe_video(dir + "/cartpole.mp4");
  EXPECT_EQ(v.frames, 11);
  EXPECT_EQ(v.width, 128);
  EXPECT_EQ(v.height, 128);
  EXPECT_TRUE(v.codec == "h264" || v.codec == "mpeg4") << v.codec;
  EXPECT_THROW(probe_video(dir + "/nothing.webm"), RuntimeError);
  fs::remove_all(dir);
  r = run_prefrl("env render --help");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("--policy"), std::string::npos) << r.out;
  r = run_prefrl("env list");
  for (const char* line : {"hopper", "Gymnasium Hopper-v4", "Box(3, [-1, 1])", "inverted_pendulum", "Box(1, [-3, 3])"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
}

TEST(MujocoCli, RenderRejectsBadInputWithOneLine) {
  const std::string dir = temp_path("mj_bad_videos");
  fs::create_directories(dir);
  const std::pair<std::string, std::string> cases[] = {
      {"--env hopper --steps 5 --out " + dir + "/v.avi", "must end in .webm"},
      {"--env hopper --steps 5 --out " + dir + "/v.webm --size 65x64", "must be even"},
      {"--env hopper --steps 5 --out " + dir + "/v.webm --size big", "must be WIDTHxHEIGHT"},
      {"--env hopper --steps 5 --out " + dir + "/v.webm --size 8x8", "is outside [16, 2048]"},
      {"--env hopper --steps 5 --out " + dir + "/v.webm --size 3000x64", "is outside [16, 2048]"},
      {"--env cartpole --steps 5 --out " + dir + "/v.webm --size 5000x64", "must be even and within [16, 4096]"},
      {"--env hoper --steps 5 --out " + dir + "/v.webm", "unknown environment 'hoper'"},
      {"--env hopper --steps 5 --out " + dir + "/no/such/dir/v.webm", "cannot write video file"},
      {"--env hopper --steps 5 --out " + dir + "/v.webm --policy " + dir + "/norun", "not a run directory"},
      {"--env hopper --steps -2 --out " + dir + "/v.webm", "steps"},
      {"--env hopper --out " + dir + "/v.webm", "--steps is required"},
  };
  for (const auto& [args, message] : cases) {
    SCOPED_TRACE(args);
    auto r = run_prefrl("env render " + args);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << r.out;
    EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  EXPECT_FALSE(fs::exists(dir + "/v.webm"));
  EXPECT_FALSE(fs::exists(dir + "/v.avi"));
  fs::remove_all(dir);
}

TEST(MujocoCli, TinyHopperRunKeepsClipStatesAndItsPolicyRenders) {
  // A few thousand steps of hopper with a scripted teacher: the segments it asked about carry
  // the physical state of every step (hopper observations omit x), the labeling page's
  // renderer draws them, and the run's policy acts in `env render`.
  const std::string dir = temp_path("mj_hopper_run");
  auto r = run_prefrl("train --env hopper --steps 4096 --labels 12 --seed 2 --set prefs.segment_length=20 --set prefs.segment_seconds=0 "
                      "--set run.eval_episodes=1 --set run.progress_every_s=0 --run-dir " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  {
    SqlitePrefStore db(dir + "/prefs.db");
    ASSERT_GT(db.count_segments(), 2);
    const std::optional<Segment> seg = db.get_segment(1);
    ASSERT_TRUE(seg.has_value());
    EXPECT_EQ(seg->state_size, 12);
    ASSERT_EQ(seg->states.size(), static_cast<size_t>(seg->length) * 12);
    // Each state matches its observation (obs = qpos[1:] ++ clipped qvel).
    for (int t = 0; t < seg->length; ++t) {
      if (seg->absorbing[t]) continue;
      for (int i = 0; i < 5; ++i) EXPECT_EQ(seg->obs[t * 11 + i], seg->states[t * 12 + 1 + i]) << "step " << t;
    }
    const ClipSheet sheet = render_clip("hopper", *seg, 32);
    EXPECT_EQ(sheet.frames, seg->length);
    EXPECT_GT(sheet.png.size(), 100u);
  }
  const std::string video = dir + "/policy.webm";
  r = run_prefrl("env render --env hopper --policy " + dir + " --steps 8 --out " + video);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(probe_video(video).frames, 9);
  r = run_prefrl("env render --env walker2d --policy " + dir + " --steps 8 --out " + dir + "/w.webm");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("trained on 'hopper', not 'walker2d'"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(MujocoCli, SegmentSecondsBecomeStepsAtTheEnvsFrameRate) {
  TrainConfig cfg;
  cfg.env.name = "hopper";  // 125 steps per simulated second
  cfg.prefs.segment_length = 33;
  EXPECT_EQ(cfg.segment_steps(), 33);
  cfg.prefs.segment_seconds = 1.5;
  EXPECT_EQ(cfg.segment_steps(), 188);  // round(187.5)
  cfg.env.name = "halfcheetah";         // 20 per second
  EXPECT_EQ(cfg.segment_steps(), 30);
  cfg.env.name = "reacher";             // 50 per second, but episodes of 50 steps
  EXPECT_EQ(cfg.segment_steps(), 50);
  cfg.prefs.segment_seconds = 0.001;
  EXPECT_EQ(cfg.segment_steps(), 1);
}

// Reads every clip of a run's database.
std::vector<Segment> all_segments(const std::string& db_path) {
  SqlitePrefStore db(db_path);
  std::vector<Segment> out;
  for (int64_t id = 1; id <= db.count_segments(); ++id) {
    const std::optional<Segment> seg = db.get_segment(id);
    if (seg) out.push_back(*seg);
  }
  return out;
}

// A tiny hopper run of the default preset (4096 steps, 8 labels, seed 3) with extra flags.
void run_tiny_hopper(const std::string& dir, const std::string& extra) {
  auto r = run_prefrl("train --env hopper --steps 4096 --labels 8 --seed 3 --set run.eval_episodes=1 "
                      "--set run.progress_every_s=0 " + extra + " --run-dir " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
}

// charts/episodic_return of a random hopper's run, the task's own return per episode: small
// and positive, whatever the termination mode (the penalised sum would be far below zero).
void expect_random_hopper_task_returns(const std::string& dir) {
  int episodes = 0;
  std::istringstream metrics(read_file(dir + "/metrics.jsonl"));
  for (std::string line; std::getline(metrics, line);) {
    const nlohmann::json m = nlohmann::json::parse(line);
    if (m["name"] != "charts/episodic_return" || m["value"].is_null()) continue;
    ++episodes;
    EXPECT_GT(m["value"].get<double>(), 0.0) << line;
    EXPECT_LT(m["value"].get<double>(), 200.0) << line;
  }
  EXPECT_GT(episodes, 0);
}

TEST(MujocoCli, HopperPresetEndsEpisodesAndPadsClipsWithTheAbsorbingState) {
  // The hopper preset: 1.5 s clips (188 steps); a fall ends the episode as in Gymnasium, and a
  // clip that runs past it is padded with absorbing steps of true reward 0. A random hopper
  // falls within a few dozen steps, so its clips hold absorbing steps and no penalty.
  const std::string dir = temp_path("mj_hopper_end");
  ASSERT_NO_FATAL_FAILURE(run_tiny_hopper(dir, ""));
  const nlohmann::json cfg = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(cfg["env"]["termination"], "end");
  const std::vector<Segment> segs = all_segments(dir + "/prefs.db");
  ASSERT_GT(segs.size(), 2u);
  int absorbing = 0;
  for (const Segment& seg : segs) {
    EXPECT_EQ(seg.length, 188);
    for (int t = 0; t < seg.length; ++t) {
      absorbing += seg.absorbing[t];
      if (seg.absorbing[t]) EXPECT_EQ(seg.true_rewards[t], 0.0f);
      EXPECT_GT(seg.true_rewards[t], -50.0f);
    }
  }
  EXPECT_GT(absorbing, 0);
  expect_random_hopper_task_returns(dir);
  fs::remove_all(dir);
}

TEST(MujocoCli, HopperWithTerminationsReplacedByAPenalty) {
  // env.termination=penalty (the paper's setting): a fall costs 100 on the step after it, whose
  // observation still shows the fallen body, then a fresh start inside the same 1000-step
  // episode; no clip holds an absorbing step, and charts/episodic_return stays the task's own
  // return (a random hopper's is small and positive; the penalised sum is far below zero).
  const std::string dir = temp_path("mj_hopper_penalty");
  ASSERT_NO_FATAL_FAILURE(run_tiny_hopper(dir, "--set env.termination=penalty"));
  const std::vector<Segment> segs = all_segments(dir + "/prefs.db");
  ASSERT_GT(segs.size(), 2u);
  int penalised = 0;
  for (const Segment& seg : segs) {
    EXPECT_EQ(seg.length, 188);
    for (int t = 0; t < seg.length; ++t) {
      EXPECT_FALSE(seg.absorbing[t]) << "step " << t;
      if (seg.true_rewards[t] != -100.0f) continue;
      ++penalised;
      // Hopper's observation starts with the torso's height and angle: not healthy here.
      const float z = seg.obs[t * seg.obs_size], angle = seg.obs[t * seg.obs_size + 1];
      EXPECT_FALSE(z > 0.7f && std::fabs(angle) < 0.2f) << "the penalised step shows a standing body: z " << z
                                                         << ", angle " << angle;
    }
  }
  EXPECT_GT(penalised, 0);
  expect_random_hopper_task_returns(dir);
  fs::remove_all(dir);
}

TEST(MujocoCli, EvaluationExecutesTheClippedActionsTrainingExecutes) {
  // halfcheetah charges 0.1 |a|^2 per step on the action it is given: a policy whose samples
  // fall far outside [-1, 1] (std e^3 = 20) would score about -240,000 per episode unclipped;
  // clipped, as in training, the control cost is at most 0.6 per step.
  PPOConfig cfg;
  cfg.init_log_std = 3.0;
  PPOAgent agent(cfg, env_spec("halfcheetah"), 1, 5);
  const EvalResult r = evaluate_policy(agent, "halfcheetah", 2, 11, /*deterministic=*/false);
  ASSERT_EQ(r.episodes, 2);
  for (double x : r.returns) {
    EXPECT_GT(x, -2000.0);
    EXPECT_LT(x, 2000.0);
  }
}

TEST(MujocoCli, ParseSize) {
  int w = 0, h = 0;
  parse_size("96x64", &w, &h);
  EXPECT_EQ(w, 96);
  EXPECT_EQ(h, 64);
  for (const char* bad : {"", "x", "96", "96x", "x64", "96x64x2", "96 x64", "-4x8", "9.5x8"})
    EXPECT_THROW(parse_size(bad, &w, &h), UsageError) << bad;
}

}  // namespace
}  // namespace prefrl
