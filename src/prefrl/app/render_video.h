// `prefrl env render`: a video of an environment, acted on by a run's final policy or at random.
#pragma once
#include <cstdint>
#include <string>

namespace prefrl {

struct RenderVideoOptions {
  std::string env;         // environment name
  std::string policy_run;  // run directory whose final policy acts (deterministically); empty: random actions
  std::string out;         // .webm or .mp4 file to write, or .png: a contact sheet of 16 frames evenly spaced
  int steps = 200;         // environment steps; the video has steps + 1 frames (the first observation too)
  int width = 128, height = 128;
  uint64_t seed = 0;       // seeds the environment (and the random actions)
};

struct RenderVideoResult {
  int64_t frames = 0;
  int episodes = 0;        // episodes begun (a new one starts when one ends)
  double fps = 0.0;        // the environment's frame rate, which the video plays at
  std::string codec;       // encoder used
};

// Parses "WxH" (e.g. "128x96", positive integers) => *width, *height; throws UsageError naming
// the text otherwise.
void parse_size(const std::string& text, int* width, int* height);

// Runs the environment for opts.steps steps (resetting when an episode ends) and writes every
// frame into opts.out at the environment's frame rate. Throws UsageError for a bad option (an
// unknown environment, a run without a final policy or of another environment, a bad size or
// file name) before writing anything.
RenderVideoResult render_video(const RenderVideoOptions& opts);

}  // namespace prefrl
