// prefrl's Enduro: Activision's Enduro (1983) for the Atari 2600 as ALE's EnduroNoFrameskip-v4
// shows it.
//
// Facts it follows: a 210 x 160 screen with the sky and mountains above the horizon, a road in
// perspective that curves, the player's car near the bottom and the traffic ahead, the
// dashboard (odometer, day, cars still to pass) below the road; ALE's nine actions (NOOP, FIRE
// = accelerate, RIGHT, LEFT, DOWN = brake, DOWNRIGHT, DOWNLEFT, RIGHTFIRE, LEFTFIRE); the reward
// is the change of the number of cars passed this day, so +1 per car passed and -1 per car that
// passes the player (the count never goes below 0: a car passing a player who has passed none
// costs nothing, and a random player scores 0, as in ALE); a day's quota of 200 cars on day 1 and
// 300 on every later day, the game over when a day ends short of it; the day going by as clear
// day, snow, dusk, night (only the traffic's tail lights show), fog (only near cars show) and
// dawn; a collision stops the car; driving off the road slows it; a curve pushes the car
// outward.
//
// Choices of its own (the ROM's exact numbers are not documented): the numbers in
// atari_enduro.h (top speed 2.5 times the traffic's, about 2.7 s from standstill to it, a day of
// 13312 frames); traffic in three lanes at one constant speed, a car every 3000-9000 road units
// (uniform), coming into view at the horizon when the player is faster and from behind when it
// is slower; curvature that moves one step every 2000 road units towards a target held for
// 8000-24000 units.
#include "prefrl/envs/atari_enduro.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/envs/atari.h"
#include "prefrl/envs/atari_draw.h"

namespace prefrl {

namespace {

using namespace enduro;  // the state layout and constants (atari_enduro.h)
using atari_draw::fill;
using atari_draw::Rgb;

constexpr int kCurveStep = 2000;              // road units per step of the curvature
constexpr int kStripe = 1200;                 // the road's edge markers: on / off every this many road units
constexpr double kDepth0 = 3000.0;            // perspective: row = horizon + (player row - horizon) * Z0 / (Z0 + d)
constexpr double kHalfWidthAtPlayer = 58.0;   // the road's half-width in pixels at the player's row
constexpr int kCurveShift = 10;               // pixels the far end of the road bends per curvature step
constexpr int kCarW = 16, kCarH = 10;         // a car's size in pixels at the player's depth
constexpr int kFogDepth = 6000;               // in the fog only cars nearer than this show
constexpr int kSceneryScale = 1024;           // kScenery is in 1/1024 pixel

struct Palette {
  Rgb sky, mountains, ground, road, edge;
};
Palette palette(Phase p) {
  switch (p) {
    case Phase::kDay: return {{45, 50, 184}, {134, 134, 29}, {0, 68, 0}, {111, 111, 111}, {214, 214, 214}};
    case Phase::kSnow: return {{84, 138, 210}, {170, 170, 170}, {236, 236, 236}, {170, 170, 170}, {84, 92, 214}};
    case Phase::kDusk: return {{181, 83, 40}, {72, 44, 0}, {45, 87, 20}, {90, 90, 90}, {200, 200, 200}};
    case Phase::kNight: return {{0, 0, 0}, {24, 26, 167}, {0, 0, 0}, {0, 0, 0}, {74, 74, 74}};
    case Phase::kFog: return {{142, 142, 142}, {142, 142, 142}, {110, 110, 110}, {130, 130, 130}, {170, 170, 170}};
    case Phase::kDawn: return {{198, 108, 58}, {105, 105, 15}, {20, 80, 20}, {100, 100, 100}, {214, 214, 214}};
  }
  return {};
}
constexpr Rgb kPlayerColour = {131, 61, 183};
constexpr Rgb kTailLight = {200, 72, 72};
constexpr Rgb kDash = {0, 0, 0}, kDashText = {236, 236, 236}, kFlag = {50, 132, 50};
constexpr Rgb kCarColours[kNumCarColours] = {{200, 72, 72}, {84, 92, 214}, {187, 187, 53},
                                             {0, 0, 0},     {236, 236, 236}, {66, 158, 130}};

// The screen row of the bottom of a car d road units ahead of the player (behind: d < 0).
double row_of(double d) { return kHorizon + (kPlayerRow - kHorizon) * kDepth0 / (kDepth0 + d); }
// The road units ahead of the player shown at screen row y (> kHorizon).
double depth_of(int y) { return kDepth0 * (kPlayerRow - kHorizon) / (y - kHorizon) - kDepth0; }
// Perspective scale at row y: 1 at the player's row, 0 at the horizon.
double scale_at(double y) { return (y - kHorizon) / (kPlayerRow - kHorizon); }

class Enduro final : public AtariGame {
 public:
  Enduro() { power_on(1); }

  std::string name() const override { return "enduro"; }
  std::string reference() const override { return "Activision Enduro for the Atari 2600 (ALE EnduroNoFrameskip-v4)"; }
  const std::vector<std::string>& action_names() const override {
    static const std::vector<std::string> kNames = {"NOOP",      "FIRE",     "RIGHT",     "LEFT",    "DOWN",
                                                    "DOWNRIGHT", "DOWNLEFT", "RIGHTFIRE", "LEFTFIRE"};
    return kNames;
  }

  void reset(Rng& rng) override { power_on(static_cast<uint32_t>(rng.next_u64() >> 32) | 1u); }

  int frame(int action) override {
    if (s_[kOver]) return 0;
    if (action < 0 || action >= 9) throw UsageError("enduro: action " + std::to_string(action) + " is not in [0, 9)");
    ++s_[kFrame];
    drive(action);
    advance_road();
    const int64_t before = s_[kPassedToday];
    move_traffic();
    s_[kPassedToday] = std::max<int64_t>(s_[kPassedToday], 0);  // the count of cars to go never exceeds the quota
    const int reward = static_cast<int>(s_[kPassedToday] - before);
    if (++s_[kDayFrame] >= kDayFrames) end_of_day();
    return reward;
  }

  bool game_over() const override { return s_[kOver] != 0; }
  int lives() const override { return 0; }

  void screen(uint8_t* rgb) const override {
    const Phase ph = phase_of(static_cast<int>(s_[kDayFrame]));
    const Palette pal = palette(ph);
    fill(rgb, 0, kHorizon, 0, kScreenWidth, pal.sky);
    draw_mountains(rgb, pal.mountains);
    draw_road(rgb, pal, ph);
    draw_traffic(rgb, ph);
    const int px = player_column();
    fill(rgb, kPlayerRow - kCarH, kPlayerRow, px - kCarW / 2, px + kCarW / 2, kPlayerColour);
    if (ph == Phase::kNight) fill(rgb, kPlayerRow - 2, kPlayerRow, px - kCarW / 2, px + kCarW / 2, kTailLight);
    draw_dashboard(rgb);
  }

  int state_size() const override { return kStateSize; }
  std::vector<double> get_state() const override { return std::vector<double>(s_.begin(), s_.end()); }
  void set_state(const std::vector<double>& st) override {
    if (st.size() != static_cast<size_t>(kStateSize))
      throw UsageError("enduro: a state has " + std::to_string(kStateSize) + " values, got " +
                       std::to_string(st.size()));
    std::array<int64_t, kStateSize> v{};
    for (int i = 0; i < kStateSize; ++i) {
      if (!(std::isfinite(st[i]) && st[i] == std::floor(st[i]) && std::fabs(st[i]) < 9.0e15))
        throw UsageError("enduro: state value " + std::to_string(i) + " = " + std::to_string(st[i]) +
                         " is not an integer");
      v[i] = static_cast<int64_t>(st[i]);
    }
    auto in = [&](int i, int64_t lo, int64_t hi) {
      if (v[i] < lo || v[i] > hi)
        throw UsageError("enduro: state value " + std::to_string(i) + " = " + std::to_string(v[i]) + " is outside [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
    };
    constexpr int64_t kBig = int64_t{1} << 52;
    in(kSpeed, 0, kMaxSpeed);
    in(kX, -kMaxX, kMaxX);
    in(kOdometer, 0, kBig);
    in(kDayFrame, 0, kDayFrames - 1);
    in(kDay, 1, 1000000);
    in(kPassedToday, 0, kBig);
    in(kCurve, -kCurveMax, kCurveMax);
    in(kCurveTarget, -kCurveMax, kCurveMax);
    in(kCurveLeft, -kMaxSpeed, 12 * kCurveStep);
    in(kGap, -kMaxSpeed, 2 * kGapMax + kMaxSpeed);
    in(kScenery, 0, kScreenWidth * kSceneryScale - 1);
    in(kRng, 1, 0xFFFFFFFFLL);
    in(kFrame, 0, kBig);
    in(kOver, 0, 1);
    for (int c = 0; c < kMaxCars; ++c) {
      const int b = kCars + 4 * c;
      in(b + kCarActive, 0, 1);
      in(b + kCarPos, -kViewBehind - 2 * kGapMax, kViewAhead + 2 * kGapMax);
      in(b + kCarLane, -1, 1);
      in(b + kCarColour, 0, kNumCarColours - 1);
    }
    s_ = v;
  }

  std::vector<ScreenRect> score_areas() const override {
    return {{kDashTop, 0, kScreenHeight - kDashTop, kScreenWidth}};  // the dashboard: odometer, day, cars to go
  }

 private:
  void power_on(uint32_t seed) {
    s_.fill(0);
    s_[kRng] = seed ? seed : 1;
    s_[kDay] = 1;
    s_[kCurveLeft] = 4 * kCurveStep;
    s_[kGap] = draw_gap();
  }

  uint32_t next_random() {
    uint32_t x = static_cast<uint32_t>(s_[kRng]);
    atari_draw::xorshift32(x);
    s_[kRng] = x;
    return x;
  }
  int64_t draw_gap() { return kGapMin + static_cast<int64_t>(next_random() % (kGapMax - kGapMin + 1)); }
  int quota() const { return s_[kDay] == 1 ? kFirstQuota : kLaterQuota; }

  // Throttle, brake, steering, the grass and the curve's push.
  void drive(int action) {
    const bool fire = action == 1 || action == 7 || action == 8;
    const bool down = action == 4 || action == 5 || action == 6;
    const bool right = action == 2 || action == 5 || action == 7;
    const bool left = action == 3 || action == 6 || action == 8;
    int64_t& v = s_[kSpeed];
    v += fire ? kAccel : down ? -kBrake : -kCoast;
    if (std::llabs(s_[kX]) > kRoadHalf && v > kOffRoadSpeed) v = std::max<int64_t>(kOffRoadSpeed, v - kOffRoadDrag);
    v = std::clamp<int64_t>(v, 0, kMaxSpeed);
    if (v > 0) s_[kX] += (right ? kSteer : 0) - (left ? kSteer : 0);
    s_[kX] -= s_[kCurve] * v / kCurveDrift;  // truncation towards 0: symmetric left and right
    s_[kX] = std::clamp<int64_t>(s_[kX], -kMaxX, kMaxX);
    s_[kOdometer] += v;
  }

  // The curvature and the scenery move with the distance driven.
  void advance_road() {
    const int64_t v = s_[kSpeed];
    s_[kScenery] = ((s_[kScenery] + s_[kCurve] * v) % (kScreenWidth * kSceneryScale) + kScreenWidth * kSceneryScale) %
                   (kScreenWidth * kSceneryScale);
    s_[kCurveLeft] -= v;
    while (s_[kCurveLeft] <= 0) {
      if (s_[kCurve] != s_[kCurveTarget]) {
        s_[kCurve] += s_[kCurveTarget] > s_[kCurve] ? 1 : -1;
        s_[kCurveLeft] += kCurveStep;
      } else {
        // Straight twice as often as any one curvature.
        const uint32_t r = next_random();
        const int t = static_cast<int>(r % (2 * kCurveMax + 2)) - kCurveMax;  // -3..4, and 4 means straight
        s_[kCurveTarget] = t > kCurveMax ? 0 : t;
        s_[kCurveLeft] += 4 * kCurveStep + static_cast<int64_t>((r >> 8) % (8 * kCurveStep + 1));
      }
    }
  }

  // The traffic moves relative to the player: passes, collisions, cars coming into view.
  void move_traffic() {
    const int64_t rel = s_[kSpeed] - kTrafficSpeed;
    for (int c = 0; c < kMaxCars; ++c) {
      int64_t* car = &s_[kCars + 4 * c];
      if (!car[kCarActive]) continue;
      const int64_t old = car[kCarPos];
      car[kCarPos] -= rel;
      const bool side_by_side = std::llabs(s_[kX] - car[kCarLane] * kLane) < 2 * kCarHalfWidth;
      if (side_by_side && old >= 0 && car[kCarPos] < kCarLength) {
        // The player ran into the car ahead: it stops; the other car drives on.
        car[kCarPos] = kCarLength;
        s_[kSpeed] = 0;
      } else if (old > 0 && car[kCarPos] <= 0) {
        ++s_[kPassedToday];
      } else if (old <= 0 && car[kCarPos] > 0) {
        --s_[kPassedToday];
      }
      if (car[kCarPos] > kViewAhead + kGapMax || car[kCarPos] < -kViewBehind - kGapMax) car[kCarActive] = 0;
    }
    s_[kGap] -= rel;
    if (s_[kGap] <= 0) {
      spawn(kViewAhead);
      s_[kGap] += draw_gap();
    } else if (s_[kGap] > 2 * kGapMax) {
      spawn(-kViewBehind);
      s_[kGap] -= draw_gap();
    }
  }

  void spawn(int64_t pos) {
    const uint32_t r = next_random();
    for (int c = 0; c < kMaxCars; ++c) {
      int64_t* car = &s_[kCars + 4 * c];
      if (car[kCarActive]) continue;
      car[kCarActive] = 1;
      car[kCarPos] = pos;
      car[kCarLane] = static_cast<int64_t>(r % 3) - 1;
      car[kCarColour] = static_cast<int64_t>((r >> 8) % kNumCarColours);
      return;
    }
  }

  void end_of_day() {
    if (s_[kPassedToday] >= quota()) {
      ++s_[kDay];
      s_[kDayFrame] = 0;
      s_[kPassedToday] = 0;
    } else {
      s_[kOver] = 1;
      s_[kDayFrame] = kDayFrames - 1;
    }
  }

  // The road's centre column at row y: straight at the player, bent by the curvature towards the horizon.
  int centre_column(double y) const {
    const double t = 1.0 - std::clamp(scale_at(y), 0.0, 1.0);
    return kScreenWidth / 2 + static_cast<int>(std::lround(s_[kCurve] * kCurveShift * t * t));
  }
  double half_width(double y) const { return 2.0 + (kHalfWidthAtPlayer - 2.0) * scale_at(y); }
  int column_of(double y, int64_t lateral) const {
    return centre_column(y) + static_cast<int>(std::lround(lateral * half_width(y) / kRoadHalf));
  }
  int player_column() const { return column_of(kPlayerRow, s_[kX]); }

  void draw_mountains(uint8_t* rgb, const Rgb& c) const {
    const int off = static_cast<int>(s_[kScenery] / kSceneryScale);
    for (int col = 0; col < kScreenWidth; ++col) {
      const int u = (col + off) % 40;
      const int h = 2 + (u < 20 ? u : 40 - u) / 3 + ((col + off) % 160 < 80 ? 3 : 0);
      fill(rgb, kHorizon - h, kHorizon, col, col + 1, c);
    }
  }

  void draw_road(uint8_t* rgb, const Palette& pal, Phase ph) const {
    fill(rgb, kHorizon, kRoadBottom, 0, kScreenWidth, pal.ground);
    const int fog_row = static_cast<int>(row_of(kFogDepth));
    for (int y = kHorizon + 1; y < kRoadBottom; ++y) {
      if (ph == Phase::kFog && y < fog_row) {
        fill(rgb, y, y + 1, 0, kScreenWidth, pal.sky);
        continue;
      }
      const int cx = centre_column(y), w = static_cast<int>(std::lround(half_width(y)));
      fill(rgb, y, y + 1, cx - w, cx + w, pal.road);
      const int64_t at = s_[kOdometer] + static_cast<int64_t>(std::floor(depth_of(y))) + kStripe * 4;  // >= 0
      if (((at / kStripe) & 1) == 0) {
        fill(rgb, y, y + 1, cx - w - 1, cx - w + 1, pal.edge);
        fill(rgb, y, y + 1, cx + w - 1, cx + w + 1, pal.edge);
      }
    }
  }

  void draw_traffic(uint8_t* rgb, Phase ph) const {
    // Far cars first, so nearer ones cover them.
    std::array<int, kMaxCars> order{};
    int n = 0;
    for (int c = 0; c < kMaxCars; ++c) {
      if (!s_[kCars + 4 * c + kCarActive]) continue;
      int k = n++;  // insertion by position, farthest first
      for (; k > 0 && s_[kCars + 4 * order[k - 1] + kCarPos] < s_[kCars + 4 * c + kCarPos]; --k) order[k] = order[k - 1];
      order[k] = c;
    }
    for (int k = 0; k < n; ++k) {
      const int64_t* car = &s_[kCars + 4 * order[k]];
      const int64_t d = car[kCarPos];
      if (d <= -kDepth0 / 2 || (ph == Phase::kFog && d > kFogDepth)) continue;
      const double y = row_of(static_cast<double>(d));
      const double sc = scale_at(y);
      const int w = std::max(2, static_cast<int>(std::lround(kCarW * sc)));
      const int h = std::max(1, static_cast<int>(std::lround(kCarH * sc)));
      const int bottom = static_cast<int>(std::lround(y)), col = column_of(y, car[kCarLane] * kLane);
      const int top = std::max(bottom - h, kHorizon);
      const int b = std::min(bottom, kRoadBottom);
      if (ph == Phase::kNight) {
        const int lw = std::max(1, w / 4);
        fill(rgb, std::max(b - std::max(1, h / 4), top), b, col - w / 2, col - w / 2 + lw, kTailLight);
        fill(rgb, std::max(b - std::max(1, h / 4), top), b, col + w / 2 - lw, col + w / 2, kTailLight);
      } else {
        fill(rgb, top, b, col - w / 2, col + w / 2, kCarColours[car[kCarColour]]);
      }
    }
  }

  void draw_dashboard(uint8_t* rgb) const {
    fill(rgb, kDashTop, kScreenHeight, 0, kScreenWidth, kDash);
    // The odometer, in tenths of a "mile" of 40000 road units: five digits.
    int64_t odo = s_[kOdometer] / 4000;
    for (int i = 4; i >= 0; --i, odo /= 10)
      atari_draw::digit(rgb, static_cast<int>(odo % 10), kDashTop + 3, 48 + i * 14, 3, 2, kDashText);
    const int day = static_cast<int>(std::min<int64_t>(s_[kDay], 9));
    atari_draw::digit(rgb, day, kDashTop + 17, 40, 3, 2, kDashText);
    const int64_t left = std::max<int64_t>(0, quota() - s_[kPassedToday]);
    if (left == 0) {
      for (int i = 0; i < 3; ++i) fill(rgb, kDashTop + 17, kDashTop + 27, 80 + i * 14, 90 + i * 14, kFlag);
    } else {
      int64_t l = left;
      for (int i = 2; i >= 0; --i, l /= 10)
        atari_draw::digit(rgb, static_cast<int>(l % 10), kDashTop + 17, 80 + i * 14, 3, 2, kDashText);
    }
  }

  std::array<int64_t, kStateSize> s_{};
};

}  // namespace

std::unique_ptr<AtariGame> make_enduro() { return std::make_unique<Enduro>(); }

}  // namespace prefrl
