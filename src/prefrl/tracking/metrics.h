// The metric writer: one JSON object per line in metrics.jsonl (and, optionally, the same
// scalars in a TensorBoard event file: tensorboard.h),
//   {"name": "charts/episodic_return", "value": 123.5, "step": 40960, "wall_time": 12.25}
// step = environment steps so far; wall_time = seconds since the run started. Values are
// written with round-trip precision; non-finite values are written as null with "nonfinite":
// "nan"|"inf"|"-inf". Lines are flushed at every flush() (the trainer flushes per iteration).
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "prefrl/tracking/tensorboard.h"

namespace prefrl {

class MetricWriter {
 public:
  // Opens `path` for appending (creates it). With a non-empty `tensorboard_dir`, every metric
  // also goes to a TensorBoard event file there. Throws RuntimeError if it cannot.
  explicit MetricWriter(const std::string& path, const std::string& tensorboard_dir = "");
  ~MetricWriter();
  MetricWriter(const MetricWriter&) = delete;
  MetricWriter& operator=(const MetricWriter&) = delete;

  // Records one scalar against environment step `step`.
  void log(const char* name, double value, int64_t step);
  void flush();
  double elapsed_s() const;

 private:
  std::FILE* f_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
  std::chrono::steady_clock::time_point start_;
  double start_unix_ = 0;  // wall clock at start_, for TensorBoard's absolute wall_time
};

// Resident set size of this process in MiB (from /proc/self/statm).
double resident_memory_mb();

}  // namespace prefrl
