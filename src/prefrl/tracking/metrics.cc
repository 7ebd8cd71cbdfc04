#include "prefrl/tracking/metrics.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "prefrl/core/error.h"

namespace prefrl {

MetricWriter::MetricWriter(const std::string& path, const std::string& tensorboard_dir)
    : start_(std::chrono::steady_clock::now()),
      start_unix_(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()) {
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) throw RuntimeError("cannot open metrics file '" + path + "' for writing");
  if (!tensorboard_dir.empty()) tb_ = std::make_unique<TensorBoardWriter>(tensorboard_dir);
}

MetricWriter::~MetricWriter() {
  if (f_) { std::fflush(f_); std::fclose(f_); }
}

double MetricWriter::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void MetricWriter::log(const char* name, double value, int64_t step) {
  nlohmann::ordered_json j;
  j["name"] = name;
  if (std::isfinite(value)) {
    j["value"] = value;
  } else {
    j["value"] = nullptr;
    j["nonfinite"] = std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  }
  j["step"] = step;
  j["wall_time"] = std::round(elapsed_s() * 1000.0) / 1000.0;
  const std::string line = j.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), f_);
  if (tb_) tb_->add_scalar(name, value, step, start_unix_ + elapsed_s());
}

void MetricWriter::flush() {
  std::fflush(f_);
  if (tb_) tb_->flush();
}

double resident_memory_mb() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(f >> pages_total >> pages_resident)) return 0.0;
  return pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

}  // namespace prefrl
