// The Atari preprocessing (atari_env.h) on small fake games written here, whose screens show
// what happened: the top half's grey level is the frame counter, the bottom half's the last
// action, and a flickering game draws sprite A on odd frames and sprite B on even ones.
// Each piece is checked on its own (frame max, grey, area resampling, score masks), then
// AtariEnv's rules (max pool, frame skip, early end, no-ops, sticky actions, life loss, time
// limit), its state round trip, determinism, and make_atari's stack and vectorisation.
#include "prefrl/envs/atari_env.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "prefrl/core/config.h"
#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/wrappers.h"

namespace prefrl {
namespace {

constexpr int kH = AtariGame::kScreenHeight, kW = AtariGame::kScreenWidth;
constexpr size_t kScreenBytes = static_cast<size_t>(kH) * kW * 3;

// What the tests see of a game from outside (not part of its state).
struct Probe {
  int frames = 0;             // frame() calls
  int frames_after_over = 0;  // ... made after the game was over
  int resets = 0;             // reset() calls
  int screens = 0;            // screen() calls
  bool log = false;
  std::vector<int> received;  // with log: the action of every frame() call
};

struct FakeOptions {
  int n_actions = 4;
  int length = 0;      // the game is over after this many frames (0: only when the lives run out)
  int lives = 0;       // lives at the start (0: the game has none)
  int life_every = 0;  // a life is lost every this many frames
  bool flicker = false;
  std::vector<ScreenRect> areas;
};

// Screen: rows [0, 105) grey (frame counter mod 256), rows [105, 210) grey 20 x last action + 7;
// flicker: sprite A (rows [140, 160), columns [0, 40)) white on odd frames, sprite B (rows
// [140, 160), columns [120, 160)) white on even ones. Reward of a frame: 1 + its action.
class FakeGame : public AtariGame {
 public:
  FakeGame(FakeOptions o, std::shared_ptr<Probe> probe) : o_(std::move(o)), probe_(std::move(probe)) {
    for (int a = 0; a < o_.n_actions; ++a) names_.push_back(a == 0 ? "NOOP" : "A" + std::to_string(a));
    lives_ = o_.lives;
  }
  std::string name() const override { return "fake"; }
  std::string reference() const override { return "a fake game of the tests"; }
  const std::vector<std::string>& action_names() const override { return names_; }
  void reset(Rng& rng) override {
    ++probe_->resets;
    seed_ = static_cast<double>(rng.next_u64() >> 11);
    n_ = last_ = score_ = 0;
    lives_ = o_.lives;
    over_ = false;
  }
  int frame(int action) override {
    ++probe_->frames;
    if (over_) {
      ++probe_->frames_after_over;
      return 0;
    }
    if (probe_->log) probe_->received.push_back(action);
    ++n_;
    last_ = action;
    const int reward = 1 + action;
    score_ += reward;
    if (o_.life_every > 0 && lives_ > 0 && n_ % o_.life_every == 0 && --lives_ == 0) over_ = true;
    if (o_.length > 0 && n_ >= o_.length) over_ = true;
    return reward;
  }
  bool game_over() const override { return over_; }
  int lives() const override { return lives_; }
  void screen(uint8_t* rgb) const override {
    ++probe_->screens;
    const size_t half = kScreenBytes / 2;
    std::memset(rgb, n_ & 255, half);
    std::memset(rgb + half, 20 * last_ + 7, half);
    if (o_.flicker) {
      const int left = n_ % 2 ? 0 : 120;
      for (int r = 140; r < 160; ++r) std::memset(rgb + (static_cast<size_t>(r) * kW + left) * 3, 255, 40 * 3);
    }
  }
  int state_size() const override { return 6; }
  std::vector<double> get_state() const override {
    return {double(n_), double(last_), double(score_), double(lives_), over_ ? 1.0 : 0.0, seed_};
  }
  void set_state(const std::vector<double>& s) override {
    if (s.size() != 6) throw UsageError("fake: wrong state size");
    if (s[0] < 0 || s[1] < 0 || s[1] >= o_.n_actions) throw UsageError("fake: state out of range");
    n_ = static_cast<int>(s[0]);
    last_ = static_cast<int>(s[1]);
    score_ = static_cast<int>(s[2]);
    lives_ = static_cast<int>(s[3]);
    over_ = s[4] != 0;
    seed_ = s[5];
  }
  std::vector<ScreenRect> score_areas() const override { return o_.areas; }

 private:
  FakeOptions o_;
  std::shared_ptr<Probe> probe_;
  std::vector<std::string> names_;
  int n_ = 0, last_ = 0, score_ = 0, lives_ = 0;
  bool over_ = false;
  double seed_ = 0;
};

// A config without randomness unless a test asks for it.
AtariConfig plain_config() {
  AtariConfig c;
  c.noop_max = 0;
  c.frame_stack = 1;
  return c;
}

struct Made {
  std::unique_ptr<AtariEnv> env;
  std::shared_ptr<Probe> probe;
};

Made make(const FakeOptions& o, const AtariConfig& cfg) {
  auto probe = std::make_shared<Probe>();
  return {std::make_unique<AtariEnv>(std::make_unique<FakeGame>(o, probe), cfg), probe};
}

// The byte at (channel, row, column) of a (C x size x size) observation.
int px(const std::vector<float>& obs, int row, int col, int ch = 0, int size = 84) {
  return static_cast<int>(std::lround(obs[(static_cast<size_t>(ch) * size + row) * size + col] * 255.0f));
}
int counter(const std::vector<float>& obs) { return px(obs, 10, 40); }      // top half
int action_code(const std::vector<float>& obs) { return px(obs, 75, 40); }  // bottom half, below the sprites
bool sprite_a(const std::vector<float>& obs) { return px(obs, 60, 10) == 255; }
bool sprite_b(const std::vector<float>& obs) { return px(obs, 60, 73) == 255; }

StepResult step(Env& env, int a, std::vector<float>& obs) {
  const float act = static_cast<float>(a);
  return env.step(&act, obs.data());
}

std::vector<uint8_t> constant_screen(uint8_t r, uint8_t g, uint8_t b) {
  std::vector<uint8_t> s(kScreenBytes);
  for (size_t i = 0; i < s.size(); i += 3) { s[i] = r; s[i + 1] = g; s[i + 2] = b; }
  return s;
}

// ---- The pieces ----------------------------------------------------------------------------

TEST(AtariPieces, MaxFramesIsElementwise) {
  const std::vector<uint8_t> a = {0, 5, 255, 7, 100}, b = {1, 4, 0, 7, 200};
  std::vector<uint8_t> out(5);
  max_frames(a.data(), b.data(), out.data(), 5);
  EXPECT_EQ(out, (std::vector<uint8_t>{1, 5, 255, 7, 200}));
  std::vector<uint8_t> in_place = a;
  max_frames(in_place.data(), b.data(), in_place.data(), 5);
  EXPECT_EQ(in_place, out);
}

TEST(AtariPieces, GreyIsOpenCvsLuminanceRounded) {
  EXPECT_EQ(rgb_to_grey(255, 0, 0), 76);   // 0.299 * 255 = 76.2
  EXPECT_EQ(rgb_to_grey(0, 255, 0), 150);  // 0.587 * 255 = 149.7
  EXPECT_EQ(rgb_to_grey(0, 0, 255), 29);   // 0.114 * 255 = 29.1
  EXPECT_EQ(rgb_to_grey(255, 255, 255), 255);
  EXPECT_EQ(rgb_to_grey(0, 0, 0), 0);
  EXPECT_EQ(rgb_to_grey(100, 150, 200), 141);  // 140.75
  for (int v = 0; v < 256; ++v) ASSERT_EQ(rgb_to_grey(v, v, v), v) << v;
  // Through the resizer: a pure colour screen becomes its grey level.
  ScreenResizer grey(84, true);
  std::vector<uint8_t> out(84 * 84);
  grey.resize(constant_screen(255, 0, 0).data(), out.data());
  EXPECT_EQ(out, std::vector<uint8_t>(84 * 84, 76));
  grey.resize(constant_screen(0, 255, 0).data(), out.data());
  EXPECT_EQ(out, std::vector<uint8_t>(84 * 84, 150));
  grey.resize(constant_screen(0, 0, 255).data(), out.data());
  EXPECT_EQ(out, std::vector<uint8_t>(84 * 84, 29));
}

TEST(AtariPieces, ResizeKeepsAConstantImageConstant) {
  for (int size : {84, 64, 1, 7, 200, 420}) {
    ScreenResizer grey(size, true), rgb(size, false);
    EXPECT_EQ(grey.channels(), 1);
    EXPECT_EQ(rgb.output_size(), 3 * size * size);
    std::vector<uint8_t> g(static_cast<size_t>(grey.output_size())), c(static_cast<size_t>(rgb.output_size()));
    grey.resize(constant_screen(77, 77, 77).data(), g.data());
    EXPECT_EQ(g, std::vector<uint8_t>(g.size(), 77)) << size;
    rgb.resize(constant_screen(10, 200, 255).data(), c.data());
    const size_t plane = static_cast<size_t>(size) * size;
    EXPECT_EQ(std::vector<uint8_t>(c.begin(), c.begin() + plane), std::vector<uint8_t>(plane, 10)) << size;
    EXPECT_EQ(std::vector<uint8_t>(c.begin() + plane, c.begin() + 2 * plane), std::vector<uint8_t>(plane, 200));
    EXPECT_EQ(std::vector<uint8_t>(c.begin() + 2 * plane, c.end()), std::vector<uint8_t>(plane, 255));
  }
}

TEST(AtariPieces, ResizeOfOneLitPixelIsItsAreaShare) {
  // 210 -> 84: an output row covers 2.5 source rows; 160 -> 84: an output column 40/21 columns.
  ScreenResizer grey(84, true);
  std::vector<uint8_t> out(84 * 84);
  {
    // Source (3, 5): row 3 lies inside output row 1 ([2.5, 5)), share 1 / 2.5 = 0.4; column 5
    // is split between output column 2 ([80/21, 120/21): 15/21 of it, share 15/40) and column
    // 3 (6/21, share 6/40). 255 x 0.4 x 0.375 = 38.25, 255 x 0.4 x 0.15 = 15.3.
    std::vector<uint8_t> s(kScreenBytes, 0);
    for (int ch = 0; ch < 3; ++ch) s[(3 * kW + 5) * 3 + ch] = 255;
    grey.resize(s.data(), out.data());
    std::vector<uint8_t> expected(84 * 84, 0);
    expected[1 * 84 + 2] = 38;
    expected[1 * 84 + 3] = 15;
    EXPECT_EQ(out, expected);
  }
  {
    // Source (2, 0): row 2 is half in output row 0, half in row 1 (0.5 / 2.5 = 0.2 each);
    // column 0 is inside output column 0 (share 21/40): 255 x 0.2 x 0.525 = 26.775.
    std::vector<uint8_t> s(kScreenBytes, 0);
    for (int ch = 0; ch < 3; ++ch) s[(2 * kW + 0) * 3 + ch] = 255;
    grey.resize(s.data(), out.data());
    std::vector<uint8_t> expected(84 * 84, 0);
    expected[0 * 84 + 0] = 27;
    expected[1 * 84 + 0] = 27;
    EXPECT_EQ(out, expected);
  }
  {
    // RGB is channel-first; a lit red byte shows in channel 0 only.
    ScreenResizer rgb(84, false);
    std::vector<uint8_t> s(kScreenBytes, 0), o(3 * 84 * 84);
    s[(3 * kW + 5) * 3 + 0] = 255;
    rgb.resize(s.data(), o.data());
    std::vector<uint8_t> expected(3 * 84 * 84, 0);
    expected[1 * 84 + 2] = 38;
    expected[1 * 84 + 3] = 15;
    EXPECT_EQ(o, expected);
  }
}

TEST(AtariPieces, ResizeIsTheAreaWeightedMeanOfItsFootprint) {
  // Against a direct computation in doubles on a random picture: every byte within half a
  // level of the exact mean (rounding to nearest).
  Rng rng(4);
  std::vector<uint8_t> s(kScreenBytes);
  for (auto& b : s) b = static_cast<uint8_t>(rng.integer(256));
  for (int size : {84, 50}) {
    ScreenResizer rgb(size, false);
    std::vector<uint8_t> out(static_cast<size_t>(rgb.output_size()));
    rgb.resize(s.data(), out.data());
    const double fy = double(kH) / size, fx = double(kW) / size;
    for (int ch = 0; ch < 3; ++ch) {
      for (int i = 0; i < size; ++i) {
        for (int j = 0; j < size; ++j) {
          double sum = 0;
          for (int r = int(i * fy); r < kH && r < (i + 1) * fy; ++r) {
            const double wr = std::min<double>(r + 1, (i + 1) * fy) - std::max<double>(r, i * fy);
            for (int c = int(j * fx); c < kW && c < (j + 1) * fx; ++c) {
              const double wc = std::min<double>(c + 1, (j + 1) * fx) - std::max<double>(c, j * fx);
              sum += wr * wc * s[(static_cast<size_t>(r) * kW + c) * 3 + ch];
            }
          }
          const double mean = sum / (fy * fx);
          ASSERT_LE(std::abs(out[(static_cast<size_t>(ch) * size + i) * size + j] - mean), 0.5 + 1e-9)
              << size << " " << ch << " " << i << " " << j;
        }
      }
    }
  }
}

TEST(AtariPieces, MaskCoversExactlyTheFootprintsThatOverlapTheAreas) {
  {
    // Rows [0, 5): output rows 0 ([0, 2.5)) and 1 ([2.5, 5)), not row 2 ([5, 7.5), which only
    // touches it). Columns [0, 2): output column 0 ([0, 1.905)) and column 1 ([1.905, 3.81)).
    const std::vector<uint8_t> m = screen_area_mask({{0, 0, 5, 2}}, 84);
    std::vector<uint8_t> expected(84 * 84, 0);
    expected[0] = expected[1] = expected[84] = expected[85] = 1;
    EXPECT_EQ(m, expected);
  }
  {
    // The single pixel (5, 5): output row 2, output columns 2 and 3.
    const std::vector<uint8_t> m = screen_area_mask({{5, 5, 1, 1}}, 84);
    std::vector<uint8_t> expected(84 * 84, 0);
    expected[2 * 84 + 2] = expected[2 * 84 + 3] = 1;
    EXPECT_EQ(m, expected);
  }
  EXPECT_EQ(screen_area_mask({{10, 10, 0, 30}, {10, 10, 30, 0}}, 84), std::vector<uint8_t>(84 * 84, 0));
  EXPECT_EQ(screen_area_mask({}, 84), std::vector<uint8_t>(84 * 84, 0));
  // Partly off the screen: clipped; wholly off: nothing.
  EXPECT_EQ(screen_area_mask({{-10, -10, 15, 12}}, 84), screen_area_mask({{0, 0, 5, 2}}, 84));
  EXPECT_EQ(screen_area_mask({{300, 0, 10, 10}, {0, 170, 10, 10}}, 84), std::vector<uint8_t>(84 * 84, 0));

  // The mask is where lighting the areas reaches the resized picture.
  const std::vector<ScreenRect> areas = {{0, 0, 17, 160}, {195, 23, 9, 31}, {100, 101, 3, 1}};
  std::vector<uint8_t> lit(kScreenBytes, 0);
  for (const ScreenRect& a : areas)
    for (int r = a.top; r < a.top + a.height; ++r)
      for (int c = a.left; c < a.left + a.width; ++c)
        for (int ch = 0; ch < 3; ++ch) lit[(static_cast<size_t>(r) * kW + c) * 3 + ch] = 255;
  ScreenResizer grey(84, true);
  std::vector<uint8_t> out(84 * 84);
  grey.resize(lit.data(), out.data());
  const std::vector<uint8_t> m = screen_area_mask(areas, 84);
  int masked = 0;
  for (size_t k = 0; k < m.size(); ++k) {
    ASSERT_EQ(m[k], out[k] > 0 ? 1 : 0) << k / 84 << " " << k % 84;
    masked += m[k];
  }
  EXPECT_EQ(masked, 7 * 84 + 4 * 17 + 2 * 1);  // rows [0, 17) => output rows 0..6; the others by hand
}

TEST(AtariPieces, ObservationMaskFollowsTheGameAndTheSwitch) {
  FakeOptions o;
  o.areas = {{0, 0, 17, 160}, {195, 23, 9, 31}};
  FakeGame game(o, std::make_shared<Probe>());
  AtariConfig cfg;
  EXPECT_EQ(atari_observation_mask(game, cfg), screen_area_mask(o.areas, 84));
  cfg.screen_size = 42;
  EXPECT_EQ(atari_observation_mask(game, cfg), screen_area_mask(o.areas, 42));
  const std::vector<uint8_t> small = screen_area_mask(o.areas, 42);
  EXPECT_GT(std::count(small.begin(), small.end(), 1), 0);
  cfg.mask_score = false;
  EXPECT_EQ(atari_observation_mask(game, cfg), std::vector<uint8_t>(42 * 42, 0));
}

// ---- The config and the spec ---------------------------------------------------------------

TEST(AtariConfigTest, KeysHaveDocsBoundsAndDefaults) {
  AtariConfig cfg;
  const auto keys = config_list(cfg);
  std::vector<std::string> names;
  for (const auto& k : keys) {
    names.push_back(k.key);
    EXPECT_FALSE(k.doc.empty()) << k.key;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"frame_skip", "max_pool", "noop_max", "sticky_prob",
                                             "life_loss_ends_episode", "screen_size", "grayscale", "frame_stack",
                                             "max_episode_frames", "mask_score"}));
  EXPECT_EQ(cfg.frame_skip, 4);
  EXPECT_EQ(cfg.noop_max, 30);
  EXPECT_EQ(cfg.sticky_prob, 0.0);
  EXPECT_EQ(cfg.max_episode_frames, 108000);
  config_set(cfg, "sticky_prob", "0.25");
  EXPECT_EQ(cfg.sticky_prob, 0.25);
  EXPECT_THROW(config_set(cfg, "sticky_prob", "1.5"), UsageError);
  EXPECT_THROW(config_set(cfg, "frame_skip", "0"), UsageError);
  AtariConfig bad;
  bad.frame_skip = 0;
  EXPECT_THROW(make(FakeOptions{}, bad), UsageError);
  EXPECT_THROW(AtariEnv(nullptr, AtariConfig{}), UsageError);
}

TEST(AtariEnvTest, SpecFollowsTheGameAndTheConfig) {
  Made m = make(FakeOptions{}, AtariConfig{});
  const EnvSpec& s = m.env->spec();
  EXPECT_EQ(s.name, "fake");
  EXPECT_EQ(s.reference.rfind("a fake game of the tests; preprocessing: frame skip 4", 0), 0u) << s.reference;
  EXPECT_EQ(s.observation.shape, (std::vector<int64_t>{1, 84, 84}));
  EXPECT_EQ(s.observation.dtype, Dtype::kUInt8);
  EXPECT_TRUE(s.action.discrete);
  EXPECT_EQ(s.action.n, 4);
  EXPECT_EQ(s.max_episode_steps, 27000);
  EXPECT_DOUBLE_EQ(s.fps, 15.0);
  EXPECT_TRUE(s.pixels);
  EXPECT_TRUE(s.can_terminate);
  EXPECT_FALSE(s.obs_determines_state);
  EXPECT_TRUE(s.has_true_reward);
  EXPECT_EQ(s.state_size, 2 * 6 + 3);
  EXPECT_EQ(m.env->get_state().size(), 15u);

  AtariConfig rgb;
  rgb.grayscale = false;
  rgb.screen_size = 64;
  rgb.frame_skip = 3;
  EXPECT_EQ(make(FakeOptions{}, rgb).env->spec().observation.shape, (std::vector<int64_t>{3, 64, 64}));
  EXPECT_EQ(make(FakeOptions{}, rgb).env->spec().max_episode_steps, 36000);
  EXPECT_DOUBLE_EQ(make(FakeOptions{}, rgb).env->spec().fps, 20.0);
}

// ---- Frames: max pool, skip, early end, time limit -----------------------------------------

TEST(AtariEnvTest, MaxPoolRemovesFlicker) {
  FakeOptions o;
  o.flicker = true;
  for (int skip : {4, 3, 2}) {
    AtariConfig cfg = plain_config();
    cfg.frame_skip = skip;
    Made pooled = make(o, cfg);
    cfg.max_pool = false;
    Made single = make(o, cfg);
    std::vector<float> a(84 * 84), b(84 * 84);
    pooled.env->reset(a.data());
    single.env->reset(b.data());
    int with_a = 0, with_b = 0;
    for (int t = 1; t <= 20; ++t) {
      step(*pooled.env, 1, a);
      step(*single.env, 1, b);
      ASSERT_TRUE(sprite_a(a) && sprite_b(a)) << skip << " " << t;  // both sprites in every observation
      ASSERT_EQ(counter(a), t * skip);                               // the max of the counters: the newer
      ASSERT_NE(sprite_a(b), sprite_b(b));                           // one frame shows one sprite
      with_a += sprite_a(b);
      with_b += sprite_b(b);
    }
    if (skip % 2) {
      EXPECT_EQ(with_a, 10) << skip;  // the last frame alternates between odd and even
      EXPECT_EQ(with_b, 10) << skip;
    } else {
      EXPECT_EQ(with_b, 20) << skip;  // always even: sprite A never seen without the max
    }
  }
}

TEST(AtariEnvTest, FrameSkipSumsRewardsAndRunsFrameSkipFrames) {
  for (bool pool : {true, false}) {
    AtariConfig cfg = plain_config();
    cfg.max_pool = pool;
    Made m = make(FakeOptions{}, cfg);
    std::vector<float> obs(84 * 84);
    m.env->reset(obs.data());
    EXPECT_EQ(counter(obs), 0);
    for (int t = 1; t <= 12; ++t) {
      const int a = t % 4;
      const int frames = m.probe->frames, screens = m.probe->screens;
      const StepResult r = step(*m.env, a, obs);
      ASSERT_EQ(m.probe->frames - frames, 4);
      ASSERT_EQ(m.probe->screens - screens, pool ? 2 : 1) << "only the frames the observation uses are rendered";
      ASSERT_EQ(r.reward, 4.0f * (1 + a));
      ASSERT_FALSE(r.terminated || r.truncated);
      ASSERT_EQ(counter(obs), 4 * t);
      ASSERT_EQ(action_code(obs), 20 * a + 7);
    }
  }
}

TEST(AtariEnvTest, AGameOverInsideTheSkipEndsTheStepWithTheFramesThatRan) {
  FakeOptions o;
  o.flicker = true;
  for (bool pool : {true, false}) {
    for (int ran : {1, 2, 3, 4}) {  // frames of the last step: the game ends on frame 20 + ran
      o.length = 20 + ran;
      AtariConfig cfg = plain_config();
      cfg.max_pool = pool;
      Made m = make(o, cfg);
      std::vector<float> obs(84 * 84);
      m.env->reset(obs.data());
      for (int t = 1; t <= 5; ++t) ASSERT_FALSE(step(*m.env, 2, obs).terminated);
      const StepResult r = step(*m.env, 3, obs);
      EXPECT_TRUE(r.terminated);
      EXPECT_EQ(r.reward, 4.0f * ran) << ran;
      EXPECT_EQ(m.probe->frames_after_over, 0);
      EXPECT_EQ(m.env->game().get_state()[0], 20 + ran);
      EXPECT_EQ(counter(obs), 20 + ran);
      const bool last_odd = (20 + ran) % 2 == 1;
      if (pool && ran >= 2) {
        EXPECT_TRUE(sprite_a(obs) && sprite_b(obs)) << ran;  // the max of the last two frames that ran
      } else {
        EXPECT_EQ(sprite_a(obs), last_odd) << pool << " " << ran;  // the last frame alone
        EXPECT_EQ(sprite_b(obs), !last_odd) << pool << " " << ran;
      }
      // Its state gives back this observation.
      Made other = make(o, cfg);
      std::vector<float> restored(84 * 84);
      other.env->set_state(m.env->get_state(), restored.data());
      EXPECT_EQ(restored, obs) << pool << " " << ran;
      EXPECT_EQ(other.env->get_state(), m.env->get_state());
    }
  }
}

TEST(AtariEnvTest, TimeLimitIsInAgentSteps) {
  for (int frames : {40, 41, 0}) {
    AtariConfig cfg = plain_config();
    cfg.max_episode_frames = frames;
    Made m = make(FakeOptions{}, cfg);
    const int limit = frames == 40 ? 10 : frames == 41 ? 11 : 0;  // ceil(frames / 4)
    EXPECT_EQ(m.env->spec().max_episode_steps, limit);
    std::vector<float> obs(84 * 84);
    m.env->reset(obs.data());
    for (int t = 1; t <= 30; ++t) {
      const StepResult r = step(*m.env, 0, obs);
      ASSERT_FALSE(r.terminated);
      ASSERT_EQ(r.truncated, limit > 0 && t % limit == 0) << frames << " " << t;
      if (r.truncated) m.env->reset(obs.data());
    }
  }
}

// ---- Resets: no-op starts ------------------------------------------------------------------

TEST(AtariEnvTest, NoopStartsAreUniformOverZeroToNoopMaxAgentSteps) {
  AtariConfig cfg = plain_config();
  cfg.noop_max = 30;
  Made m = make(FakeOptions{}, cfg);
  m.env->seed(17);
  std::vector<float> obs(84 * 84);
  std::map<int, int> counts;
  constexpr int kResets = 3100;
  for (int i = 0; i < kResets; ++i) {
    m.env->reset(obs.data());
    const int frames = static_cast<int>(m.env->game().get_state()[0]);
    ASSERT_EQ(frames % 4, 0) << "a no-op is a whole agent step";
    ASSERT_GE(frames / 4, 0);
    ASSERT_LE(frames / 4, 30);
    ASSERT_EQ(counter(obs), frames);
    ++counts[frames / 4];
  }
  EXPECT_EQ(counts.size(), 31u) << "every count from 0 to 30 appears";
  double chi2 = 0;
  const double expected = kResets / 31.0;  // 100
  for (const auto& [n, c] : counts) {
    EXPECT_GT(c, 50) << n;  // 5 standard deviations
    EXPECT_LT(c, 150) << n;
    chi2 += (c - expected) * (c - expected) / expected;
  }
  EXPECT_LT(chi2, 70.0);  // 30 degrees of freedom: p ~ 5e-5

  // noop_max = 0: none, and the only draw is the game's seed.
  cfg.noop_max = 0;
  Made none = make(FakeOptions{}, cfg);
  none.env->seed(3);
  for (int i = 0; i < 20; ++i) {
    Rng expect_rng = none.env->rng();
    expect_rng.next_u64();
    none.env->reset(obs.data());
    ASSERT_EQ(none.env->game().get_state()[0], 0);
    ASSERT_EQ(none.env->rng().state(), expect_rng.state());
  }
  EXPECT_EQ(none.probe->frames, 0);
}

// ---- Sticky actions ------------------------------------------------------------------------

TEST(AtariEnvTest, StickyActionsRepeatThePreviousFramesActionAtTheirRate) {
  for (double p : {0.25, 0.0, 1.0}) {
    AtariConfig cfg = plain_config();
    cfg.sticky_prob = p;
    Made m = make(FakeOptions{}, cfg);
    m.probe->log = true;
    m.env->seed(3);
    std::vector<float> obs(84 * 84);
    m.env->reset(obs.data());
    Rng expect_rng = m.env->rng();
    const int kSteps = p == 0.25 ? 5000 : 500;
    int distinguishable = 0, repeated = 0;
    for (int t = 0; t < kSteps; ++t) {
      const size_t before = m.probe->received.size();
      const int last = before ? m.probe->received.back() : 0;  // a new game holds NOOP
      const int a = (last + 1 + t % 3) % 4;                     // never the last frame's action
      step(*m.env, a, obs);
      ASSERT_EQ(m.probe->received.size(), before + 4);
      for (size_t f = before; f < before + 4; ++f) {
        const int prev = f == before ? last : m.probe->received[f - 1];
        const int got = m.probe->received[f];
        ASSERT_TRUE(got == a || got == prev);
        if (prev != a) {
          ++distinguishable;
          repeated += got == prev;
        }
      }
      for (int f = 0; f < 4 && p > 0.0; ++f) expect_rng.next_u64();  // one draw per frame
    }
    EXPECT_EQ(m.env->rng().state(), expect_rng.state()) << p << ": draws only when sticky_prob > 0, one per frame";
    const double rate = double(repeated) / distinguishable;
    if (p == 0.25) {
      const double sd = std::sqrt(p * (1 - p) / distinguishable);
      EXPECT_NEAR(rate, p, 4 * sd) << distinguishable << " frames";
    } else {
      EXPECT_EQ(rate, p);  // 0: never; 1: the game holds NOOP for ever
    }
  }
}

// ---- Lives ---------------------------------------------------------------------------------

TEST(AtariEnvTest, ALostLifeEndsTheEpisodeAndTheNextResetContinuesTheGame) {
  FakeOptions o;
  o.lives = 3;
  o.life_every = 10;  // lives lost on frames 10, 20 and 30 (game over)
  AtariConfig cfg = plain_config();
  cfg.life_loss_ends_episode = true;
  Made m = make(o, cfg);
  std::vector<float> obs(84 * 84);
  m.env->reset(obs.data());
  EXPECT_EQ(m.probe->resets, 1);
  const auto steps_to_end = [&] {
    for (int t = 1; t <= 100; ++t)
      if (step(*m.env, 1, obs).terminated) return t;
    return -1;
  };
  const size_t g = 6;
  EXPECT_EQ(steps_to_end(), 3);  // frame 10 is in step 3 (frames 9-12)
  EXPECT_EQ(m.env->game().lives(), 2);
  EXPECT_FALSE(m.env->game().game_over());
  EXPECT_EQ(m.env->get_state()[2 * g + 1], 2);  // lives
  EXPECT_EQ(m.env->get_state()[2 * g + 2], 1);  // a continue is pending
  m.env->reset(obs.data());
  EXPECT_EQ(m.probe->resets, 1) << "the same game goes on";
  EXPECT_EQ(counter(obs), 12);
  EXPECT_EQ(m.env->get_state()[2 * g + 2], 0);
  EXPECT_EQ(steps_to_end(), 2);  // frame 20: steps of frames 13-16, 17-20
  m.env->reset(obs.data());
  EXPECT_EQ(m.probe->resets, 1);
  EXPECT_EQ(steps_to_end(), 3);  // frame 30, the last life: the game is over inside the step
  EXPECT_TRUE(m.env->game().game_over());
  EXPECT_EQ(m.env->get_state()[2 * g + 2], 0);
  m.env->reset(obs.data());
  EXPECT_EQ(m.probe->resets, 2) << "a real reset after the game is over";
  EXPECT_EQ(counter(obs), 0);
  EXPECT_EQ(m.env->game().lives(), 3);

  // Off: only the game's end ends the episode.
  cfg.life_loss_ends_episode = false;
  Made off = make(o, cfg);
  off.env->reset(obs.data());
  int t = 1;
  for (; t <= 100; ++t)
    if (step(*off.env, 1, obs).terminated) break;
  EXPECT_EQ(t, 8);
  EXPECT_TRUE(off.env->game().game_over());
}

// ---- State, determinism --------------------------------------------------------------------

// Steps a and b alike (same actions, resets after an episode's end) and expects the same.
void expect_same_future(Env& a, Env& b, int steps, uint64_t action_seed, bool a_done) {
  const int64_t n = a.spec().observation.numel();
  std::vector<float> oa(n), ob(n);
  if (a_done) {
    a.reset(oa.data());
    b.reset(ob.data());
    ASSERT_EQ(oa, ob) << "after the reset";
  }
  Rng actions(action_seed);
  for (int t = 0; t < steps; ++t) {
    const int act = static_cast<int>(actions.integer(a.spec().action.n));
    const StepResult ra = step(a, act, oa), rb = step(b, act, ob);
    ASSERT_EQ(oa, ob) << "step " << t;
    ASSERT_EQ(ra.reward, rb.reward) << t;
    ASSERT_EQ(ra.terminated, rb.terminated) << t;
    ASSERT_EQ(ra.truncated, rb.truncated) << t;
    ASSERT_EQ(a.get_state(), b.get_state()) << t;
    if (ra.terminated || ra.truncated) {
      a.reset(oa.data());
      b.reset(ob.data());
      ASSERT_EQ(oa, ob) << "reset after step " << t;
    }
  }
}

FakeOptions busy_game() {
  FakeOptions o;
  o.flicker = true;
  o.lives = 3;
  o.life_every = 13;  // lives lost inside steps; the game ends on frame 39, inside a step
  return o;
}

AtariConfig busy_config() {
  AtariConfig cfg = plain_config();
  cfg.sticky_prob = 0.25;
  cfg.noop_max = 3;
  cfg.life_loss_ends_episode = true;
  cfg.max_episode_frames = 60;
  return cfg;
}

TEST(AtariEnvTest, StateRoundTripsBitExactlyIncludingAPendingContinueAndStickyActions) {
  const FakeOptions o = busy_game();
  const AtariConfig cfg = busy_config();
  Made a = make(o, cfg);
  a.env->seed(21);
  std::vector<float> obs(84 * 84);
  int pending_seen = 0, continued_seen = 0, unpooled_seen = 0, pooled_seen = 0, checks = 0;
  // a's state into two fresh envs (b, and a2 standing in for a, which goes on its own way):
  // the same observation and state, and the same future.
  const auto check = [&](bool done) {
    ++checks;
    const std::vector<double> state = a.env->get_state();
    ASSERT_EQ(state.size(), 15u);
    const bool pending = state[14] == 1.0;
    pending_seen += pending;
    const bool pooled = !std::equal(state.begin(), state.begin() + 6, state.begin() + 6);
    pooled_seen += pooled;
    unpooled_seen += !pooled;
    Made b = make(o, cfg), a2 = make(o, cfg);
    std::vector<float> ob(84 * 84), oa(84 * 84);
    b.env->set_state(state, ob.data());
    ASSERT_EQ(ob, obs) << "check " << checks;
    ASSERT_EQ(b.env->get_state(), state) << checks;
    a2.env->set_state(state, oa.data());
    for (Env* e : {b.env.get(), a2.env.get()}) {
      e->rng().set_state(a.env->rng().state());
      e->set_elapsed_steps(a.env->elapsed_steps());
    }
    if (done) {
      a2.env->reset(oa.data());
      b.env->reset(ob.data());
      ASSERT_EQ(oa, ob) << checks;
      ASSERT_EQ(a2.probe->resets, b.probe->resets);
      // A pending continue goes on with the restored game (unless it ends among the no-ops).
      if (pending) continued_seen += b.probe->resets == 0;
    }
    expect_same_future(*a2.env, *b.env, 12, 100 + checks, false);
  };
  a.env->reset(obs.data());
  check(false);
  Rng actions(5);
  for (int t = 0; t < 100; ++t) {
    const StepResult r = step(*a.env, static_cast<int>(actions.integer(4)), obs);
    const bool done = r.terminated || r.truncated;
    check(done);
    if (HasFatalFailure()) return;
    if (done) {
      a.env->reset(obs.data());
      check(false);  // right after a reset
    }
  }
  EXPECT_GT(pending_seen, 3);
  EXPECT_GT(continued_seen, 3);
  EXPECT_GT(unpooled_seen, 3);
  EXPECT_GT(pooled_seen, 50);
}

TEST(AtariEnvTest, SetStateRejectsABadStateChangingNothing) {
  Made m = make(busy_game(), busy_config());
  std::vector<float> obs(84 * 84), other(84 * 84);
  m.env->reset(obs.data());
  for (int t = 0; t < 3; ++t) step(*m.env, 1, obs);
  const std::vector<double> good = m.env->get_state();
  std::vector<double> s = good;
  s.pop_back();
  EXPECT_THROW(m.env->set_state(s, other.data()), UsageError);
  EXPECT_THROW(m.env->set_state({}, other.data()), UsageError);
  s = good;
  s[12] = 4;  // the last action: out of range
  EXPECT_THROW(m.env->set_state(s, other.data()), UsageError);
  s = good;
  s[14] = 0.5;  // the pending flag
  EXPECT_THROW(m.env->set_state(s, other.data()), UsageError);
  s = good;
  s[13] = -1;  // lives
  EXPECT_THROW(m.env->set_state(s, other.data()), UsageError);
  s = good;
  s[0] = -5;  // the game's current state, which the game rejects after the earlier one was set
  EXPECT_THROW(m.env->set_state(s, other.data()), UsageError);
  EXPECT_EQ(m.env->get_state(), good);
}

TEST(AtariEnvTest, AFixedSeedGivesAFixedTrajectory) {
  const auto run = [](uint64_t seed) {
    Made m = make(busy_game(), busy_config());
    m.env->seed(seed);
    std::vector<float> obs(84 * 84), all;
    m.env->reset(obs.data());
    Rng actions(9);
    for (int t = 0; t < 200; ++t) {
      const StepResult r = step(*m.env, static_cast<int>(actions.integer(4)), obs);
      all.insert(all.end(), obs.begin(), obs.end());
      all.push_back(r.reward);
      if (r.terminated || r.truncated) m.env->reset(obs.data());
    }
    return all;
  };
  const std::vector<float> first = run(8);
  EXPECT_EQ(run(8), first);
  EXPECT_NE(run(9), first);
}

TEST(AtariEnvTest, RenderShowsTheGameScreenByNearestNeighbour) {
  FakeOptions o;
  o.flicker = true;
  Made m = make(o, plain_config());
  std::vector<float> obs(84 * 84);
  m.env->reset(obs.data());
  step(*m.env, 2, obs);
  step(*m.env, 3, obs);
  std::vector<uint8_t> screen(kScreenBytes);
  m.env->game().screen(screen.data());
  std::vector<uint8_t> full(kScreenBytes);
  m.env->render(kW, kH, full.data());
  EXPECT_EQ(full, screen);
  std::vector<uint8_t> half(80 * 105 * 3);
  m.env->render(80, 105, half.data());
  for (int y = 0; y < 105; ++y)
    for (int x = 0; x < 80; ++x)
      for (int ch = 0; ch < 3; ++ch)
        ASSERT_EQ(half[(y * 80 + x) * 3 + ch], screen[((2 * y) * kW + 2 * x) * 3 + ch]) << y << " " << x;
  EXPECT_THROW(m.env->render(8, 8, half.data()), UsageError);
}

// ---- make_atari: the stack, its state, vectorisation ---------------------------------------

TEST(AtariStack, StacksTheNewestFrameFirst) {
  FakeOptions o;
  o.flicker = true;
  AtariConfig cfg = plain_config();
  cfg.frame_stack = 4;
  cfg.noop_max = 5;
  std::unique_ptr<Env> stacked = make_atari(std::make_unique<FakeGame>(o, std::make_shared<Probe>()), cfg);
  Made single = make(o, cfg);
  EXPECT_EQ(stacked->spec().observation.shape, (std::vector<int64_t>{4, 84, 84}));
  EXPECT_EQ(stacked->spec().state_size, 4 * 15);
  stacked->seed(2);
  single.env->seed(2);
  const size_t f = 84 * 84;
  std::vector<float> obs(4 * f), one(f);
  stacked->reset(obs.data());
  single.env->reset(one.data());
  std::deque<std::vector<float>> history(4, one);
  const auto frame = [&](int j) { return std::vector<float>(obs.begin() + j * f, obs.begin() + (j + 1) * f); };
  for (int j = 0; j < 4; ++j) EXPECT_EQ(frame(j), one) << "after a reset every frame is the first";
  for (int t = 1; t <= 8; ++t) {
    step(*stacked, t % 4, obs);
    step(*single.env, t % 4, one);
    history.push_front(one);
    history.pop_back();
    for (int j = 0; j < 4; ++j) ASSERT_EQ(frame(j), history[j]) << "step " << t << ", frame " << j;
    ASSERT_EQ(counter(frame(0)) - counter(frame(1)), 4) << t;  // the newer frame is 4 game frames on
  }
  cfg.frame_stack = 1;
  std::unique_ptr<Env> unstacked = make_atari(std::make_unique<FakeGame>(o, std::make_shared<Probe>()), cfg);
  EXPECT_NE(dynamic_cast<AtariEnv*>(unstacked.get()), nullptr);
  EXPECT_EQ(unstacked->spec().observation.shape, (std::vector<int64_t>{1, 84, 84}));
}

TEST(AtariStack, TheStackedStateRoundTripsThroughFrameStack) {
  AtariConfig cfg = busy_config();
  cfg.frame_stack = 4;
  const auto fresh = [&] {
    return make_atari(std::make_unique<FakeGame>(busy_game(), std::make_shared<Probe>()), cfg);
  };
  std::unique_ptr<Env> a = fresh();
  a->seed(4);
  const int64_t n = a->spec().observation.numel();
  std::vector<float> obs(n), restored(n);
  a->reset(obs.data());
  Rng actions(1);
  bool done = false;
  for (int t = 0; t < 40; ++t) {
    if (t % 5 == 0) {
      std::unique_ptr<Env> b = fresh(), a2 = fresh();
      const std::vector<double> state = a->get_state();
      b->set_state(state, restored.data());
      ASSERT_EQ(restored, obs) << t;
      ASSERT_EQ(b->get_state(), state) << t;
      a2->set_state(state, restored.data());
      for (Env* e : {b.get(), a2.get()}) {
        e->rng().set_state(a->rng().state());
        e->set_elapsed_steps(a->elapsed_steps());
      }
      expect_same_future(*a2, *b, 10, 50 + t, done);
    }
    if (done) a->reset(obs.data());
    const StepResult r = step(*a, static_cast<int>(actions.integer(4)), obs);
    done = r.terminated || r.truncated;
  }
}

TEST(AtariStack, VectorisesThroughSerialVecEnvLikeAnyEnvironment) {
  AtariConfig cfg = busy_config();
  cfg.frame_stack = 2;
  const EnvFactory factory = [cfg] {
    return make_atari(std::make_unique<FakeGame>(busy_game(), std::make_shared<Probe>()), cfg);
  };
  constexpr int kEnvs = 3;
  SerialVecEnv vec(factory, kEnvs, 10);
  const int64_t n = vec.obs_size();
  EXPECT_EQ(n, 2 * 84 * 84);
  std::vector<std::unique_ptr<Env>> ref;
  std::vector<std::vector<float>> ref_obs(kEnvs, std::vector<float>(n));
  for (int i = 0; i < kEnvs; ++i) {
    ref.push_back(factory());
    ref[i]->seed(10 + i);
    ref[i]->reset(ref_obs[i].data());
  }
  vec.reset();
  const auto row = [&](const std::vector<float>& v, int i) {
    return std::vector<float>(v.begin() + i * n, v.begin() + (i + 1) * n);
  };
  for (int i = 0; i < kEnvs; ++i) ASSERT_EQ(row(vec.obs(), i), ref_obs[i]);
  Rng rng(3);
  int ended = 0;
  std::vector<float> actions(kEnvs);
  for (int t = 0; t < 60; ++t) {
    for (auto& a : actions) a = static_cast<float>(rng.integer(4));
    vec.step(actions.data());
    for (int i = 0; i < kEnvs; ++i) {
      const StepResult r = ref[i]->step(&actions[i], ref_obs[i].data());
      ASSERT_EQ(vec.rewards()[i], r.reward);
      ASSERT_EQ(vec.terminated()[i] != 0, r.terminated);
      ASSERT_EQ(vec.truncated()[i] != 0, r.truncated);
      if (r.terminated || r.truncated) {
        ++ended;
        ASSERT_EQ(row(vec.final_obs(), i), ref_obs[i]);
        ref[i]->reset(ref_obs[i].data());
      }
      ASSERT_EQ(row(vec.obs(), i), ref_obs[i]) << t << " " << i;
    }
  }
  EXPECT_GT(ended, 5);
}

// ---- Speed ---------------------------------------------------------------------------------

TEST(AtariEnvTest, StepTimeWithATrivialGame) {
  for (bool grey : {true, false}) {
    AtariConfig cfg = plain_config();
    cfg.grayscale = grey;
    Made m = make(FakeOptions{}, cfg);
    std::vector<float> obs(static_cast<size_t>(m.env->spec().observation.numel()));
    m.env->reset(obs.data());
    for (int t = 0; t < 50; ++t) step(*m.env, t % 4, obs);
    constexpr int kSteps = 2000;
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < kSteps; ++t) step(*m.env, t % 4, obs);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    const double us = std::chrono::duration<double, std::micro>(elapsed).count() / kSteps;
    std::printf("[ AtariEnv ] step(): %.1f us per call (%s 84x84, frame skip 4, max pool, trivial game)\n", us,
                grey ? "grey" : "RGB");
    RecordProperty(grey ? "step_us_grey" : "step_us_rgb", std::to_string(us));
    EXPECT_LT(us, 20000.0);
  }
}

}  // namespace
}  // namespace prefrl
