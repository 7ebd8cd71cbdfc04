// `prefrl env render`: reset => { render frame => act (policy or random) => step => reset if
// the episode ended } x steps => render the last frame => finish the video.
#include "prefrl/app/render_video.h"

#include <charconv>
#include <fstream>
#include <memory>
#include <vector>

#include "prefrl/app/evaluate.h"
#include "prefrl/app/train_config.h"
#include "prefrl/app/video.h"
#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"
#include "prefrl/server/clip_media.h"

namespace prefrl {

void parse_size(const std::string& text, int* width, int* height) {
  const size_t x = text.find('x');
  auto number = [](const std::string& s, int* out) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty() && *out > 0;
  };
  if (x == std::string::npos || !number(text.substr(0, x), width) || !number(text.substr(x + 1), height))
    throw UsageError("--size '" + text + "' must be WIDTHxHEIGHT in pixels, e.g. 128x128");
}

RenderVideoResult render_video(const RenderVideoOptions& opts) {
  if (opts.steps < 0) throw UsageError("--steps " + std::to_string(opts.steps) + " must be >= 0");
  std::unique_ptr<Env> env = make_env(opts.env);
  const EnvSpec& spec = env->spec();
  std::unique_ptr<Agent> agent;
  if (!opts.policy_run.empty()) {
    TrainConfig cfg;
    agent = load_run_policy(opts.policy_run, 1, &cfg);
    if (cfg.env.name != opts.env)
      throw UsageError("run '" + opts.policy_run + "' trained on '" + cfg.env.name + "', not '" + opts.env + "'");
  }
  env->seed(opts.seed);
  Rng rng(derive_seed(opts.seed, 1));
  const int64_t A = spec.action.numel();
  std::vector<float> obs(spec.observation.numel()), action(A);
  std::vector<uint8_t> frame(static_cast<size_t>(opts.width) * opts.height * 3);
  RenderVideoResult result;
  result.fps = spec.fps;
  env->reset(obs.data());
  result.episodes = 1;
  // The first frame before the file: a size the renderer refuses leaves no file behind.
  env->render(opts.width, opts.height, frame.data());
  const bool sheet = opts.out.size() > 4 && opts.out.compare(opts.out.size() - 4, 4, ".png") == 0;
  std::unique_ptr<VideoWriter> video;
  if (!sheet) video = std::make_unique<VideoWriter>(opts.out, opts.width, opts.height, spec.fps);  // checks name and size
  std::vector<std::vector<uint8_t>> frames;  // a contact sheet's: every frame, a few of them drawn at the end
  auto keep = [&] {
    if (video) video->add_frame(frame.data());
    else frames.push_back(frame);
  };
  keep();
  auto add_frame = [&] {
    env->render(opts.width, opts.height, frame.data());
    keep();
  };
  for (int t = 0; t < opts.steps; ++t) {
    if (agent) {
      agent->act(obs.data(), 1, action.data(), /*deterministic=*/true);
      clip_actions(spec.action, action.data(), 1);  // as in training and evaluation
    } else if (spec.action.discrete) {
      action[0] = static_cast<float>(rng.integer(spec.action.n));
    } else {
      for (int64_t j = 0; j < A; ++j) action[j] = static_cast<float>(rng.uniform(spec.action.low[j], spec.action.high[j]));
    }
    const StepResult r = env->step(action.data(), obs.data());
    add_frame();  // the state the step led to (an ended episode's last state included)
    if ((r.terminated || r.truncated) && t + 1 < opts.steps) {
      env->reset(obs.data());
      ++result.episodes;
    }
  }
  if (video) {
    video->finish();
    result.frames = video->frames();
    result.codec = video->codec();
    return result;
  }
  // A contact sheet: kSheet frames evenly spaced over the whole video, kColumns to a row.
  constexpr int kSheet = 16, kColumns = 8;
  const int n = std::min<int>(kSheet, static_cast<int>(frames.size()));
  const int rows = (n + kColumns - 1) / kColumns, cols = std::min(n, kColumns);
  const int W = opts.width, H = opts.height;
  std::vector<uint8_t> grid(static_cast<size_t>(W) * cols * H * rows * 3, 255);
  for (int k = 0; k < n; ++k) {
    const size_t f = n == 1 ? 0 : static_cast<size_t>(k) * (frames.size() - 1) / (n - 1);
    const int gx = (k % kColumns) * W, gy = (k / kColumns) * H;
    for (int y = 0; y < H; ++y)
      std::copy_n(frames[f].data() + static_cast<size_t>(y) * W * 3, W * 3,
                  grid.data() + (static_cast<size_t>(gy + y) * W * cols + gx) * 3);
  }
  const std::string png = encode_png(grid.data(), W * cols, H * rows, 6);
  std::ofstream(opts.out, std::ios::binary) << png;
  result.frames = static_cast<int64_t>(frames.size());
  result.codec = "png contact sheet of " + std::to_string(n) + " frames";
  return result;
}

}  // namespace prefrl
