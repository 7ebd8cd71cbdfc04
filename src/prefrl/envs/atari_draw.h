// Drawing on a 210 x 160 Atari screen and the games' pseudo-random generator, shared by
// prefrl's Atari games (atari_pong.cc, atari_enduro.cc).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>

#include "prefrl/envs/atari.h"

namespace prefrl::atari_draw {

using Rgb = std::array<uint8_t, 3>;
constexpr int kH = AtariGame::kScreenHeight, kW = AtariGame::kScreenWidth;

// Fills rows [r0, r1) x columns [c0, c1), clipped to the screen.
inline void fill(uint8_t* rgb, int r0, int r1, int c0, int c1, const Rgb& c) {
  r0 = std::max(r0, 0);
  r1 = std::min(r1, kH);
  c0 = std::max(c0, 0);
  c1 = std::min(c1, kW);
  if (c1 <= c0) return;
  for (int r = r0; r < r1; ++r) {
    uint8_t* p = rgb + (static_cast<size_t>(r) * kW + c0) * 3;
    for (int k = c0; k < c1; ++k, p += 3) {
      p[0] = c[0];
      p[1] = c[1];
      p[2] = c[2];
    }
  }
}

// 3 x 5 digit glyphs, one row per entry, bit 2 = the left cell.
constexpr uint8_t kDigits[10][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}};

// Digit d (0-9) with its top-left corner at (top, left), each glyph cell cell_w x cell_h pixels.
inline void digit(uint8_t* rgb, int d, int top, int left, int cell_w, int cell_h, const Rgb& c) {
  for (int row = 0; row < 5; ++row)
    for (int col = 0; col < 3; ++col)
      if (kDigits[d][row] & (4 >> col))
        fill(rgb, top + row * cell_h, top + (row + 1) * cell_h, left + col * cell_w, left + (col + 1) * cell_w, c);
}

// The games' generator: xorshift32 on a state that is never 0.
inline uint32_t xorshift32(uint32_t& x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

}  // namespace prefrl::atari_draw
