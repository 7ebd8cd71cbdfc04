#include "prefrl/tracking/runs.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <unistd.h>

#include "prefrl/core/config.h"
#include "prefrl/core/error.h"
#include "prefrl/core/metric_names.h"
#include "prefrl/tracking/metrics.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace prefrl {

namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

std::string host_name() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

// Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot.
int64_t start_ticks(int64_t pid) {
  const std::string stat = read_first_line("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 22) return std::stoll(field);
  }
  return -1;
}

json read_json_or_empty(const fs::path& p) {
  std::ifstream f(p);
  if (!f) return json::object();
  json j = json::parse(f, nullptr, false);
  return j.is_object() ? j : json::object();
}

double num_or_nan(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::nan("");
}

int64_t int_or(const json& j, const char* key, int64_t dflt) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : dflt;
}

std::string started_at(const RunInfo& r) { return r.meta.value("started_at", std::string()); }

bool is_run_dir(const fs::path& p) { return fs::is_regular_file(p / "config.json"); }

}  // namespace

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json process_identity() {
  const int64_t pid = ::getpid();
  return {{"pid", pid}, {"host", host_name()}, {"boot_id", read_first_line("/proc/sys/kernel/random/boot_id")},
          {"start_ticks", start_ticks(pid)}};
}

bool process_alive(const json& id, double heartbeat_unix, double stale_after_s) {
  if (!id.is_object() || !id.contains("pid")) return false;
  const bool here = id.value("host", std::string()) == host_name() &&
                    id.value("boot_id", std::string()) == read_first_line("/proc/sys/kernel/random/boot_id");
  if (!here) return std::isfinite(heartbeat_unix) && unix_time_now() - heartbeat_unix < stale_after_s;
  const int64_t pid = id["pid"].get<int64_t>();
  if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) return false;
  // A killed process stays a zombie until its parent reaps it: it is not running.
  const std::string stat = read_first_line("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  if (close != std::string::npos && close + 2 < stat.size() && (stat[close + 2] == 'Z' || stat[close + 2] == 'X'))
    return false;
  return start_ticks(pid) == id.value("start_ticks", int64_t{-2});  // not a later process with the same pid
}

std::string RunInfo::env() const {
  return config.contains("env") ? config["env"].value("name", std::string("?")) : "?";
}
std::string RunInfo::teacher() const {
  return config.contains("teacher") ? config["teacher"].value("kind", std::string("?")) : "?";
}
int64_t RunInfo::seed() const { return config.contains("run") ? int_or(config["run"], "seed", -1) : -1; }
int64_t RunInfo::env_steps() const { return int_or(summary, "env_steps", 0); }
int64_t RunInfo::total_steps() const {
  return config.contains("run") ? int_or(config["run"], "total_steps", 0) : 0;
}
int64_t RunInfo::labels() const { return int_or(summary, "labels", 0); }
double RunInfo::wall_s() const { return num_or_nan(summary, "wall_s"); }
double RunInfo::final_return() const {
  if (summary.contains("eval") && summary["eval"].value("episodes", 0) > 0) {
    const double e = num_or_nan(summary["eval"], "mean_return");
    if (std::isfinite(e)) return e;
  }
  return num_or_nan(summary, "train_return");
}

RunInfo load_run(const std::string& dir) {
  if (!fs::is_directory(dir)) throw UsageError("'" + dir + "' is not a run directory (no such directory)");
  if (!is_run_dir(dir)) throw UsageError("'" + dir + "' is not a run directory (no config.json)");
  RunInfo r;
  r.path = dir;
  r.name = dir;
  r.config = read_json_or_empty(fs::path(dir) / "config.json");
  r.meta = read_json_or_empty(fs::path(dir) / "meta.json");
  r.summary = read_json_or_empty(fs::path(dir) / "summary.json");
  r.is_sweep_member = fs::is_regular_file(fs::path(dir).parent_path() / "sweep.json");
  const std::string st = r.summary.value("status", std::string());
  if (st.empty()) {
    r.status = "crashed";
    r.status_detail = "no summary.json: the run ended before writing its status";
  } else if (st == "running") {
    const json id = r.summary.value("process", json::object());
    const double hb = num_or_nan(id, "heartbeat");
    const double every = num_or_nan(r.summary, "heartbeat_s");
    const double stale = std::max(120.0, 10.0 * (std::isfinite(every) ? every : 10.0));
    if (process_alive(id, hb, stale)) {
      r.status = "running";
    } else {
      r.status = "crashed";
      r.status_detail = id.value("host", std::string()) == host_name()
                            ? fmt::format("process {} ended without writing a final status", int_or(id, "pid", -1))
                            : fmt::format("no heartbeat from host {} for {:.0f} s", id.value("host", std::string("?")),
                                          unix_time_now() - hb);
    }
  } else {
    r.status = st;
    if (r.summary.contains("error") && r.summary["error"].is_string()) r.status_detail = r.summary["error"];
  }
  return r;
}

std::vector<RunInfo> find_runs(const std::string& root) {
  if (!fs::is_directory(root)) throw UsageError("runs root '" + root + "' is not a directory");
  std::vector<RunInfo> out;
  auto add = [&](const fs::path& p) {
    RunInfo r = load_run(p.string());
    r.name = fs::relative(p, root).string();
    out.push_back(std::move(r));
  };
  std::vector<fs::path> children;
  for (const auto& e : fs::directory_iterator(root)) if (e.is_directory()) children.push_back(e.path());
  std::sort(children.begin(), children.end());
  for (const auto& c : children) {
    if (is_run_dir(c)) { add(c); continue; }
    if (!fs::is_regular_file(c / "sweep.json")) continue;
    std::vector<fs::path> seeds;
    for (const auto& e : fs::directory_iterator(c)) if (e.is_directory() && is_run_dir(e.path())) seeds.push_back(e.path());
    std::sort(seeds.begin(), seeds.end());
    for (const auto& s : seeds) add(s);
  }
  std::stable_sort(out.begin(), out.end(), [](const RunInfo& a, const RunInfo& b) {
    return started_at(a) != started_at(b) ? started_at(a) < started_at(b) : a.name < b.name;
  });
  return out;
}

RunInfo resolve_run(const std::string& run, const std::string& root) {
  if (fs::is_directory(run)) return load_run(run);
  const fs::path under = fs::path(root) / run;
  if (!root.empty() && fs::is_directory(under)) {
    RunInfo r = load_run(under.string());
    r.name = run;
    return r;
  }
  throw UsageError("no run '" + run + "' (neither a directory nor a run under '" + root + "'; see `prefrl runs list`)");
}

json read_health_events(const std::string& run_dir) {
  json out = json::array();
  std::ifstream f(fs::path(run_dir) / "health.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object()) out.push_back(j);
  }
  return out;
}

namespace {
bool is_secret(const std::string& key, const json& value) {
  const std::string tail = "token";
  return key.size() >= tail.size() && key.compare(key.size() - tail.size(), tail.size(), tail) == 0 &&
         value.is_string() && !value.get<std::string>().empty();
}
}  // namespace

std::string display_config_value(const std::string& key, const json& value) {
  if (is_secret(key, value)) return "(hidden)";
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}


json redacted_config(const json& config) {
  json out = config;
  for (auto it = out.begin(); it != out.end(); ++it) {
    if (it->is_object()) *it = redacted_config(*it);
    else if (is_secret(it.key(), *it)) *it = "(hidden)";
  }
  return out;
}

std::vector<std::pair<std::string, json>> flatten_config(const json& config) {
  std::vector<std::pair<std::string, json>> out;
  for (auto it = config.begin(); it != config.end(); ++it) {
    if (it->is_object()) {
      for (auto& [k, v] : flatten_config(*it)) out.emplace_back(it.key() + "." + k, v);
    } else {
      out.emplace_back(it.key(), *it);
    }
  }
  return out;
}

std::string fmt_num(double x, int decimals) {
  if (!std::isfinite(x)) return "—";
  return fmt::format("{:.{}f}", x, decimals);
}

std::string summary_figure(const json& summary, const char* key, int decimals, bool with_why) {
  if (summary.contains(key) && summary[key].is_number()) return fmt_num(summary[key].get<double>(), decimals);
  if (summary.contains("undefined") && summary["undefined"].is_object() && summary["undefined"].contains(key)) {
    const json& why = summary["undefined"][key];
    return with_why && why.is_string() && !why.get<std::string>().empty() ? "undefined (" + why.get<std::string>() + ")"
                                                                          : "undefined";
  }
  return "—";
}

namespace {
// Display width of UTF-8 text (code points; the tables hold no wide characters).
size_t width_of(const std::string& s) {
  size_t n = 0;
  bool escape = false;
  for (unsigned char c : s) {
    if (c == 0x1b) { escape = true; continue; }
    if (escape) { if (c == 'm') escape = false; continue; }
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}
}  // namespace

std::string text_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) w[c] = width_of(header[c]);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < w.size(); ++c) w[c] = std::max(w[c], width_of(r[c]));
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < w.size(); ++c) {
      const std::string cell = c < cells.size() ? cells[c] : "";
      l += cell;
      if (c + 1 < w.size()) l += std::string(w[c] - width_of(cell) + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

std::string runs_list_text(const std::vector<RunInfo>& runs) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs) {
    rows.push_back({r.name, r.env(), r.teacher(), std::to_string(r.seed()),
                    fmt::format("{}/{}", r.env_steps(), r.total_steps()), std::to_string(r.labels()),
                    fmt_num(r.final_return()), r.status});
  }
  if (rows.empty()) return "no runs\n";
  return text_table({"run", "env", "teacher", "seed", "steps", "labels", "final return", "status"}, rows);
}

std::string run_show_text(const RunInfo& r) {
  std::string out;
  auto row = [&](const std::string& k, const std::string& v) { out += fmt::format("{:<10} {}\n", k, v); };
  row("run", r.path);
  row("status", r.status + (r.status_detail.empty() ? "" : " (" + r.status_detail + ")"));
  {
    std::ifstream f(fs::path(r.path) / "command.txt");
    std::string cmd;
    std::getline(f, cmd);
    row("command", cmd.empty() ? "—" : cmd);
  }
  const json& m = r.meta;
  if (!m.empty()) {
    row("prefrl", fmt::format("{} (commit {}{}), {} build, LibTorch {}, MuJoCo {}", m.value("prefrl_version", "?"),
                              m.value("git_commit", "?"), m.value("git_dirty", false) ? ", dirty tree" : "",
                              m.value("build_type", "?"), m.value("libtorch_version", "?"),
                              m.contains("mujoco_version") && m["mujoco_version"].is_string()
                                  ? m["mujoco_version"].get<std::string>() : std::string("—")));
    if (m.contains("machine")) {
      const json& mc = m["machine"];
      row("machine", fmt::format("{}, {} cores, {:.1f} GB", mc.value("hostname", "?"), mc.value("cores", 0),
                                 mc.value("memory_gb", 0.0)));
    }
    row("started", m.value("started_at", "?"));
  }
  row("task", fmt::format("{}, teacher {}, seed {}, {} labels budget, {} steps budget", r.env(), r.teacher(), r.seed(),
                          r.config.contains("prefs") ? int_or(r.config["prefs"], "total_labels", 0) : 0,
                          r.total_steps()));
  std::string result = fmt::format("{} steps, {} labels, wall {} s", r.env_steps(), r.labels(), fmt_num(r.wall_s(), 1));
  if (r.summary.contains("eval") && r.summary["eval"].value("episodes", 0) > 0) {
    const json& e = r.summary["eval"];
    result += fmt::format("; eval return {} ± {} over {} episodes", fmt_num(num_or_nan(e, "mean_return")),
                          fmt_num(num_or_nan(e, "std_return")), e.value("episodes", 0));
    if (std::isfinite(num_or_nan(e, "success_rate"))) result += ", success rate " + fmt_num(num_or_nan(e, "success_rate"));
  } else if (std::isfinite(num_or_nan(r.summary, "train_return"))) {
    result += "; recent training return " + fmt_num(num_or_nan(r.summary, "train_return"));
  }
  row("result", result);
  if (r.summary.contains("val_accuracy"))
    row("reward", fmt::format("val accuracy {}, predicted-vs-true correlation {} (final policy), {} (held-out clips)",
                              fmt_num(num_or_nan(r.summary, "val_accuracy"), 3),
                              summary_figure(r.summary, "final_true_corr", 3),
                              summary_figure(r.summary, "heldout_true_corr", 3)));
  const json events = read_health_events(r.path);
  if (events.empty()) {
    row("health", "no warnings");
  } else {
    row("health", fmt::format("{} warnings:", events.size()));
    for (const auto& e : events)
      out += fmt::format("             step {:>9}  {:<20} {}\n", e.value("step", int64_t{0}), e.value("name", "?"),
                         e.value("message", ""));
  }
  // The last value of the series DESIGN.md calls the health of training, and throughput.
  const MetricSeries ms = read_metrics((fs::path(r.path) / "metrics.jsonl").string());
  std::string last;
  for (const char* n : {metric::kEpisodicReturn, metric::kPredictedReturn, metric::kEntropy, metric::kRewardValAccuracy,
                        metric::kRewardTrueCorr, metric::kSPS, metric::kRssMb}) {
    auto it = ms.find(n);
    if (it == ms.end() || it->second.empty()) continue;
    last += fmt::format("{}{} {:.4g}", last.empty() ? "" : ", ", n, it->second.back().value);
  }
  row("last", last.empty() ? "no metrics yet" : last);
  std::string files;
  for (const char* f : {"config.json", "command.txt", "meta.json", "log.txt", "metrics.jsonl", "health.jsonl",
                        "prefs.db", "checkpoints/policy.pt", "checkpoints/reward.pt", "summary.json"}) {
    const fs::path p = fs::path(r.path) / f;
    if (fs::exists(p)) files += fmt::format("{}{} ({} B)", files.empty() ? "" : ", ", f, fs::file_size(p));
  }
  row("files", files);
  return out;
}

std::string runs_compare_text(const std::vector<RunInfo>& runs, bool only_differences, bool color) {
  std::vector<std::string> header = {"", "key"};
  for (const auto& r : runs) header.push_back(r.name);
  std::vector<std::vector<std::string>> rows;
  // Every key any run has, in the first run's order, then keys only later runs have.
  std::vector<std::string> keys;
  std::vector<std::vector<std::pair<std::string, json>>> flat;
  for (const auto& r : runs) {
    flat.push_back(flatten_config(r.config));
    for (const auto& [k, v] : flat.back())
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  auto value_of = [&](size_t i, const std::string& k) {
    for (const auto& [kk, v] : flat[i]) if (kk == k) return display_config_value(k, v);
    return std::string("(absent)");
  };
  int differing = 0;
  for (const auto& k : keys) {
    std::vector<std::string> vals;
    for (size_t i = 0; i < runs.size(); ++i) vals.push_back(value_of(i, k));
    const bool differs = std::any_of(vals.begin(), vals.end(), [&](const std::string& v) { return v != vals[0]; });
    differing += differs;
    if (only_differences && !differs) continue;
    std::vector<std::string> row = {differs ? "*" : "", k};
    for (auto& v : vals) row.push_back(differs && color ? "\033[1;33m" + v + "\033[0m" : v);
    rows.push_back(row);
  }
  // Final figures.
  auto figure = [&](const std::string& name, auto fn) {
    std::vector<std::string> row = {"", name};
    for (const auto& r : runs) row.push_back(fn(r));
    rows.push_back(row);
  };
  rows.push_back({"", "---"});
  figure("status", [](const RunInfo& r) { return r.status; });
  figure("env steps", [](const RunInfo& r) { return std::to_string(r.env_steps()); });
  figure("labels", [](const RunInfo& r) { return std::to_string(r.labels()); });
  figure("final return", [](const RunInfo& r) { return fmt_num(r.final_return()); });
  figure("val accuracy", [](const RunInfo& r) { return fmt_num(num_or_nan(r.summary, "val_accuracy"), 3); });
  figure("true corr", [](const RunInfo& r) { return summary_figure(r.summary, "final_true_corr", 3, false); });
  figure("wall s", [](const RunInfo& r) { return fmt_num(r.wall_s(), 1); });
  figure("health warnings", [](const RunInfo& r) { return std::to_string(read_health_events(r.path).size()); });
  return fmt::format("{} of {} config keys differ (marked *)\n", differing, keys.size()) + text_table(header, rows);
}

}  // namespace prefrl
