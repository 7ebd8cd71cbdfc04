#include "prefrl/envs/render.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "prefrl/core/error.h"

namespace prefrl::draw {

void check_render_args(const char* env_name, int width, int height, const uint8_t* rgb) {
  if (width < 16 || height < 16) {
    throw UsageError(std::string(env_name) + ": render size " + std::to_string(width) + "x" +
                     std::to_string(height) + " is too small; width and height must be >= 16");
  }
  if (rgb == nullptr) throw UsageError(std::string(env_name) + ": render buffer is null");
}

void Canvas::fill(Color c) {
  const int64_t n = static_cast<int64_t>(width_) * height_;
  for (int64_t i = 0; i < n; ++i) {
    rgb_[3 * i] = c.r;
    rgb_[3 * i + 1] = c.g;
    rgb_[3 * i + 2] = c.b;
  }
}

void Canvas::set(int x, int y, Color c) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  uint8_t* p = rgb_ + 3 * (static_cast<int64_t>(y) * width_ + x);
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

namespace {

// Pixel index range [lo, hi) whose centres (i + 0.5) lie within [a, b], clamped to [0, n).
void pixel_span(double a, double b, int n, int& lo, int& hi) {
  lo = std::max(0, static_cast<int>(std::ceil(a - 0.5)));
  hi = std::min(n, static_cast<int>(std::floor(b - 0.5)) + 1);
}

}  // namespace

void Canvas::rect(double x0, double y0, double x1, double y1, Color c) {
  if (x0 > x1) std::swap(x0, x1);
  if (y0 > y1) std::swap(y0, y1);
  int xl, xh, yl, yh;
  pixel_span(x0, x1, width_, xl, xh);
  pixel_span(y0, y1, height_, yl, yh);
  for (int y = yl; y < yh; ++y)
    for (int x = xl; x < xh; ++x) set(x, y, c);
}

void Canvas::line(Point a, Point b, double thickness, Color c) {
  const double r = thickness / 2.0;
  int xl, xh, yl, yh;
  pixel_span(std::min(a.x, b.x) - r, std::max(a.x, b.x) + r, width_, xl, xh);
  pixel_span(std::min(a.y, b.y) - r, std::max(a.y, b.y) + r, height_, yl, yh);
  const double dx = b.x - a.x, dy = b.y - a.y;
  const double len2 = dx * dx + dy * dy;
  for (int y = yl; y < yh; ++y) {
    for (int x = xl; x < xh; ++x) {
      const double px = x + 0.5 - a.x, py = y + 0.5 - a.y;
      // Distance from the pixel centre to the closest point of the segment.
      const double t = len2 > 0.0 ? std::clamp((px * dx + py * dy) / len2, 0.0, 1.0) : 0.0;
      const double ex = px - t * dx, ey = py - t * dy;
      if (ex * ex + ey * ey <= r * r) set(x, y, c);
    }
  }
}

void Canvas::circle(Point centre, double radius, Color c) {
  int xl, xh, yl, yh;
  pixel_span(centre.x - radius, centre.x + radius, width_, xl, xh);
  pixel_span(centre.y - radius, centre.y + radius, height_, yl, yh);
  for (int y = yl; y < yh; ++y) {
    for (int x = xl; x < xh; ++x) {
      const double ex = x + 0.5 - centre.x, ey = y + 0.5 - centre.y;
      if (ex * ex + ey * ey <= radius * radius) set(x, y, c);
    }
  }
}

void Canvas::polyline(const std::vector<Point>& points, double thickness, Color c) {
  for (size_t i = 1; i < points.size(); ++i) line(points[i - 1], points[i], thickness, c);
  if (points.size() == 1) circle(points[0], thickness / 2.0, c);
}

void Canvas::polygon(const std::vector<Point>& points, Color c) {
  if (points.size() < 3) return;
  double ymin = points[0].y, ymax = points[0].y;
  for (const Point& p : points) {
    ymin = std::min(ymin, p.y);
    ymax = std::max(ymax, p.y);
  }
  int yl, yh;
  pixel_span(ymin, ymax, height_, yl, yh);
  std::vector<double> xs;
  for (int y = yl; y < yh; ++y) {
    // Scanline through the pixel centres: collect edge crossings, fill between pairs.
    const double sy = y + 0.5;
    xs.clear();
    for (size_t i = 0, j = points.size() - 1; i < points.size(); j = i++) {
      const Point& p = points[i];
      const Point& q = points[j];
      if ((p.y <= sy) != (q.y <= sy)) xs.push_back(p.x + (sy - p.y) * (q.x - p.x) / (q.y - p.y));
    }
    std::sort(xs.begin(), xs.end());
    for (size_t k = 0; k + 1 < xs.size(); k += 2) {
      int xl, xh;
      pixel_span(xs[k], xs[k + 1], width_, xl, xh);
      for (int x = xl; x < xh; ++x) set(x, y, c);
    }
  }
}

Viewport Viewport::fit(int width, int height, double xmin, double xmax, double ymin, double ymax) {
  Viewport v;
  v.scale = std::min(width / (xmax - xmin), height / (ymax - ymin));
  // Centre the world rectangle in the image.
  v.x0 = (width - (xmax - xmin) * v.scale) / 2.0 - xmin * v.scale;
  v.y0 = (height + (ymax - ymin) * v.scale) / 2.0 + ymin * v.scale;
  return v;
}

double Viewport::len(double world_length, double min_pixels) const {
  return std::max(min_pixels, world_length * scale);
}

}  // namespace prefrl::draw
