// The MuJoCo tasks: specs against Gymnasium's v4 documentation, physics sanity (no NaN, reset
// noise, termination rules, falling without control, energy, contacts), determinism, and the
// tracking camera. The generic checks of every environment (env_test.cc, render_test.cc) run
// on these tasks too.
#include "prefrl/envs/mujoco_tasks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "prefrl/core/error.h"
#include "test_util.h"

namespace prefrl {
namespace {

using testing::random_action;

const std::vector<std::string> kMujocoEnvs = {"hopper",  "halfcheetah", "walker2d",          "swimmer",
                                              "reacher", "inverted_pendulum", "inverted_double_pendulum"};

MujocoEnv& as_mujoco(Env& env) { return dynamic_cast<MujocoEnv&>(env); }

// max |v[i]| over i in [from, to).
double max_abs(const std::vector<float>& v, int from, int to) {
  double m = 0;
  for (int i = from; i < to; ++i) m = std::max(m, std::fabs(double(v[i])));
  return m;
}

// ---- specs --------------------------------------------------------------------------------

// Gymnasium v4's documentation of each task, written out by hand.
struct Documented {
  std::string name, reference;
  int64_t obs_size;
  int64_t act_size;
  float act_low, act_high;
  int time_limit;
  double render_fps;  // metadata["render_fps"] = 1 / dt
  bool can_terminate;
  int nq, nv;
};

const std::vector<Documented> kDocumented = {
    {"hopper", "Gymnasium Hopper-v4", 11, 3, -1, 1, 1000, 125, true, 6, 6},
    {"halfcheetah", "Gymnasium HalfCheetah-v4", 17, 6, -1, 1, 1000, 20, false, 9, 9},
    {"walker2d", "Gymnasium Walker2d-v4", 17, 6, -1, 1, 1000, 125, true, 9, 9},
    {"swimmer", "Gymnasium Swimmer-v4", 8, 2, -1, 1, 1000, 25, false, 5, 5},
    {"reacher", "Gymnasium Reacher-v4", 11, 2, -1, 1, 50, 50, false, 4, 4},
    {"inverted_pendulum", "Gymnasium InvertedPendulum-v4", 4, 1, -3, 3, 1000, 25, true, 2, 2},
    {"inverted_double_pendulum", "Gymnasium InvertedDoublePendulum-v4", 11, 1, -1, 1, 1000, 20, true, 3, 3},
};

TEST(MujocoSpecs, MatchGymnasiumV4Documentation) {
  const float big = std::numeric_limits<float>::max();  // prefrl's "unbounded" (-Inf..Inf in Gymnasium)
  for (const Documented& doc : kDocumented) {
    SCOPED_TRACE(doc.name);
    auto env = make_env(doc.name);
    const EnvSpec& s = env->spec();
    EXPECT_EQ(s.name, doc.name);
    EXPECT_EQ(s.reference, doc.reference);
    EXPECT_FALSE(s.pixels);
    EXPECT_FALSE(s.observation.discrete);
    EXPECT_EQ(s.observation.shape, std::vector<int64_t>{doc.obs_size});
    EXPECT_EQ(s.observation.low, std::vector<float>(doc.obs_size, -big));
    EXPECT_EQ(s.observation.high, std::vector<float>(doc.obs_size, big));
    EXPECT_FALSE(s.action.discrete);
    EXPECT_EQ(s.action.shape, std::vector<int64_t>{doc.act_size});
    EXPECT_EQ(s.action.low, std::vector<float>(doc.act_size, doc.act_low));
    EXPECT_EQ(s.action.high, std::vector<float>(doc.act_size, doc.act_high));
    EXPECT_EQ(s.max_episode_steps, doc.time_limit);
    EXPECT_NEAR(s.fps, doc.render_fps, 1e-9);
    EXPECT_EQ(s.can_terminate, doc.can_terminate);
    EXPECT_EQ(s.state_size, doc.nq + doc.nv);
    EXPECT_EQ(as_mujoco(*env).model()->nq, doc.nq);
    EXPECT_EQ(as_mujoco(*env).model()->nv, doc.nv);
    EXPECT_EQ(s.obs_determines_state, doc.name == "inverted_pendulum");
  }
}

TEST(MujocoSpecs, ModelFacts) {
  // Timesteps and frame skips (dt = timestep x frame_skip), and Gymnasium's hopper masses
  // (capsules of density 1000), which pin down the geometry.
  const std::vector<std::tuple<std::string, double, int>> steps = {
      {"hopper", 0.002, 4}, {"halfcheetah", 0.01, 5}, {"walker2d", 0.002, 4}, {"swimmer", 0.01, 4},
      {"reacher", 0.01, 2}, {"inverted_pendulum", 0.02, 2}, {"inverted_double_pendulum", 0.01, 5}};
  for (const auto& [name, timestep, skip] : steps) {
    auto env = make_env(name);
    EXPECT_DOUBLE_EQ(as_mujoco(*env).model()->opt.timestep, timestep) << name;
    EXPECT_EQ(as_mujoco(*env).frame_skip(), skip) << name;
  }
  const mjModel* hopper = mujoco_model("hopper");
  // Capsules (radius r, cylinder length l) of density 1000: torso, thigh, leg, foot.
  auto capsule = [](double r, double l) { return 1000 * (M_PI * r * r * l + 4.0 / 3.0 * M_PI * r * r * r); };
  const double masses[] = {0.0, capsule(0.05, 0.4), capsule(0.05, 0.45), capsule(0.04, 0.5), capsule(0.06, 0.39)};
  ASSERT_EQ(hopper->nbody, 5);
  for (int b = 0; b < 5; ++b) EXPECT_NEAR(hopper->body_mass[b], masses[b], 1e-9) << "body " << b;
  EXPECT_NEAR(hopper->body_mass[1], 3.66519143, 1e-8);
  double cheetah_mass = 0;
  const mjModel* cheetah = mujoco_model("half_cheetah");
  for (int b = 0; b < cheetah->nbody; ++b) cheetah_mass += cheetah->body_mass[b];
  EXPECT_NEAR(cheetah_mass, 14.0, 1e-9);
  EXPECT_THROW(mujoco_model("ant"), UsageError);
}

// ---- physics sanity -------------------------------------------------------------------------

class EveryMujocoEnv : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Mujoco, EveryMujocoEnv, ::testing::ValuesIn(kMujocoEnvs),
                         [](const auto& info) { return info.param; });

TEST_P(EveryMujocoEnv, NoNanOverALongRandomRollout) {
  // Random actions up to 1.5x the bounds (clipped by the env), 4000 steps with resets.
  auto env = make_env(GetParam());
  const EnvSpec& s = env->spec();
  env->seed(21);
  std::vector<float> obs(s.observation.numel());
  Rng rng(5);
  env->reset(obs.data());
  for (int t = 0; t < 4000; ++t) {
    const StepResult r = env->step(random_action(s, rng).data(), obs.data());
    for (float x : obs) ASSERT_TRUE(std::isfinite(x)) << "step " << t;
    ASSERT_TRUE(std::isfinite(r.reward)) << "step " << t;
    for (double x : env->get_state()) ASSERT_TRUE(std::isfinite(x)) << "step " << t;
    if (r.terminated || r.truncated) env->reset(obs.data());
  }
}

TEST_P(EveryMujocoEnv, ResetNoiseStaysInItsRange) {
  auto env = make_env(GetParam());
  MujocoEnv& mj = as_mujoco(*env);
  const mjModel* m = mj.model();
  const std::string name = GetParam();
  // Uniform noise scales on qpos and qvel; 0 = standard-normal velocities of scale `normal`.
  double qpos_scale = 0, qvel_scale = 0, normal = 0;
  if (name == "hopper" || name == "walker2d") qpos_scale = qvel_scale = 5e-3;
  if (name == "halfcheetah") { qpos_scale = 0.1; normal = 0.1; }
  if (name == "swimmer") qpos_scale = qvel_scale = 0.1;
  if (name == "reacher") { qpos_scale = 0.1; qvel_scale = 0.005; }
  if (name == "inverted_pendulum") qpos_scale = qvel_scale = 0.01;
  if (name == "inverted_double_pendulum") { qpos_scale = 0.1; normal = 0.1; }
  env->seed(3);
  std::vector<float> obs(env->spec().observation.numel());
  double max_q = 0, max_v = 0, sum_v2 = 0;
  int n_v = 0;
  for (int k = 0; k < 300; ++k) {
    env->reset(obs.data());
    const std::vector<double> s = env->get_state();
    for (int i = 0; i < m->nq; ++i) {
      if (name == "reacher" && i >= 2) continue;  // the target: checked below
      max_q = std::max(max_q, std::fabs(s[i] - m->qpos0[i]));
    }
    for (int i = 0; i < m->nv; ++i) {
      if (name == "reacher" && i >= 2) {
        EXPECT_EQ(s[m->nq + i], 0.0);  // the target stands still
        continue;
      }
      max_v = std::max(max_v, std::fabs(s[m->nq + i]));
      sum_v2 += s[m->nq + i] * s[m->nq + i];
      ++n_v;
    }
    if (name == "reacher") EXPECT_LT(std::hypot(s[2], s[3]), 0.2);
    EXPECT_EQ(env->elapsed_steps(), 0);
  }
  EXPECT_LE(max_q, qpos_scale);
  EXPECT_GT(max_q, 0.9 * qpos_scale);  // the whole range is used
  if (normal > 0) {
    EXPECT_NEAR(std::sqrt(sum_v2 / n_v), normal, 0.15 * normal);  // standard deviation
  } else {
    EXPECT_LE(max_v, qvel_scale);
    EXPECT_GT(max_v, 0.9 * qvel_scale);
  }
}

TEST_P(EveryMujocoEnv, StepsAdvanceTimestepTimesFrameSkip) {
  auto env = make_env(GetParam());
  MujocoEnv& mj = as_mujoco(*env);
  std::vector<float> obs(env->spec().observation.numel());
  const std::vector<float> zero(env->spec().action.numel(), 0.0f);
  env->seed(1);
  env->reset(obs.data());
  const double t0 = mj.data()->time;
  for (int k = 0; k < 3; ++k) env->step(zero.data(), obs.data());
  EXPECT_NEAR(mj.data()->time - t0, 3 * mj.dt(), 1e-12);
  EXPECT_NEAR(1.0 / mj.dt(), env->spec().fps, 1e-9);
}

// Steps env from `state` with a constant action until it terminates or `limit` steps pass;
// returns the number of steps taken (limit + 1 if it never terminated).
int steps_to_termination(Env& env, const std::vector<double>& state, float a, int limit) {
  std::vector<float> obs(env.spec().observation.numel());
  const std::vector<float> action(env.spec().action.numel(), a);
  env.set_state(state, obs.data());
  for (int t = 1; t <= limit; ++t)
    if (env.step(action.data(), obs.data()).terminated) return t;
  return limit + 1;
}

std::vector<double> qpos0_state(const Env& env, std::vector<std::pair<int, double>> changes = {}) {
  const mjModel* m = dynamic_cast<const MujocoEnv&>(env).model();
  std::vector<double> s(m->qpos0, m->qpos0 + m->nq);
  s.resize(m->nq + m->nv, 0.0);
  for (auto [i, v] : changes) s[i] = v;
  return s;
}

// The hand-written ports' health conditions (the built-in environments, task files, are held
// to the ports step for step by tests/envs/task_file_test.cc).
TEST(MujocoTermination, HopperUnhealthyHeightAngleOrState) {
  std::unique_ptr<Env> env = std::make_unique<Hopper>();
  Hopper& h = dynamic_cast<Hopper&>(*env);
  std::vector<float> obs(11);
  env->set_state(qpos0_state(*env), obs.data());
  EXPECT_TRUE(h.healthy());
  env->set_state(qpos0_state(*env, {{1, 0.69}}), obs.data());  // too low
  EXPECT_FALSE(h.healthy());
  env->set_state(qpos0_state(*env, {{2, 0.21}}), obs.data());  // leaning forward
  EXPECT_FALSE(h.healthy());
  env->set_state(qpos0_state(*env, {{2, -0.21}}), obs.data());
  EXPECT_FALSE(h.healthy());
  env->set_state(qpos0_state(*env, {{6 + 3, 150.0}}), obs.data());  // a velocity beyond 100
  EXPECT_FALSE(h.healthy());
  // Standing still it stays healthy for a while, then topples: termination fires.
  const int t = steps_to_termination(*env, qpos0_state(*env, {{2, 0.05}}), 0.0f, 1000);
  EXPECT_GT(t, 5);
  EXPECT_LE(t, 1000);
}

TEST(MujocoTermination, Walker2dHeightAndAngle) {
  std::unique_ptr<Env> env = std::make_unique<Walker2d>();
  Walker2d& w = dynamic_cast<Walker2d&>(*env);
  std::vector<float> obs(17);
  env->set_state(qpos0_state(*env), obs.data());
  EXPECT_TRUE(w.healthy());
  env->set_state(qpos0_state(*env, {{1, 0.79}}), obs.data());
  EXPECT_FALSE(w.healthy());
  env->set_state(qpos0_state(*env, {{1, 2.01}}), obs.data());
  EXPECT_FALSE(w.healthy());
  env->set_state(qpos0_state(*env, {{2, 1.01}}), obs.data());
  EXPECT_FALSE(w.healthy());
  env->set_state(qpos0_state(*env, {{2, 0.99}}), obs.data());
  EXPECT_TRUE(w.healthy());
  EXPECT_LE(steps_to_termination(*env, qpos0_state(*env, {{2, 0.3}}), 0.0f, 1000), 1000);
}

TEST(MujocoTermination, InvertedPendulumFallsWithoutControl) {
  auto env = make_env("inverted_pendulum");
  // A pole 0.01 rad off the vertical falls past 0.2 rad within a couple of seconds; one
  // tilted the other way falls the other way.
  std::vector<float> obs(4);
  const float zero = 0.0f;
  for (double tilt : {0.01, -0.01}) {
    env->set_state({0.0, tilt, 0.0, 0.0}, obs.data());
    int t = 0;
    StepResult r;
    do {
      r = env->step(&zero, obs.data());
      EXPECT_EQ(r.reward, 1.0f);
      ++t;
    } while (!r.terminated && t < 200);
    EXPECT_TRUE(r.terminated) << tilt;
    EXPECT_LT(t, 60) << tilt;  // 60 steps = 2.4 s
    EXPECT_GT(std::fabs(obs[1]), 0.2);
    EXPECT_GT(obs[1] * tilt, 0.0) << "falls towards its tilt";
  }
  // Within the angle limit nothing terminates.
  env->set_state({0.0, 0.0, 0.0, 0.0}, obs.data());
  EXPECT_FALSE(env->step(&zero, obs.data()).terminated);
}

TEST(MujocoTermination, InvertedDoublePendulumTipBelowOneMetre) {
  auto env = make_env("inverted_double_pendulum");
  std::vector<float> obs(11);
  const float zero = 0.0f;
  env->set_state({0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, obs.data());
  const StepResult up = env->step(&zero, obs.data());
  EXPECT_FALSE(up.terminated);
  // Upright: tip at (0, 1.2), reward 10 - (1.2 - 2)^2 = 9.36, less a tiny velocity penalty.
  EXPECT_NEAR(up.reward, 10.0 - 0.64, 1e-3);
  // Bent at the middle joint by 90 degrees the tip is at height 0.6: terminated.
  env->set_state({0.0, 0.0, 1.5707963, 0.0, 0.0, 0.0}, obs.data());
  EXPECT_TRUE(env->step(&zero, obs.data()).terminated);
  // Slightly off the vertical it falls without control.
  EXPECT_LT(steps_to_termination(*env, {0.0, 0.05, 0.0, 0.0, 0.0, 0.0}, 0.0f, 200), 100);
}

TEST(MujocoTermination, NoTerminationWhereGymnasiumHasNone) {
  for (const char* name : {"halfcheetah", "swimmer", "reacher"}) {
    auto env = make_env(name);
    EXPECT_FALSE(env->spec().can_terminate) << name;
    // Upside down, or anything else: never terminated.
    std::vector<double> s = qpos0_state(*env, {{2, 3.0}});
    EXPECT_EQ(steps_to_termination(*env, s, 1.0f, 200), 201) << name;
  }
}

TEST(MujocoPhysics, HopperContactsKeepItAboveTheFloor) {
  // Dropped from standing with no control it falls over and lies on the floor. Its contacts
  // are soft (solref 20 ms, solimp 0.8): the falling body may sink in a few centimetres, but it
  // never falls through, and at rest it lies within millimetres of the surface.
  auto env = make_env("hopper");
  MujocoEnv& mj = as_mujoco(*env);
  const mjModel* m = mj.model();
  std::vector<float> obs(11);
  const std::vector<float> zero(3, 0.0f);
  env->set_state(qpos0_state(*env, {{2, 0.1}}), obs.data());
  // The lowest point of any capsule (geom 0 is the floor).
  auto lowest_point = [&] {
    const mjData* d = mj.data();
    double lowest = 1e9;
    for (int g = 1; g < m->ngeom; ++g) {
      const double radius = m->geom_size[3 * g], half = m->geom_size[3 * g + 1];
      const double axis_z = d->geom_xmat[9 * g + 8];  // z component of the capsule's axis
      lowest = std::min(lowest, d->geom_xpos[3 * g + 2] - std::fabs(axis_z) * half - radius);
    }
    return lowest;
  };
  double lowest = 1e9;
  for (int t = 0; t < 1500; ++t) {  // 12 s
    env->step(zero.data(), obs.data());
    lowest = std::min(lowest, lowest_point());
  }
  EXPECT_GT(lowest, -0.05);
  EXPECT_GT(lowest_point(), -0.005);  // at rest
  EXPECT_LT(lowest_point(), 0.01);    // on the floor, not hovering
  EXPECT_LT(obs[0], 0.7);             // fallen: torso height below the healthy range
  EXPECT_GT(obs[0], 0.0);
  EXPECT_LT(max_abs(obs, 5, 11), 0.05);  // at rest
}

TEST(MujocoPhysics, SwimmerKineticEnergyDecaysInTheViscousMedium) {
  // With no control nothing but the medium acts (no gravity in the plane, no springs): the
  // kinetic energy 1/2 v'Mv must fall step after step.
  auto env = make_env("swimmer");
  MujocoEnv& mj = as_mujoco(*env);
  const mjModel* m = mj.model();
  std::vector<float> obs(8);
  const std::vector<float> zero(2, 0.0f);
  env->set_state({0, 0, 0, 0.5, -0.5, 1.0, 0.5, 2.0, -3.0, 1.0}, obs.data());
  mjData* d = mj_makeData(m);
  auto kinetic = [&](const std::vector<double>& s) {
    std::copy(s.begin(), s.begin() + m->nq, d->qpos);
    std::copy(s.begin() + m->nq, s.end(), d->qvel);
    mj_forward(m, d);
    std::vector<double> mv(m->nv);
    mj_mulM(m, d, mv.data(), d->qvel);
    double e = 0;
    for (int i = 0; i < m->nv; ++i) e += 0.5 * d->qvel[i] * mv[i];
    return e;
  };
  double prev = kinetic(env->get_state());
  const double first = prev;
  for (int t = 0; t < 100; ++t) {
    env->step(zero.data(), obs.data());
    const double e = kinetic(env->get_state());
    EXPECT_LT(e, prev) << "step " << t;
    prev = e;
  }
  EXPECT_LT(prev, 0.5 * first);
  mj_deleteData(d);
}

TEST(MujocoPhysics, HalfCheetahComesToRestOnItsSprings) {
  // Springs, dampers and friction: with no control the cheetah settles and stays on its feet.
  auto env = make_env("halfcheetah");
  std::vector<float> obs(17);
  const std::vector<float> zero(6, 0.0f);
  env->seed(4);
  env->reset(obs.data());
  for (int t = 0; t < 300; ++t) env->step(zero.data(), obs.data());  // 15 s
  EXPECT_LT(max_abs(obs, 8, 17), 0.05);
  EXPECT_GT(obs[0], -0.5);  // torso z relative to its start (0.7 m up): not through the floor
  EXPECT_LT(std::fabs(obs[1]), 1.0);  // not flipped over
}

TEST(MujocoRewards, ForwardVelocityAndControlCost) {
  // Reward = dx/dt (+ healthy 1) - w |a|^2, with dx the root's displacement over one env step.
  struct Case { const char* name; double healthy, ctrl_weight; };
  for (const Case& c : {Case{"hopper", 1.0, 1e-3}, Case{"walker2d", 1.0, 1e-3}, Case{"halfcheetah", 0.0, 0.1},
                        Case{"swimmer", 0.0, 1e-4}}) {
    auto env = make_env(c.name);
    MujocoEnv& mj = as_mujoco(*env);
    std::vector<float> obs(env->spec().observation.numel());
    env->seed(8);
    env->reset(obs.data());
    std::vector<float> a(env->spec().action.numel(), 0.5f);
    a[0] = 2.0f;  // beyond the bound: clipped for the physics, charged as given
    double a2 = 0;
    for (float x : a) a2 += double(x) * x;
    for (int t = 0; t < 5; ++t) {
      const double x0 = mj.data()->qpos[0];
      const StepResult r = env->step(a.data(), obs.data());
      const double expected = (mj.data()->qpos[0] - x0) / mj.dt() + c.healthy - c.ctrl_weight * a2;
      EXPECT_NEAR(r.reward, expected, 1e-4 * (1 + std::fabs(expected))) << c.name << " step " << t;
    }
  }
}

TEST(MujocoRewards, ReacherPaysDistanceBeforeTheStepAndSquaredAction) {
  auto env = make_env("reacher");
  std::vector<float> obs(11);
  env->seed(2);
  env->reset(obs.data());
  const std::vector<float> a = {0.3f, -0.4f};
  for (int t = 0; t < 5; ++t) {
    const double dist = std::sqrt(obs[8] * obs[8] + obs[9] * obs[9] + obs[10] * obs[10]);
    const StepResult r = env->step(a.data(), obs.data());
    EXPECT_NEAR(r.reward, -dist - (0.09 + 0.16), 1e-5) << "step " << t;
  }
  // Observation layout: cos, sin of the arm angles; the fingertip's z equals the target's.
  const std::vector<double> s = env->get_state();
  EXPECT_NEAR(obs[0], std::cos(s[0]), 1e-6);
  EXPECT_NEAR(obs[3], std::sin(s[1]), 1e-6);
  EXPECT_NEAR(obs[4], s[2], 1e-6);
  EXPECT_NEAR(obs[7], s[5], 1e-6);
  EXPECT_NEAR(obs[10], 0.0, 1e-9);
}

TEST(MujocoObservations, ExcludeTheRootPositionAndClipVelocities) {
  auto env = make_env("hopper");
  std::vector<float> obs(11);
  std::vector<double> s = qpos0_state(*env, {{0, 3.0}, {6, 25.0}, {7, -0.5}});
  env->set_state(s, obs.data());
  EXPECT_FLOAT_EQ(obs[0], 1.25f);  // z: qpos[1]; x (qpos[0] = 3) is not observed
  EXPECT_FLOAT_EQ(obs[5], 10.0f);  // x velocity 25 clipped to 10
  EXPECT_FLOAT_EQ(obs[6], -0.5f);
  auto cheetah = make_env("halfcheetah");
  std::vector<float> cobs(17);
  std::vector<double> cs(18, 0.0);
  cs[9] = 25.0;
  cheetah->set_state(cs, cobs.data());
  EXPECT_FLOAT_EQ(cobs[8], 25.0f);  // halfcheetah does not clip
}

TEST(MujocoDeterminism, VecEnvSameSeedSameTrajectoryDifferentSeedsDiffer) {
  auto run = [](uint64_t seed) {
    SerialVecEnv v("walker2d", 3, seed);
    v.reset();
    Rng rng(9);
    std::vector<float> all, actions(3 * 6);
    for (int t = 0; t < 200; ++t) {
      for (float& x : actions) x = static_cast<float>(rng.uniform(-1, 1));
      v.step(actions.data());
      all.insert(all.end(), v.obs().begin(), v.obs().end());
      all.insert(all.end(), v.rewards().begin(), v.rewards().end());
    }
    return all;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

TEST(MujocoState, SetStateIsAFreshStartAndReplaysExactly) {
  // set_state clears MuJoCo's warm start too, so a replay from a set state is exact, however
  // the state was reached; continuing without it differs from the replay by no more than the
  // constraint solver's tolerance.
  for (const std::string& name : kMujocoEnvs) {
    auto env = make_env(name), other = make_env(name);
    const EnvSpec& s = env->spec();
    std::vector<float> obs(s.observation.numel()), o2(s.observation.numel());
    Rng rng(4);
    env->seed(6);
    env->reset(obs.data());
    for (int t = 0; t < 30; ++t) env->step(random_action(s, rng).data(), obs.data());
    const std::vector<double> saved = env->get_state();
    std::vector<std::vector<float>> actions;
    for (int t = 0; t < 10; ++t) actions.push_back(random_action(s, rng));
    std::vector<float> cont, replay1, replay2;
    for (const auto& a : actions) { env->step(a.data(), obs.data()); cont.insert(cont.end(), obs.begin(), obs.end()); }
    for (std::vector<float>* out : {&replay1, &replay2}) {
      other->set_state(saved, o2.data());
      for (const auto& a : actions) { other->step(a.data(), o2.data()); out->insert(out->end(), o2.begin(), o2.end()); }
    }
    EXPECT_EQ(replay1, replay2) << name;
    ASSERT_EQ(cont.size(), replay1.size());
    for (size_t i = 0; i < cont.size(); ++i) ASSERT_NEAR(cont[i], replay1[i], 1e-3 * (1 + std::fabs(cont[i]))) << name << " " << i;
  }
}

// ---- rendering ------------------------------------------------------------------------------

// Pixels that are the hopper's body colour (the tan of its capsules, lit): red well above blue.
struct BodyPixels { int count = 0; double cx = 0, cy = 0; };
BodyPixels body_pixels(const std::vector<uint8_t>& img, int w, int h) {
  BodyPixels b;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const uint8_t* p = &img[(static_cast<size_t>(y) * w + x) * 3];
      if (p[0] > p[2] + 50 && p[0] > p[1] + 15) { ++b.count; b.cx += x; b.cy += y; }
    }
  if (b.count) { b.cx /= b.count; b.cy /= b.count; }
  return b;
}

TEST(MujocoRender, TheTrackingCameraFollowsTheBody) {
  // Moved 5 m along the floor, the hopper stays where it was in the picture (the camera
  // follows), while the floor under it has changed; a free camera would have lost it.
  auto env = make_env("hopper");
  std::vector<float> obs(11);
  const int w = 128, h = 128;
  std::vector<uint8_t> at0(w * h * 3), at5(w * h * 3);
  env->set_state(qpos0_state(*env), obs.data());
  env->render(w, h, at0.data());
  env->set_state(qpos0_state(*env, {{0, 5.3}}), obs.data());
  env->render(w, h, at5.data());
  const BodyPixels b0 = body_pixels(at0, w, h), b5 = body_pixels(at5, w, h);
  EXPECT_GT(b0.count, 100);  // the body is in view
  EXPECT_NEAR(b5.count, b0.count, 0.1 * b0.count);
  EXPECT_NEAR(b5.cx, b0.cx, 1.0);
  EXPECT_NEAR(b5.cy, b0.cy, 1.0);
  EXPECT_NE(at0, at5);  // the checker floor moved past
  // Bending the leg changes the picture where the body is.
  env->set_state(qpos0_state(*env, {{0, 5.3}, {3, -1.2}}), obs.data());
  std::vector<uint8_t> bent(w * h * 3);
  env->render(w, h, bent.data());
  EXPECT_NE(body_pixels(bent, w, h).cx, b5.cx);
}

TEST(MujocoRender, RenderingDoesNotChangeTheSimulation) {
  auto a = make_env("reacher"), b = make_env("reacher");
  a->seed(1);
  b->seed(1);
  std::vector<float> oa(11), ob(11);
  std::vector<uint8_t> img(64 * 64 * 3);
  a->reset(oa.data());
  b->reset(ob.data());
  const std::vector<float> act = {0.5f, -0.5f};
  for (int t = 0; t < 20; ++t) {
    a->render(64, 64, img.data());
    const StepResult ra = a->step(act.data(), oa.data()), rb = b->step(act.data(), ob.data());
    EXPECT_EQ(oa, ob);
    EXPECT_EQ(ra.reward, rb.reward);
  }
}

TEST(MujocoRender, RendersFromEveryThread) {
  // Each thread has its own GL context; frames agree across threads.
  auto env = make_env("inverted_double_pendulum");
  std::vector<float> obs(11);
  env->set_state({0.3, 0.2, -0.4, 0, 0, 0}, obs.data());
  std::vector<uint8_t> here(48 * 48 * 3), there(48 * 48 * 3);
  env->render(48, 48, here.data());
  std::thread t([&] { env->render(48, 48, there.data()); });
  t.join();
  EXPECT_EQ(here, there);
  EXPECT_THROW(env->render(4096, 16, here.data()), UsageError);
}

}  // namespace
}  // namespace prefrl
