#include "prefrl/server/runs_pages.h"

#include <httplib.h>

#include <filesystem>
#include <regex>

#include <nlohmann/json.hpp>

#include "prefrl/core/metric_names.h"
#include "prefrl/tracking/metrics.h"
#include "prefrl/tracking/report.h"
#include "prefrl/tracking/runs.h"
#include "prefrl/tracking/sweep.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace prefrl {

namespace {

void reply(httplib::Response& res, int status, const std::string& body, const char* mime) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body, mime);
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  reply(res, status, json{{"error", message}}.dump(), "application/json");
}

json num(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

json run_row(const RunInfo& r) {
  return {{"name", r.name}, {"env", r.env()}, {"teacher", r.teacher()}, {"seed", r.seed()},
          {"env_steps", r.env_steps()}, {"total_steps", r.total_steps()}, {"labels", r.labels()},
          {"final_return", num(r.final_return())}, {"status", r.status}};
}

json run_json(const RunInfo& r) {
  json j = run_row(r);
  j["kind"] = "run";
  j["status_detail"] = r.status_detail;
  j["summary"] = r.summary;
  j["meta"] = r.meta;
  j["config"] = redacted_config(r.config);
  j["health"] = read_health_events(r.path);
  const MetricSeries ms = read_metrics((fs::path(r.path) / "metrics.jsonl").string());
  json series = json::object();
  for (const char* name : {metric::kEpisodicReturn, metric::kPredictedReturn, metric::kRewardValAccuracy,
                           metric::kRewardTrueCorr, metric::kEntropy, metric::kSPS, metric::kLabels}) {
    json pts = json::array();
    auto it = ms.find(name);
    if (it != ms.end())
      for (const auto& p : it->second) pts.push_back({p.step, num(p.value)});
    series[name] = pts;
  }
  j["metrics"] = series;
  return j;
}

}  // namespace

void add_runs_routes(httplib::Server& http, const std::string& root) {
  // One or two path components, none starting with '.'.
  const std::string name_re = R"(((?:[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199})(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199})?))";
  auto no_root = [root](httplib::Response& res) {
    if (!root.empty() && fs::is_directory(root)) return false;
    reply_error(res, 404, "this server has no runs directory to show");
    return true;
  };
  // The directory a request names, if it is a run or a sweep under the root.
  auto target = [root](const std::string& name, httplib::Response& res, std::string* dir) {
    *dir = (fs::path(root) / name).string();
    if (fs::is_regular_file(fs::path(*dir) / "config.json") || is_sweep_dir(*dir)) return true;
    reply_error(res, 404, "no run or sweep '" + name + "' under the runs directory");
    return false;
  };

  http.Get("/runs", [=](const httplib::Request&, httplib::Response& res) {
    if (no_root(res)) return;
    ReportOptions opt;
    opt.live = true;
    reply(res, 200, runs_index_html(root, opt), "text/html; charset=utf-8");
  });
  http.Get("/runs/" + name_re, [=](const httplib::Request& req, httplib::Response& res) {
    if (no_root(res)) return;
    std::string dir;
    const std::string name = req.matches[1].str();
    if (!target(name, res, &dir)) return;
    ReportOptions opt;
    opt.live = true;
    if (is_sweep_dir(dir)) return reply(res, 200, sweep_report_html(load_sweep(dir), opt), "text/html; charset=utf-8");
    RunInfo r = load_run(dir);
    r.name = name;
    reply(res, 200, run_report_html(r, opt), "text/html; charset=utf-8");
  });
  http.Get("/api/runs", [=](const httplib::Request&, httplib::Response& res) {
    if (no_root(res)) return;
    json runs = json::array(), sweeps = json::array();
    for (const auto& r : find_runs(root)) runs.push_back(run_row(r));
    for (const auto& e : fs::directory_iterator(root)) {
      if (!e.is_directory() || !is_sweep_dir(e.path().string())) continue;
      const SweepInfo sw = load_sweep(e.path().string());
      json f = sweep_figures(sw);
      f.erase("seeds");
      f["name"] = e.path().filename().string();
      f["env"] = sw.record.value("env", "");
      f["status"] = sw.status;
      sweeps.push_back(f);
    }
    reply(res, 200, json{{"runs", runs}, {"sweeps", sweeps}}.dump(), "application/json");
  });
  http.Get("/api/runs/" + name_re, [=](const httplib::Request& req, httplib::Response& res) {
    if (no_root(res)) return;
    std::string dir;
    const std::string name = req.matches[1].str();
    if (!target(name, res, &dir)) return;
    if (is_sweep_dir(dir)) {
      const SweepInfo sw = load_sweep(dir);
      return reply(res, 200, json{{"kind", "sweep"}, {"name", name}, {"status", sw.status}, {"record", sw.record},
                                  {"figures", sweep_figures(sw)}}.dump(), "application/json");
    }
    RunInfo r = load_run(dir);
    r.name = name;
    reply(res, 200, run_json(r).dump(), "application/json");
  });
}

}  // namespace prefrl
