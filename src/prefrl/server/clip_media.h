// Clips as media for people: a stored segment rendered frame by frame into one PNG sprite
// sheet (frames left to right, top to bottom, `columns` per row). The page draws frame
// k = floor(t * fps) mod length of both clips from their sheets, so two clips loop in step
// on one clock (no video decoder, no codec differences between browsers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "prefrl/core/segment.h"

namespace prefrl {

struct ClipSheet {
  std::string png;              // the sprite sheet, PNG bytes
  int frames = 0;               // = the segment's length
  int frame_width = 0, frame_height = 0;
  int columns = 0;              // frames per row of the sheet
  double fps = 0;               // playback rate: the environment's frames per second
  std::vector<uint8_t> absorbing;  // (frames) 1 where the episode had already ended
};

// Renders `seg` of environment `env_name` at frame_size x frame_size. The physical state of
// each step is the one stored in the segment (Segment::states) or, where none is stored,
// recovered from its observation (Env::state_from_obs); absorbing steps show the final frame
// darkened. Throws UsageError if the segment does not fit the environment, or has no states
// and the environment cannot render from observations.
ClipSheet render_clip(const std::string& env_name, const Segment& seg, int frame_size);

// Encodes RGB (height x width x 3, top row first) as PNG (zlib level `level`, 0..9).
std::string encode_png(const uint8_t* rgb, int width, int height, int level = 3);

// Decodes a PNG into RGB; returns false if it is not a valid 8-bit RGB PNG. (Tests.)
bool decode_png(const std::string& png, std::vector<uint8_t>* rgb, int* width, int* height);

}  // namespace prefrl
