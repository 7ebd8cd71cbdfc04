// The base of the MuJoCo environments, after Gymnasium's MujocoEnv (v4): a model compiled once
// per process from its embedded MJCF and shared by every instance (constant), one mjData per
// instance (mutable). An action sets the controls and advances frame_skip steps of mj_step;
// the physical state is qpos ++ qvel. Derived quantities (body positions, constraint forces)
// are read after mj_step without recomputing them, exactly as Gymnasium reads them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <mujoco/mujoco.h>

#include "prefrl/envs/env.h"
#include "prefrl/envs/mujoco_render.h"

namespace prefrl {

// The compiled model of an embedded MJCF file (mjcf/<name>.xml), compiled at the first call
// and then shared (thread-safe). Throws RuntimeError if MuJoCo rejects it, UsageError for an
// unknown name.
const mjModel* mujoco_model(const std::string& name);
// The compiled model of an MJCF file (its <include>s and assets relative to it), compiled at the
// first call for that path and then shared (thread-safe). Throws UsageError naming the file with
// MuJoCo's message if it is missing or does not compile.
const mjModel* mujoco_model_file(const std::string& path);

// What every MuJoCo task's spec has in common, from its model: Box actions bounded by the
// actuators' ctrlrange, unbounded Box observations (+-FLT_MAX) of obs_size floats, fps =
// 1 / (timestep x frame_skip), state_size = nq + nv, obs_determines_state = false.
EnvSpec mujoco_spec(const std::string& name, const std::string& reference, const std::string& model_name,
                    int64_t obs_size, int frame_skip, int max_episode_steps, bool can_terminate);

class MujocoEnv : public Env {
 public:
  ~MujocoEnv() override;
  MujocoEnv(const MujocoEnv&) = delete;
  MujocoEnv& operator=(const MujocoEnv&) = delete;

  // State (nq + nv): qpos ++ qvel.
  std::vector<double> get_state() const override;
  // The task's camera view of the current configuration (mujoco_render.h), any size in
  // [16, kMujocoMaxRenderSize].
  void render(int width, int height, uint8_t* rgb) const override;

  const mjModel* model() const { return m_; }
  const mjData* data() const { return d_; }
  int frame_skip() const { return frame_skip_; }
  double dt() const { return m_->opt.timestep * frame_skip_; }  // seconds per env step

 protected:
  MujocoEnv(const std::string& model_name, int frame_skip, MujocoCamera camera);
  // From a compiled model that lives as long as the process (mujoco_model_file's).
  MujocoEnv(const mjModel* model, int frame_skip, MujocoCamera camera);

  // Gymnasium's reset + set_state: qpos (nq), qvel (nv) => mj_resetData (which also clears the
  // constraint solver's warm start), copy in, mj_forward. A set state is therefore a fresh start.
  void set_qpos_qvel(const double* qpos, const double* qvel);
  // Gymnasium's do_simulation: ctrl = action (A = nu floats; NaN as 0, clipped to ctrlrange as
  // MuJoCo clamps limited controls), then frame_skip x mj_step.
  void do_simulation(const float* action);
  // do_simulation, returning the x velocity of the root, (qpos[0] after - before) / dt.
  double simulate_forward(const float* action);
  // sum_j a_j^2 of the action as given (NaN as 0): Gymnasium charges control costs on the
  // action passed to step, before MuJoCo clamps it.
  double action_square_sum(const float* action) const;
  // qpos0 (the model's reference configuration) plus uniform noise in [-scale, scale) per element.
  std::vector<double> qpos0_plus_uniform(double scale);
  // Zero velocities plus uniform noise in [-scale, scale) per element.
  std::vector<double> zero_plus_uniform(int n, double scale);
  // Zero velocities plus scale x standard normal noise per element.
  std::vector<double> zero_plus_normal(int n, double scale);

  // Gymnasium's usual reset: qpos0 + U(-scale, scale) per element; qvel U(-scale, scale) or,
  // with normal_velocities, scale x N(0, 1); then set_qpos_qvel and the observation into obs.
  void reset_with_noise(double scale, bool normal_velocities, float* obs);
  // Writes qpos[skip:] ++ clip(qvel, +-velocity_clip) (infinity: unclipped) into obs.
  void write_positions_velocities(float* obs, int skip, double velocity_clip) const;
  // Writes the observation of the current mjData.
  virtual void write_obs(float* obs) const = 0;
  // set_state: state (nq + nv) => set_qpos_qvel => observation.
  void set_state_impl(const std::vector<double>& state, float* obs) override;

  const mjModel* m_;
  mjData* d_;

 private:
  int frame_skip_;
  MujocoCamera camera_;
};

}  // namespace prefrl
