// The standard Atari preprocessing around an AtariGame (atari.h), as Gymnasium's
// AtariPreprocessing and OpenAI baselines' wrap_deepmind do it, with Machado et al. 2018's
// sticky actions:
//
//   * no-op starts: each reset plays 0..noop_max (uniform) agent steps of NOOP (baselines'
//     NoopResetEnv; each no-op is a whole frame_skip step);
//   * frame skip: an agent step lasts frame_skip game frames with its action held, rewards
//     summed (MaxAndSkipEnv); the observation is the pixelwise max of the last two frames'
//     screens (the RGB screens, as baselines' MaxAndSkipEnv before WarpFrame), which removes
//     the flicker of sprites the Atari draws on alternate frames;
//   * sticky actions (ALE's repeat_action_probability): on every game frame, with probability
//     sticky_prob the game gets the previous frame's action instead of the agent's;
//   * episodic life (EpisodicLifeEnv): optionally a lost life ends the learner's episode, and
//     the next reset continues the same game (a real reset only after the game is over);
//   * the screen as screen_size x screen_size grey (OpenCV's RGB2GRAY) or RGB, resampled with
//     area interpolation (OpenCV's INTER_AREA);
//   * a frame stack (make_atari: envs/wrappers.h's FrameStack, newest first);
//   * the time limit, ALE's max_num_frames_per_episode in agent steps.
//
// The pieces (max_frames, ScreenResizer, screen_area_mask) are free of the game and tested on
// their own; AtariEnv puts them together, and make_atari adds the stack.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "prefrl/envs/atari.h"
#include "prefrl/envs/env.h"

namespace prefrl {

// The atari.* config group (core/config.h's visitor).
struct AtariConfig {
  int frame_skip = 4;                   // game frames per agent step, rewards summed
  bool max_pool = true;                 // observation = max over the last two frames of a step
  int noop_max = 30;                    // at reset, 0..noop_max (uniform) NOOP agent steps
  double sticky_prob = 0.0;             // per frame, probability of repeating the previous frame's action
  bool life_loss_ends_episode = false;  // a lost life ends the episode; the next reset continues the game
  int screen_size = 84;                 // observation is screen_size x screen_size
  bool grayscale = true;                // grey (1 channel) or RGB (3 channels)
  int frame_stack = 4;                  // make_atari: the newest frames stacked, newest first
  int max_episode_frames = 108000;      // time limit in game frames (ALE's 30 minutes at 60 Hz); 0: none
  bool mask_score = true;               // the reward model is told to hide the score areas

  template <class V>
  void visit(V& v) {
    v.num("frame_skip", frame_skip,
          "game frames per agent step (the action is held, the rewards are summed)", 1, 64);
    v.flag("max_pool", max_pool,
           "the observation is the pixelwise max over the last two frames of a step (removes Atari flicker)");
    v.num("noop_max", noop_max,
          "each reset plays a uniform 0..noop_max number of NOOP agent steps (baselines' NoopResetEnv)", 0, 10000);
    v.num("sticky_prob", sticky_prob,
          "sticky actions (Machado et al. 2018): on every game frame, the probability that the game gets the "
          "previous frame's action instead of the agent's (0: ALE v4; 0.25: ALE v0/v5)", 0.0, 1.0);
    v.flag("life_loss_ends_episode", life_loss_ends_episode,
           "a lost life ends the learner's episode, and the next reset continues the same game unless it is over "
           "(baselines' EpisodicLifeEnv)");
    v.num("screen_size", screen_size, "the observation is screen_size x screen_size pixels (area-resampled)", 1, 420);
    v.flag("grayscale", grayscale,
           "grey observations (0.299 R + 0.587 G + 0.114 B, as OpenCV's RGB2GRAY) instead of 3 RGB channels");
    v.num("frame_stack", frame_stack, "the newest frames stacked into an observation, newest first", 1, 64);
    v.num("max_episode_frames", max_episode_frames,
          "time limit in game frames (ALE's 108000: 30 minutes at 60 Hz); in agent steps "
          "ceil(max_episode_frames / frame_skip); 0: none", 0, 1000000000);
    v.flag("mask_score", mask_score,
           "the reward model hides the game's score areas (atari_observation_mask); the observation is unchanged");
  }
};

// One line describing the preprocessing of cfg (without the frame stack), for EnvSpec::reference.
std::string atari_preprocessing_summary(const AtariConfig& cfg);

// out[i] = max(a[i], b[i]) for i < n (out may be a or b).
void max_frames(const uint8_t* a, const uint8_t* b, uint8_t* out, size_t n);

// OpenCV's cv2.cvtColor(RGB2GRAY) for bytes: (4899 R + 9617 G + 1868 B + 8192) >> 14, that is
// 0.299 R + 0.587 G + 0.114 B rounded to nearest.
inline uint8_t rgb_to_grey(uint8_t r, uint8_t g, uint8_t b) {
  return static_cast<uint8_t>((4899u * r + 9617u * g + 1868u * b + 8192u) >> 14);
}

// Resamples the 210 x 160 RGB screen to size x size with area interpolation (OpenCV's
// INTER_AREA): each output pixel is the mean of the source pixels under its footprint, weighted
// by the area of each that it covers (edge pixels fractionally). The weights are exact
// fractions (the footprints' edges in integer units of 1 / size of a source pixel), applied
// separably in integers, and the result is rounded to nearest (halves up). Grey converts each
// source pixel with rgb_to_grey first, as cvtColor before cv2.resize does.
// The work buffers are the resizer's own: one resize at a time.
class ScreenResizer {
 public:
  ScreenResizer(int size, bool grayscale);
  int size() const { return size_; }
  int channels() const { return channels_; }
  int64_t output_size() const { return static_cast<int64_t>(channels_) * size_ * size_; }
  // rgb: 210 x 160 x 3 bytes, row-major => out: channels x size x size bytes, channel-first.
  void resize(const uint8_t* rgb, uint8_t* out) const;

 private:
  // One axis: output i averages source pixels first[i] .. first[i] + count[i] - 1 with the
  // integer weights weight[offset[i] ...] (their sum is the source length for every i).
  struct Taps {
    std::vector<int> first, count, offset;
    std::vector<int32_t> weight;
  };
  static Taps taps(int source, int size);
  int size_, channels_;
  Taps rows_, cols_;
  mutable std::vector<uint8_t> grey_;   // (210 x 160) the screen in grey (grey only)
  mutable std::vector<uint16_t> down_;  // (160 x channels) one output row's sums down the source rows
};

// The (size x size) 0/1 mask (1 = hidden) of the observation pixels whose footprint (as
// ScreenResizer resamples) overlaps any of `areas` with a positive area; areas are clipped to
// the screen, empty ones hide nothing.
std::vector<uint8_t> screen_area_mask(const std::vector<ScreenRect>& areas, int size);

// The mask (cfg.screen_size x cfg.screen_size, 1 = hidden) of one preprocessed frame that the
// reward model applies to every stacked frame: game.score_areas() mapped by screen_area_mask;
// all zero when cfg.mask_score is off.
std::vector<uint8_t> atari_observation_mask(const AtariGame& game, const AtariConfig& cfg);

// An AtariGame with the preprocessing above, but single frames (make_atari stacks them).
//   observation: Space::bytes({C, size, size}), C = 1 (grey) or 3 (RGB), channel-first;
//   action: Discrete(game's action count);
//   max_episode_steps: ceil(max_episode_frames / frame_skip) (0 = none); fps 60 / frame_skip.
// Every draw is from rng(): the game's seed at each game reset, the number of no-ops at each
// reset (none when noop_max is 0), one uniform per game frame for sticky actions (none when
// sticky_prob is 0).
//
// State (2 G + 3 values, G = game->state_size()):
//   [0, G)       the game's state at the current frame;
//   [G, 2G)      the game's state one frame before, when the observation is the max over that
//                frame and the current one; otherwise (right after a reset or set_state, a
//                step of one frame, max_pool off) the current state again;
//   2G           the action the game got on the last frame (what a sticky frame repeats);
//   2G + 1       the lives count the life-loss rule compares with;
//   2G + 2       1 if a life-loss episode end is pending (the next reset continues the game), else 0.
// set_state writes the observation the env that gave the state had (it renders the earlier
// frame, then the current one), so clips and FrameStack's restored frames are exact.
class AtariEnv : public Env {
 public:
  // Throws UsageError for a null game or a config value out of its bounds, and when noop_max
  // > 0 but the game's action 0 is not "NOOP".
  AtariEnv(std::unique_ptr<AtariGame> game, const AtariConfig& cfg);

  const EnvSpec& spec() const override { return spec_; }
  std::vector<double> get_state() const override;
  // The current game screen scaled to width x height by nearest neighbour (what people label
  // is the game, not the preprocessed input).
  void render(int width, int height, uint8_t* rgb) const override;

  const AtariGame& game() const { return *game_; }
  const AtariConfig& config() const { return cfg_; }

 protected:
  // A new game (game->reset(rng())) unless a life-loss episode end is pending and the game is
  // not over (then the game continues), then the no-op steps (a game that ends among them
  // starts again, as in NoopResetEnv). Only the last no-op step renders.
  void reset_impl(float* obs) override;
  // frame_skip frames (fewer if the game ends inside them); terminated when the game is over or,
  // with life_loss_ends_episode, when a life was lost and lives remain (as EpisodicLifeEnv: a
  // game showing 0 lives before it is over ends the episode when it is over). Only the last
  // two frames are rendered; should the game end earlier in the step, the observation is the
  // max of the last two frames that ran (the step is replayed from its start state up to the
  // frame before the end: a game is a function of its state and actions), or the one frame.
  // Allocates nothing itself; the game's get_state() is called once or twice (the start of
  // the step, for that replay, and the frame before the last).
  StepResult step_impl(const float* action, float* obs) override;
  // Throws RuntimeError, changing nothing, for a state of the wrong size or out of range.
  void set_state_impl(const std::vector<double>& state, float* obs) override;

 private:
  // One agent step of `action` without its episode bookkeeping; returns the summed reward.
  // With `observe`, leaves the step's screens (and the earlier frame's state) for write_obs;
  // without, renders nothing (the no-op steps before the last).
  int run_step(int action, bool observe);
  void new_game();            // game->reset(rng()), the previous action NOOP
  void write_obs(float* obs); // the screens => the preprocessed frame => obs

  std::unique_ptr<AtariGame> game_;
  AtariConfig cfg_;
  EnvSpec spec_;
  ScreenResizer resizer_;
  int n_actions_ = 0;
  size_t game_state_size_ = 0;
  std::vector<uint8_t> screen_prev_, screen_cur_, screen_max_;  // (210 x 160 x 3) each
  std::vector<uint8_t> frame_;                                  // (C x size x size) the observation's bytes
  std::vector<int> actions_;                                    // (frame_skip) what the game got on each frame
  std::vector<double> start_state_;                             // the game's state at the start of a step
  std::vector<double> prev_state_;                              // the game's state one frame before, if pooled_
  bool pooled_ = false;       // the observation is max(screen_prev_, screen_cur_)
  int prev_action_ = 0;       // the action the game got on the last frame
  int lives_ = 0;             // lives after the last step or reset
  bool pending_continue_ = false;
};

// AtariEnv inside FrameStack(cfg.frame_stack) (none when frame_stack is 1): observation
// (frame_stack x C, size, size), frame j being the preprocessed frame of j steps ago; state
// frame_stack x AtariEnv's, newest first.
std::unique_ptr<Env> make_atari(std::unique_ptr<AtariGame> game, const AtariConfig& cfg);

// ---- The registered games (atari_games.cc) --------------------------------------------------
// `pong` and `enduro` are registered with the default AtariConfig; a run's atari.* settings
// reach them through configure_atari_envs (called wherever a run's config is resolved or
// read back), which replaces both registrations with factories of those settings.
std::vector<std::string> atari_env_names();
// A factory of the named game inside make_atari(cfg); UsageError for a name that is not one.
EnvFactory atari_env_factory(const std::string& name, const AtariConfig& cfg);
void configure_atari_envs(const AtariConfig& cfg);

}  // namespace prefrl
