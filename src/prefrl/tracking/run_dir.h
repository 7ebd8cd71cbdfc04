// The run directory: everything needed to understand and repeat a run (format:
// docs/run_dir.md).
//   config.json      resolved configuration (every key, after presets, files and --set)
//   command.txt      the exact command line
//   meta.json        prefrl version, git commit and dirty flag, build type, LibTorch version,
//                    machine, seed, start time
//   log.txt          everything the run printed
//   metrics.jsonl    scalar metrics (tracking/metrics.h)
//   prefs.db         the preference database (docs/database.md)
//   checkpoints/     policy.pt, reward.pt (final), plus periodic ones
//   summary.json     final figures and status, written at the end
#pragma once
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace prefrl {

class RunDir {
 public:
  // Creates `path` (and checkpoints/) if needed. Throws UsageError if it cannot be created
  // or written, or if it already holds a run (a metrics.jsonl), naming the path.
  static RunDir create(const std::string& path);
  // Opens an existing run directory (must contain config.json). Throws UsageError otherwise.
  static RunDir open(const std::string& path);

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Writes `j` to `name` atomically (temporary file, fsync, rename). durable=false skips the
  // fsyncs (still atomic: readers see the old or the new file), for frequent rewrites such as
  // summary.json heartbeats.
  void write_json(const std::string& name, const nlohmann::json& j, bool durable = true) const;
  nlohmann::json read_json(const std::string& name) const;
  void write_text(const std::string& name, const std::string& text) const;

 private:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// A fresh run name: <env>-<teacher>-s<seed>-<UTC yyyymmdd-hhmmss>.
std::string default_run_name(const std::string& env, const std::string& teacher, uint64_t seed);
// A fresh sweep name: sweep-<env>-<teacher>-<UTC yyyymmdd-hhmmss>.
std::string default_sweep_name(const std::string& env, const std::string& teacher);
// The time now in UTC, as strftime formats it (e.g. "%Y-%m-%dT%H:%M:%SZ").
std::string utc_now(const char* format = "%Y-%m-%dT%H:%M:%SZ");

// Writes atomically: temporary file in the same directory, fsync, rename, fsync directory
// (durable=false: no fsyncs; still atomic).
void write_file_atomic(const std::string& path, const std::string& contents, bool durable = true);

// Lines printed by the run go to stdout and to the run's log.txt.
class RunLog {
 public:
  RunLog();
  ~RunLog();
  void open(const std::string& path);
  // Prints a line (no trailing newline needed) to stdout and the log file.
  void line(const std::string& text);
  // Prints to the log file only.
  void file_only(const std::string& text);
  // A progress line at `fraction` of the work: on a terminal, drawn in place after a bar (the
  // next line() starts below it); elsewhere printed as line() prints. The log file always
  // gets the plain text.
  void progress(const std::string& text, double fraction);
 private:
  std::FILE* f_ = nullptr;
  bool terminal_ = false, drawn_ = false;  // progress drawn in place, not yet ended by a newline
};

}  // namespace prefrl
