// prefrl's Pong: ALE's action set, the look of the screen, the paddle, walls, spin off the
// paddle's edge, the opponent's limited speed, points, the game of 21, determinism and exact
// states.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/envs/atari.h"
#include "prefrl/envs/atari_pong.h"

namespace prefrl {
namespace {

using namespace pong;
constexpr int kNoop = 0, kUp = 2, kDown = 3;

std::vector<uint8_t> screen_of(const AtariGame& g) {
  std::vector<uint8_t> s(AtariGame::kScreenHeight * AtariGame::kScreenWidth * 3);
  g.screen(s.data());
  return s;
}
std::array<uint8_t, 3> pixel(const std::vector<uint8_t>& s, int row, int col) {
  const size_t k = (static_cast<size_t>(row) * AtariGame::kScreenWidth + col) * 3;
  return {s[k], s[k + 1], s[k + 2]};
}

std::unique_ptr<AtariGame> new_game(uint64_t seed) {
  std::unique_ptr<AtariGame> g = make_pong();
  Rng rng(seed);
  g->reset(rng);
  return g;
}

// A state in play with the ball at (x, y) pixels moving (vx, vy) sub-pixels a frame.
std::vector<double> in_play(const AtariGame& g, int x, int y, int vx, int vy) {
  std::vector<double> s = g.get_state();
  s[kBallX] = x * kSub;
  s[kBallY] = y * kSub;
  s[kBallVx] = vx;
  s[kBallVy] = vy;
  s[kPause] = 0;
  return s;
}

TEST(PongRules, ActionSetIsALEs) {
  const auto g = make_pong();
  EXPECT_EQ(g->action_names(), (std::vector<std::string>{"NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"}));
  EXPECT_EQ(g->lives(), 0);
  EXPECT_EQ(g->state_size(), kStateSize);
}

TEST(PongRules, TheScreenLooksLikeALEsPong) {
  auto g = new_game(1);
  for (int f = 0; f < kServePause; ++f) g->frame(kNoop);  // served
  const auto s = screen_of(*g);
  EXPECT_EQ(pixel(s, 100, 80 - 30), (std::array<uint8_t, 3>{144, 72, 17}));  // the field
  EXPECT_EQ(pixel(s, 28, 80), (std::array<uint8_t, 3>{236, 236, 236}));      // top wall
  EXPECT_EQ(pixel(s, 200, 80), (std::array<uint8_t, 3>{236, 236, 236}));     // bottom wall
  const std::vector<double> st = g->get_state();
  const int ay = static_cast<int>(st[kAgentY]) / kSub, oy = static_cast<int>(st[kOppY]) / kSub;
  EXPECT_EQ(pixel(s, ay + 8, kAgentX + 1), (std::array<uint8_t, 3>{92, 186, 92}));
  EXPECT_EQ(pixel(s, oy + 8, kOppX + 1), (std::array<uint8_t, 3>{213, 130, 74}));
  const int bx = static_cast<int>(st[kBallX]) / kSub, by = static_cast<int>(st[kBallY]) / kSub;
  EXPECT_EQ(pixel(s, by + 1, bx), (std::array<uint8_t, 3>{236, 236, 236}));  // the ball
  // The scores 0 - 0 in the players' colours above the wall.
  int agent_px = 0, opp_px = 0;
  for (int r = 0; r < kTopWall; ++r)
    for (int c = 0; c < AtariGame::kScreenWidth; ++c) {
      agent_px += pixel(s, r, c) == std::array<uint8_t, 3>{92, 186, 92};
      opp_px += pixel(s, r, c) == std::array<uint8_t, 3>{213, 130, 74};
    }
  EXPECT_GT(agent_px, 0);
  EXPECT_EQ(agent_px, opp_px);
}

TEST(PongRules, RightMovesThePaddleUpLeftDownAndTheWallsStopIt) {
  auto g = new_game(2);
  const double y0 = g->get_state()[kAgentY];
  g->frame(kUp);
  EXPECT_EQ(g->get_state()[kAgentY], y0 - kAgentSpeed);
  g->frame(kDown);
  g->frame(5);  // LEFTFIRE = LEFT
  EXPECT_EQ(g->get_state()[kAgentY], y0 + kAgentSpeed);
  g->frame(1);  // FIRE does not move it
  EXPECT_EQ(g->get_state()[kAgentY], y0 + kAgentSpeed);
  for (int f = 0; f < 200; ++f) g->frame(4);  // RIGHTFIRE = RIGHT, all the way up
  EXPECT_EQ(g->get_state()[kAgentY], kPlayTop * kSub);
  for (int f = 0; f < 200; ++f) g->frame(kDown);
  EXPECT_EQ(g->get_state()[kAgentY], (kPlayBottom - kPaddleH) * kSub);
}

TEST(PongRules, TheBallBouncesOffTheWalls) {
  auto g = new_game(3);
  g->set_state(in_play(*g, 80, kPlayTop + 1, 16, -24));  // going up at the top wall
  g->frame(kNoop);
  g->frame(kNoop);
  EXPECT_GT(g->get_state()[kBallVy], 0);
  EXPECT_GE(g->get_state()[kBallY], kPlayTop * kSub);
  g->set_state(in_play(*g, 80, kPlayBottom - kBallH - 1, 16, 24));
  g->frame(kNoop);
  g->frame(kNoop);
  EXPECT_LT(g->get_state()[kBallVy], 0);
  EXPECT_LE(g->get_state()[kBallY], (kPlayBottom - kBallH) * kSub);
}

// The ball's vertical speed after it meets the player's paddle `offset` pixels below its centre.
double slope_after_hit(int offset) {
  auto g = new_game(4);
  std::vector<double> s = in_play(*g, kAgentX - kBallW - 1, 100, 24, 0);
  s[kAgentY] = (100 + kBallH / 2 - kPaddleH / 2 - offset) * kSub;
  g->set_state(s);
  for (int f = 0; f < 3; ++f) g->frame(kNoop);
  const std::vector<double> after = g->get_state();
  EXPECT_LT(after[kBallVx], 0) << "the ball should come back, offset " << offset;
  EXPECT_EQ(after[kBallVx], -(24 + kBallVxStep)) << "one speed step per hit";
  return after[kBallVy];
}

TEST(PongRules, SpinOffThePaddleEdgeIsSteeperThanTheCentre) {
  EXPECT_EQ(slope_after_hit(0), 0.0);
  const double mid = slope_after_hit(4), edge = slope_after_hit(9);
  EXPECT_GT(mid, 0);
  EXPECT_GT(edge, 2 * mid);
  EXPECT_LE(edge, kBallVyMax);
  EXPECT_EQ(slope_after_hit(-9), -edge);  // the upper edge sends it up as steeply
}

TEST(PongRules, AnAgentPointIsPlusOneAndShowsOnTheScoreboard) {
  auto g = new_game(5);
  std::vector<double> s = in_play(*g, 8, 60, -48, 0);
  s[kOppY] = (kPlayBottom - kPaddleH) * kSub;  // the opponent is far away
  g->set_state(s);
  const auto before = screen_of(*g);
  int reward = 0;
  for (int f = 0; f < 10 && reward == 0; ++f) reward = g->frame(kNoop);
  EXPECT_EQ(reward, 1);
  EXPECT_EQ(g->get_state()[kAgentScore], 1);
  EXPECT_EQ(g->get_state()[kPause], kServePause);
  EXPECT_EQ(g->get_state()[kServeDir], -1);  // served towards the opponent, who lost the point
  const auto after = screen_of(*g);
  bool score_changed = false;
  for (int r = 0; r < kTopWall; ++r)
    for (int c = 0; c < AtariGame::kScreenWidth; ++c) score_changed |= pixel(before, r, c) != pixel(after, r, c);
  EXPECT_TRUE(score_changed);
  // An opponent point is -1.
  g->set_state(in_play(*g, 150, 60, 48, 0));
  std::vector<double> t = g->get_state();
  t[kAgentY] = (kPlayBottom - kPaddleH) * kSub;
  g->set_state(t);
  reward = 0;
  for (int f = 0; f < 10 && reward == 0; ++f) reward = g->frame(kNoop);
  EXPECT_EQ(reward, -1);
  EXPECT_EQ(g->get_state()[kOppScore], 1);
}

TEST(PongRules, TheOpponentsSpeedIsLimited) {
  // A steep ball far from the opponent gets past it; a flat one at its height does not.
  auto g = new_game(6);
  std::vector<double> s = in_play(*g, 60, kPlayTop + 2, -48, kBallVyMax);
  s[kOppY] = kPlayTop * kSub;
  s[kAim] = 0;
  g->set_state(s);
  int reward = 0;
  for (int f = 0; f < 60 && reward == 0; ++f) reward = g->frame(kNoop);
  EXPECT_EQ(reward, 1) << "the opponent caught a ball it cannot reach at 2 px a frame";
  auto h = new_game(6);
  std::vector<double> t = in_play(*h, 60, 100, -24, 0);
  t[kOppY] = (100 - kPaddleH / 2) * kSub;
  t[kAim] = 0;
  h->set_state(t);
  for (int f = 0; f < 40; ++f) h->frame(kNoop);
  EXPECT_GT(h->get_state()[kBallVx], 0) << "the opponent should return a flat ball at its height";
}

TEST(PongRules, TheGameEndsAt21AndNothingMovesAfterwards) {
  auto g = new_game(7);
  std::vector<double> s = in_play(*g, 8, 60, -48, 0);
  s[kAgentScore] = 20;
  s[kOppScore] = 13;
  s[kOppY] = (kPlayBottom - kPaddleH) * kSub;
  g->set_state(s);
  int reward = 0;
  for (int f = 0; f < 10 && reward == 0; ++f) reward = g->frame(kNoop);
  EXPECT_EQ(reward, 1);
  EXPECT_TRUE(g->game_over());
  const std::vector<double> over = g->get_state();
  const auto scr = screen_of(*g);
  for (int f = 0; f < 100; ++f) EXPECT_EQ(g->frame(kUp), 0);
  EXPECT_EQ(g->get_state(), over);
  EXPECT_EQ(screen_of(*g), scr);
}

TEST(PongRules, SameSeedSameGameAndStatesRestoreExactly) {
  auto a = new_game(8), b = new_game(8);
  Rng acts(1);
  for (int f = 0; f < 3000; ++f) {
    const int act = static_cast<int>(acts.integer(6));
    ASSERT_EQ(a->frame(act), b->frame(act));
  }
  EXPECT_EQ(screen_of(*a), screen_of(*b));
  EXPECT_NE(new_game(9)->get_state()[kRng], a->get_state()[kRng]);
  // From a restored state the game continues exactly.
  auto c = make_pong();
  c->set_state(a->get_state());
  for (int f = 0; f < 500; ++f) {
    const int act = static_cast<int>(acts.integer(6));
    ASSERT_EQ(a->frame(act), c->frame(act));
  }
  EXPECT_EQ(a->get_state(), c->get_state());
  EXPECT_EQ(screen_of(*a), screen_of(*c));
}

TEST(PongRules, BadStatesAreRefusedAndChangeNothing) {
  auto g = new_game(10);
  const std::vector<double> good = g->get_state();
  EXPECT_THROW(g->set_state(std::vector<double>(3, 0.0)), UsageError);
  std::vector<double> bad = good;
  bad[kAgentScore] = 22;
  EXPECT_THROW(g->set_state(bad), UsageError);
  bad = good;
  bad[kBallY] = 0.5;
  EXPECT_THROW(g->set_state(bad), UsageError);
  bad = good;
  bad[kRng] = 0;
  EXPECT_THROW(g->set_state(bad), UsageError);
  EXPECT_EQ(g->get_state(), good);
}

TEST(PongRules, TheScoreAreaHoldsTheScoresAndNothingElse) {
  const auto g = make_pong();
  const std::vector<ScreenRect> areas = g->score_areas();
  ASSERT_EQ(areas.size(), 1u);
  EXPECT_EQ(areas[0].top, 0);
  EXPECT_EQ(areas[0].height, kTopWall);  // above the top wall: no part of the play area
  // Every score from 0 to 21 lights pixels inside it only.
  auto h = new_game(11);
  for (int score = 0; score <= 21; ++score) {
    std::vector<double> s = h->get_state();
    const auto blank = screen_of(*h);
    s[kAgentScore] = score;
    s[kOppScore] = 21 - score;
    h->set_state(s);
    const auto shown = screen_of(*h);
    for (int r = kTopWall; r < AtariGame::kScreenHeight; ++r)
      for (int c = 0; c < AtariGame::kScreenWidth; ++c) ASSERT_EQ(pixel(blank, r, c), pixel(shown, r, c));
  }
}

// Plays one game with `policy` (frame, state => action); returns {player's points, opponent's, frames}.
template <class P>
std::array<int, 3> play(uint64_t seed, P policy) {
  auto g = new_game(seed);
  int frames = 0;
  while (!g->game_over() && frames < 200000) {
    g->frame(policy(frames, g->get_state()));
    ++frames;
  }
  const auto s = g->get_state();
  return {static_cast<int>(s[kAgentScore]), static_cast<int>(s[kOppScore]), frames};
}

TEST(PongRules, ARandomPlayerLosesATrackerScoresAndAnEdgeHitterWins) {
  Rng r(3);
  // A random player (an action held for 4 frames, as with frame skip 4) loses clearly.
  int act = 0;
  const auto random = play(1, [&](int f, const std::vector<double>&) {
    if (f % 4 == 0) act = static_cast<int>(r.integer(6));
    return act;
  });
  EXPECT_EQ(random[1], 21);
  EXPECT_LE(random[0], 3);
  EXPECT_GT(random[2], 2500);  // ALE's random Pong games last some 800-1000 agent steps of 4 frames
  EXPECT_LT(random[2], 40000);
  // Following the ball with the paddle's centre wins points; aiming off the edge wins the game.
  auto follow = [](int offset) {
    return [offset](int, const std::vector<double>& s) {
      const double target = s[kBallY] + kBallH * kSub / 2 + offset * kSub;
      const double centre = s[kAgentY] + kPaddleH * kSub / 2;
      return target < centre - kSub ? kUp : (target > centre + kSub ? kDown : kNoop);
    };
  };
  const auto tracker = play(2, follow(0));
  EXPECT_GE(tracker[0], 1) << "a tracker should win points";
  const auto edge = play(2, follow(8));  // the ball meets the paddle's upper edge
  EXPECT_EQ(edge[0], 21) << "edge hits should beat the opponent (" << edge[0] << "-" << edge[1] << ")";
}

}  // namespace
}  // namespace prefrl
