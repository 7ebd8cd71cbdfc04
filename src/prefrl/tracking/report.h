// Reports: one self-contained HTML page per run or sweep (inline CSS and SVG drawn here; no
// script, no network), written by `prefrl report` and `prefrl sweep`, and served live at
// /runs by the labeling server.
//
//   run:   summary figures, health warnings, plots against environment steps (true return,
//          predicted return, reward validation accuracy, predicted-vs-true correlation,
//          policy entropy, steps/s, labels), the resolved config, build and machine
//   sweep: per-seed table (status of every seed, crashed and failed ones included), mean ±
//          std, IQM with a 95% bootstrap CI, seeds passing the threshold, learning curves of
//          the seeds with mean ± std bands, health warnings per seed, the config
#pragma once
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "prefrl/tracking/runs.h"
#include "prefrl/tracking/sweep.h"

namespace prefrl {

struct ReportOptions {
  // Served by the web server: the page refreshes itself while the run (or sweep) is running,
  // and links point at server pages (link_prefix + run name) instead of files.
  bool live = false;
  std::string link_prefix = "/runs/";
  int refresh_s = 5;
};

std::string run_report_html(const RunInfo& run, const ReportOptions& opt = {});
std::string sweep_report_html(const SweepInfo& sweep, const ReportOptions& opt = {});
// The index of every run and sweep under root (the /runs page); links use opt.link_prefix.
std::string runs_index_html(const std::string& root, const ReportOptions& opt);

// Writes the report of a run or sweep directory to out_path. UsageError if the directory is
// neither a run nor a sweep, or out_path cannot be written.
void write_report(const std::string& run_or_sweep, const std::string& out_path);

// ---- Pieces, exposed for tests ---------------------------------------------------------------
std::string html_escape(const std::string& s);

struct ChartLine {
  std::string label, color;
  std::vector<std::pair<double, double>> points;  // (step, value); NaN values break the line
  double width = 1.8;
  double opacity = 1.0;
};
struct ChartBand {  // a shaded area between lo and hi over x
  std::string color;
  std::vector<double> x, lo, hi;
};
struct Chart {
  std::string title, y_label;
  std::vector<ChartLine> lines;
  std::vector<ChartBand> bands;
  std::vector<double> markers;  // steps of health warnings: dashed red verticals
  double y_min = std::numeric_limits<double>::quiet_NaN(), y_max = std::numeric_limits<double>::quiet_NaN();
};
// An inline <svg> of the chart ("no data" when it has no finite point).
std::string svg_chart(const Chart& c, int width = 460, int height = 250);

// Per-seed series on a common grid of `bins` steps over [0, max_step]: each bin holds the
// mean of the seed's points in it, carried forward over empty bins (NaN before its first
// point). => (grid steps, values per seed).
std::pair<std::vector<double>, std::vector<std::vector<double>>> common_grid(
    const std::vector<std::vector<std::pair<double, double>>>& seeds, int bins);

}  // namespace prefrl
