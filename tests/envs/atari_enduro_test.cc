// prefrl's Enduro: ALE's action set, throttle / brake / coasting, steering, the grass, curves,
// passes (+1) and being passed (-1, never below 0), collisions, the day's quota, the time of
// day on the screen, the dashboard as the score area, determinism and exact states, and that a
// driver who dodges the traffic makes the quota where a random one scores nothing.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/envs/atari.h"
#include "prefrl/envs/atari_enduro.h"

namespace prefrl {
namespace {

using namespace enduro;
constexpr int kNoop = 0, kFire = 1, kRight = 2, kLeft = 3, kDown = 4, kRightFire = 7, kLeftFire = 8;

std::vector<uint8_t> screen_of(const AtariGame& g) {
  std::vector<uint8_t> s(AtariGame::kScreenHeight * AtariGame::kScreenWidth * 3);
  g.screen(s.data());
  return s;
}
int count_colour(const std::vector<uint8_t>& s, std::array<uint8_t, 3> c, int r0 = 0,
                 int r1 = AtariGame::kScreenHeight) {
  int n = 0;
  for (int r = r0; r < r1; ++r)
    for (int k = 0; k < AtariGame::kScreenWidth; ++k) {
      const size_t i = (static_cast<size_t>(r) * AtariGame::kScreenWidth + k) * 3;
      n += s[i] == c[0] && s[i + 1] == c[1] && s[i + 2] == c[2];
    }
  return n;
}

std::unique_ptr<AtariGame> new_game(uint64_t seed) {
  std::unique_ptr<AtariGame> g = make_enduro();
  Rng rng(seed);
  g->reset(rng);
  return g;
}

// A state with no traffic and no car about to come into view, on a straight road.
std::vector<double> empty_road(const AtariGame& g, int speed, int x) {
  std::vector<double> s = g.get_state();
  s[kSpeed] = speed;
  s[kX] = x;
  s[kCurve] = s[kCurveTarget] = 0;
  s[kCurveLeft] = 12 * 2000;
  s[kGap] = kGapMax;
  for (int c = 0; c < kMaxCars; ++c) s[kCars + 4 * c + kCarActive] = 0;
  return s;
}
void put_car(std::vector<double>& s, int slot, int pos, int lane) {
  s[kCars + 4 * slot + kCarActive] = 1;
  s[kCars + 4 * slot + kCarPos] = pos;
  s[kCars + 4 * slot + kCarLane] = lane;
  s[kCars + 4 * slot + kCarColour] = 2;
}
int run(AtariGame& g, int action, int frames) {
  int r = 0;
  for (int f = 0; f < frames; ++f) r += g.frame(action);
  return r;
}

TEST(EnduroRules, ActionSetIsALEs) {
  const auto g = make_enduro();
  EXPECT_EQ(g->action_names(), (std::vector<std::string>{"NOOP", "FIRE", "RIGHT", "LEFT", "DOWN", "DOWNRIGHT",
                                                         "DOWNLEFT", "RIGHTFIRE", "LEFTFIRE"}));
  EXPECT_EQ(g->lives(), 0);
  EXPECT_EQ(g->state_size(), kStateSize);
  EXPECT_THROW(g->frame(9), UsageError);
}

TEST(EnduroRules, FireAcceleratesDownBrakesAndTheCarCoastsToAStop) {
  auto g = new_game(1);
  g->set_state(empty_road(*g, 0, 0));
  run(*g, kFire, 10);
  EXPECT_EQ(g->get_state()[kSpeed], 10 * kAccel);
  EXPECT_EQ(g->get_state()[kOdometer], kAccel * (1 + 10) * 10 / 2);  // the distance is the sum of the speeds
  g->frame(kDown);
  EXPECT_EQ(g->get_state()[kSpeed], 10 * kAccel - kBrake);
  g->frame(kNoop);
  EXPECT_EQ(g->get_state()[kSpeed], 10 * kAccel - kBrake - kCoast);
  g->set_state(empty_road(*g, 0, 0));
  run(*g, kFire, kMaxSpeed / kAccel + 20);
  EXPECT_EQ(g->get_state()[kSpeed], kMaxSpeed);
  run(*g, kDown, kMaxSpeed / kBrake + 1);
  EXPECT_EQ(g->get_state()[kSpeed], 0);
  run(*g, kDown, 5);
  EXPECT_EQ(g->get_state()[kSpeed], 0);
}

TEST(EnduroRules, SteeringMovesAMovingCarOnly) {
  auto g = new_game(2);
  g->set_state(empty_road(*g, 0, 0));
  g->frame(kRight);
  EXPECT_EQ(g->get_state()[kX], 0);  // standing still
  g->set_state(empty_road(*g, 100, 0));
  run(*g, kRight, 5);
  EXPECT_EQ(g->get_state()[kX], 5 * kSteer);
  run(*g, kLeftFire, 8);
  EXPECT_EQ(g->get_state()[kX], -3 * kSteer);
  g->set_state(empty_road(*g, 100, kMaxX - 10));
  run(*g, kRightFire, 5);
  EXPECT_EQ(g->get_state()[kX], kMaxX);  // the car cannot leave the screen
}

TEST(EnduroRules, TheGrassSlowsTheCar) {
  auto g = new_game(3);
  g->set_state(empty_road(*g, kMaxSpeed, kRoadHalf + 100));
  run(*g, kFire, 30);  // full throttle loses kOffRoadDrag - kAccel a frame on the grass
  EXPECT_EQ(g->get_state()[kSpeed], kMaxSpeed - 30 * (kOffRoadDrag - kAccel));
  g->set_state(empty_road(*g, kOffRoadSpeed + 30, kRoadHalf + 100));
  run(*g, kFire, 40);  // ... down to kOffRoadSpeed
  EXPECT_EQ(g->get_state()[kSpeed], kOffRoadSpeed);
  g->set_state(empty_road(*g, kMaxSpeed, kRoadHalf - 100));  // on the road: full speed
  run(*g, kFire, 10);
  EXPECT_EQ(g->get_state()[kSpeed], kMaxSpeed);
}

TEST(EnduroRules, ACurvePushesTheCarOutward) {
  auto g = new_game(4);
  for (int curve : {-2, 2}) {
    std::vector<double> s = empty_road(*g, kMaxSpeed, 0);
    s[kCurve] = s[kCurveTarget] = curve;
    g->set_state(s);
    run(*g, kFire, 10);
    EXPECT_EQ(g->get_state()[kX], -10 * curve * kMaxSpeed / kCurveDrift) << "curve " << curve;
  }
}

TEST(EnduroRules, PassingACarIsPlusOne) {
  auto g = new_game(5);
  std::vector<double> s = empty_road(*g, kMaxSpeed, 0);
  put_car(s, 0, 700, 1);  // ahead, in the right lane: no collision
  g->set_state(s);
  EXPECT_EQ(run(*g, kFire, 10), 1);
  EXPECT_EQ(g->get_state()[kPassedToday], 1);
  EXPECT_LT(g->get_state()[kCars + kCarPos], 0);
}

TEST(EnduroRules, BeingPassedIsMinusOneButTheCountNeverGoesBelowZero) {
  auto g = new_game(6);
  std::vector<double> s = empty_road(*g, 0, 0);
  put_car(s, 0, -300, -1);
  s[kPassedToday] = 5;
  g->set_state(s);
  EXPECT_EQ(run(*g, kNoop, 10), -1);
  EXPECT_EQ(g->get_state()[kPassedToday], 4);
  s[kPassedToday] = 0;
  g->set_state(s);
  EXPECT_EQ(run(*g, kNoop, 10), 0);
  EXPECT_EQ(g->get_state()[kPassedToday], 0);
  EXPECT_GT(g->get_state()[kCars + kCarPos], 0);  // it did pass
}

TEST(EnduroRules, RunningIntoACarStopsThePlayerAndPassesNothing) {
  auto g = new_game(7);
  std::vector<double> s = empty_road(*g, kMaxSpeed, 100);
  put_car(s, 0, 900, 0);  // ahead in the player's lane
  g->set_state(s);
  int r = 0, frames = 0;
  while (g->get_state()[kSpeed] > 0 && frames < 10) r += g->frame(kFire), ++frames;
  EXPECT_EQ(g->get_state()[kSpeed], 0) << "no collision within 10 frames";
  EXPECT_EQ(g->get_state()[kCars + kCarPos], kCarLength);
  r += run(*g, kNoop, 60);  // the other car drives away
  EXPECT_EQ(r, 0);
  EXPECT_GT(g->get_state()[kCars + kCarPos], 60 * kTrafficSpeed);
}

TEST(EnduroRules, ADayEndsInTheNextDayOnlyWithTheQuota) {
  auto g = new_game(8);
  std::vector<double> s = empty_road(*g, 0, 0);
  s[kDayFrame] = kDayFrames - 1;
  s[kPassedToday] = kFirstQuota;
  g->set_state(s);
  g->frame(kNoop);
  EXPECT_FALSE(g->game_over());
  EXPECT_EQ(g->get_state()[kDay], 2);
  EXPECT_EQ(g->get_state()[kDayFrame], 0);
  EXPECT_EQ(g->get_state()[kPassedToday], 0);
  // Day 2's quota is 300: 299 is not enough.
  s = g->get_state();
  s[kDayFrame] = kDayFrames - 1;
  s[kPassedToday] = kLaterQuota - 1;
  g->set_state(s);
  g->frame(kNoop);
  EXPECT_TRUE(g->game_over());
  const std::vector<double> over = g->get_state();
  EXPECT_EQ(g->frame(kFire), 0);
  EXPECT_EQ(g->get_state(), over);  // nothing moves after the game
}

TEST(EnduroRules, TheTimeOfDayChangesTheScreenAndAtNightOnlyTailLightsShow) {
  EXPECT_EQ(phase_of(0), Phase::kDay);
  EXPECT_EQ(phase_of(kDayFrames * 8 / 20), Phase::kSnow);
  EXPECT_EQ(phase_of(kDayFrames * 10 / 20), Phase::kDusk);
  EXPECT_EQ(phase_of(kDayFrames * 12 / 20), Phase::kNight);
  EXPECT_EQ(phase_of(kDayFrames * 16 / 20), Phase::kFog);
  EXPECT_EQ(phase_of(kDayFrames - 1), Phase::kDawn);
  auto g = new_game(9);
  std::vector<double> s = empty_road(*g, 0, 0);
  put_car(s, 0, 1500, 0);
  const std::array<uint8_t, 3> car_colour = {187, 187, 53}, tail = {200, 72, 72}, day_sky = {45, 50, 184};
  g->set_state(s);
  auto day = screen_of(*g);
  EXPECT_EQ(count_colour(day, day_sky, 0, 10), 160 * 10);
  EXPECT_GT(count_colour(day, car_colour, kHorizon, kRoadBottom), 20);
  s[kDayFrame] = kDayFrames * 12 / 20;
  g->set_state(s);
  auto night = screen_of(*g);
  EXPECT_EQ(count_colour(night, day_sky, 0, 10), 0);
  EXPECT_EQ(count_colour(night, car_colour, kHorizon, kRoadBottom), 0);
  EXPECT_GT(count_colour(night, tail, kHorizon, kPlayerRow - 12), 0);  // the other car's tail lights
  // In the fog a far car does not show, a near one does.
  s[kDayFrame] = kDayFrames * 16 / 20;
  s[kCars + kCarPos] = 12000;
  g->set_state(s);
  EXPECT_EQ(count_colour(screen_of(*g), car_colour, kHorizon, kRoadBottom), 0);
  s[kCars + kCarPos] = 1500;
  g->set_state(s);
  EXPECT_GT(count_colour(screen_of(*g), car_colour, kHorizon, kRoadBottom), 20);
}

TEST(EnduroRules, TheRoadsEdgeMarkersMoveWithTheCar) {
  auto g = new_game(10);
  g->set_state(empty_road(*g, kMaxSpeed, 0));
  const auto a = screen_of(*g);
  g->frame(kFire);
  const auto b = screen_of(*g);
  EXPECT_NE(std::vector<uint8_t>(a.begin() + kHorizon * 480, a.begin() + kRoadBottom * 480),
            std::vector<uint8_t>(b.begin() + kHorizon * 480, b.begin() + kRoadBottom * 480));
}

TEST(EnduroRules, TheScoreAreaIsTheDashboardAndHoldsEveryCounter) {
  const auto g = make_enduro();
  const std::vector<ScreenRect> areas = g->score_areas();
  ASSERT_EQ(areas.size(), 1u);
  EXPECT_EQ(areas[0].top, kDashTop);
  EXPECT_EQ(areas[0].top + areas[0].height, AtariGame::kScreenHeight);
  EXPECT_EQ(areas[0].width, AtariGame::kScreenWidth);
  auto h = new_game(11);
  const std::vector<double> base = empty_road(*h, 0, 0);
  h->set_state(base);
  const auto blank = screen_of(*h);
  // The odometer (a multiple of the edge markers' period, so the road looks the same), the day
  // and the cars to go change pixels of the dashboard only.
  for (int k = 1; k <= 5; ++k) {
    std::vector<double> s = base;
    s[kOdometer] += k * 12000;
    s[kDay] = 1 + k;
    s[kPassedToday] = 37 * k;
    h->set_state(s);
    const auto shown = screen_of(*h);
    EXPECT_EQ(std::vector<uint8_t>(blank.begin(), blank.begin() + kDashTop * 480),
              std::vector<uint8_t>(shown.begin(), shown.begin() + kDashTop * 480));
    EXPECT_NE(blank, shown);
  }
}

TEST(EnduroRules, SameSeedSameGameAndStatesRestoreExactly) {
  auto a = new_game(12), b = new_game(12);
  Rng acts(1);
  for (int f = 0; f < 4000; ++f) {
    const int act = f % 3 ? kFire : static_cast<int>(acts.integer(9));
    ASSERT_EQ(a->frame(act), b->frame(act));
  }
  EXPECT_EQ(a->get_state(), b->get_state());
  EXPECT_EQ(screen_of(*a), screen_of(*b));
  EXPECT_NE(new_game(13)->get_state()[kRng], a->get_state()[kRng]);
  auto c = make_enduro();
  c->set_state(a->get_state());
  for (int f = 0; f < 1000; ++f) {
    const int act = static_cast<int>(acts.integer(9));
    ASSERT_EQ(a->frame(act), c->frame(act));
  }
  EXPECT_EQ(a->get_state(), c->get_state());
  EXPECT_EQ(screen_of(*a), screen_of(*c));
}

TEST(EnduroRules, BadStatesAreRefusedAndChangeNothing) {
  auto g = new_game(14);
  const std::vector<double> good = g->get_state();
  EXPECT_THROW(g->set_state(std::vector<double>(3, 0.0)), UsageError);
  for (auto [i, v] : std::vector<std::pair<int, double>>{{kSpeed, kMaxSpeed + 1.0},
                                                        {kX, 0.5},
                                                        {kDay, 0},
                                                        {kCurve, kCurveMax + 1.0},
                                                        {kRng, 0},
                                                        {kCars + kCarLane, 2}}) {
    std::vector<double> bad = good;
    bad[i] = v;
    EXPECT_THROW(g->set_state(bad), UsageError) << "index " << i;
  }
  EXPECT_EQ(g->get_state(), good);
}

// Plays day 1 (and on, up to `frames`) with `policy` (frame, state => action); returns {score, frames, day}.
template <class P>
std::array<int, 3> play(uint64_t seed, int max_frames, P policy) {
  auto g = new_game(seed);
  int score = 0, frames = 0;
  while (!g->game_over() && frames < max_frames) {
    score += g->frame(policy(frames, g->get_state()));
    ++frames;
  }
  return {score, frames, static_cast<int>(g->get_state()[kDay])};
}

// Full throttle, steering into the lane whose next car is farthest ahead, braking when the car
// ahead in the lane the player is in is close.
int dodger(const std::vector<double>& s) {
  std::array<double, 3> free_for = {1e9, 1e9, 1e9};
  for (int c = 0; c < kMaxCars; ++c) {
    const double* car = &s[kCars + 4 * c];
    if (car[kCarActive] && car[kCarPos] > -kCarLength)
      free_for[static_cast<int>(car[kCarLane]) + 1] = std::min(free_for[static_cast<int>(car[kCarLane]) + 1], car[kCarPos]);
  }
  const int here = std::abs(s[kX]) < kLane / 2 ? 1 : (s[kX] > 0 ? 2 : 0);
  int best = here;
  for (int l = 0; l < 3; ++l)
    if (free_for[l] > free_for[best] + 500 && std::abs(l - here) == 1) best = l;
  const double target = (best - 1) * kLane;
  bool blocked = false;
  for (int c = 0; c < kMaxCars; ++c) {
    const double* car = &s[kCars + 4 * c];
    if (car[kCarActive] && car[kCarPos] > 0 && car[kCarPos] < 2500 &&
        std::abs(s[kX] - car[kCarLane] * kLane) < 2 * kCarHalfWidth + 60)
      blocked = true;
  }
  const int steer = target > s[kX] + kSteer ? 1 : (target < s[kX] - kSteer ? -1 : 0);
  if (blocked) return steer > 0 ? 5 : (steer < 0 ? 6 : kDown);
  return steer > 0 ? kRightFire : (steer < 0 ? kLeftFire : kFire);
}

TEST(EnduroRules, ARandomDriverScoresNothingAndADodgerMakesTheQuota) {
  Rng r(3);
  int act = 0;
  const auto random = play(1, 3 * kDayFrames, [&](int f, const std::vector<double>&) {
    if (f % 4 == 0) act = static_cast<int>(r.integer(9));
    return act;
  });
  EXPECT_LE(random[0], 5);
  EXPECT_EQ(random[1], kDayFrames);  // the game ends with day 1
  int collisions = 0;
  double speed_sum = 0;
  const auto driver = play(2, kDayFrames + 10, [&](int, const std::vector<double>& s) {
    speed_sum += s[kSpeed];
    for (int c = 0; c < kMaxCars; ++c) collisions += s[kCars + 4 * c + kCarActive] && s[kCars + 4 * c + kCarPos] == kCarLength;
    return dodger(s);
  });
  std::printf("dodger: %d passed, %d collisions, mean speed %.0f\n", driver[0], collisions, speed_sum / driver[1]);
  EXPECT_GE(driver[0], kFirstQuota) << "the dodger passed " << driver[0];
  EXPECT_EQ(driver[2], 2);
}

}  // namespace
}  // namespace prefrl
