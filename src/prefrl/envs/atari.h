// Atari-like games, at the level of the Arcade Learning Environment (ALE): one call per 60 Hz
// frame, a 210 x 160 RGB screen, the game's minimal action set under ALE's names, lives and a
// game-over flag. The Arcade Learning Environment and its ROMs are not in Debian, so prefrl's
// `pong` and `enduro` are its own games with the Atari originals' look and rules as far as
// documented facts go (docs/envs.md). The standard Atari preprocessing (no-op starts, frame
// skip with a max over the last two frames, 84 x 84 grey, sticky actions, the episode ending at
// a life loss, the frame stack) is built around this interface in atari_env.h, so it applies to
// any game that implements it.
//
// A game is a deterministic function of its state and its actions: whatever randomness it has
// (a serve's direction, traffic) comes from a pseudo-random generator whose state is part of
// the game's state, drawn from the Rng given to reset(). So get_state / set_state restore a
// game exactly, and a checkpointed run resumes bit for bit.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "prefrl/core/rng.h"

namespace prefrl {

// A rectangle of the 210 x 160 screen, in pixels: rows [top, top + height), columns [left, left + width).
struct ScreenRect {
  int top = 0, left = 0, height = 0, width = 0;
};

class AtariGame {
 public:
  static constexpr int kScreenHeight = 210;
  static constexpr int kScreenWidth = 160;
  static constexpr double kFrameRate = 60.0;  // frames per second of game time (NTSC)

  virtual ~AtariGame() = default;

  virtual std::string name() const = 0;       // prefrl's name, e.g. "pong"
  virtual std::string reference() const = 0;  // what it follows, e.g. "Atari 2600 Pong (ALE PongNoFrameskip-v4)"
  // The minimal action set in ALE's order and ALE's names ("NOOP", "FIRE", "RIGHT", ...);
  // an action is an index into it.
  virtual const std::vector<std::string>& action_names() const = 0;

  // Starts a new game from its power-on state; the game's pseudo-random generator is seeded
  // from rng (the only draw from it).
  virtual void reset(Rng& rng) = 0;
  // Advances one frame (1/60 s) with `action` held (0 <= action < action_names().size());
  // returns the reward of this frame (the change of the score the ALE reports). After
  // game_over(), further frames change nothing and earn 0.
  virtual int frame(int action) = 0;
  virtual bool game_over() const = 0;
  // Lives left; 0 for games that have none (Pong and Enduro, as in ALE).
  virtual int lives() const = 0;

  // The current screen: kScreenHeight x kScreenWidth x 3 bytes, row-major, top row first.
  virtual void screen(uint8_t* rgb) const = 0;

  // The whole game state as doubles (every value exactly representable), restored exactly by
  // set_state. set_state throws UsageError, changing nothing, on a state of the wrong size or
  // with values out of range.
  virtual int state_size() const = 0;
  virtual std::vector<double> get_state() const = 0;
  virtual void set_state(const std::vector<double>& state) = 0;

  // The parts of the screen that show the score (and, in Enduro, the speedometer and
  // odometer): the paper hides them from the reward model, which must judge behaviour, not
  // read the score (atari_env.h maps them onto the preprocessed observation).
  virtual std::vector<ScreenRect> score_areas() const = 0;
};

// The games (atari_pong.cc, atari_enduro.cc).
std::unique_ptr<AtariGame> make_pong();
std::unique_ptr<AtariGame> make_enduro();

}  // namespace prefrl
