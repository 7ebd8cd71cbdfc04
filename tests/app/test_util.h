// Helpers for tests that run the real `prefrl` binary.
#pragma once
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace prefrl::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr, interleaved
};

// Runs `command` through the shell, capturing output (stderr too) and exit code.
inline CommandResult run_command(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs `prefrl <args>` through the shell, capturing output and exit code.
inline CommandResult run_prefrl(const std::string& args) { return run_command(std::string(PREFRL_BINARY) + " " + args); }

// A fresh, empty temporary directory path (not created).
inline std::string temp_path(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("prefrl_app_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline nlohmann::json json_of(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

// Flags that keep a short test run quiet and quick: no progress lines, no final evaluation.
inline const std::string kQuiet = " --set run.progress_every_s=0 --set run.eval_episodes=0";

// Writes RUN/summary.json saying the run is running, by this very process's identity (alive,
// same boot, same start time): what prefrl reads as a live run.
inline void mark_running_by_this_process(const std::string& run) {
  std::ifstream stat("/proc/self/stat");
  std::string s((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(s.substr(s.rfind(')') + 2));
  std::string field;
  for (int k = 3; k <= 22; ++k) fields >> field;  // field 22: start time in clock ticks
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string boot = read_file("/proc/sys/kernel/random/boot_id").substr(0, 36);
  std::ofstream(run + "/summary.json")
      << "{\"status\": \"running\", \"process\": {\"pid\": " << ::getpid() << ", \"host\": \"" << host
      << "\", \"boot_id\": \"" << boot << "\", \"start_ticks\": " << field << ", \"heartbeat\": 1e12}}";
}

// A running `prefrl ...` whose output is read line by line.
class Running {
 public:
  explicit Running(const std::string& args) {
    pipe_ = ::popen((std::string(PREFRL_BINARY) + " " + args + " 2>&1").c_str(), "r");
  }
  ~Running() {
    if (pipe_) ::pclose(pipe_);
  }
  // Reads until a line matches `re`; returns its first group ("" at end of output).
  std::string wait_for(const std::string& re) {
    const std::regex r(re);
    char line[8192];
    while (pipe_ && std::fgets(line, sizeof line, pipe_)) {
      out_ += line;
      std::cmatch m;
      if (std::regex_search(line, m, r)) return m.size() > 1 ? m[1].str() : m[0].str();
    }
    return "";
  }
  int finish() {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe_)) > 0) out_.append(buf, n);
    const int status = ::pclose(pipe_);
    pipe_ = nullptr;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& out() const { return out_; }

 private:
  FILE* pipe_ = nullptr;
  std::string out_;
};

}  // namespace prefrl::testing
