// prefrl's Pong: Atari 2600 Pong (Video Olympics, game 1) as ALE's PongNoFrameskip-v4 shows it.
//
// Facts it follows: a 210 x 160 screen with a brown-orange field (144, 72, 17) between white
// walls (236, 236, 236: rows 24-33 and 194-209); the computer's orange paddle (213, 130, 74) at
// columns 16-19 and the player's green one (92, 186, 92) at columns 140-143, both 4 x 16; a
// 2 x 4 ball; the scores in the players' colours above the top wall; ALE's six actions (NOOP,
// FIRE, RIGHT, LEFT, RIGHTFIRE, LEFTFIRE: the paddle controller's RIGHT moves the paddle up);
// a point's reward +1 / -1; a game of 21 points; the ball's angle set by where it meets the
// paddle, steepest off the edges; a computer opponent that follows the ball at a limited speed,
// so steep shots off the paddle's edge beat it.
//
// Choices of its own (the ROM's exact numbers are not documented): positions in 1/16 pixel;
// the player's paddle moves 3 px a frame while a direction is held and stops when released;
// the ball starts each rally at 1.5 px a frame across and speeds up by 1/8 px a frame at every
// paddle hit, up to 3; its vertical speed is 3.5 px a frame times the hit's offset from the
// paddle's centre (in [-1, 1]); the opponent follows the ball (plus a per-rally aim offset of up
// to 6 px) at 2 px a frame while the ball comes towards it, and drifts back to the middle at
// 1 px a frame otherwise; after a point the field is empty for 60 frames, then the ball is
// served from the middle towards the player who lost the point, at a pseudo-random height and
// slope.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/envs/atari.h"
#include "prefrl/envs/atari_draw.h"
#include "prefrl/envs/atari_pong.h"

namespace prefrl {

namespace {

using namespace pong;  // the state layout and constants (atari_pong.h)
using atari_draw::fill;
constexpr int kOppDrift = 1 * kSub;            // the opponent's drift back to the middle
constexpr int kMaxAim = 6 * kSub;              // opponent's per-rally aim offset bound

constexpr atari_draw::Rgb kField = {144, 72, 17};
constexpr atari_draw::Rgb kWall = {236, 236, 236};
constexpr atari_draw::Rgb kOppColour = {213, 130, 74};
constexpr atari_draw::Rgb kAgentColour = {92, 186, 92};

constexpr int kDigitCellW = 4, kDigitCellH = 4, kDigitTop = 2;  // a digit is 12 x 20 pixels at rows 2-21
constexpr int kOppScoreX = 20, kAgentScoreX = 100;            // left edge of each score's tens digit

class Pong final : public AtariGame {
 public:
  Pong() { power_on(1); }

  std::string name() const override { return "pong"; }
  std::string reference() const override { return "Atari 2600 Pong (ALE PongNoFrameskip-v4)"; }
  const std::vector<std::string>& action_names() const override {
    static const std::vector<std::string> kNames = {"NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"};
    return kNames;
  }

  void reset(Rng& rng) override { power_on(static_cast<uint32_t>(rng.next_u64() >> 32) | 1u); }

  int frame(int action) override {
    if (s_[kOver]) return 0;
    if (action < 0 || action >= 6) throw UsageError("pong: action " + std::to_string(action) + " is not in [0, 6)");
    ++s_[kFrame];
    move_agent(action);
    move_opponent();
    if (s_[kPause] > 0) {
      if (--s_[kPause] == 0) serve();
      return 0;
    }
    return move_ball();
  }

  bool game_over() const override { return s_[kOver] != 0; }
  int lives() const override { return 0; }

  void screen(uint8_t* rgb) const override {
    fill(rgb, 0, kScreenHeight, 0, kScreenWidth, kField);
    fill(rgb, kTopWall, kPlayTop, 0, kScreenWidth, kWall);
    fill(rgb, kPlayBottom, kScreenHeight, 0, kScreenWidth, kWall);
    draw_score(rgb, static_cast<int>(s_[kOppScore]), kOppScoreX, kOppColour);
    draw_score(rgb, static_cast<int>(s_[kAgentScore]), kAgentScoreX, kAgentColour);
    const int oy = static_cast<int>(s_[kOppY]) / kSub, ay = static_cast<int>(s_[kAgentY]) / kSub;
    fill(rgb, oy, oy + kPaddleH, kOppX, kOppX + kPaddleW, kOppColour);
    fill(rgb, ay, ay + kPaddleH, kAgentX, kAgentX + kPaddleW, kAgentColour);
    if (s_[kPause] == 0 && !s_[kOver]) {
      const int bx = static_cast<int>(s_[kBallX]) / kSub, by = static_cast<int>(s_[kBallY]) / kSub;
      fill(rgb, by, by + kBallH, std::max(bx, 0), std::min(bx + kBallW, kScreenWidth), kWall);
    }
  }

  int state_size() const override { return kStateSize; }
  std::vector<double> get_state() const override {
    return std::vector<double>(s_.begin(), s_.end());
  }
  void set_state(const std::vector<double>& st) override {
    if (st.size() != static_cast<size_t>(kStateSize))
      throw UsageError("pong: a state has " + std::to_string(kStateSize) + " values, got " + std::to_string(st.size()));
    std::array<int64_t, kStateSize> v{};
    for (int i = 0; i < kStateSize; ++i) {
      if (!(std::isfinite(st[i]) && st[i] == std::floor(st[i]) && std::fabs(st[i]) < 9.0e15))
        throw UsageError("pong: state value " + std::to_string(i) + " = " + std::to_string(st[i]) +
                           " is not an integer");
      v[i] = static_cast<int64_t>(st[i]);
    }
    auto in = [&](int i, int64_t lo, int64_t hi) {
      if (v[i] < lo || v[i] > hi)
        throw UsageError("pong: state value " + std::to_string(i) + " = " + std::to_string(v[i]) + " is outside [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
    };
    in(kBallX, -8 * kSub, (kScreenWidth + 8) * kSub);
    in(kBallY, kPlayTop * kSub, (kPlayBottom - kBallH) * kSub);
    in(kBallVx, -kBallVxMax, kBallVxMax);
    in(kBallVy, -kBallVyMax, kBallVyMax);
    in(kAgentY, kPlayTop * kSub, (kPlayBottom - kPaddleH) * kSub);
    in(kOppY, kPlayTop * kSub, (kPlayBottom - kPaddleH) * kSub);
    in(kAgentScore, 0, kWinScore);
    in(kOppScore, 0, kWinScore);
    in(kPause, 0, kServePause);
    in(kServeDir, -1, 1);
    in(kAim, -kMaxAim, kMaxAim);
    in(kRng, 1, 0xFFFFFFFFLL);
    in(kFrame, 0, int64_t{1} << 52);
    in(kOver, 0, 1);
    s_ = v;
  }

  std::vector<ScreenRect> score_areas() const override {
    return {{0, 0, kTopWall, kScreenWidth}};  // rows 0-23: both scores, nothing else
  }

 private:
  void power_on(uint32_t seed) {
    s_.fill(0);
    s_[kRng] = seed ? seed : 1;
    s_[kAgentY] = s_[kOppY] = ((kPlayTop + kPlayBottom - kPaddleH) / 2) * kSub;
    s_[kBallX] = (kScreenWidth / 2 - 1) * kSub;  // where the serve starts (not shown until then)
    s_[kBallY] = ((kPlayTop + kPlayBottom) / 2) * kSub;
    s_[kServeDir] = 1;
    s_[kPause] = kServePause;
  }

  // The game's pseudo-random generator: xorshift32.
  uint32_t next_random() {
    uint32_t x = static_cast<uint32_t>(s_[kRng]);
    atari_draw::xorshift32(x);
    s_[kRng] = x;
    return x;
  }

  void serve() {
    const uint32_t r = next_random();
    s_[kBallX] = (kScreenWidth / 2 - 1) * kSub;
    s_[kBallY] = (kPlayTop + 30 + static_cast<int>(r % 100)) * kSub;
    static constexpr int kSlopes[] = {-24, -12, 12, 24};
    s_[kBallVy] = kSlopes[(r >> 8) % 4];
    s_[kBallVx] = kBallVx0 * s_[kServeDir];
    new_aim();
  }
  void new_aim() { s_[kAim] = static_cast<int64_t>(next_random() % (2 * kMaxAim + 1)) - kMaxAim; }

  static int64_t clamp_paddle(int64_t y) {
    return std::clamp<int64_t>(y, kPlayTop * kSub, (kPlayBottom - kPaddleH) * kSub);
  }

  void move_agent(int action) {
    const bool up = action == 2 || action == 4, down = action == 3 || action == 5;
    if (up) s_[kAgentY] = clamp_paddle(s_[kAgentY] - kAgentSpeed);
    if (down) s_[kAgentY] = clamp_paddle(s_[kAgentY] + kAgentSpeed);
  }

  void move_opponent() {
    const int64_t centre = s_[kOppY] + kPaddleH * kSub / 2;
    int64_t target, speed;
    if (s_[kPause] == 0 && s_[kBallVx] < 0) {
      target = s_[kBallY] + kBallH * kSub / 2 + s_[kAim];
      speed = kOppSpeed;
    } else {
      target = ((kPlayTop + kPlayBottom) / 2) * kSub;
      speed = kOppDrift;
    }
    s_[kOppY] = clamp_paddle(s_[kOppY] + std::clamp<int64_t>(target - centre, -speed, speed));
  }

  // Bounces the ball off a paddle whose top row is paddle_y (sub-pixels): the slope from the
  // offset of the hit, the speed up by one step, direction `dir`.
  void hit(int64_t paddle_y, int dir) {
    const int64_t ball_c = s_[kBallY] + kBallH * kSub / 2, pad_c = paddle_y + kPaddleH * kSub / 2;
    const int64_t reach = (kPaddleH + kBallH) * kSub / 2;  // offset at which the ball just touches
    const int64_t off = std::clamp<int64_t>(ball_c - pad_c, -reach, reach);
    s_[kBallVy] = off * kBallVyMax / reach;  // integer division: exact and symmetric
    const int64_t speed = std::min<int64_t>(std::llabs(s_[kBallVx]) + kBallVxStep, kBallVxMax);
    s_[kBallVx] = dir * speed;
  }

  static bool overlaps(int64_t a0, int64_t a1, int64_t b0, int64_t b1) { return a0 < b1 && b0 < a1; }

  // One frame of the ball; returns the frame's reward.
  int move_ball() {
    const int64_t old_x = s_[kBallX];
    s_[kBallX] += s_[kBallVx];
    s_[kBallY] += s_[kBallVy];
    const int64_t top = kPlayTop * kSub, bottom = (kPlayBottom - kBallH) * kSub;
    if (s_[kBallY] < top) { s_[kBallY] = 2 * top - s_[kBallY]; s_[kBallVy] = -s_[kBallVy]; }
    if (s_[kBallY] > bottom) { s_[kBallY] = 2 * bottom - s_[kBallY]; s_[kBallVy] = -s_[kBallVy]; }
    const int64_t by0 = s_[kBallY], by1 = by0 + kBallH * kSub;
    // The paddles: the ball's path this frame crossed the paddle's face, at a height the paddle covers.
    if (s_[kBallVx] < 0) {
      const int64_t face = (kOppX + kPaddleW) * kSub;
      if (old_x >= face - kSub && s_[kBallX] < face && s_[kBallX] + kBallW * kSub > kOppX * kSub &&
          overlaps(by0, by1, s_[kOppY], s_[kOppY] + kPaddleH * kSub)) {
        s_[kBallX] = face;
        hit(s_[kOppY], +1);
      }
    } else {
      const int64_t face = kAgentX * kSub;
      if (old_x + kBallW * kSub <= face + kSub && s_[kBallX] + kBallW * kSub > face &&
          s_[kBallX] < (kAgentX + kPaddleW) * kSub && overlaps(by0, by1, s_[kAgentY], s_[kAgentY] + kPaddleH * kSub)) {
        s_[kBallX] = face - kBallW * kSub;
        hit(s_[kAgentY], -1);
        new_aim();
      }
    }
    if (s_[kBallX] + kBallW * kSub <= 0) return point(+1);
    if (s_[kBallX] >= kScreenWidth * kSub) return point(-1);
    return 0;
  }

  // A point for the player (+1) or the opponent (-1).
  int point(int who) {
    ++s_[who > 0 ? kAgentScore : kOppScore];
    s_[kServeDir] = who > 0 ? -1 : 1;  // towards the player who lost the point
    s_[kBallX] = (kScreenWidth / 2 - 1) * kSub;
    s_[kBallY] = ((kPlayTop + kPlayBottom) / 2) * kSub;
    s_[kBallVx] = s_[kBallVy] = 0;
    s_[kPause] = kServePause;
    if (s_[kAgentScore] >= kWinScore || s_[kOppScore] >= kWinScore) {
      s_[kOver] = 1;
      s_[kPause] = 0;
    }
    return who;
  }

  static void draw_score(uint8_t* rgb, int score, int x, const atari_draw::Rgb& c) {
    if (score >= 10) atari_draw::digit(rgb, score / 10, kDigitTop, x, kDigitCellW, kDigitCellH, c);
    atari_draw::digit(rgb, score % 10, kDigitTop, x + 3 * kDigitCellW + 4, kDigitCellW, kDigitCellH, c);
  }

  std::array<int64_t, kStateSize> s_{};
};

}  // namespace

std::unique_ptr<AtariGame> make_pong() { return std::make_unique<Pong>(); }

}  // namespace prefrl
