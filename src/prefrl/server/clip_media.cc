#include "prefrl/server/clip_media.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <cstring>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"

namespace prefrl {
namespace {

void png_write_to_string(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  out->append(reinterpret_cast<const char*>(data), n);
}
void png_flush_noop(png_structp) {}

struct PngReadState {
  const std::string* in;
  size_t pos = 0;
};
void png_read_from_string(png_structp png, png_bytep data, png_size_t n) {
  auto* st = static_cast<PngReadState*>(png_get_io_ptr(png));
  if (st->pos + n > st->in->size()) png_error(png, "truncated PNG");
  std::memcpy(data, st->in->data() + st->pos, n);
  st->pos += n;
}

}  // namespace

std::string encode_png(const uint8_t* rgb, int width, int height, int level) {
  if (width < 1 || height < 1) throw UsageError("encode_png: empty image");
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    throw RuntimeError("encode_png: out of memory");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw RuntimeError("encode_png: libpng failed");
  }
  png_set_write_fn(png, &out, png_write_to_string, png_flush_noop);
  png_set_compression_level(png, std::clamp(level, 0, 9));
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) png_write_row(png, const_cast<png_bytep>(rgb + static_cast<size_t>(y) * width * 3));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

bool decode_png(const std::string& bytes, std::vector<uint8_t>* rgb, int* width, int* height) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0) return false;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  PngReadState st{&bytes};
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &st, png_read_from_string);
  png_read_info(png, info);
  if (png_get_color_type(png, info) != PNG_COLOR_TYPE_RGB || png_get_bit_depth(png, info) != 8) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  *width = static_cast<int>(png_get_image_width(png, info));
  *height = static_cast<int>(png_get_image_height(png, info));
  rgb->assign(static_cast<size_t>(*width) * *height * 3, 0);
  for (int y = 0; y < *height; ++y) png_read_row(png, rgb->data() + static_cast<size_t>(y) * *width * 3, nullptr);
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

ClipSheet render_clip(const std::string& env_name, const Segment& seg, int frame_size) {
  if (frame_size < 16 || frame_size > 1024)
    throw UsageError("clip frame size " + std::to_string(frame_size) + " is outside [16, 1024]");
  // One environment per thread and name, kept between clips: an external env's is a worker
  // process (docs/env_protocol.md), whose start would otherwise come with every clip. Every
  // frame sets the whole state, so nothing carries over from one clip to the next.
  thread_local std::map<std::string, std::unique_ptr<Env>> envs;
  std::unique_ptr<Env>& kept = envs[env_name];
  if (!kept) kept = make_env(env_name);
  Env* env = kept.get();
  const EnvSpec& spec = env->spec();
  const int L = seg.length;
  const bool has_states = seg.state_size > 0;
  if (L < 1 || seg.obs_size != spec.observation.numel() ||
      seg.obs_count() != static_cast<size_t>(L) * seg.obs_size || seg.absorbing.size() != static_cast<size_t>(L) ||
      (has_states && (seg.state_size != spec.state_size || seg.states.size() != static_cast<size_t>(L) * seg.state_size))) {
    throw UsageError("segment " + std::to_string(seg.id) + " does not fit environment '" + env_name +
                     "' (length " + std::to_string(L) + ", obs_size " + std::to_string(seg.obs_size) +
                     ", state_size " + std::to_string(seg.state_size) + ")");
  }
  ClipSheet sheet;
  sheet.frames = L;
  sheet.frame_width = sheet.frame_height = frame_size;
  sheet.columns = std::max(1, std::min(L, static_cast<int>(std::ceil(std::sqrt(static_cast<double>(L))))));
  sheet.fps = spec.fps;
  sheet.absorbing = seg.absorbing;
  const int rows = (L + sheet.columns - 1) / sheet.columns;
  const int W = sheet.columns * frame_size, H = rows * frame_size;
  std::vector<uint8_t> canvas(static_cast<size_t>(W) * H * 3, 0);
  std::vector<uint8_t> frame(static_cast<size_t>(frame_size) * frame_size * 3);
  std::vector<float> obs(static_cast<size_t>(seg.obs_size));
  std::vector<double> state;
  std::vector<float> decoded;  // a step's observation, where the segment keeps bytes
  for (int t = 0; t < L; ++t) {
    if (has_states) {  // the stored physical state behind the observation
      const float* st = seg.states.data() + static_cast<size_t>(t) * seg.state_size;
      state.assign(st, st + seg.state_size);
    } else if (!env->state_from_obs(seg.obs_row(t, &decoded), &state)) {
      throw UsageError("environment '" + env_name + "' cannot render a clip from its observations, and segment " +
                       std::to_string(seg.id) + " holds no states");
    }
    env->set_state(state, obs.data());
    env->render(frame_size, frame_size, frame.data());
    if (seg.absorbing[t]) for (uint8_t& c : frame) c = static_cast<uint8_t>(c * 2 / 5);  // ended: darkened
    const int ox = (t % sheet.columns) * frame_size, oy = (t / sheet.columns) * frame_size;
    for (int y = 0; y < frame_size; ++y) {
      std::memcpy(canvas.data() + (static_cast<size_t>(oy + y) * W + ox) * 3,
                  frame.data() + static_cast<size_t>(y) * frame_size * 3, static_cast<size_t>(frame_size) * 3);
    }
  }
  sheet.png = encode_png(canvas.data(), W, H);
  return sheet;
}

}  // namespace prefrl
