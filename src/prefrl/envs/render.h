// A tiny software rasteriser for Env::render: filled rectangles, thick lines, filled circles,
// polylines and filled polygons on an RGB byte buffer. Shapes cover a pixel when the pixel's
// centre lies inside them; no anti-aliasing, no external libraries.
#pragma once
#include <cstdint>
#include <vector>

namespace prefrl::draw {

struct Color {
  uint8_t r = 0, g = 0, b = 0;
};

struct Point {
  double x = 0.0, y = 0.0;
};

// Throws UsageError unless width, height >= 16 and rgb is not null.
void check_render_args(const char* env_name, int width, int height, const uint8_t* rgb);

// Draws into a caller-owned image: height x width x 3 bytes, row-major, top row first.
// Coordinates are in pixels, x to the right, y downwards; (0, 0) is the top-left corner.
class Canvas {
 public:
  Canvas(int width, int height, uint8_t* rgb) : width_(width), height_(height), rgb_(rgb) {}

  int width() const { return width_; }
  int height() const { return height_; }

  // Paints every pixel with c.
  void fill(Color c);
  // Paints pixel (x, y) if it lies inside the image.
  void set(int x, int y, Color c);
  // Axis-aligned filled rectangle with corners (x0, y0) and (x1, y1), in any order.
  void rect(double x0, double y0, double x1, double y1, Color c);
  // Segment from a to b, thickness pixels wide, with round caps.
  void line(Point a, Point b, double thickness, Color c);
  // Filled disc of the given radius.
  void circle(Point centre, double radius, Color c);
  // Consecutive points joined by thick lines.
  void polyline(const std::vector<Point>& points, double thickness, Color c);
  // Filled polygon (even-odd rule), e.g. a rotated rectangle or a triangle.
  void polygon(const std::vector<Point>& points, Color c);

 private:
  int width_, height_;
  uint8_t* rgb_;
};

// Maps world coordinates (y up) into pixel coordinates (y down): the world rectangle
// [xmin, xmax] x [ymin, ymax] is scaled uniformly to fit the image and centred in it.
struct Viewport {
  double scale = 1.0;  // pixels per world unit
  double x0 = 0.0;     // pixel x of world x = 0
  double y0 = 0.0;     // pixel y of world y = 0

  static Viewport fit(int width, int height, double xmin, double xmax, double ymin, double ymax);
  // World point => pixel point.
  Point operator()(double x, double y) const { return {x0 + x * scale, y0 - y * scale}; }
  // World length => pixels, never thinner than min_pixels (so small images stay legible).
  double len(double world_length, double min_pixels = 1.0) const;
};

}  // namespace prefrl::draw
