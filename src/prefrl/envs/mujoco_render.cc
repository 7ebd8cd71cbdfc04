// Offscreen MuJoCo rendering through EGL (surfaceless) — see mujoco_render.h.
//
//   process: one EGL display (Mesa's surfaceless platform), initialised at the first frame
//   thread:  one OpenGL context, current on that thread from its first frame to its end
//   (thread, model): mjrContext (offscreen framebuffer, textures), mjvScene, scratch mjData
//
// A frame: copy qpos/act/mocap into the scratch mjData => kinematics, centres of mass,
// cameras and lights => mjv_updateScene => bind the view's framebuffer => mjr_render =>
// mjr_readPixels (bottom row first) => flipped into the caller's image.
#include "prefrl/envs/mujoco_render.h"

#include <EGL/egl.h>
#include <EGL/eglext.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "prefrl/core/error.h"

namespace prefrl {
namespace {

std::string egl_error(const char* what) {
  char code[16];
  std::snprintf(code, sizeof code, "0x%04X", static_cast<unsigned>(eglGetError()));
  return std::string("MuJoCo rendering needs an OpenGL context from EGL on Mesa's surfaceless platform "
                     "(Debian's libegl-mesa0); ") + what + " failed (EGL error " + code + ")";
}

// The process's EGL display, initialised once; throws RuntimeError if there is none.
EGLDisplay egl_display() {
  static std::once_flag once;
  static EGLDisplay display = EGL_NO_DISPLAY;
  static std::string error;
  std::call_once(once, [] {
    auto get_platform_display =
        reinterpret_cast<PFNEGLGETPLATFORMDISPLAYEXTPROC>(eglGetProcAddress("eglGetPlatformDisplayEXT"));
    if (!get_platform_display) { error = egl_error("eglGetProcAddress(eglGetPlatformDisplayEXT)"); return; }
    EGLDisplay d = get_platform_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, nullptr);
    if (d == EGL_NO_DISPLAY) { error = egl_error("eglGetPlatformDisplayEXT(EGL_PLATFORM_SURFACELESS_MESA)"); return; }
    EGLint major = 0, minor = 0;
    if (!eglInitialize(d, &major, &minor)) { error = egl_error("eglInitialize"); return; }
    display = d;  // never terminated: other threads may still render while the process exits
  });
  if (display == EGL_NO_DISPLAY) throw RuntimeError(error);
  return display;
}

// What one thread keeps for one model.
struct ModelView {
  mjrContext con;            // GL objects: offscreen framebuffer (con.offWidth x con.offHeight), textures
  mjvScene scene;            // geoms to draw
  mjvOption option;          // what is visible: no sites, no contacts
  mjData* scratch = nullptr; // positions recomputed here, never in the caller's mjData

  ModelView(const mjModel* m, int width, int height) {
    mjr_defaultContext(&con);
    mjv_defaultScene(&scene);
    mjv_defaultOption(&option);
    for (int g = 0; g < mjNGROUP; ++g) option.sitegroup[g] = 0;
    mjv_makeScene(m, &scene, 1000);
    scene.flags[mjRND_SHADOW] = 0;
    scene.flags[mjRND_REFLECTION] = 0;
    scratch = mj_makeData(m);
    make_context(m, width, height);
  }
  ~ModelView() {
    mjr_freeContext(&con);
    mjv_freeScene(&scene);
    mj_deleteData(scratch);
  }
  ModelView(const ModelView&) = delete;
  ModelView& operator=(const ModelView&) = delete;

  // (Re)makes the render context with an offscreen buffer of at least width x height and no
  // multisampling. mjr_makeContext sizes the buffer from the model's visual settings, so it is
  // given a copy of the model struct (sharing every array) with those settings changed.
  void make_context(const mjModel* m, int width, int height) {
    mjModel sized = *m;
    sized.vis.global.offwidth = width;
    sized.vis.global.offheight = height;
    sized.vis.quality.offsamples = 0;
    mjr_freeContext(&con);
    mjr_makeContext(&sized, &con, mjFONTSCALE_100);
    mjr_setBuffer(mjFB_OFFSCREEN, &con);
    if (con.currentBuffer != mjFB_OFFSCREEN || con.offWidth < width || con.offHeight < height)
      throw RuntimeError("MuJoCo could not make a " + std::to_string(width) + "x" + std::to_string(height) +
                         " offscreen framebuffer");
  }
};

// One thread's OpenGL context and its views of models.
class ThreadRenderer {
 public:
  ThreadRenderer() {
    display_ = egl_display();
    // Pbuffer-capable (the surfaceless platform has no windows), though no surface is made:
    // MuJoCo renders into its own framebuffer object.
    const EGLint config_attribs[] = {EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8, EGL_DEPTH_SIZE, 24,
                                     EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE};
    EGLConfig config = nullptr;
    EGLint count = 0;
    if (!eglChooseConfig(display_, config_attribs, &config, 1, &count) || count < 1)
      throw RuntimeError(egl_error("finding a config (8-bit RGB, 24-bit depth, desktop OpenGL) with eglChooseConfig"));
    if (!eglBindAPI(EGL_OPENGL_API)) throw RuntimeError(egl_error("eglBindAPI(EGL_OPENGL_API)"));
    context_ = eglCreateContext(display_, config, EGL_NO_CONTEXT, nullptr);
    if (context_ == EGL_NO_CONTEXT) throw RuntimeError(egl_error("eglCreateContext"));
    if (!eglMakeCurrent(display_, EGL_NO_SURFACE, EGL_NO_SURFACE, context_)) {
      const std::string msg = egl_error("eglMakeCurrent (surfaceless)");
      eglDestroyContext(display_, context_);
      throw RuntimeError(msg);
    }
  }
  ~ThreadRenderer() {
    views_.clear();  // frees GL objects while the context is still current
    eglMakeCurrent(display_, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(display_, context_);
    eglReleaseThread();
  }
  ThreadRenderer(const ThreadRenderer&) = delete;
  ThreadRenderer& operator=(const ThreadRenderer&) = delete;

  // The view of m with an offscreen buffer of at least width x height.
  ModelView& view(const mjModel* m, int width, int height) {
    std::unique_ptr<ModelView>& v = views_[m];
    if (!v) {
      v = std::make_unique<ModelView>(m, width, height);
    } else if (v->con.offWidth < width || v->con.offHeight < height) {
      v->make_context(m, std::max(width, v->con.offWidth), std::max(height, v->con.offHeight));
    }
    return *v;
  }
  std::vector<uint8_t>& pixels() { return pixels_; }

 private:
  EGLDisplay display_ = EGL_NO_DISPLAY;
  EGLContext context_ = EGL_NO_CONTEXT;
  std::unordered_map<const mjModel*, std::unique_ptr<ModelView>> views_;
  std::vector<uint8_t> pixels_;  // (height x width x 3) as read back, bottom row first
};

ThreadRenderer& thread_renderer() {
  thread_local std::unique_ptr<ThreadRenderer> renderer;
  if (!renderer) renderer = std::make_unique<ThreadRenderer>();
  return *renderer;
}

}  // namespace

void render_mujoco(const mjModel* m, const mjData* d, const MujocoCamera& camera, int width, int height,
                   uint8_t* rgb) {
  if (width < 16 || height < 16 || width > kMujocoMaxRenderSize || height > kMujocoMaxRenderSize)
    throw UsageError("render size " + std::to_string(width) + "x" + std::to_string(height) + " is outside [16, " +
                     std::to_string(kMujocoMaxRenderSize) + "] in each dimension");
  if (!rgb) throw UsageError("render: null image buffer");
  mjvCamera cam;
  mjv_defaultCamera(&cam);
  if (!camera.fixed.empty()) {
    cam.type = mjCAMERA_FIXED;
    cam.fixedcamid = mj_name2id(m, mjOBJ_CAMERA, camera.fixed.c_str());
    if (cam.fixedcamid < 0) throw UsageError("the MuJoCo model has no camera named '" + camera.fixed + "'");
  } else {
    cam.type = mjCAMERA_FREE;
    for (int i = 0; i < 3; ++i) cam.lookat[i] = camera.lookat[i];
    cam.distance = camera.distance;
    cam.azimuth = camera.azimuth;
    cam.elevation = camera.elevation;
  }

  ThreadRenderer& renderer = thread_renderer();
  ModelView& view = renderer.view(m, width, height);
  // Positions of bodies, geoms, cameras and lights for d's configuration, in the scratch copy.
  mjData* s = view.scratch;
  s->time = d->time;
  std::memcpy(s->qpos, d->qpos, sizeof(mjtNum) * m->nq);
  std::memcpy(s->qvel, d->qvel, sizeof(mjtNum) * m->nv);
  if (m->na) std::memcpy(s->act, d->act, sizeof(mjtNum) * m->na);
  if (m->nmocap) {
    std::memcpy(s->mocap_pos, d->mocap_pos, sizeof(mjtNum) * 3 * m->nmocap);
    std::memcpy(s->mocap_quat, d->mocap_quat, sizeof(mjtNum) * 4 * m->nmocap);
  }
  mj_kinematics(m, s);
  mj_comPos(m, s);
  mj_camlight(m, s);

  mjv_updateScene(m, s, &view.option, nullptr, &cam, mjCAT_ALL, &view.scene);
  const mjrRect viewport = {0, 0, width, height};
  // Views of several models share the thread's GL context: bind this one's framebuffer.
  mjr_setBuffer(mjFB_OFFSCREEN, &view.con);
  mjr_render(viewport, &view.scene, &view.con);
  std::vector<uint8_t>& px = renderer.pixels();
  px.resize(static_cast<size_t>(width) * height * 3);
  mjr_readPixels(px.data(), nullptr, viewport, &view.con);
  const size_t row = static_cast<size_t>(width) * 3;
  for (int y = 0; y < height; ++y) std::memcpy(rgb + y * row, px.data() + (height - 1 - y) * row, row);
}

}  // namespace prefrl
