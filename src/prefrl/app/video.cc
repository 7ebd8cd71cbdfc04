// VideoWriter and probe_video on FFmpeg 5's send/receive API.
//   add_frame: RGB (top row first) => sws_scale => YUV 4:2:0 frame => encoder => packets =>
//   muxer (interleaved, timestamps in the stream's time base)
#include "prefrl/app/video.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "prefrl/core/error.h"

namespace prefrl {
namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// Throws RuntimeError "<what> failed for '<path>': <FFmpeg's reason>" if code < 0.
void check(int code, const char* what, const std::string& path) {
  if (code < 0) throw RuntimeError(std::string("video: ") + what + " failed for '" + path + "': " + av_error(code));
}

// FFmpeg's own messages (encoder banners, statistics) are noise here; errors come back as
// exceptions. Only its errors are printed.
void quiet_ffmpeg() { av_log_set_level(AV_LOG_ERROR); }

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

}  // namespace

struct VideoWriter::Impl {
  std::string path;
  int width = 0, height = 0;
  AVFormatContext* format = nullptr;
  AVCodecContext* encoder = nullptr;
  AVStream* stream = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  SwsContext* sws = nullptr;
  std::string codec;
  int64_t frames = 0;
  bool header_written = false, finished = false;

  ~Impl() {
    sws_freeContext(sws);
    av_packet_free(&packet);
    av_frame_free(&frame);
    avcodec_free_context(&encoder);
    if (format) {
      if (format->pb) avio_closep(&format->pb);
      avformat_free_context(format);
    }
  }

  // Sends `f` (nullptr: flush) to the encoder and writes every packet it gives back.
  void encode(AVFrame* f) {
    check(avcodec_send_frame(encoder, f), "encoding a frame", path);
    while (true) {
      const int rc = avcodec_receive_packet(encoder, packet);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check(rc, "encoding a frame", path);
      av_packet_rescale_ts(packet, encoder->time_base, stream->time_base);
      packet->stream_index = stream->index;
      check(av_interleaved_write_frame(format, packet), "writing a frame", path);
    }
  }
};

VideoWriter::VideoWriter(const std::string& path, int width, int height, double fps) : impl_(std::make_unique<Impl>()) {
  const std::string ext = lower_extension(path);
  if (ext != ".webm" && ext != ".mp4")
    throw UsageError("video file '" + path + "' must end in .webm (VP8/VP9) or .mp4 (H.264/MPEG-4)");
  if (width < 16 || height < 16 || width > 4096 || height > 4096 || width % 2 || height % 2)
    throw UsageError("video size " + std::to_string(width) + "x" + std::to_string(height) +
                     " must be even and within [16, 4096] in each dimension");
  if (!(fps > 0.0 && fps <= 1000.0)) throw UsageError("video frame rate " + std::to_string(fps) + " is outside (0, 1000]");
  quiet_ffmpeg();
  Impl& v = *impl_;
  v.path = path;
  v.width = width;
  v.height = height;

  check(avformat_alloc_output_context2(&v.format, nullptr, ext == ".webm" ? "webm" : "mp4", path.c_str()),
        "choosing the container", path);
  // The first encoder this FFmpeg has, in order of preference.
  const char* const webm[] = {"libvpx", "libvpx-vp9"};
  const char* const mp4[] = {"libx264", "mpeg4"};
  const AVCodec* enc = nullptr;
  for (const char* name : ext == ".webm" ? webm : mp4) {
    if ((enc = avcodec_find_encoder_by_name(name))) break;
  }
  if (!enc)
    throw RuntimeError("video: this FFmpeg has no " + std::string(ext == ".webm" ? "VP8 or VP9" : "H.264 or MPEG-4") +
                       " encoder for '" + path + "'");
  v.codec = enc->name;
  v.stream = avformat_new_stream(v.format, nullptr);
  v.encoder = avcodec_alloc_context3(enc);
  v.frame = av_frame_alloc();
  v.packet = av_packet_alloc();
  if (!v.stream || !v.encoder || !v.frame || !v.packet) throw RuntimeError("video: out of memory for '" + path + "'");

  const AVRational rate = av_d2q(fps, 100000);
  v.encoder->width = width;
  v.encoder->height = height;
  v.encoder->pix_fmt = AV_PIX_FMT_YUV420P;
  v.encoder->time_base = av_inv_q(rate);
  v.encoder->framerate = rate;
  v.encoder->gop_size = std::max(1, static_cast<int>(std::lround(fps)));  // a key frame a second
  // Quality over size: clips are small. Constant quality where the encoder has it.
  v.encoder->bit_rate = static_cast<int64_t>(std::min(20e6, 0.25 * width * height * fps));
  if (v.codec == "libx264") {
    av_opt_set(v.encoder->priv_data, "preset", "veryfast", 0);
    av_opt_set(v.encoder->priv_data, "crf", "20", 0);
  } else if (v.codec == "libvpx" || v.codec == "libvpx-vp9") {
    av_opt_set(v.encoder->priv_data, "deadline", "good", 0);
    av_opt_set(v.encoder->priv_data, "cpu-used", "5", 0);
    av_opt_set(v.encoder->priv_data, "crf", "10", 0);
  }
  if (v.format->oformat->flags & AVFMT_GLOBALHEADER) v.encoder->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(v.encoder, enc, nullptr), "opening the encoder", path);
  check(avcodec_parameters_from_context(v.stream->codecpar, v.encoder), "setting up the stream", path);
  v.stream->time_base = v.encoder->time_base;
  v.stream->avg_frame_rate = rate;

  v.frame->format = v.encoder->pix_fmt;
  v.frame->width = width;
  v.frame->height = height;
  check(av_frame_get_buffer(v.frame, 0), "allocating a frame", path);
  v.sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr,
                         nullptr, nullptr);
  if (!v.sws) throw RuntimeError("video: no RGB to YUV 4:2:0 conversion for '" + path + "'");

  if (!(v.format->oformat->flags & AVFMT_NOFILE)) {
    const int rc = avio_open(&v.format->pb, path.c_str(), AVIO_FLAG_WRITE);
    if (rc < 0) throw UsageError("cannot write video file '" + path + "': " + av_error(rc));
  }
  check(avformat_write_header(v.format, nullptr), "writing the header", path);
  v.header_written = true;
}

VideoWriter::~VideoWriter() {
  if (impl_ && impl_->header_written && !impl_->finished) {
    try {
      finish();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "prefrl: %s\n", e.what());
    }
  }
}

void VideoWriter::add_frame(const uint8_t* rgb) {
  Impl& v = *impl_;
  if (v.finished) throw RuntimeError("video: '" + v.path + "' is already finished");
  check(av_frame_make_writable(v.frame), "preparing a frame", v.path);
  const uint8_t* src[1] = {rgb};
  const int stride[1] = {3 * v.width};
  sws_scale(v.sws, src, stride, 0, v.height, v.frame->data, v.frame->linesize);
  v.frame->pts = v.frames++;
  v.encode(v.frame);
}

void VideoWriter::finish() {
  Impl& v = *impl_;
  if (v.finished) return;
  v.finished = true;
  v.encode(nullptr);
  check(av_write_trailer(v.format), "writing the trailer", v.path);
  check(avio_closep(&v.format->pb), "closing the file", v.path);
}

const std::string& VideoWriter::codec() const { return impl_->codec; }
int64_t VideoWriter::frames() const { return impl_->frames; }

VideoInfo probe_video(const std::string& path) {
  quiet_ffmpeg();
  AVFormatContext* format = nullptr;
  check(avformat_open_input(&format, path.c_str(), nullptr, nullptr), "opening the video", path);
  struct Closer {
    AVFormatContext** f;
    AVCodecContext* c = nullptr;
    AVPacket* p = nullptr;
    AVFrame* fr = nullptr;
    ~Closer() { av_frame_free(&fr); av_packet_free(&p); avcodec_free_context(&c); avformat_close_input(f); }
  } closer{&format};
  check(avformat_find_stream_info(format, nullptr), "reading the stream info", path);
  const AVCodec* dec = nullptr;
  const int index = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
  check(index, "finding a video stream", path);
  AVStream* st = format->streams[index];
  closer.c = avcodec_alloc_context3(dec);
  closer.p = av_packet_alloc();
  closer.fr = av_frame_alloc();
  if (!closer.c || !closer.p || !closer.fr) throw RuntimeError("video: out of memory reading '" + path + "'");
  check(avcodec_parameters_to_context(closer.c, st->codecpar), "setting up the decoder", path);
  check(avcodec_open2(closer.c, dec, nullptr), "opening the decoder", path);
  VideoInfo info;
  info.codec = dec->name;
  info.width = closer.c->width;
  info.height = closer.c->height;
  info.fps = st->avg_frame_rate.den ? av_q2d(st->avg_frame_rate) : 0.0;
  auto drain = [&] {
    while (true) {
      const int rc = avcodec_receive_frame(closer.c, closer.fr);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check(rc, "decoding a frame", path);
      ++info.frames;
    }
  };
  while (av_read_frame(format, closer.p) >= 0) {
    if (closer.p->stream_index == index) {
      check(avcodec_send_packet(closer.c, closer.p), "decoding a packet", path);
      drain();
    }
    av_packet_unref(closer.p);
  }
  check(avcodec_send_packet(closer.c, nullptr), "flushing the decoder", path);
  drain();
  return info;
}

}  // namespace prefrl
