// The run archive, read back: what `prefrl runs list|show|compare`, `prefrl report` and the
// server's /runs pages know about a run directory (format: docs/run_dir.md).
//
// A run's status comes from summary.json, which the trainer writes at start ("running", with
// the process's identity), rewrites every run.heartbeat_s, and replaces at the end
// ("finished" or "failed"). A "running" summary whose process is gone (same host: the pid no
// longer names the process that started the run; another host: no heartbeat for a long
// while) is reported as "crashed".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefrl {

// This process as summary.json records it: {"pid", "host", "boot_id", "start_ticks"}.
nlohmann::json process_identity();
// Whether the process `identity` names is still running (on this host), or, on another host,
// whether `heartbeat_unix` is recent (within stale_after_s).
bool process_alive(const nlohmann::json& identity, double heartbeat_unix, double stale_after_s);
// Seconds since the Unix epoch.
double unix_time_now();

struct RunInfo {
  std::string path;   // the directory
  std::string name;   // path relative to the root it was found under (or the path given)
  nlohmann::json config = nlohmann::json::object(), meta = nlohmann::json::object(),
                 summary = nlohmann::json::object();
  std::string status;         // running | finished | failed | stopped | crashed
  std::string status_detail;  // why (error message, "process 123 is gone", ...) or ""
  bool is_sweep_member = false;  // found inside a sweep directory

  std::string env() const;
  std::string teacher() const;
  int64_t seed() const;
  int64_t env_steps() const;    // so far (running) or at the end
  int64_t total_steps() const;  // the configured budget
  int64_t labels() const;
  // Evaluation return at the end (finished runs with evaluation), else the mean true return
  // of recent training episodes; NaN if neither is known.
  double final_return() const;
  double wall_s() const;        // NaN if unknown
};

// Reads a run directory (config.json required: else UsageError naming the path).
RunInfo load_run(const std::string& dir);
// Every run directory under root: its children and, for sweep directories, theirs. Sorted by
// start time, then name. UsageError if root is not a directory.
std::vector<RunInfo> find_runs(const std::string& root);
// A run given on the command line: a run directory, or a name found under `root`.
RunInfo resolve_run(const std::string& run, const std::string& root);

// Health warnings a run wrote (health.jsonl: {"name", "step", "message", "wall_time"} per line).
nlohmann::json read_health_events(const std::string& run_dir);

// A config value as shown to people: secrets (keys ending in "token") hidden.
std::string display_config_value(const std::string& key, const nlohmann::json& value);
// The config JSON with every secret (keys ending in "token") replaced by "(hidden)".
nlohmann::json redacted_config(const nlohmann::json& config);
// Flattens nested config JSON to dotted keys => values, in key order.
std::vector<std::pair<std::string, nlohmann::json>> flatten_config(const nlohmann::json& config);

// Plain-text table: columns padded to their widest cell; numbers should be pre-formatted.
std::string text_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
// A number for tables: "—" for NaN, else fixed with `decimals`.
std::string fmt_num(double x, int decimals = 2);
// A figure of a run's summary.json: the number, or where it has none because it is undefined
// (summary "undefined", e.g. a correlation over clips that all tie), "undefined (why)" (with_why)
// or "undefined"; "—" where it is missing.
std::string summary_figure(const nlohmann::json& summary, const char* key, int decimals, bool with_why = true);

// The three commands' output (what `prefrl runs ...` prints).
std::string runs_list_text(const std::vector<RunInfo>& runs);
std::string run_show_text(const RunInfo& run);
// color: highlight differing keys with ANSI escapes (a TTY); marked with '*' either way.
std::string runs_compare_text(const std::vector<RunInfo>& runs, bool only_differences, bool color);

}  // namespace prefrl
