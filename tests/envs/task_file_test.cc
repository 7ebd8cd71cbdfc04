// MuJoCo task files: a task file of the built-in inverted pendulum's model and rules steps
// bit for bit as the built-in environment does; observation pieces, actuators, expressions
// (with the state before the step), terminations, time limits and frame skip do what the file
// says; and every mistake is one message naming the file, line and column or field, with the
// nearest valid names.
#include "prefrl/envs/mujoco_tasks.h"
#include "prefrl/envs/task_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;

class TaskFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("prefrl_task_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "models");
    write("models/slider.xml", kSlider);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  // The UsageError message of loading `toml` as a task file ("" if it loads).
  std::string error_of(const std::string& toml, const std::string& name = "bad.toml") {
    try {
      load_task_file(write(name, toml));
    } catch (const UsageError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;

  // A point mass on a rail, pushed by one motor; a touch sensor and a second, unlimited motor.
  static constexpr const char* kSlider = R"(<mujoco model="slider">
  <option timestep="0.01"/>
  <worldbody>
    <body name="cart" pos="0 0 0">
      <joint name="x" type="slide" axis="1 0 0"/>
      <geom type="box" size="0.1 0.1 0.1" mass="1"/>
      <site name="probe" pos="0 0 0"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="push" joint="x" ctrllimited="true" ctrlrange="-1 1" gear="1"/>
  </actuator>
  <sensor>
    <framepos name="probe_pos" objtype="site" objname="probe"/>
  </sensor>
</mujoco>
)";
};

// The built-in inverted pendulum as a task file: the same model, observation (qpos ++ qvel),
// reset noise, frame skip, reward and termination.
// The task files of the built-in MuJoCo tasks shipped beside their models (templates for
// tasks of one's own).
std::string shipped_task(const std::string& name) {
  return (fs::path(PREFRL_TEST_DATA) / ".." / ".." / "src" / "prefrl" / "envs" / "mjcf" / (name + ".toml")).string();
}

// Steps a task file's environment and a built-in one side by side with the same seed and
// actions (a fixed function of the step) and requires equal observations, rewards, flags and
// states on every step, over `min_episodes` episodes.
// `Port` is the hand-written C++ port of Gymnasium's task (mujoco_tasks.h) that both the
// shipped task file and the built-in environment of that name (the same file, embedded) must
// equal.
template <class Port>
void expect_bit_identical(const std::string& file_env, const std::string& builtin_env, int min_episodes) {
  for (const std::string& under_test : {file_env, builtin_env}) {
    SCOPED_TRACE(under_test);
    std::unique_ptr<Env> file = make_env(under_test), builtin = std::make_unique<Port>();
    const int64_t D = builtin->spec().observation.numel(), A = builtin->spec().action.numel();
    ASSERT_EQ(file->spec().observation.numel(), D);
    ASSERT_EQ(file->spec().action.low, builtin->spec().action.low);
    ASSERT_EQ(file->spec().max_episode_steps, builtin->spec().max_episode_steps);
    file->seed(9);
    builtin->seed(9);
    std::vector<float> a(D), b(D), u(A);
    file->reset(a.data());
    builtin->reset(b.data());
    ASSERT_EQ(a, b);
    int episodes = 0;
    for (int t = 0; t < 20000 && episodes < min_episodes; ++t) {
      for (int64_t j = 0; j < A; ++j) u[j] = static_cast<float>(std::sin(0.37 * t + 1.3 * j) * 1.2);
      const StepResult ra = file->step(u.data(), a.data()), rb = builtin->step(u.data(), b.data());
      ASSERT_EQ(a, b) << builtin_env << " step " << t;
      ASSERT_EQ(ra.reward, rb.reward) << builtin_env << " step " << t;
      ASSERT_EQ(ra.terminated, rb.terminated) << builtin_env << " step " << t;
      ASSERT_EQ(ra.truncated, rb.truncated) << builtin_env << " step " << t;
      ASSERT_EQ(file->get_state(), builtin->get_state()) << builtin_env << " step " << t;
      if (ra.terminated || ra.truncated) {
        ++episodes;
        file->reset(a.data());
        builtin->reset(b.data());
        ASSERT_EQ(a, b);
      }
    }
    EXPECT_GE(episodes, min_episodes) << builtin_env;
  }
  // The built-in environment is the port's in every other respect too: its spec and its view.
  const EnvSpec a = env_spec(builtin_env), b = Port().spec();
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.reference, b.reference);
  EXPECT_EQ(a.observation.low, b.observation.low);
  EXPECT_EQ(a.observation.high, b.observation.high);
  EXPECT_EQ(a.action.low, b.action.low);
  EXPECT_EQ(a.action.high, b.action.high);
  EXPECT_EQ(a.fps, b.fps);
  EXPECT_EQ(a.can_terminate, b.can_terminate);
  EXPECT_EQ(a.state_size, b.state_size);
  EXPECT_EQ(a.obs_determines_state, b.obs_determines_state);
  EXPECT_EQ(a.has_true_reward, b.has_true_reward);
  std::unique_ptr<Env> file = make_env(builtin_env), port = std::make_unique<Port>();
  file->seed(4);
  port->seed(4);
  std::vector<float> o(a.observation.numel());
  file->reset(o.data());
  port->reset(o.data());
  std::vector<uint8_t> fa(32 * 24 * 3), fb(fa.size());
  file->render(32, 24, fa.data());
  port->render(32, 24, fb.data());
  EXPECT_EQ(fa, fb) << builtin_env << ": the clips' camera";
  std::vector<double> sa, sb;
  EXPECT_EQ(file->state_from_obs(o.data(), &sa), port->state_from_obs(o.data(), &sb));
  EXPECT_EQ(sa, sb);
}

TEST_F(TaskFileTest, HopperAsATaskFileStepsBitForBitAsTheBuiltInOne) {
  const std::string name = register_task_file(shipped_task("hopper"));
  EXPECT_EQ(name, "hopper_task");
  expect_bit_identical<Hopper>(name, "hopper", 10);
}

// Walker2d-v4, HalfCheetah-v4 and Swimmer-v4 likewise (the cheetah and the swimmer never
// terminate: their 1000-step episodes end at the time limit).
TEST_F(TaskFileTest, WalkerCheetahAndSwimmerAsTaskFilesStepBitForBitAsTheBuiltInOnes) {
  const std::string walker = register_task_file(shipped_task("walker2d"));
  expect_bit_identical<Walker2d>(walker, "walker2d", 10);
  const std::string cheetah = register_task_file(shipped_task("halfcheetah"));
  expect_bit_identical<HalfCheetah>(cheetah, "halfcheetah", 2);
  const std::string swimmer = register_task_file(shipped_task("swimmer"));
  expect_bit_identical<Swimmer>(swimmer, "swimmer", 2);
}

// InvertedDoublePendulum-v4: observation pieces that are expressions (sin, cos of the hinges)
// and constraint forces, a site's position in the reward and the termination.
TEST_F(TaskFileTest, TheDoublePendulumAsATaskFileStepsBitForBitAsTheBuiltInOne) {
  const std::string name = register_task_file(shipped_task("inverted_double_pendulum"));
  expect_bit_identical<InvertedDoublePendulum>(name, "inverted_double_pendulum", 10);
}

// Reacher-v4: its target placed uniformly in a disc (reset_disc), a body's position beside joints
// of the same name (target_pos_x), the distance before the step (prev_) in the reward.
TEST_F(TaskFileTest, TheReacherAsATaskFileStepsBitForBitAsTheBuiltInOne) {
  const std::string name = register_task_file(shipped_task("reacher"));
  expect_bit_identical<Reacher>(name, "reacher", 20);
}

TEST_F(TaskFileTest, ABuiltInTaskAsATaskFileStepsBitForBitTheSame) {
  const std::string name = register_task_file(shipped_task("inverted_pendulum"));
  EXPECT_EQ(name, "inverted_pendulum_task");
  EXPECT_EQ(register_task_file(shipped_task("inverted_pendulum")), name);  // once per file
  expect_bit_identical<InvertedPendulum>(name, "inverted_pendulum", 8);
  std::unique_ptr<Env> file = make_env(name), builtin = make_env("inverted_pendulum");
  const EnvSpec &fs_ = file->spec(), &bs = builtin->spec();
  EXPECT_EQ(fs_.observation.shape, bs.observation.shape);
  EXPECT_EQ(fs_.action.high, bs.action.high);
  EXPECT_DOUBLE_EQ(fs_.fps, bs.fps);
  EXPECT_EQ(fs_.state_size, bs.state_size);
  EXPECT_TRUE(fs_.can_terminate);
}

TEST_F(TaskFileTest, PiecesActionsExpressionsAndTheClockDoWhatTheFileSays) {
  write("slider.toml", R"(
model = "models/slider.xml"
[episode]
frame_skip = 5
time_limit = 30
terminate = "x > 0.5"
[[observation]]
qpos = ["x"]
[[observation]]
qvel = "all"
clip = 0.25
[[observation]]
sensor = "probe_pos"
[[observation]]
body_pos = ["cart"]
[action]
actuators = ["push"]
[reward]
expression = "(x - prev_x) / dt - 0.5 * action_sq + 0 * t"
)");
  const std::string name = register_task_file((dir_ / "slider.toml").string());
  EXPECT_EQ(name, "slider");  // the file's stem
  std::unique_ptr<Env> env = make_env(name);
  const EnvSpec& s = env->spec();
  ASSERT_EQ(s.observation.shape, std::vector<int64_t>{8});  // x, x_vel, probe (3), cart (3)
  EXPECT_EQ(s.action.low, std::vector<float>{-1.f});
  EXPECT_EQ(s.max_episode_steps, 30);
  EXPECT_DOUBLE_EQ(s.fps, 1.0 / (0.01 * 5));
  const std::vector<std::string> q = task_quantities(load_task_file((dir_ / "slider.toml").string()));
  for (const char* n : {"x", "x_vel", "cart_x", "cart_z", "probe_pos_0", "prev_x", "a_0", "action_sq", "dt", "t"})
    EXPECT_NE(std::find(q.begin(), q.end(), n), q.end()) << n;

  env->seed(1);
  std::vector<float> obs(8);
  env->reset(obs.data());  // no reset noise: at rest at 0
  EXPECT_EQ(obs, std::vector<float>(8, 0.0f));
  const float push = 0.8f;
  bool ended = false;
  for (int t = 1; t <= 30 && !ended; ++t) {
    const double x_before = env->get_state()[0];
    const StepResult r = env->step(&push, obs.data());
    const std::vector<double> st = env->get_state();  // x, x_vel
    EXPECT_EQ(obs[0], static_cast<float>(st[0]));
    EXPECT_EQ(obs[1], static_cast<float>(std::min(st[1], 0.25)));  // clipped
    // Positions and sensors as the last mj_step left them (computed before its integration, as
    // Gymnasium reads them): the probe's and the cart's x, within one substep of x.
    EXPECT_EQ(obs[2], obs[5]);
    EXPECT_NEAR(obs[5], st[0], 0.01 * std::fabs(st[1]) + 1e-6);
    EXPECT_FLOAT_EQ(r.reward, static_cast<float>((st[0] - x_before) / 0.05 - 0.5 * 0.8f * 0.8f));
    EXPECT_EQ(r.terminated, st[0] > 0.5) << t;
    ended = r.terminated || r.truncated;
  }
  EXPECT_TRUE(ended);
  // An action outside the range is clipped as the built-in tasks clip it; the reward's action
  // terms see the action as given (as Gymnasium charges control costs).
  env->reset(obs.data());
  const float big = 5.0f;
  const StepResult r = env->step(&big, obs.data());
  std::unique_ptr<Env> other = make_env(name);
  other->seed(1);
  std::vector<float> o2(8);
  other->reset(o2.data());
  const float one = 1.0f;
  other->step(&one, o2.data());
  EXPECT_EQ(obs, o2);
  EXPECT_LT(r.reward, 0.0f);  // -0.5 * 25 dominates
}

// Bodies' orientations, velocities and contact forces as pieces: a box dropped on the floor falls
// (its linear velocity -g t), lands and rests upright with the floor holding its weight.
TEST_F(TaskFileTest, BodyOrientationsVelocitiesAndContactForcesArePieces) {
  write("models/drop.xml", R"(<mujoco model="drop">
  <option timestep="0.002"/>
  <worldbody>
    <geom name="floor" type="plane" size="2 2 0.1"/>
    <body name="box" pos="0 0 0.3">
      <freejoint/>
      <geom type="box" size="0.05 0.05 0.05" mass="2"/>
    </body>
    <body name="wheel" pos="1 1 0.5">
      <joint name="spin" type="hinge"/>
      <geom type="sphere" size="0.05" mass="0.1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator><motor joint="spin" ctrllimited="true" ctrlrange="-1 1"/></actuator>
</mujoco>
)");
  write("drop.toml", R"(model = "models/drop.xml"
[episode]
time_limit = 400
[[observation]]
body_quat = ["box"]
[[observation]]
body_vel = ["box"]
[[observation]]
contact_force = ["box"]
)");
  std::unique_ptr<Env> env = make_env(register_task_file((dir_ / "drop.toml").string()));
  ASSERT_EQ(env->spec().observation.numel(), 16);
  std::vector<float> obs(16);
  env->reset(obs.data());
  EXPECT_EQ(std::vector<float>(obs.begin(), obs.begin() + 4), (std::vector<float>{1, 0, 0, 0}));  // upright
  const float idle = 0.0f;
  env->step(&idle, obs.data());
  env->step(&idle, obs.data());  // velocities as the last mj_step began: after 0.002 s of free fall
  EXPECT_NEAR(obs[4 + 5], -9.81 * 0.002, 1e-4);  // cvel: angular (3), then linear (3)
  EXPECT_EQ(obs[10 + 5], 0.0f);  // no contact in the air
  for (int t = 0; t < 398; ++t) env->step(&idle, obs.data());  // landed, at rest
  EXPECT_NEAR(obs[0], 1.0f, 1e-4);
  EXPECT_NEAR(obs[4 + 5], 0.0f, 1e-3);
  EXPECT_NEAR(obs[10 + 5], 2 * 9.81, 0.05);  // cfrc_ext: torque (3), then force (3): the weight
}

// A task with no true reward: its rewards are 0 and its spec says it has none; [metrics] are
// the step's values; a script teacher's options make the rewards its score (the file's, or one
// given instead), and a script teacher with no score anywhere is refused.
TEST_F(TaskFileTest, ATaskWithoutATrueRewardReportsNoneItsMetricsAndAScriptTeachersScore) {
  const std::string path = write("free.toml", R"toml(name = "free_slider"
model = "models/slider.xml"
[episode]
time_limit = 50
[[observation]]
qpos = "all"
[[observation]]
qvel = "all"
[teacher]
score = "x - prev_x"
[metrics]
distance = "abs(x)"
pushed = "action_sq"
)toml");
  ASSERT_EQ(register_task_file(path), "free_slider");
  EnvSpec spec = env_spec("free_slider");
  EXPECT_FALSE(spec.has_true_reward);
  ASSERT_EQ(spec.metrics, (std::vector<std::string>{"distance", "pushed"}));
  auto run = [](Env& env, std::vector<float>* rewards, std::vector<double>* xs, std::vector<double>* metrics) {
    env.seed(5);
    std::vector<float> obs(2);
    env.reset(obs.data());
    double prev_x = obs[0];
    for (int t = 0; t < 10; ++t) {
      const float a = t % 3 == 0 ? 0.7f : -0.4f;
      const StepResult r = env.step(&a, obs.data());
      rewards->push_back(r.reward);
      xs->push_back(obs[0] - prev_x);
      prev_x = obs[0];
      double m[2];
      env.step_metrics(m);
      if (t == 9) {
        EXPECT_NEAR(m[0], std::fabs(obs[0]), 1e-6);
        EXPECT_NEAR(m[1], 0.49, 1e-6);
      }
      metrics->insert(metrics->end(), m, m + 2);
    }
  };
  std::vector<float> rewards;
  std::vector<double> dx, metrics;
  run(*make_env("free_slider"), &rewards, &dx, &metrics);
  for (float r : rewards) EXPECT_EQ(r, 0.0f);
  // The script teacher's options: the rewards are the file's score, x - prev_x.
  ASSERT_EQ(register_task_file(path, TaskOptions{true, ""}), "free_slider");
  EXPECT_FALSE(env_spec("free_slider").has_true_reward);
  rewards.clear(); dx.clear(); metrics.clear();
  run(*make_env("free_slider"), &rewards, &dx, &metrics);
  for (size_t t = 0; t < rewards.size(); ++t) EXPECT_NEAR(rewards[t], dx[t], 1e-5) << t;
  EXPECT_NE(rewards[0], 0.0f);
  // A score given instead of the file's.
  ASSERT_EQ(register_task_file(path, TaskOptions{true, "-2 * (x - prev_x)"}), "free_slider");
  rewards.clear(); dx.clear(); metrics.clear();
  run(*make_env("free_slider"), &rewards, &dx, &metrics);
  for (size_t t = 0; t < rewards.size(); ++t) EXPECT_NEAR(rewards[t], -2 * dx[t], 1e-5) << t;
  try {
    register_task_file(path, TaskOptions{true, "x +* 1"});
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("teacher.score (the config's) = \"x +* 1\""), std::string::npos) << e.what();
  }
  // A task with a true reward keeps it by default; a script teacher with no score is refused.
  const std::string rewarded = write("rewarded.toml", "name = \"rewarded_slider\"\nmodel = \"models/slider.xml\"\n"
                                                      "[[observation]]\nqpos = \"all\"\n[reward]\nexpression = \"x\"\n");
  ASSERT_EQ(register_task_file(rewarded), "rewarded_slider");
  EXPECT_TRUE(env_spec("rewarded_slider").has_true_reward);
  try {
    register_task_file(rewarded, TaskOptions{true, ""});
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("has no [teacher] score"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(env_spec("rewarded_slider").has_true_reward);
}

TEST_F(TaskFileTest, MistakesNameTheFileLineColumnAndTheNearestNames) {
  const std::string ok_obs = "[[observation]]\nqpos = \"all\"\n[reward]\nexpression = \"x\"\n";
  std::string e = error_of("model = \"models/slider.xml\"\n[episode]\nframe_skp = 2\n" + ok_obs);
  EXPECT_NE(e.find("bad.toml:3:1: unknown key 'frame_skp' in [episode]; did you mean frame_skip?"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[[observation]]\nqpos = [\"xx\"]\n[reward]\nexpression = \"x\"\n");
  EXPECT_NE(e.find("bad.toml:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("no joint named 'xx'; did you mean x?"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n" + std::string("[[observation]]\nqpos = \"all\"\n[reward]\nexpression = \"cart_xx + 1\"\n"));
  EXPECT_NE(e.find("reward.expression = \"cart_xx + 1\""), std::string::npos) << e;
  EXPECT_NE(e.find("'cart_xx' is not a quantity of the model; did you mean cart_x"), std::string::npos) << e;
  EXPECT_NE(e.find("column 1"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[[observation]]\nqpos = \"all\"\n[reward]\nexpression = \"x +* 2\"\n");
  EXPECT_NE(e.find("column"), std::string::npos) << e;
  e = error_of("model = \"models/missing.xml\"\n" + ok_obs);
  EXPECT_NE(e.find("bad.toml:1:"), std::string::npos) << e;
  EXPECT_NE(e.find("no such file"), std::string::npos) << e;
  write("models/broken.xml", "<mujoco><worldbody><body><joint type=\"nonsense\"/></body></worldbody></mujoco>");
  e = error_of("model = \"models/broken.xml\"\n" + ok_obs);
  EXPECT_NE(e.find("does not compile"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[episode\n");
  EXPECT_NE(e.find("bad.toml:2:"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[reward]\nexpression = \"x\"\n");
  EXPECT_NE(e.find("no observation"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[[observation]]\nqpos = \"all\"\nqvel = \"all\"\n[reward]\nexpression = \"x\"\n");
  EXPECT_NE(e.find("exactly one of"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[[observation]]\nqpos = \"all\"\n[reward]\n");
  EXPECT_NE(e.find("[reward] has no expression"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[[observation]]\nqpos = \"all\"\n[metrics]\nspread = \"abs(xx)\"\n");
  EXPECT_NE(e.find("metrics.spread = \"abs(xx)\""), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean x"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[[observation]]\nqpos = \"all\"\n[metrics]\nSpread = \"x\"\n");
  EXPECT_NE(e.find("bad.toml:5:1: metric name 'Spread'"), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n[[observation]]\nqpos = \"all\"\n[teacher]\nscore = \"x +\"\n");
  EXPECT_NE(e.find("teacher.score = \"x +\""), std::string::npos) << e;
  e = error_of("model = \"models/slider.xml\"\n" + ok_obs + "[camera]\nfixed = \"trak\"\n");
  EXPECT_NE(e.find("no camera named 'trak'"), std::string::npos) << e;
  EXPECT_EQ(error_of("model = \"models/slider.xml\"\n" + ok_obs, "fine.toml"), "");
  try {
    load_task_file((dir_ / "nowhere.toml").string());
    ADD_FAILURE();
  } catch (const UsageError& x) {
    EXPECT_NE(std::string(x.what()).find("no such task file"), std::string::npos) << x.what();
  }
}

// The shipped example of a behaviour no reward describes (examples/hopper_backflip): Hopper-v4's
// body and observation, no true reward, a script teacher's score and the metrics evaluation
// reports; a backward turn of the torso counts one full backward_turns.
TEST_F(TaskFileTest, TheHopperBackflipExampleLoadsWithoutATrueReward) {
  const std::string path = (fs::path(PREFRL_TEST_DATA) / ".." / ".." / "examples" / "hopper_backflip" /
                            "hopper_backflip.toml").string();
  const TaskSpec t = load_task_file(path);
  EXPECT_EQ(t.name, "hopper_backflip");
  EXPECT_TRUE(t.reward.empty());
  EXPECT_TRUE(t.terminate.empty());
  EXPECT_EQ(t.teacher_score, "prev_rooty - rooty");
  ASSERT_EQ(t.metrics.size(), 2u);
  EXPECT_EQ(t.metrics[0].first, "backward_turns");
  const std::string name = register_task_file(path, TaskOptions{true, ""});
  const EnvSpec spec = env_spec(name);
  EXPECT_FALSE(spec.has_true_reward);
  EXPECT_FALSE(spec.can_terminate);
  EXPECT_EQ(spec.observation.numel(), 11);  // Hopper-v4's
  EXPECT_EQ(spec.max_episode_steps, 1000);
  // backward_turns of a step is the fall of rooty (the torso's pitch) over 2 pi.
  std::unique_ptr<Env> env = make_env(name);
  std::vector<float> obs(11);
  env->reset(obs.data());
  std::vector<double> state = env->get_state();
  state[6 + 2] = -5.0;  // qvel of rooty: turning backwards
  env->set_state(state, obs.data());
  const std::vector<float> zero(3, 0.0f);
  double m[2];
  for (int k = 0; k < 5; ++k) {
    const double before = env->get_state()[2];
    env->step(zero.data(), obs.data());
    env->step_metrics(m);
    EXPECT_NEAR(m[0], (before - env->get_state()[2]) / (2 * M_PI), 1e-12);
    EXPECT_GT(m[0], 0.0);
  }
}

}  // namespace
}  // namespace prefrl
