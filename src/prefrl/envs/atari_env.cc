// The Atari preprocessing: frame max, area resampling, score masks, and AtariEnv.
#include "prefrl/envs/atari_env.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "prefrl/core/config.h"
#include "prefrl/core/error.h"
#include "prefrl/core/segment.h"
#include "prefrl/envs/action_util.h"
#include "prefrl/envs/render.h"
#include "prefrl/envs/wrappers.h"

namespace prefrl {

namespace {
constexpr int kH = AtariGame::kScreenHeight, kW = AtariGame::kScreenWidth;
constexpr size_t kScreenBytes = static_cast<size_t>(kH) * kW * 3;

// Checks every number of a config against the bounds its visit() declares (a config built in
// code never went through the parsers that check them).
struct BoundsChecker {
  template <class T>
  void num(const std::string& n, T& f, const char*, double lo = -kInf, double hi = kInf) {
    T copy = f;
    config_detail::assign_number("atari." + n, copy, static_cast<double>(f), lo, hi);  // throws UsageError
  }
  void flag(const std::string&, bool&, const char*) {}
};

AtariConfig checked_config(const AtariConfig& cfg) {
  AtariConfig copy = cfg;
  BoundsChecker check;
  copy.visit(check);
  return copy;
}

std::unique_ptr<AtariGame> checked_game(std::unique_ptr<AtariGame> game) {
  if (!game) throw UsageError("AtariEnv was given no game");
  return game;
}
}  // namespace

std::string atari_preprocessing_summary(const AtariConfig& cfg) {
  std::string s = "frame skip " + std::to_string(cfg.frame_skip);
  if (cfg.max_pool && cfg.frame_skip >= 2) s += " (max over the last 2 frames)";
  s += ", " + std::string(cfg.noop_max > 0 ? "0-" + std::to_string(cfg.noop_max) + " no-op steps at reset"
                                           : "no no-op starts");
  s += ", sticky actions " + format_number(cfg.sticky_prob);
  s += cfg.life_loss_ends_episode ? ", a lost life ends the episode" : ", episodes end at game over";
  s += ", " + std::to_string(cfg.screen_size) + "x" + std::to_string(cfg.screen_size) +
       (cfg.grayscale ? " grey" : " RGB") + " (area resampling)";
  s += cfg.max_episode_frames > 0 ? ", time limit " + std::to_string(cfg.max_episode_frames) + " frames"
                                  : ", no time limit";
  return s;
}

void max_frames(const uint8_t* a, const uint8_t* b, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] > b[i] ? a[i] : b[i];
}

// ---- ScreenResizer -------------------------------------------------------------------------

// Coordinates in units of 1 / size of a source pixel: source pixel s covers [s size, (s + 1) size),
// output pixel i covers [i source, (i + 1) source); a weight is the length of their overlap.
ScreenResizer::Taps ScreenResizer::taps(int source, int size) {
  Taps t;
  for (int i = 0; i < size; ++i) {
    const int64_t lo = static_cast<int64_t>(i) * source, hi = lo + source;
    const int first = static_cast<int>(lo / size), last = static_cast<int>((hi - 1) / size);
    t.first.push_back(first);
    t.count.push_back(last - first + 1);
    t.offset.push_back(static_cast<int>(t.weight.size()));
    for (int s = first; s <= last; ++s) {
      const int64_t a = std::max<int64_t>(lo, static_cast<int64_t>(s) * size);
      const int64_t b = std::min<int64_t>(hi, static_cast<int64_t>(s + 1) * size);
      t.weight.push_back(static_cast<int32_t>(b - a));
    }
  }
  return t;
}

ScreenResizer::ScreenResizer(int size, bool grayscale) : size_(size), channels_(grayscale ? 1 : 3) {
  if (size < 1) throw UsageError("ScreenResizer: size is " + std::to_string(size) + "; expected >= 1");
  rows_ = taps(kH, size);
  cols_ = taps(kW, size);
  if (grayscale) grey_.assign(static_cast<size_t>(kH) * kW, 0);
  down_.assign(static_cast<size_t>(kW) * channels_, 0);
}

void ScreenResizer::resize(const uint8_t* rgb, uint8_t* out) const {
  const int n = size_, c = channels_;
  const uint8_t* src = rgb;
  if (c == 1) {
    for (size_t p = 0; p < grey_.size(); ++p) grey_[p] = rgb_to_grey(rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]);
    src = grey_.data();
  }
  const int row_len = kW * c;  // bytes of a source row (interleaved channels for RGB)
  // The sums are exact integers: weights summing to 210 down and 160 across, so the mean is
  // sum / (210 x 160), rounded to nearest.
  constexpr int32_t kDen = kH * kW, kHalf = kDen / 2;
  for (int i = 0; i < n; ++i) {
    // Down: output row i from its source rows, every source column (and channel).
    // (16 bits suffice: the weights sum to 210, so a sum is at most 255 x 210.)
    std::fill(down_.begin(), down_.end(), 0);
    uint16_t* __restrict down = down_.data();
    const int32_t* wr = rows_.weight.data() + rows_.offset[i];
    for (int t = 0; t < rows_.count[i]; ++t) {
      const uint8_t* __restrict s = src + static_cast<size_t>(rows_.first[i] + t) * row_len;
      const uint16_t w = static_cast<uint16_t>(wr[t]);
      for (int x = 0; x < row_len; ++x) down[x] = static_cast<uint16_t>(down[x] + w * s[x]);
    }
    // Across: each output column from its source columns.
    for (int ch = 0; ch < c; ++ch) {
      uint8_t* dst = out + (static_cast<size_t>(ch) * n + i) * n;
      for (int j = 0; j < n; ++j) {
        const int32_t* wc = cols_.weight.data() + cols_.offset[j];
        const uint16_t* d = down_.data() + static_cast<size_t>(cols_.first[j]) * c + ch;
        int32_t sum = 0;
        for (int t = 0; t < cols_.count[j]; ++t) sum += wc[t] * d[t * c];
        dst[j] = static_cast<uint8_t>((sum + kHalf) / kDen);
      }
    }
  }
}

// ---- Masks ---------------------------------------------------------------------------------

std::vector<uint8_t> screen_area_mask(const std::vector<ScreenRect>& areas, int size) {
  if (size < 1) throw UsageError("screen_area_mask: size is " + std::to_string(size) + "; expected >= 1");
  std::vector<uint8_t> mask(static_cast<size_t>(size) * size, 0);
  for (const ScreenRect& a : areas) {
    const int64_t top = std::max(a.top, 0), bottom = std::min<int64_t>(static_cast<int64_t>(a.top) + a.height, kH);
    const int64_t left = std::max(a.left, 0), right = std::min<int64_t>(static_cast<int64_t>(a.left) + a.width, kW);
    if (bottom <= top || right <= left) continue;
    // Output pixel i covers [i * 210, (i + 1) * 210) in units of 1 / size of a source row (the
    // resizer's footprints); it overlaps rows [top, bottom) iff i * 210 < bottom * size and
    // top * size < (i + 1) * 210. Likewise for columns.
    for (int i = 0; i < size; ++i) {
      if (!(static_cast<int64_t>(i) * kH < bottom * size && top * size < static_cast<int64_t>(i + 1) * kH)) continue;
      for (int j = 0; j < size; ++j) {
        if (static_cast<int64_t>(j) * kW < right * size && left * size < static_cast<int64_t>(j + 1) * kW) {
          mask[static_cast<size_t>(i) * size + j] = 1;
        }
      }
    }
  }
  return mask;
}

std::vector<uint8_t> atari_observation_mask(const AtariGame& game, const AtariConfig& cfg) {
  const AtariConfig c = checked_config(cfg);
  if (!c.mask_score) return std::vector<uint8_t>(static_cast<size_t>(c.screen_size) * c.screen_size, 0);
  return screen_area_mask(game.score_areas(), c.screen_size);
}

// ---- AtariEnv ------------------------------------------------------------------------------

AtariEnv::AtariEnv(std::unique_ptr<AtariGame> game, const AtariConfig& cfg)
    : game_(checked_game(std::move(game))), cfg_(checked_config(cfg)), resizer_(cfg_.screen_size, cfg_.grayscale) {
  const std::vector<std::string>& names = game_->action_names();
  n_actions_ = static_cast<int>(names.size());
  if (n_actions_ < 1) throw UsageError(game_->name() + ": the game has no actions");
  if (cfg_.noop_max > 0 && names[0] != "NOOP") {
    throw UsageError(game_->name() + ": atari.noop_max is " + std::to_string(cfg_.noop_max) +
                     " but the game's action 0 is '" + names[0] + "', not NOOP; set atari.noop_max=0");
  }
  game_state_size_ = static_cast<size_t>(game_->state_size());
  const int c = cfg_.grayscale ? 1 : 3, k = cfg_.frame_skip;

  spec_.name = game_->name();
  spec_.reference = game_->reference() + "; preprocessing: " + atari_preprocessing_summary(cfg_);
  spec_.observation = Space::bytes({c, cfg_.screen_size, cfg_.screen_size});
  spec_.action = Space::discrete_n(n_actions_);
  spec_.max_episode_steps = cfg_.max_episode_frames > 0 ? (cfg_.max_episode_frames + k - 1) / k : 0;
  spec_.fps = AtariGame::kFrameRate / k;
  spec_.pixels = true;
  spec_.can_terminate = true;
  spec_.state_size = static_cast<int>(2 * game_state_size_ + 3);
  spec_.obs_determines_state = false;
  spec_.has_true_reward = true;
  // The score areas, in every channel: hidden from the reward model (atari.mask_score).
  const std::vector<uint8_t> mask = atari_observation_mask(*game_, cfg_);
  const int64_t plane = static_cast<int64_t>(cfg_.screen_size) * cfg_.screen_size;
  for (int ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < plane; ++i)
      if (mask[static_cast<size_t>(i)]) spec_.reward_hidden.push_back(ch * plane + i);

  screen_prev_.assign(kScreenBytes, 0);
  screen_cur_.assign(kScreenBytes, 0);
  screen_max_.assign(kScreenBytes, 0);
  frame_.assign(static_cast<size_t>(resizer_.output_size()), 0);
  actions_.assign(k, 0);
  lives_ = game_->lives();
}

void AtariEnv::new_game() {
  game_->reset(rng());
  prev_action_ = 0;  // ALE: a reset holds NOOP
}

int AtariEnv::run_step(int action, bool observe) {
  const int k = cfg_.frame_skip;
  const bool pool = observe && cfg_.max_pool && k >= 2;
  // Should the game end inside the step, the frame before its end is replayed from here.
  if (pool && k >= 3) start_state_ = game_->get_state();
  const bool sticky = cfg_.sticky_prob > 0.0;
  int total = 0, ran = 0;
  for (int f = 0; f < k; ++f) {
    int a = action;
    if (sticky && rng().uniform() < cfg_.sticky_prob) a = prev_action_;
    actions_[f] = a;
    if (pool && f == k - 1) prev_state_ = game_->get_state();
    total += game_->frame(a);
    prev_action_ = a;
    ++ran;
    if (observe) {
      if (pool && f == k - 2) game_->screen(screen_prev_.data());
      if (f == k - 1) game_->screen(screen_cur_.data());
    }
    if (game_->game_over()) break;
  }
  if (!observe) return total;
  pooled_ = pool;
  if (ran < k) {  // the game ended on frame `ran - 1`
    if (!pool || ran == 1) {
      pooled_ = false;  // one frame, or no pool: the last frame alone
    } else {
      // The frames are a function of the state and the actions: replay up to the frame before the end.
      game_->set_state(start_state_);
      for (int f = 0; f + 1 < ran; ++f) game_->frame(actions_[f]);
      prev_state_ = game_->get_state();
      game_->screen(screen_prev_.data());
      game_->frame(actions_[ran - 1]);
    }
    game_->screen(screen_cur_.data());
  }
  return total;
}

void AtariEnv::write_obs(float* obs) {
  const uint8_t* screen = screen_cur_.data();
  if (pooled_) {
    max_frames(screen_prev_.data(), screen_cur_.data(), screen_max_.data(), kScreenBytes);
    screen = screen_max_.data();
  }
  resizer_.resize(screen, frame_.data());
  for (size_t i = 0; i < frame_.size(); ++i) obs[i] = byte_to_obs(frame_[i]);
}

void AtariEnv::reset_impl(float* obs) {
  if (!(pending_continue_ && !game_->game_over())) new_game();
  pending_continue_ = false;
  const int noops = cfg_.noop_max > 0 ? static_cast<int>(rng().integer(static_cast<uint64_t>(cfg_.noop_max) + 1)) : 0;
  bool observed = false;
  for (int i = 0; i < noops; ++i) {
    const bool last = i + 1 == noops;
    run_step(0, last);
    observed = last;
    if (game_->game_over()) {  // as NoopResetEnv: a game that ends among the no-ops starts again
      new_game();
      observed = false;
    }
  }
  if (!observed) {
    game_->screen(screen_cur_.data());
    pooled_ = false;
  }
  lives_ = game_->lives();
  write_obs(obs);
}

StepResult AtariEnv::step_impl(const float* action, float* obs) {
  const int a = envs_detail::discrete_action(spec_.name.c_str(), action[0], n_actions_);
  StepResult r;
  r.reward = static_cast<float>(run_step(a, true));
  write_obs(obs);
  const int lives = game_->lives();
  const bool over = game_->game_over();
  // As EpisodicLifeEnv: only while lives remain (a game may show 0 lives for a few frames
  // before it reports its end, which is then the episode's end).
  const bool life_lost = cfg_.life_loss_ends_episode && lives < lives_ && lives > 0;
  lives_ = lives;
  r.terminated = over || life_lost;
  pending_continue_ = life_lost && !over;
  return r;
}

std::vector<double> AtariEnv::get_state() const {
  std::vector<double> s = game_->get_state();
  s.reserve(2 * game_state_size_ + 3);
  if (pooled_) {
    s.insert(s.end(), prev_state_.begin(), prev_state_.end());
  } else {
    for (size_t i = 0; i < game_state_size_; ++i) s.push_back(s[i]);  // the current state again
  }
  s.push_back(prev_action_);
  s.push_back(lives_);
  s.push_back(pending_continue_ ? 1.0 : 0.0);
  return s;
}

void AtariEnv::set_state_impl(const std::vector<double>& state, float* obs) {
  const size_t g = game_state_size_;
  const std::string& name = spec_.name;
  if (state.size() != 2 * g + 3) {
    throw UsageError(name + ": set_state got " + std::to_string(state.size()) + " values; expected " +
                       std::to_string(2 * g + 3) + " (the game's state now and one frame before, the last action, "
                       "the lives count and the pending-continue flag)");
  }
  const double action = state[2 * g], lives = state[2 * g + 1], pending = state[2 * g + 2];
  if (!(action >= 0 && action < n_actions_ && action == std::floor(action))) {
    throw UsageError(name + ": set_state's last action is " + std::to_string(action) +
                       "; expected an integer in [0, " + std::to_string(n_actions_ - 1) + "]");
  }
  if (!(lives >= 0 && lives <= 1e9 && lives == std::floor(lives))) {
    throw UsageError(name + ": set_state's lives count is " + std::to_string(lives) +
                       "; expected a non-negative integer");
  }
  if (pending != 0.0 && pending != 1.0) {
    throw UsageError(name + ": set_state's pending-continue flag is " + std::to_string(pending) +
                       "; expected 0 or 1");
  }
  const auto at = [&](size_t i) { return state.begin() + static_cast<std::ptrdiff_t>(i); };
  std::vector<double> current(at(0), at(g)), before(at(g), at(2 * g));
  const bool pool = cfg_.max_pool && before != current;
  const std::vector<double> backup = game_->get_state();
  try {
    if (pool) {
      game_->set_state(before);
      game_->screen(screen_prev_.data());
    }
    game_->set_state(current);
  } catch (...) {
    game_->set_state(backup);  // a bad current state after a good earlier one: change nothing
    throw;
  }
  game_->screen(screen_cur_.data());
  pooled_ = pool;
  if (pool) prev_state_ = std::move(before);
  prev_action_ = static_cast<int>(action);
  lives_ = static_cast<int>(lives);
  pending_continue_ = pending != 0.0;
  write_obs(obs);
}

void AtariEnv::render(int width, int height, uint8_t* rgb) const {
  draw::check_render_args(spec_.name.c_str(), width, height, rgb);
  std::vector<uint8_t> screen(kScreenBytes);
  game_->screen(screen.data());
  for (int y = 0; y < height; ++y) {
    const int sy = static_cast<int>(static_cast<int64_t>(y) * kH / height);
    for (int x = 0; x < width; ++x) {
      const int sx = static_cast<int>(static_cast<int64_t>(x) * kW / width);
      const uint8_t* p = screen.data() + (static_cast<size_t>(sy) * kW + sx) * 3;
      uint8_t* q = rgb + (static_cast<size_t>(y) * width + x) * 3;
      q[0] = p[0];
      q[1] = p[1];
      q[2] = p[2];
    }
  }
}

std::unique_ptr<Env> make_atari(std::unique_ptr<AtariGame> game, const AtariConfig& cfg) {
  auto env = std::make_unique<AtariEnv>(std::move(game), cfg);
  const int k = env->config().frame_stack;
  if (k == 1) return env;
  return std::make_unique<FrameStack>(std::move(env), k);
}

}  // namespace prefrl
