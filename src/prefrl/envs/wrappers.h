// Wrappers: an environment built around another, changing one thing about it and forwarding
// the rest. They compose (a wrapper's inner environment may itself be a wrapper), are Envs
// like any other (VecEnv, checkpoints, clips and `env replay` see no difference), and register
// like any environment:
//
//   register_env("pendulum_stacked", [] {
//     return std::make_unique<FrameStack>(std::make_unique<TimeLimit>(make_env("pendulum"), 100), 4);
//   });
//
// A wrapper's RNG is its inner environment's (seeding the wrapper seeds the env that draws the
// initial states). Its time limit is its own spec's: Env::step sets `truncated` from the
// wrapper's step count and max_episode_steps, whatever the inner environment says.
#pragma once
#include <memory>
#include <vector>

#include "prefrl/envs/env.h"

namespace prefrl {

// Forwards everything to the wrapped environment; a wrapper overrides what it changes.
class EnvWrapper : public Env {
 public:
  const EnvSpec& spec() const override { return spec_; }
  std::vector<double> get_state() const override { return inner_->get_state(); }
  bool state_from_obs(const float* obs, std::vector<double>* state) const override {
    return inner_->state_from_obs(obs, state);
  }
  void render(int width, int height, uint8_t* rgb) const override { inner_->render(width, height, rgb); }
  bool success() const override { return inner_->success(); }
  Rng& rng() override { return inner_->rng(); }
  const Rng& rng() const override { return inner_->rng(); }

  Env& inner() { return *inner_; }
  const Env& inner() const { return *inner_; }

 protected:
  // Takes ownership of `inner` (throws UsageError if null); the spec starts as inner's.
  explicit EnvWrapper(std::unique_ptr<Env> inner);
  void reset_impl(float* obs) override { inner_->reset(obs); }
  StepResult step_impl(const float* action, float* obs) override { return inner_->step(action, obs); }
  void set_state_impl(const std::vector<double>& state, float* obs) override { inner_->set_state(state, obs); }

  EnvSpec spec_;
  std::unique_ptr<Env> inner_;
};

// Stacks the last k observations, newest first: observation shape (k*C, ...) from the inner
// (C, ...) (a flat (D) becomes (k*D)); frame j (j = 0 newest) is the inner observation from j
// steps ago. After a reset or set_state with one inner state, every frame is the first
// observation (Gymnasium's FrameStack does the same, oldest first). The state is the inner
// states of the k frames, newest first (k * inner state_size); set_state takes that or one inner
// state. The inner environment's set_state must determine its observation: set_state restores
// the older frames by setting the inner env to their states, then to the newest.
class FrameStack : public EnvWrapper {
 public:
  FrameStack(std::unique_ptr<Env> inner, int k);
  std::vector<double> get_state() const override;
  bool state_from_obs(const float* obs, std::vector<double>* state) const override;
  int frames() const { return k_; }

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void set_state_impl(const std::vector<double>& state, float* obs) override;

 private:
  void fill_from_newest(float* obs);  // every older frame and state := the newest; obs := stack
  int k_;
  int64_t frame_size_;                        // inner observation numel
  std::vector<float> stack_;                  // (k x frame_size) newest first
  std::vector<std::vector<double>> states_;   // (k) inner states, newest first
};

// Repeats each action k times: the rewards of the k inner steps are summed, the observation is
// the last one, and an inner termination ends the repeat early. The spec's time limit is the
// inner one in wrapper steps, ceil(limit / k), and clips play at fps / k.
class FrameSkip : public EnvWrapper {
 public:
  FrameSkip(std::unique_ptr<Env> inner, int k);
  int skip() const { return k_; }

 protected:
  StepResult step_impl(const float* action, float* obs) override;

 private:
  int k_;
};

// Sets the time limit: truncated on step max_steps of an episode (max_steps >= 1), whatever
// the inner environment's own limit.
class TimeLimit : public EnvWrapper {
 public:
  TimeLimit(std::unique_ptr<Env> inner, int max_steps);
};

}  // namespace prefrl
