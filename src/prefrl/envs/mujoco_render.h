// Headless rendering of MuJoCo models with MuJoCo's own renderer (mjr_*), into an offscreen
// framebuffer of an OpenGL context made through EGL on Mesa's surfaceless platform (llvmpipe):
// no display, no GPU, nothing but Debian's libegl-mesa0. Shadows, reflections and
// multisampling are off (about 5-8 ms per 128x128 frame here).
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include <mujoco/mujoco.h>

namespace prefrl {

// Where a frame is seen from: a camera of the model (e.g. "track", which follows the body's
// centre of mass) or, if `fixed` is empty, MuJoCo's free camera at the given place.
struct MujocoCamera {
  std::string fixed;                          // name of a camera in the model, or empty
  std::array<double, 3> lookat = {0, 0, 0};   // free camera: the point looked at (m)
  double distance = 2.0;                      // free camera: distance from lookat (m)
  double azimuth = 90.0;                      // free camera: degrees about the vertical; 90 looks along +y
  double elevation = -20.0;                   // free camera: degrees above the horizon (negative: from above)
};

// Largest width or height render_mujoco accepts.
inline constexpr int kMujocoMaxRenderSize = 2048;

// Renders model m in the configuration of d (its qpos, act and mocap bodies) seen by `camera`
// => rgb (height x width x 3 bytes, row-major, top row first). d is only read: positions are
// recomputed in a scratch copy, so rendering never changes a simulation. m must live as long as
// the process (the models of make_env do).
// Thread-safe: each thread gets its own GL context at its first frame and, per model, its own
// MuJoCo render context (about 0.3 s to make, then kept). Throws UsageError for a size outside
// [16, kMujocoMaxRenderSize] or an unknown camera name, RuntimeError if EGL cannot give an
// OpenGL context.
void render_mujoco(const mjModel* m, const mjData* d, const MujocoCamera& camera, int width, int height,
                   uint8_t* rgb);

}  // namespace prefrl
