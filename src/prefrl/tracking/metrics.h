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
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
  // Writes buffered lines out; throws RuntimeError naming the file and the reason if they
  // cannot be written (a full disk, a file-size limit).
  void flush();
  double elapsed_s() const;
  // Adds `seconds` to every later wall_time (a resumed run continues its clock).
  void set_elapsed_offset(double seconds) { offset_s_ = seconds; }
  // Bytes of metrics.jsonl written so far (after flush()): a checkpoint's position in it.
  int64_t bytes() const;
  // The TensorBoard event file ("" without one) and its size after flush().
  std::string tensorboard_path() const;
  int64_t tensorboard_bytes() const;

 private:
  std::string path_;
  double offset_s_ = 0;
  std::FILE* f_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
  std::chrono::steady_clock::time_point start_;
  double start_unix_ = 0;  // wall clock at start_, for TensorBoard's absolute wall_time
};

// Resident set size of this process in MiB (from /proc/self/statm).
double resident_memory_mb();

// Whether a metric measures the machine (wall clock, memory) rather than the learning: time/*,
// sys/*, charts/SPS, charts/rollout_SPS and the wall-clock health checks. Only these may
// differ between two runs with the same seed, one thread and a scripted teacher.
bool measures_machine(std::string_view name);

// Reading metrics.jsonl back. A missing file reads as no metrics; a torn last line (a run
// still writing) is ignored; any other malformed line is a RuntimeError naming file and line.
struct MetricPoint {
  int64_t step = 0;
  double value = 0;  // NaN for null (non-finite) values
};
using MetricSeries = std::map<std::string, std::vector<MetricPoint>>;  // name => points in file order
MetricSeries read_metrics(const std::string& path);

// Two metrics.jsonl files compared line by line, ignoring the wall_time field and the series
// that measure_machine(): the determinism check of tests/app and `prefrl reproduce`.
struct MetricsComparison {
  bool agree = false;          // every compared line is identical and both have the same number
  int64_t lines_a = 0, lines_b = 0;  // compared lines of each (machine series excluded)
  int64_t first_difference = -1;     // index among compared lines, -1 if none
  std::string line_a, line_b;        // the first differing lines ("" past the end)
};
MetricsComparison compare_metrics(const std::string& path_a, const std::string& path_b);
// The compared lines of one file, as compare_metrics sees them.
std::vector<std::string> deterministic_metric_lines(const std::string& path);

}  // namespace prefrl
