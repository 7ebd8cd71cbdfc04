// TensorBoard event files, written natively: `tensorboard --logdir runs/` shows every metric.
//
// Format (TensorFlow's record and Event formats): the file is a sequence of TFRecords,
//   uint64 length (little-endian) | uint32 masked CRC-32C of the 8 length bytes |
//   length bytes of data | uint32 masked CRC-32C of the data,
// where mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8. Each record's data is a
// serialized tensorflow.Event protobuf: wall_time (1, double), step (2, int64), and either
// file_version (3, string; the first record, "brain.Event:2") or summary (5, Summary), where
// Summary.value (1, repeated Value) and Value{tag (1, string), simple_value (2, float)}.
// The protobuf encoding is written by hand (a few fields; no dependency).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace prefrl {

// CRC-32C (Castagnoli), as TFRecord uses it, and TFRecord's mask of it.
uint32_t crc32c(const void* data, size_t n);
// The CRC-32C of (the bytes whose CRC-32C is `crc`) followed by data[0, n): a file's, chunk by chunk.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);
inline uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

class TensorBoardWriter {
 public:
  // Creates `dir`/events.out.tfevents.<unix seconds>.<host>.<pid> and writes the version
  // record. Throws RuntimeError if it cannot.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One scalar: tag, value (stored as float, as TensorBoard's simple_value), step, and
  // wall_time in unix seconds.
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time);
  // Throws RuntimeError naming the file if buffered records cannot be written.
  void flush();
  const std::string& path() const { return path_; }
  int64_t bytes() const;  // written so far (after flush())

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace prefrl
