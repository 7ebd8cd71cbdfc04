#include "prefrl/tracking/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "prefrl/core/error.h"
#include "prefrl/tracking/health.h"
#include "prefrl/core/metric_names.h"

namespace prefrl {

MetricWriter::MetricWriter(const std::string& path, const std::string& tensorboard_dir)
    : path_(path), start_(std::chrono::steady_clock::now()),
      start_unix_(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()) {
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) throw RuntimeError("cannot open metrics file '" + path + "' for writing");
  if (!tensorboard_dir.empty()) tb_ = std::make_unique<TensorBoardWriter>(tensorboard_dir);
}

MetricWriter::~MetricWriter() {
  if (f_) { std::fflush(f_); std::fclose(f_); }
}

double MetricWriter::elapsed_s() const {
  return offset_s_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
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
  if (std::fflush(f_) != 0 || std::ferror(f_)) {
    const int err = errno;
    std::clearerr(f_);
    throw RuntimeError("cannot write metrics file '" + path_ + "': " + std::strerror(err));
  }
  if (tb_) tb_->flush();
}

int64_t MetricWriter::bytes() const {
  struct stat st {};
  return ::fstat(fileno(f_), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

std::string MetricWriter::tensorboard_path() const { return tb_ ? tb_->path() : std::string(); }

int64_t MetricWriter::tensorboard_bytes() const { return tb_ ? tb_->bytes() : 0; }

double resident_memory_mb() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(f >> pages_total >> pages_resident)) return 0.0;
  return pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

bool measures_machine(std::string_view name) {
  if (name.rfind("time/", 0) == 0 || name.rfind("sys/", 0) == 0) return true;
  if (name == metric::kSPS || name == metric::kRolloutSPS) return true;
  // The database file's size depends on its history, not only on the learning: a resumed
  // run's file already holds the labels it replays.
  if (name == metric::kDbBytes) return true;
  for (int c = 0; c < HealthMonitor::kNumChecks; ++c) {
    const auto check = static_cast<HealthMonitor::Check>(c);
    if (name == HealthMonitor::metric_name(check)) return HealthMonitor::measures_machine(check);
  }
  return false;
}

namespace {

// Calls fn(json) for every complete line of a metrics file; a torn last line is skipped.
template <class Fn>
void for_each_metric_line(const std::string& path, Fn fn) {
  std::ifstream f(path);
  if (!f) return;
  std::string line, next;
  int64_t number = 0;
  bool have = static_cast<bool>(std::getline(f, line));
  while (have) {
    ++number;
    const bool more = static_cast<bool>(std::getline(f, next));
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j.contains("step")) {
      if (!more) return;  // a run still writing its last line
      throw RuntimeError("'" + path + "' line " + std::to_string(number) + " is not a metric record: " +
                         line.substr(0, 120));
    }
    fn(j);
    line = std::move(next);
    have = more;
  }
}

}  // namespace

MetricSeries read_metrics(const std::string& path) {
  MetricSeries out;
  for_each_metric_line(path, [&](const nlohmann::json& j) {
    const auto& v = j["value"];
    out[j["name"].get<std::string>()].push_back(
        {j["step"].get<int64_t>(), v.is_number() ? v.get<double>() : std::nan("")});
  });
  return out;
}

std::vector<std::string> deterministic_metric_lines(const std::string& path) {
  if (!std::ifstream(path)) throw RuntimeError("cannot read metrics file '" + path + "'");
  std::vector<std::string> out;
  for_each_metric_line(path, [&](nlohmann::json j) {
    if (measures_machine(j["name"].get<std::string>())) return;
    j.erase("wall_time");
    out.push_back(j.dump());
  });
  return out;
}

MetricsComparison compare_metrics(const std::string& path_a, const std::string& path_b) {
  const std::vector<std::string> a = deterministic_metric_lines(path_a), b = deterministic_metric_lines(path_b);
  MetricsComparison c;
  c.lines_a = static_cast<int64_t>(a.size());
  c.lines_b = static_cast<int64_t>(b.size());
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const std::string la = i < a.size() ? a[i] : "", lb = i < b.size() ? b[i] : "";
    if (la != lb) {
      c.first_difference = static_cast<int64_t>(i);
      c.line_a = la;
      c.line_b = lb;
      break;
    }
  }
  c.agree = c.first_difference < 0;
  return c;
}

}  // namespace prefrl
