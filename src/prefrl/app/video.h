// Video files of rendered frames, through Debian's FFmpeg libraries (libavformat, libavcodec,
// libswscale): `prefrl env render` writes them; tests read them back.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace prefrl {

// Writes RGB frames to a .webm (VP8, else VP9) or .mp4 (H.264, else MPEG-4 Part 2) file, in
// 4:2:0 colour, at a fixed frame rate. Not thread-safe.
class VideoWriter {
 public:
  // Opens `path` for width x height frames shown at `fps` frames per second. Throws
  // UsageError for another file extension, an odd or out-of-range size ([16, 4096], even) or
  // fps outside (0, 1000], and RuntimeError if FFmpeg cannot encode or write the file.
  VideoWriter(const std::string& path, int width, int height, double fps);
  ~VideoWriter();  // finishes the file if finish() was not called (errors then go to stderr)
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // Appends one frame: rgb (height x width x 3 bytes, row-major, top row first).
  void add_frame(const uint8_t* rgb);
  // Flushes the encoder and writes the container's trailer; the file is complete afterwards.
  void finish();

  const std::string& codec() const;  // FFmpeg's name of the encoder in use, e.g. "libvpx"
  int64_t frames() const;            // frames added so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What a video file holds, found by decoding every frame of its first video stream.
struct VideoInfo {
  int64_t frames = 0;     // decoded frames
  int width = 0, height = 0;
  double fps = 0.0;       // the stream's average frame rate
  std::string codec;      // FFmpeg's decoder name, e.g. "vp8", "h264"
};

// Decodes `path`; throws RuntimeError if it is not a video FFmpeg can decode.
VideoInfo probe_video(const std::string& path);

}  // namespace prefrl
