// prefrl's Enduro (atari_enduro.cc): the layout of its state and the constants its tests check.
#pragma once

namespace prefrl::enduro {

// Longitudinal distances are in "road units" (a traffic car is kCarLength long); lateral
// positions in units where the road's half-width is kRoadHalf.
constexpr int kMaxSpeed = 480;       // road units per frame at full throttle
constexpr int kTrafficSpeed = 192;   // every other car's constant speed
constexpr int kAccel = 3, kCoast = 1, kBrake = 8;  // speed change per frame: FIRE, nothing, DOWN
constexpr int kOffRoadSpeed = 160;   // off the road the car slows to this
constexpr int kOffRoadDrag = 6;      // speed lost per frame off the road above kOffRoadSpeed
constexpr int kRoadHalf = 1000;      // lateral: the road spans [-kRoadHalf, kRoadHalf]
constexpr int kMaxX = 1300;          // the car can leave the road up to here
constexpr int kLane = 600;           // traffic drives in lanes at -kLane, 0, +kLane
constexpr int kCarHalfWidth = 200;   // cars collide when their centres are < 2 x this apart
constexpr int kCarLength = 400;      // ... and their positions along the road < this apart
constexpr int kSteer = 30;           // lateral units per frame while LEFT / RIGHT is held and the car moves
constexpr int kCurveMax = 3;         // curvature in [-kCurveMax, kCurveMax]; negative bends left
constexpr int kCurveDrift = 64;      // a curve pushes the car outward by curve * speed / this per frame
constexpr int kViewAhead = 24000;    // traffic appears at the horizon this far ahead
constexpr int kViewBehind = 1200;    // ... or this far behind, when it overtakes the player
constexpr int kGapMin = 3000, kGapMax = 9000;  // distance between consecutive traffic cars
constexpr int kDayFrames = 13312;    // frames in a day (about 3 min 42 s)
constexpr int kFirstQuota = 200, kLaterQuota = 300;  // cars to pass on day 1, on every later day
constexpr int kMaxCars = 8;

// Screen rows: the sky above kHorizon, the road from kHorizon to kRoadBottom, the player's car
// with its bottom row at kPlayerRow, the dashboard (odometer, day, cars to go) from kDashTop.
constexpr int kHorizon = 52, kPlayerRow = 150, kRoadBottom = 178, kDashTop = 178;

// The state, in order (every value an integer, so exact as a double).
enum StateIndex : int {
  kSpeed,        // [0, kMaxSpeed]
  kX,            // lateral position of the player's car, [-kMaxX, kMaxX]
  kOdometer,     // road units driven since the power-on
  kDayFrame,     // frames into the current day
  kDay,          // 1, 2, ...
  kPassedToday,  // cars passed minus cars that passed the player, this day
  kCurve, kCurveTarget,
  kCurveLeft,    // road units until the curvature moves a step towards its target
  kGap,          // relative road units until the next traffic car comes into view
  kScenery,      // horizontal offset of the mountains, pixels mod 160
  kRng,          // the game's 32-bit xorshift state (never 0)
  kFrame,        // frames since the power-on
  kOver,         // 1 once a day ended short of its quota
  kCars,         // kMaxCars x {active, position relative to the player, lane -1/0/+1, colour}
  kStateSize = kCars + 4 * kMaxCars
};
constexpr int kCarActive = 0, kCarPos = 1, kCarLane = 2, kCarColour = 3;
constexpr int kNumCarColours = 6;

// The time of day, by the fraction of the day gone (as in the original: a clear day, snow,
// dusk, night when only tail lights show, fog, dawn).
enum class Phase { kDay, kSnow, kDusk, kNight, kFog, kDawn };
inline Phase phase_of(int day_frame) {
  const int f = day_frame * 20 / kDayFrames;  // twentieths of the day
  if (f < 7) return Phase::kDay;
  if (f < 9) return Phase::kSnow;
  if (f < 11) return Phase::kDusk;
  if (f < 15) return Phase::kNight;
  if (f < 17) return Phase::kFog;
  return Phase::kDawn;
}

}  // namespace prefrl::enduro
