#include "prefrl/tracking/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>

#include "prefrl/core/config.h"
#include "prefrl/core/error.h"
#include "prefrl/core/metric_names.h"
#include "prefrl/tracking/metrics.h"
#include "prefrl/tracking/run_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace prefrl {

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// A "nice" tick step for a range: 1, 2 or 5 times a power of ten, about `n` ticks.
double nice_step(double range, int n) {
  if (!(range > 0)) return 1.0;
  const double raw = range / n, mag = std::pow(10.0, std::floor(std::log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-6) return "0";
  const double a = std::fabs(v);
  if (a >= 1e6) return fmt::format("{:g}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:g}k", v / 1e3);
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  return fmt::format("{:.{}f}", v, decimals);
}

// Thins a line to at most n points (every k-th, keeping the last).
std::vector<std::pair<double, double>> thin(const std::vector<std::pair<double, double>>& p, size_t n) {
  if (p.size() <= n) return p;
  std::vector<std::pair<double, double>> out;
  const size_t k = (p.size() + n - 1) / n;
  for (size_t i = 0; i < p.size(); i += k) out.push_back(p[i]);
  if (out.back() != p.back()) out.push_back(p.back());
  return out;
}

std::vector<std::pair<double, double>> series_points(const MetricSeries& ms, const char* name) {
  std::vector<std::pair<double, double>> out;
  auto it = ms.find(name);
  if (it == ms.end()) return out;
  for (const auto& p : it->second) out.emplace_back(static_cast<double>(p.step), p.value);
  return out;
}

std::string status_badge(const std::string& status) {
  const char* color = status == "finished" ? "#2ca02c" : status == "running" ? "#1f77b4" : "#d62728";
  return fmt::format("<span class=\"badge\" style=\"background:{}\">{}</span>", color, html_escape(status));
}

std::string num_cell(const json& j, const char* key, int decimals) {
  return j.contains(key) && j[key].is_number() ? fmt_num(j[key].get<double>(), decimals) : "—";
}

const char* kStyle = R"CSS(
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 6px} h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;font-size:13px;margin-bottom:14px}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{color:#fff;border-radius:4px;padding:1px 7px;font-size:12px}
.figs{display:flex;flex-wrap:wrap;gap:10px 26px;margin:6px 0 4px}
.fig{font-size:13px;color:#555} .fig b{display:block;font-size:20px;color:#111}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{border:1px solid #e3e3e3;border-radius:6px;padding:4px}
.warn{color:#b00020} .ok{color:#2a7d2a}
tr.diff td{background:#fff6d5}
details{margin-top:8px} summary{cursor:pointer;color:#1f5fa8}
a{color:#1f5fa8}
)CSS";

std::string page(const std::string& title, const std::string& body, bool refresh, int refresh_s) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{}<title>{}</title><style>{}</style></head>"
      "<body>\n{}\n<p class=\"sub\">Written by prefrl; this page is self-contained (no network).</p></body></html>\n",
      refresh ? fmt::format("<meta http-equiv=\"refresh\" content=\"{}\">", refresh_s) : "", html_escape(title), kStyle,
      body);
}

std::string config_table(const json& config, const std::vector<std::string>& highlight = {}) {
  std::string rows;
  for (const auto& [k, v] : flatten_config(config)) {
    const bool hl = std::find(highlight.begin(), highlight.end(), k) != highlight.end();
    rows += fmt::format("<tr{}><td>{}</td><td>{}</td></tr>", hl ? " class=\"diff\"" : "", html_escape(k),
                        html_escape(display_config_value(k, v)));
  }
  return "<table><tr><th>key</th><th>value</th></tr>" + rows + "</table>";
}

std::string meta_table(const RunInfo& r) {
  const json& m = r.meta;
  std::string cmd;
  {
    std::ifstream f(fs::path(r.path) / "command.txt");
    std::getline(f, cmd);
  }
  auto row = [](const std::string& k, const std::string& v) {
    return fmt::format("<tr><td>{}</td><td>{}</td></tr>", html_escape(k), html_escape(v));
  };
  std::string rows = row("command", cmd.empty() ? "—" : cmd);
  rows += row("prefrl", fmt::format("{} (commit {}{}), {} build", m.value("prefrl_version", "?"), m.value("git_commit", "?"),
                                    m.value("git_dirty", false) ? ", dirty tree" : "", m.value("build_type", "?")));
  rows += row("libraries", fmt::format("LibTorch {}, MuJoCo {}", m.value("libtorch_version", "?"),
                                       m.contains("mujoco_version") && m["mujoco_version"].is_string()
                                           ? m["mujoco_version"].get<std::string>() : std::string("—")));
  if (m.contains("machine"))
    rows += row("machine", fmt::format("{}, {} cores, {:.1f} GB", m["machine"].value("hostname", "?"),
                                       m["machine"].value("cores", 0), m["machine"].value("memory_gb", 0.0)));
  rows += row("started", m.value("started_at", "?"));
  return "<table>" + rows + "</table>";
}

std::string health_list(const json& events) {
  if (events.empty()) return "<p class=\"ok\">No health warnings.</p>";
  std::string rows;
  for (const auto& e : events)
    rows += fmt::format("<tr><td class=\"num\">{}</td><td class=\"warn\">{}</td><td>{}</td></tr>",
                        e.value("step", int64_t{0}), html_escape(e.value("name", "?")),
                        html_escape(e.value("message", "")));
  return fmt::format("<p class=\"warn\">{} health warning{}:</p><table><tr><th>step</th><th>check</th><th>what was seen</th></tr>{}</table>",
                     events.size(), events.size() == 1 ? "" : "s", rows);
}

std::vector<double> warning_steps(const json& events) {
  std::vector<double> out;
  for (const auto& e : events) out.push_back(static_cast<double>(e.value("step", int64_t{0})));
  return out;
}

// What the run and sweep reports plot: (title, y label, metric names, fixed y range).
struct PlotSpec {
  const char* title;
  const char* y_label;
  std::vector<const char*> metrics;
  double y_min, y_max;
};
const std::vector<PlotSpec>& plot_specs() {
  const double nan = std::nan("");
  static const std::vector<PlotSpec> specs = {
      {"True return (training episodes)", "return", {metric::kEpisodicReturn}, nan, nan},
      {"Predicted return (learned reward, same episodes)", "r̂ return", {metric::kPredictedReturn}, nan, nan},
      {"Reward model accuracy", "accuracy", {metric::kRewardValAccuracy, metric::kRewardTrainAccuracy}, 0.0, 1.0},
      {"Predicted vs true return correlation (fresh clips)", "Pearson r", {metric::kRewardTrueCorr}, -1.0, 1.0},
      {"Policy entropy", "nats", {metric::kEntropy}, nan, nan},
      {"Steps per second (whole iterations)", "steps/s", {metric::kSPS}, 0.0, nan},
      {"Labels", "labels", {metric::kLabels}, 0.0, nan},
  };
  return specs;
}

}  // namespace

std::string svg_chart(const Chart& c, int W, int H) {
  // Margins; the legend sits right-aligned in the title row, or in a row of its own below it.
  double legend_w = 0;
  for (const auto& l : c.lines) if (!l.label.empty()) legend_w += 26 + 6.3 * l.label.size();
  const double L = 58, R = 12, B = 40;
  const bool own_row = L + 7.5 * c.title.size() + legend_w > W - R;
  const double T = own_row ? 40 : 26;
  double x0 = kInf, x1 = -kInf, y0 = kInf, y1 = -kInf;
  auto take = [&](double x, double y) {
    if (!std::isfinite(x) || !std::isfinite(y)) return;
    x0 = std::min(x0, x); x1 = std::max(x1, x); y0 = std::min(y0, y); y1 = std::max(y1, y);
  };
  for (const auto& l : c.lines) for (const auto& [x, y] : l.points) take(x, y);
  for (const auto& b : c.bands)
    for (size_t i = 0; i < b.x.size(); ++i) { take(b.x[i], b.lo[i]); take(b.x[i], b.hi[i]); }
  std::string svg = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
                                "font-family=\"DejaVu Sans,Helvetica,Arial,sans-serif\" font-size=\"11\">",
                                W, H, W, H);
  svg += fmt::format("<text x=\"{}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>", L, html_escape(c.title));
  if (!(x1 >= x0)) {
    return svg + fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#999\">no data yet</text></svg>", W / 2 - 30, H / 2);
  }
  if (std::isfinite(c.y_min)) y0 = std::min(y0, c.y_min);
  if (std::isfinite(c.y_max)) y1 = std::max(y1, c.y_max);
  if (std::isfinite(c.y_min) && std::isfinite(c.y_max)) { y0 = c.y_min; y1 = c.y_max; }
  if (y1 - y0 < 1e-12) { y0 -= 0.5 + std::fabs(y0) * 0.05; y1 += 0.5 + std::fabs(y1) * 0.05; }
  if (x1 - x0 < 1e-12) { x0 -= 1; x1 += 1; }
  x0 = std::min(x0, 0.0);
  const double pw = W - L - R, ph = H - T - B;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * pw; };
  auto Y = [&](double y) { return T + (1.0 - (y - y0) / (y1 - y0)) * ph; };
  // Grid and ticks.
  const double ys = nice_step(y1 - y0, 5), xs = nice_step(x1 - x0, 5);
  for (double v = std::ceil(y0 / ys) * ys; v <= y1 + ys * 1e-9; v += ys) {
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eee\"/>", L, Y(v), L + pw, Y(v));
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#555\">{}</text>", L - 5, Y(v) + 4,
                       tick_label(v, ys));
  }
  for (double v = std::ceil(x0 / xs) * xs; v <= x1 + xs * 1e-9; v += xs) {
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#f2f2f2\"/>", X(v), T, X(v), T + ph);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#555\">{}</text>", X(v), T + ph + 14,
                       tick_label(v, xs));
  }
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#bbb\"/>", L, T, pw, ph);
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">environment steps</text>", L + pw / 2, H - 6);
  svg += fmt::format("<text transform=\"translate(13 {:.1f}) rotate(-90)\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                     T + ph / 2, html_escape(c.y_label));
  // Bands, then lines (NaN splits a line), then warning markers, then the legend.
  for (const auto& b : c.bands) {
    std::string upper, lower;
    auto flush = [&]() {
      if (!upper.empty())
        svg += fmt::format("<path d=\"M{}{}Z\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>", upper.substr(1), lower,
                           b.color);
      upper.clear();
      lower.clear();
    };
    for (size_t i = 0; i < b.x.size(); ++i) {
      if (!std::isfinite(b.lo[i]) || !std::isfinite(b.hi[i])) { flush(); continue; }
      upper += fmt::format("L{:.1f},{:.1f}", X(b.x[i]), Y(std::clamp(b.hi[i], y0, y1)));
      lower = fmt::format("L{:.1f},{:.1f}", X(b.x[i]), Y(std::clamp(b.lo[i], y0, y1))) + lower;
    }
    flush();
  }
  for (const auto& l : c.lines) {
    std::string d;
    bool pen = false;
    for (const auto& [x, y] : thin(l.points, 800)) {
      if (!std::isfinite(y)) { pen = false; continue; }
      d += fmt::format("{}{:.1f},{:.1f}", pen ? "L" : "M", X(x), Y(std::clamp(y, y0, y1)));
      pen = true;
    }
    if (!d.empty())
      svg += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-opacity=\"{}\" "
                         "stroke-linejoin=\"round\"/>", d, l.color, l.width, l.opacity);
  }
  for (double m : c.markers) {
    if (m < x0 || m > x1) continue;
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>",
                       X(m), T, T + ph);
  }
  double lx = own_row ? L + 4 : W - R - legend_w, ly = own_row ? 30 : 12;
  for (const auto& l : c.lines) {
    if (l.label.empty()) continue;
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{2:.1f}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2.5\"/>"
                       "<text x=\"{4:.1f}\" y=\"{5}\" fill=\"#333\">{6}</text>",
                       lx, ly, lx + 14, l.color, lx + 18, ly + 4, html_escape(l.label));
    lx += 26 + 6.3 * l.label.size();
  }
  return svg + "</svg>";
}

std::pair<std::vector<double>, std::vector<std::vector<double>>> common_grid(
    const std::vector<std::vector<std::pair<double, double>>>& seeds, int bins) {
  double max_step = 0;
  for (const auto& s : seeds) for (const auto& [x, y] : s) max_step = std::max(max_step, x);
  std::vector<double> grid(bins);
  for (int b = 0; b < bins; ++b) grid[b] = max_step * (b + 1) / bins;
  std::vector<std::vector<double>> values;
  for (const auto& s : seeds) {
    std::vector<double> sum(bins, 0.0), n(bins, 0.0), v(bins, std::nan(""));
    for (const auto& [x, y] : s) {
      if (!std::isfinite(y) || max_step <= 0) continue;
      const int b = std::clamp(static_cast<int>(std::ceil(x / max_step * bins)) - 1, 0, bins - 1);
      sum[b] += y;
      n[b] += 1;
    }
    double carry = std::nan("");
    for (int b = 0; b < bins; ++b) {
      if (n[b] > 0) carry = sum[b] / n[b];
      v[b] = carry;
    }
    values.push_back(v);
  }
  return {grid, values};
}

std::string run_report_html(const RunInfo& r, const ReportOptions& opt) {
  const MetricSeries ms = read_metrics((fs::path(r.path) / "metrics.jsonl").string());
  const json events = read_health_events(r.path);
  const json& s = r.summary;
  std::string body = fmt::format("<h1>{} {}</h1><div class=\"sub\">{} · teacher {} · seed {} · {}</div>",
                                 html_escape(r.name), status_badge(r.status), html_escape(r.env()), html_escape(r.teacher()),
                                 r.seed(), html_escape(r.path));
  if (!r.status_detail.empty()) body += fmt::format("<p class=\"warn\">{}</p>", html_escape(r.status_detail));
  auto fig = [](const std::string& label, const std::string& value) {
    return fmt::format("<div class=\"fig\"><b>{}</b>{}</div>", html_escape(value), html_escape(label));
  };
  // A task with no true reward: the figures and curves that need one are absent, and said to be.
  const bool no_truth = s.contains("has_true_reward") && s["has_true_reward"] == false;
  const std::string absent = "absent: the task has no true reward";
  body += "<div class=\"figs\">";
  body += fig("final true return", no_truth ? absent : fmt_num(r.final_return()));
  if (s.contains("eval") && s["eval"].contains("mean_length"))
    body += fig("eval mean episode length", num_cell(s["eval"], "mean_length", 1));
  if (s.contains("eval") && s["eval"].contains("metrics"))
    for (const auto& [name, v] : s["eval"]["metrics"].items())
      body += fig("eval " + name + " (task metric, per episode)",
                  num_cell(v, "mean", 3) + " ± " + num_cell(v, "std", 3));
  if (s.contains("eval") && s["eval"].value("episodes", 0) > 0)
    body += fig(fmt::format("eval std over {} episodes", s["eval"].value("episodes", 0)), num_cell(s["eval"], "std_return", 2));
  body += fig("env steps", fmt::format("{}/{}", r.env_steps(), r.total_steps()));
  body += fig("labels used", std::to_string(r.labels()));
  body += fig("reward val accuracy", num_cell(s, "val_accuracy", 3));
  body += fig("true corr (final policy)", html_escape(summary_figure(s, "final_true_corr", 3)));
  body += fig("true corr (held-out clips)", html_escape(summary_figure(s, "heldout_true_corr", 3)));
  body += fig("wall time (s)", fmt_num(r.wall_s(), 1));
  body += "</div>";
  body += "<h2>Health</h2>" + health_list(events);
  if (s.contains("health_off") && s["health_off"].is_object())
    for (const auto& [name, why] : s["health_off"].items())
      body += fmt::format("<p class=\"sub\">check {} was off: {}</p>", html_escape(name), html_escape(why.get<std::string>()));
  body += "<h2>Training curves</h2><div class=\"charts\">";
  const std::vector<double> marks = warning_steps(events);
  for (const auto& spec : plot_specs()) {
    const std::string first = spec.metrics[0];
    if (no_truth && (first == metric::kEpisodicReturn || first == metric::kRewardTrueCorr)) {
      body += fmt::format("<div class=\"chart\"><p class=\"sub\"><b>{}</b>: {}</p></div>", html_escape(spec.title),
                          html_escape(absent));
      continue;
    }
    Chart c;
    c.title = spec.title;
    c.y_label = spec.y_label;
    c.y_min = spec.y_min;
    c.y_max = spec.y_max;
    c.markers = marks;
    for (size_t k = 0; k < spec.metrics.size(); ++k) {
      ChartLine l;
      l.label = spec.metrics.size() > 1 ? spec.metrics[k] : "";
      l.color = kPalette[k];
      l.points = series_points(ms, spec.metrics[k]);
      if (spec.metrics[k] == std::string(metric::kRewardTrueCorr) && !l.points.empty() && r.status == "finished")
        l.points.pop_back();  // the last point is the final policy's (see docs/run_dir.md), shown above
      c.lines.push_back(l);
    }
    body += "<div class=\"chart\">" + svg_chart(c) + "</div>";
  }
  body += "</div><p class=\"sub\">Dashed red lines: health warnings.</p>";
  body += "<h2>Run</h2>" + meta_table(r);
  body += "<h2>Config</h2><details><summary>every resolved key</summary>" + config_table(r.config) + "</details>";
  return page("prefrl run " + r.name, body, opt.live && r.status == "running", opt.refresh_s);
}

std::string sweep_report_html(const SweepInfo& sw, const ReportOptions& opt) {
  const json f = sweep_figures(sw);
  const std::string name = fs::path(sw.path).filename().string();
  const std::string env = sw.record.value("env", std::string("?"));
  std::string body = fmt::format("<h1>Sweep {} {}</h1><div class=\"sub\">{} · {} seeds · {}</div>", html_escape(name),
                                 status_badge(sw.status), html_escape(env), sw.seeds.size(), html_escape(sw.path));
  auto n = [](const json& j, int d) { return j.is_number() ? fmt_num(j.get<double>(), d) : std::string("—"); };
  body += "<div class=\"figs\">";
  auto fig = [](const std::string& label, const std::string& value) {
    return fmt::format("<div class=\"fig\"><b>{}</b>{}</div>", html_escape(value), html_escape(label));
  };
  body += fig("mean ± std of final return", n(f["mean"], 2) + " ± " + n(f["std"], 2));
  body += fig("IQM [95% bootstrap CI]", fmt::format("{} [{}, {}]", n(f["iqm"], 2), n(f["iqm_ci95"][0], 2), n(f["iqm_ci95"][1], 2)));
  body += fig(f["threshold"].is_number() ? "seeds with final return ≥ " + n(f["threshold"], 1) : "no pass threshold",
              fmt::format("{} / {}", f["passed"].get<int>(), f["n_seeds"].get<int>()));
  body += fig("seeds finished", fmt::format("{} / {}", f["n_finished"].get<int>(), f["n_seeds"].get<int>()));
  body += "</div>";
  if (f["n_finished"].get<int>() < f["n_seeds"].get<int>())
    body += "<p class=\"warn\">Aggregates are over the finished seeds only; the others are listed with their status.</p>";

  // Per-seed table.
  std::string rows;
  for (size_t i = 0; i < sw.seeds.size(); ++i) {
    const json& s = f["seeds"][i];
    const SweepSeed& sd = sw.seeds[i];
    const size_t warnings = read_health_events(sd.info.path).size();
    const std::string run_file = (fs::path(sw.path) / sd.run / "report.html").string();
    std::string link = html_escape(sd.run);
    if (opt.live) link = fmt::format("<a href=\"{}{}/{}\">{}</a>", opt.link_prefix, html_escape(name), html_escape(sd.run), link);
    else if (fs::exists(run_file)) link = fmt::format("<a href=\"{}/report.html\">{}</a>", html_escape(sd.run), link);
    rows += fmt::format(
        "<tr><td class=\"num\">{}</td><td>{}</td><td>{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
        sd.seed, link, status_badge(s["status"]),
        s["detail"].get<std::string>().empty() || s["status"] == "finished"
            ? "" : " <span class=\"warn\">" + html_escape(s["detail"].get<std::string>()) + "</span>",
        n(s["final_return"], 2), s["labels"].get<int64_t>(), s["env_steps"].get<int64_t>(), n(s["wall_s"], 1),
        s["passed"].get<bool>() ? "yes" : "no", warnings ? "warn" : "ok", warnings ? std::to_string(warnings) : "none");
  }
  body += "<h2>Seeds</h2><table><tr><th>seed</th><th>run</th><th>status</th><th>final return</th><th>labels</th>"
          "<th>env steps</th><th>wall s</th><th>passed</th><th>health warnings</th></tr>" + rows + "</table>";

  // Learning curves: every seed thin, mean thick, mean ± std band.
  std::vector<MetricSeries> series;
  for (const auto& sd : sw.seeds) series.push_back(read_metrics((fs::path(sd.info.path) / "metrics.jsonl").string()));
  body += "<h2>Learning curves</h2><div class=\"charts\">";
  for (const auto& spec : plot_specs()) {
    const char* m = spec.metrics[0];
    std::vector<std::vector<std::pair<double, double>>> per_seed;
    for (const auto& ms : series) {
      auto pts = series_points(ms, m);
      if (m == std::string(metric::kRewardTrueCorr) && !pts.empty()) pts.pop_back();  // the final policy's point
      per_seed.push_back(pts);
    }
    const auto [grid, values] = common_grid(per_seed, 60);
    Chart c;
    c.title = spec.title;
    c.y_label = spec.y_label;
    c.y_min = spec.y_min;
    c.y_max = spec.y_max;
    ChartBand band{"#1f77b4", grid, {}, {}};
    ChartLine mean{"mean ± std of seeds", "#1f77b4", {}, 2.4, 1.0};
    for (size_t g = 0; g < grid.size(); ++g) {
      std::vector<double> at;
      for (const auto& v : values) if (std::isfinite(v[g])) at.push_back(v[g]);
      const double mu = mean_value(at), sd = at.size() >= 2 ? sample_std(at) : 0.0;
      band.lo.push_back(mu - sd);
      band.hi.push_back(mu + sd);
      mean.points.emplace_back(grid[g], mu);
    }
    c.bands.push_back(band);
    for (size_t k = 0; k < values.size(); ++k) {
      ChartLine l{"", kPalette[(k + 1) % 10], {}, 1.0, 0.55};
      for (size_t g = 0; g < grid.size(); ++g) l.points.emplace_back(grid[g], values[k][g]);
      c.lines.push_back(l);
    }
    c.lines.push_back(mean);
    body += "<div class=\"chart\">" + svg_chart(c) + "</div>";
  }
  body += "</div><p class=\"sub\">Thin lines: each seed (binned into 60 steps); thick line and band: mean ± std over seeds.</p>";

  // Health warnings per seed.
  std::string health;
  for (const auto& sd : sw.seeds) {
    const json events = read_health_events(sd.info.path);
    for (const auto& e : events)
      health += fmt::format("<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"warn\">{}</td><td>{}</td></tr>",
                            sd.seed, e.value("step", int64_t{0}), html_escape(e.value("name", "?")),
                            html_escape(e.value("message", "")));
  }
  body += "<h2>Health</h2>" + (health.empty() ? std::string("<p class=\"ok\">No health warnings in any seed.</p>")
                                              : "<table><tr><th>seed</th><th>step</th><th>check</th><th>what was seen</th></tr>" +
                                                    health + "</table>");
  // Config: the first seed's, with the keys that differ between seeds highlighted.
  const SweepSeed* first = nullptr;
  for (const auto& sd : sw.seeds) if (!sd.info.config.empty()) { first = &sd; break; }
  body += fmt::format("<h2>Sweep</h2><table><tr><td>command</td><td>{}</td></tr></table>",
                      html_escape(sw.record.value("command", std::string("?"))));
  if (first) {
    std::vector<std::string> differ;
    const auto base = flatten_config(first->info.config);
    for (const auto& sd : sw.seeds) {
      if (sd.info.config.empty()) continue;
      const auto other = flatten_config(sd.info.config);
      for (const auto& entry : base) {
        const std::string& k = entry.first;  // (not a structured binding: clang 14 cannot capture those)
        const auto& v = entry.second;
        auto it = std::find_if(other.begin(), other.end(), [&](const auto& kv) { return kv.first == k; });
        if ((it == other.end() || it->second != v) && std::find(differ.begin(), differ.end(), k) == differ.end())
          differ.push_back(k);
      }
    }
    body += "<h2>Config</h2><p class=\"sub\">Seed " + std::to_string(first->seed) +
            "'s resolved config; highlighted keys differ between seeds: " + html_escape(join(differ, ", ")) +
            "</p><details><summary>every resolved key</summary>" + config_table(first->info.config, differ) +
            "</details><h2>Build</h2>" + meta_table(first->info);
  }
  return page("prefrl sweep " + name, body, opt.live && sw.status == "running", opt.refresh_s);
}

std::string runs_index_html(const std::string& root, const ReportOptions& opt) {
  std::string body = fmt::format("<h1>Runs</h1><div class=\"sub\">under {}</div>", html_escape(fs::absolute(root).string()));
  std::string sweeps;
  std::vector<fs::path> children;
  if (fs::is_directory(root))
    for (const auto& e : fs::directory_iterator(root)) if (e.is_directory() && is_sweep_dir(e.path().string())) children.push_back(e.path());
  std::sort(children.begin(), children.end());
  for (const auto& c : children) {
    const SweepInfo sw = load_sweep(c.string());
    const json f = sweep_figures(sw);
    auto n = [](const json& j) { return j.is_number() ? fmt_num(j.get<double>(), 2) : std::string("—"); };
    sweeps += fmt::format("<tr><td><a href=\"{}{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{} ± {}</td>"
                          "<td class=\"num\">{}</td><td class=\"num\">{}/{}</td></tr>",
                          opt.link_prefix, html_escape(c.filename().string()), html_escape(c.filename().string()),
                          html_escape(sw.record.value("env", "?")), status_badge(sw.status), n(f["mean"]), n(f["std"]),
                          n(f["iqm"]), f["passed"].get<int>(), f["n_seeds"].get<int>());
  }
  if (!sweeps.empty())
    body += "<h2>Sweeps</h2><table><tr><th>sweep</th><th>env</th><th>status</th><th>final return mean ± std</th><th>IQM</th>"
            "<th>passed</th></tr>" + sweeps + "</table>";
  std::string rows;
  for (const auto& r : find_runs(root)) {
    rows += fmt::format("<tr><td><a href=\"{}{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td>"
                        "<td class=\"num\">{}/{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                        opt.link_prefix, html_escape(r.name), html_escape(r.name), html_escape(r.env()),
                        html_escape(r.teacher()), r.seed(), r.env_steps(), r.total_steps(), r.labels(),
                        fmt_num(r.final_return()), status_badge(r.status));
  }
  body += "<h2>Runs</h2>" + (rows.empty() ? std::string("<p>No runs yet.</p>")
                                         : "<table><tr><th>run</th><th>env</th><th>teacher</th><th>seed</th><th>steps</th>"
                                           "<th>labels</th><th>final return</th><th>status</th></tr>" + rows + "</table>");
  return page("prefrl runs", body, opt.live, opt.refresh_s);
}

void write_report(const std::string& target, const std::string& out_path) {
  std::string html;
  if (is_sweep_dir(target)) html = sweep_report_html(load_sweep(target));
  else html = run_report_html(load_run(target));
  try {
    write_file_atomic(out_path, html);
  } catch (const RuntimeError& e) {
    throw UsageError("cannot write report '" + out_path + "': " + e.what());
  }
}

}  // namespace prefrl
