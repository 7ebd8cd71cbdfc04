#include "prefrl/tracking/run_dir.h"

#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "prefrl/core/error.h"
#include "prefrl/tracking/progress.h"

namespace fs = std::filesystem;

namespace prefrl {

RunDir RunDir::create(const std::string& path) {
  std::error_code ec;
  fs::create_directories(fs::path(path) / "checkpoints", ec);
  if (ec) throw UsageError("cannot create run directory '" + path + "': " + ec.message());
  if (fs::exists(fs::path(path) / "metrics.jsonl")) {
    throw UsageError("run directory '" + path + "' already holds a run (metrics.jsonl); choose another --run-dir");
  }
  const std::string probe = path + "/.write_probe";
  {
    std::ofstream f(probe);
    if (!f || !(f << "ok") || !f.flush()) throw UsageError("run directory '" + path + "' is not writable");
  }
  fs::remove(probe, ec);
  return RunDir(path);
}

RunDir RunDir::open(const std::string& path) {
  if (!fs::is_directory(path)) throw UsageError("'" + path + "' is not a run directory (no such directory)");
  if (!fs::exists(fs::path(path) / "config.json")) {
    throw UsageError("'" + path + "' is not a run directory (no config.json)");
  }
  return RunDir(path);
}

void write_file_atomic(const std::string& path, const std::string& contents, bool durable) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw RuntimeError("cannot write '" + tmp + "'");
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n <= 0) { ::close(fd); ::unlink(tmp.c_str()); throw RuntimeError("write failed for '" + tmp + "' (disk full?)"); }
    done += static_cast<size_t>(n);
  }
  if (durable && ::fsync(fd) != 0) { ::close(fd); ::unlink(tmp.c_str()); throw RuntimeError("fsync failed for '" + tmp + "'"); }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw RuntimeError("cannot rename '" + tmp + "' to '" + path + "'");
  if (!durable) return;
  const std::string dir = fs::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) { ::fsync(dfd); ::close(dfd); }
}

void RunDir::write_json(const std::string& name, const nlohmann::json& j, bool durable) const {
  write_file_atomic(file(name), j.dump(2) + "\n", durable);
}

nlohmann::json RunDir::read_json(const std::string& name) const {
  std::ifstream f(file(name));
  if (!f) throw UsageError("cannot read '" + file(name) + "'");
  try {
    return nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw UsageError("'" + file(name) + "' is not valid JSON: " + e.what());
  }
}

void RunDir::write_text(const std::string& name, const std::string& text) const {
  write_file_atomic(file(name), text);
}

std::string utc_now(const char* format) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::string default_run_name(const std::string& env, const std::string& teacher, uint64_t seed) {
  std::ostringstream s;
  s << env << "-" << teacher << "-s" << seed << "-" << utc_now("%Y%m%d-%H%M%S");
  return s.str();
}

std::string default_sweep_name(const std::string& env, const std::string& teacher) {
  return "sweep-" + env + "-" + teacher + "-" + utc_now("%Y%m%d-%H%M%S");
}

RunLog::~RunLog() {
  if (drawn_) std::fputc('\n', stdout);
  if (f_) std::fclose(f_);
}

void RunLog::open(const std::string& path) {
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) throw RuntimeError("cannot open log file '" + path + "'");
}

RunLog::RunLog() : terminal_(stdout_is_terminal()) {}

void RunLog::line(const std::string& text) {
  if (drawn_) std::fputc('\n', stdout);
  drawn_ = false;
  std::fputs(text.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  file_only(text);
}

void RunLog::file_only(const std::string& text) {
  if (!f_) return;
  std::fputs(text.c_str(), f_);
  std::fputc('\n', f_);
  std::fflush(f_);
}

}  // namespace prefrl

namespace prefrl {

void RunLog::progress(const std::string& text, double fraction) {
  if (!terminal_) return line(text);
  std::fputs(("\r\033[K" + progress_bar(fraction) + " " + text).c_str(), stdout);
  std::fflush(stdout);
  drawn_ = true;
  file_only(text);
}

}  // namespace prefrl
