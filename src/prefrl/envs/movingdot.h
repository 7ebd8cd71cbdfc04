// MovingDot: prefrl's pixel sanity task (from the reproduction of Christiano et al. 2017).
// A 3x3 dot on a 32x32 canvas must be moved to the centre; the true reward is the decrease of
// its Manhattan distance to the target, so a learner that reads pixels can solve it quickly.
// Like the paper's Atari inputs (stacks of recent frames), the registered "movingdot" is this
// single-frame environment inside FrameStack(2) (envs/wrappers.h): an observation holds the
// current frame and the one before the last action, so that a reward model on observations
// alone can see the move that led to it.
#pragma once
#include "prefrl/envs/env.h"

namespace prefrl {

class MovingDot : public Env {
 public:
  static constexpr int kSize = 32;   // canvas is kSize x kSize
  static constexpr int kMinPos = 1;  // dot centre range, so the 3x3 dot stays inside
  static constexpr int kMaxPos = kSize - 2;
  static constexpr int kTargetX = 16, kTargetY = 16;
  static constexpr int kMinStartDistance = 5;  // reset never starts within distance 4
  static constexpr int kSuccessDistance = 1;   // success() when distance <= 1
  static constexpr int kMaxEpisodeSteps = 50;

  // The spec: obs Box(1, 32, 32) of bytes (values 0 and 1 = 255 / 255; row y, column x), the dot lit with 1;
  // action Discrete(5): 0 no-op, 1 up (y-1), 2 down (y+1), 3 left (x-1), 4 right (x+1).
  // (Registered as "movingdot" inside FrameStack(2): obs Box(2, 32, 32), state (x, y, previous
  // x, previous y).)
  const EnvSpec& spec() const override;
  // State (2): x, y (integers in [1, 30]).
  std::vector<double> get_state() const override;
  bool state_from_obs(const float* obs, std::vector<double>* state) const override;
  // The canvas upscaled with nearest neighbour: dot in red, target faintly marked.
  void render(int width, int height, uint8_t* rgb) const override;
  // Whether the dot is within Manhattan distance 1 of the target.
  bool success() const override;

  // Manhattan distance from the dot to the target.
  int distance() const;

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void set_state_impl(const std::vector<double>& state, float* obs) override;

 private:
  void write_obs(float* obs) const;  // obs (1 x 32 x 32)
  int x_ = kTargetX, y_ = kTargetY;
};

}  // namespace prefrl
