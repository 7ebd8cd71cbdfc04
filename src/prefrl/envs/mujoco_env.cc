// MujocoEnv: the model cache, MuJoCo's message handlers, state, stepping and rendering.
#include "prefrl/envs/mujoco_env.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>

#include "prefrl/core/error.h"
#include "prefrl/envs/action_util.h"
#include "prefrl/envs/mjcf_models.h"

namespace prefrl {
namespace {

// MuJoCo's default handlers append to MUJOCO_LOG.TXT in the working directory, and its error
// handler exits the process. prefrl's print to stderr, and an error becomes a RuntimeError
// (thrown through MuJoCo's C frames, which x86-64 unwinds; the failed call's scratch memory
// is lost, the mjData must not be used again).
void on_mujoco_warning(const char* msg) { std::fprintf(stderr, "prefrl: MuJoCo warning: %s\n", msg); }
void on_mujoco_error(const char* msg) { throw RuntimeError(std::string("MuJoCo error: ") + msg); }

// Compiles an embedded model from memory through MuJoCo's virtual file system.
mjModel* compile(const MjcfModel& src) {
  auto vfs = std::make_unique<mjVFS>();  // ~2 MB of fixed tables: not on the stack
  mj_defaultVFS(vfs.get());
  const std::string file = std::string(src.name) + ".xml";
  const size_t size = std::strlen(src.xml);
  if (mj_makeEmptyFileVFS(vfs.get(), file.c_str(), static_cast<int>(size)) != 0)
    throw RuntimeError("MuJoCo: cannot make a virtual file for model '" + std::string(src.name) + "'");
  std::memcpy(vfs->filedata[mj_findFileVFS(vfs.get(), file.c_str())], src.xml, size);
  char error[1000] = "";
  mjModel* m = mj_loadXML(file.c_str(), vfs.get(), error, sizeof error);
  mj_deleteVFS(vfs.get());
  if (!m) throw RuntimeError("MuJoCo cannot compile the embedded model '" + std::string(src.name) + "': " + error);
  return m;
}

// prefrl's handlers replace MuJoCo's, once per process, before any model is compiled.
void install_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    mju_user_warning = on_mujoco_warning;
    mju_user_error = on_mujoco_error;
  });
}

}  // namespace

const mjModel* mujoco_model(const std::string& name) {
  struct Deleter { void operator()(mjModel* m) const { mj_deleteModel(m); } };
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<mjModel, Deleter>> models;
  std::lock_guard<std::mutex> lock(mutex);
  install_handlers();
  auto it = models.find(name);
  if (it != models.end()) return it->second.get();
  for (size_t i = 0; i < kMjcfModelCount; ++i) {
    if (name == kMjcfModels[i].name) return models.emplace(name, compile(kMjcfModels[i])).first->second.get();
  }
  throw UsageError("no embedded MuJoCo model named '" + name + "'");
}

const mjModel* mujoco_model_file(const std::string& path) {
  struct Deleter { void operator()(mjModel* m) const { mj_deleteModel(m); } };
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<mjModel, Deleter>> models;
  install_handlers();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = models.find(path);
  if (it != models.end()) return it->second.get();
  if (FILE* f = std::fopen(path.c_str(), "rb")) std::fclose(f);
  else throw UsageError("MuJoCo model '" + path + "': no such file");
  char error[1000] = "";
  mjModel* m = nullptr;
  try {
    m = mj_loadXML(path.c_str(), nullptr, error, sizeof error);
  } catch (const RuntimeError& e) {
    throw UsageError("MuJoCo model '" + path + "': " + e.what());
  }
  if (!m) throw UsageError("MuJoCo model '" + path + "' does not compile: " + error);
  return models.emplace(path, m).first->second.get();
}

EnvSpec mujoco_spec(const std::string& name, const std::string& reference, const std::string& model_name,
                    int64_t obs_size, int frame_skip, int max_episode_steps, bool can_terminate) {
  const mjModel* m = mujoco_model(model_name);
  EnvSpec e;
  e.name = name;
  e.reference = reference;
  const float big = std::numeric_limits<float>::max();
  e.observation = Space::box({obs_size}, std::vector<float>(obs_size, -big), std::vector<float>(obs_size, big));
  std::vector<float> lo(m->nu), hi(m->nu);
  for (int j = 0; j < m->nu; ++j) {
    lo[j] = static_cast<float>(m->actuator_ctrlrange[2 * j]);
    hi[j] = static_cast<float>(m->actuator_ctrlrange[2 * j + 1]);
  }
  e.action = Space::box({m->nu}, lo, hi);
  e.max_episode_steps = max_episode_steps;
  e.fps = 1.0 / (m->opt.timestep * frame_skip);
  e.can_terminate = can_terminate;
  e.state_size = m->nq + m->nv;
  e.obs_determines_state = false;
  return e;
}

MujocoEnv::MujocoEnv(const std::string& model_name, int frame_skip, MujocoCamera camera)
    : m_(mujoco_model(model_name)), d_(mj_makeData(m_)), frame_skip_(frame_skip), camera_(std::move(camera)) {
  if (!d_) throw RuntimeError("MuJoCo: cannot allocate data for model '" + model_name + "'");
  mj_forward(m_, d_);
}

MujocoEnv::MujocoEnv(const mjModel* model, int frame_skip, MujocoCamera camera)
    : m_(model), d_(mj_makeData(m_)), frame_skip_(frame_skip), camera_(std::move(camera)) {
  if (!d_) throw RuntimeError("MuJoCo: cannot allocate data for a model");
  mj_forward(m_, d_);
}

MujocoEnv::~MujocoEnv() { mj_deleteData(d_); }

std::vector<double> MujocoEnv::get_state() const {
  std::vector<double> s(d_->qpos, d_->qpos + m_->nq);
  s.insert(s.end(), d_->qvel, d_->qvel + m_->nv);
  return s;
}

void MujocoEnv::set_qpos_qvel(const double* qpos, const double* qvel) {
  mj_resetData(m_, d_);
  std::memcpy(d_->qpos, qpos, sizeof(mjtNum) * m_->nq);
  std::memcpy(d_->qvel, qvel, sizeof(mjtNum) * m_->nv);
  mj_forward(m_, d_);
}

void MujocoEnv::set_state_impl(const std::vector<double>& state, float* obs) {
  envs_detail::check_state(spec().name.c_str(), state, static_cast<size_t>(m_->nq + m_->nv));
  set_qpos_qvel(state.data(), state.data() + m_->nq);
  write_obs(obs);
}

void MujocoEnv::do_simulation(const float* action) {
  for (int j = 0; j < m_->nu; ++j) {
    d_->ctrl[j] = envs_detail::clip_action(action[j], static_cast<float>(m_->actuator_ctrlrange[2 * j]),
                                           static_cast<float>(m_->actuator_ctrlrange[2 * j + 1]));
  }
  for (int k = 0; k < frame_skip_; ++k) mj_step(m_, d_);
}

double MujocoEnv::simulate_forward(const float* action) {
  const double x_before = d_->qpos[0];
  do_simulation(action);
  return (d_->qpos[0] - x_before) / dt();
}

void MujocoEnv::write_positions_velocities(float* obs, int skip, double velocity_clip) const {
  float* o = obs;
  for (int i = skip; i < m_->nq; ++i) *o++ = static_cast<float>(d_->qpos[i]);
  for (int i = 0; i < m_->nv; ++i) *o++ = static_cast<float>(std::clamp(d_->qvel[i], -velocity_clip, velocity_clip));
}

double MujocoEnv::action_square_sum(const float* action) const {
  double s = 0.0;
  for (int j = 0; j < m_->nu; ++j) {
    const double a = std::isnan(action[j]) ? 0.0 : action[j];
    s += a * a;
  }
  return s;
}

std::vector<double> MujocoEnv::qpos0_plus_uniform(double scale) {
  std::vector<double> q(m_->qpos0, m_->qpos0 + m_->nq);
  for (double& x : q) x += rng_.uniform(-scale, scale);
  return q;
}

std::vector<double> MujocoEnv::zero_plus_uniform(int n, double scale) {
  std::vector<double> v(n);
  for (double& x : v) x = rng_.uniform(-scale, scale);
  return v;
}

std::vector<double> MujocoEnv::zero_plus_normal(int n, double scale) {
  std::vector<double> v(n);
  for (double& x : v) x = scale * rng_.normal();
  return v;
}

void MujocoEnv::reset_with_noise(double scale, bool normal_velocities, float* obs) {
  const std::vector<double> qpos = qpos0_plus_uniform(scale);
  const std::vector<double> qvel = normal_velocities ? zero_plus_normal(m_->nv, scale) : zero_plus_uniform(m_->nv, scale);
  set_qpos_qvel(qpos.data(), qvel.data());
  write_obs(obs);
}

void MujocoEnv::render(int width, int height, uint8_t* rgb) const {
  try {
    render_mujoco(m_, d_, camera_, width, height, rgb);
  } catch (const UsageError& e) {
    throw UsageError(spec().name + ": " + e.what());  // as the 2-D environments name themselves
  }
}

}  // namespace prefrl
