#include "prefrl/tracking/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "prefrl/core/config.h"
#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/tracking/progress.h"
#include "prefrl/tracking/report.h"
#include "prefrl/tracking/run_dir.h"

extern char** environ;

namespace fs = std::filesystem;
using nlohmann::json;

namespace prefrl {

// ---- Statistics ------------------------------------------------------------------------------

double mean_value(const std::vector<double>& x) {
  if (x.empty()) return std::nan("");
  double s = 0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

double sample_std(const std::vector<double>& x) {
  if (x.size() < 2) return std::nan("");
  const double m = mean_value(x);
  double ss = 0;
  for (double v : x) ss += (v - m) * (v - m);
  return std::sqrt(ss / static_cast<double>(x.size() - 1));
}

double interquartile_mean(std::vector<double> x) {
  if (x.empty()) return std::nan("");
  std::sort(x.begin(), x.end());
  const size_t cut = x.size() / 4;
  return mean_value(std::vector<double>(x.begin() + cut, x.end() - cut));
}

std::pair<double, double> iqm_bootstrap_ci(const std::vector<double>& x, double level, int resamples, uint64_t seed) {
  if (x.empty() || resamples < 1) return {std::nan(""), std::nan("")};
  Rng rng(seed);
  std::vector<double> stats, sample(x.size());
  stats.reserve(resamples);
  for (int b = 0; b < resamples; ++b) {
    for (double& v : sample) v = x[rng.integer(x.size())];
    stats.push_back(interquartile_mean(sample));
  }
  std::sort(stats.begin(), stats.end());
  // Percentiles by linear interpolation between order statistics (numpy's default).
  auto pct = [&](double q) {
    const double pos = q * (stats.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, stats.size() - 1);
    return stats[lo] + (pos - lo) * (stats[hi] - stats[lo]);
  };
  const double a = (1.0 - level) / 2.0;
  return {pct(a), pct(1.0 - a)};
}

double default_pass_threshold(const std::string& env) {
  // Gymnasium's reward_threshold of the reference environments; movingdot's return is the
  // distance walked towards the centre, whose best value depends on the start, so none.
  static const std::map<std::string, double> kThresholds = {
      {"cartpole", 475.0}, {"pendulum", -200.0}, {"acrobot", -100.0}, {"mountaincar_continuous", 90.0}};
  auto it = kThresholds.find(env);
  return it == kThresholds.end() ? std::nan("") : it->second;
}

// ---- Reading back ------------------------------------------------------------------------------

namespace {

json num_json(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

std::string last_line_of(const fs::path& p) {
  std::ifstream f(p);
  std::string line, last;
  while (std::getline(f, line)) if (!line.empty()) last = line;
  return last;
}

}  // namespace

bool is_sweep_dir(const std::string& dir) { return fs::is_regular_file(fs::path(dir) / "sweep.json"); }

SweepInfo load_sweep(const std::string& dir) {
  if (!is_sweep_dir(dir)) throw UsageError("'" + dir + "' is not a sweep directory (no sweep.json)");
  SweepInfo s;
  s.path = dir;
  {
    std::ifstream f(fs::path(dir) / "sweep.json");
    s.record = json::parse(f, nullptr, false);
    if (!s.record.is_object()) throw UsageError("'" + dir + "/sweep.json' is not valid JSON");
  }
  s.status = s.record.value("status", std::string("crashed"));
  // (On another host the process cannot be checked: the sweep counts as running.)
  if (s.status == "running" && !process_alive(s.record.value("process", json::object()), unix_time_now(), kInf))
    s.status = "crashed";
  for (const auto& r : s.record.value("runs", json::array())) {
    SweepSeed seed;
    seed.seed = r.value("seed", int64_t{0});
    seed.run = r.value("run", std::string());
    seed.exit_code = r.value("exit_code", -1);
    const fs::path p = fs::path(dir) / seed.run;
    if (fs::is_regular_file(p / "config.json")) {
      seed.info = load_run(p.string());
    } else {
      seed.info.path = p.string();
      const bool started = seed.exit_code != -1 || s.status != "running";
      seed.info.status = started ? "failed" : "running";
      seed.info.status_detail = last_line_of(p / "output.txt");
    }
    seed.info.name = seed.run;
    // A seed whose process ended badly is not "finished", whatever its files say.
    if (seed.info.status == "finished" && seed.exit_code > 0) {
      seed.info.status = "failed";
      seed.info.status_detail = fmt::format("exit code {}", seed.exit_code);
    }
    s.seeds.push_back(std::move(seed));
  }
  return s;
}

json sweep_figures(const SweepInfo& s) {
  const double threshold = s.record.contains("threshold") && s.record["threshold"].is_number()
                               ? s.record["threshold"].get<double>() : std::nan("");
  json seeds = json::array();
  std::vector<double> finished;  // the final returns of the seeds that finished with one
  int passed = 0, n_finished = 0;
  bool no_truth = false;  // a seed's task has no true reward: returns are absent, not failed
  for (const auto& sd : s.seeds) {
    const json& sum = sd.info.summary;
    if (sum.contains("has_true_reward") && sum["has_true_reward"] == false) no_truth = true;
    const double ret = sd.info.final_return();
    const bool ok = sd.info.status == "finished";
    n_finished += ok;
    if (ok && std::isfinite(ret)) finished.push_back(ret);
    const bool pass = ok && std::isfinite(threshold) && std::isfinite(ret) && ret >= threshold;
    passed += pass;
    seeds.push_back({{"seed", sd.seed}, {"run", sd.run}, {"status", sd.info.status},
                     {"detail", sd.info.status_detail}, {"exit_code", sd.exit_code},
                     {"final_return", num_json(ok ? ret : std::nan(""))}, {"labels", sd.info.labels()},
                     {"env_steps", sd.info.env_steps()}, {"wall_s", num_json(sd.info.wall_s())},
                     {"passed", pass}});
    if (ok && sum.contains("eval") && sum["eval"].contains("metrics")) {  // the task's own metrics, per seed
      for (const auto& [name, v] : sum["eval"]["metrics"].items()) seeds.back()["metrics"][name] = v.value("mean", json());
    }
  }
  const auto ci = iqm_bootstrap_ci(finished, 0.95, 10000, 0);
  return {{"seeds", seeds},
          {"n_seeds", s.seeds.size()},
          {"n_finished", n_finished},          // seeds that ran to their end
          {"n_returns", finished.size()},       // ... of which with a final return (the statistics')
          {"mean", num_json(mean_value(finished))},
          {"std", num_json(sample_std(finished))},
          {"iqm", num_json(interquartile_mean(finished))},
          {"iqm_ci95", {num_json(ci.first), num_json(ci.second)}},
          {"threshold", num_json(threshold)},
          {"has_true_reward", !no_truth},
          {"passed", passed}};
}

std::string sweep_summary_text(const json& f) {
  std::vector<std::vector<std::string>> rows;
  auto num = [](const json& j, int d) { return j.is_number() ? fmt_num(j.get<double>(), d) : std::string("—"); };
  std::vector<std::string> metric_names;  // the task's own metrics, as the first seed that has them names them
  for (const auto& s : f["seeds"])
    if (metric_names.empty() && s.contains("metrics"))
      for (const auto& [name, v] : s["metrics"].items()) metric_names.push_back(name);
  for (const auto& s : f["seeds"]) {
    std::string status = s["status"].get<std::string>();
    if (!s["detail"].get<std::string>().empty() && status != "finished") status += " (" + s["detail"].get<std::string>() + ")";
    rows.push_back({std::to_string(s["seed"].get<int64_t>()), s["run"].get<std::string>(), num(s["final_return"], 2),
                    std::to_string(s["labels"].get<int64_t>()), std::to_string(s["env_steps"].get<int64_t>()),
                    num(s["wall_s"], 1), s["passed"].get<bool>() ? "yes" : "no", status});
    for (const auto& m : metric_names)
      rows.back().insert(rows.back().end() - 1, s.contains("metrics") ? num(s["metrics"].value(m, json()), 3) : "—");
  }
  std::vector<std::string> header = {"seed", "run", "final return", "labels", "steps", "wall s", "passed"};
  for (const auto& m : metric_names) header.push_back(m);
  header.push_back("status");
  std::string out = text_table(header, rows);
  if (f.contains("has_true_reward") && f["has_true_reward"] == false)
    return out + fmt::format("{} of {} seeds finished; no final return: the task has no true reward{}\n",
                             f["n_finished"].get<int>(), f["n_seeds"].get<int>(),
                             metric_names.empty() ? "" : " (the task's metrics, eval means per seed, are above)");
  out += fmt::format("{} of {} seeds finished; final return mean {} ± {} (std), IQM {} [{}, {}] (95% bootstrap CI); ",
                     f["n_finished"].get<int>(), f["n_seeds"].get<int>(), num(f["mean"], 2), num(f["std"], 2),
                     num(f["iqm"], 2), num(f["iqm_ci95"][0], 2), num(f["iqm_ci95"][1], 2));
  out += f["threshold"].is_number()
             ? fmt::format("{} of {} seeds reach the threshold {}\n", f["passed"].get<int>(), f["n_seeds"].get<int>(),
                           num(f["threshold"], 2))
             : std::string("no pass threshold for this environment (use --threshold)\n");
  return out;
}

// ---- Running --------------------------------------------------------------------------------

namespace {

struct Child {
  size_t index = 0;   // into plan.seeds
  pid_t pid = -1;
  std::chrono::steady_clock::time_point started;
};

pid_t spawn_seed(const SweepPlan& plan, int64_t seed, const fs::path& run_dir) {
  std::vector<std::string> args = {plan.binary, "train"};
  if (plan.task.empty() && plan.env_cmd.empty())  // else train_args hold --task or --env-cmd
    args.insert(args.end(), {"--env", plan.env});
  args.insert(args.end(), {"--seed", std::to_string(seed), "--run-dir", run_dir.string()});
  args.insert(args.end(), plan.train_args.begin(), plan.train_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = (run_dir / "output.txt").string();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, plan.binary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw RuntimeError("cannot start '" + plan.binary + "' for seed " + std::to_string(seed) + ": " +
                                  std::strerror(rc));
  return pid;
}

// Fraction of a running seed's steps done, from its summary.json heartbeat.
double seed_progress(const fs::path& run_dir) {
  std::ifstream f(run_dir / "summary.json");
  json j = json::parse(f, nullptr, false);
  if (!j.is_object()) return 0.0;
  const double done = j.value("env_steps", 0.0), total = j.value("total_steps", 0.0);
  return total > 0 ? std::min(1.0, done / total) : 0.0;
}

}  // namespace

json run_sweep(const SweepPlan& plan) {
  const fs::path dir(plan.dir);
  if (is_sweep_dir(plan.dir)) throw UsageError("'" + plan.dir + "' already holds a sweep (sweep.json); choose another --sweep-dir");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UsageError("cannot create sweep directory '" + plan.dir + "': " + ec.message());

  json record = {{"env", plan.env}, {"seeds", plan.seeds}, {"jobs", plan.jobs},
                 {"threshold", num_json(plan.threshold)}, {"command", plan.command},
                 {"train_args", plan.train_args}, {"status", "running"}, {"started_at", utc_now()},
                 {"process", process_identity()}, {"runs", json::array()}};
  for (int64_t s : plan.seeds) record["runs"].push_back({{"seed", s}, {"run", "seed-" + std::to_string(s)}, {"exit_code", -1}});
  auto save = [&]() { write_file_atomic((dir / "sweep.json").string(), record.dump(2) + "\n"); };
  save();

  const bool tty = stdout_is_terminal();
  std::vector<Child> running;
  size_t next = 0, done = 0;
  auto last_draw = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto say = [&](const std::string& line) {
    if (tty) std::fputs("\r\033[K", stdout);
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
    last_draw -= std::chrono::hours(1);  // redraw the bar below the line
  };
  while (done < plan.seeds.size()) {
    while (running.size() < static_cast<size_t>(std::max(1, plan.jobs)) && next < plan.seeds.size()) {
      const int64_t seed = plan.seeds[next];
      const fs::path run_dir = dir / record["runs"][next]["run"].get<std::string>();
      fs::create_directories(run_dir);
      running.push_back({next, spawn_seed(plan, seed, run_dir), std::chrono::steady_clock::now()});
      say(fmt::format("seed {}: started ({})", seed, run_dir.string()));
      ++next;
    }
    for (auto it = running.begin(); it != running.end();) {
      int status = 0;
      if (::waitpid(it->pid, &status, WNOHANG) != it->pid) { ++it; continue; }
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
      json& entry = record["runs"][it->index];
      entry["exit_code"] = code;
      save();
      ++done;
      const fs::path run_dir = dir / entry["run"].get<std::string>();
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->started).count();
      if (fs::is_regular_file(run_dir / "config.json")) {
        const RunInfo r = load_run(run_dir.string());
        say(fmt::format("seed {}: {} in {:.1f} s, final return {}{}", entry["seed"].get<int64_t>(),
                        code == 0 ? r.status : fmt::format("{} (exit code {})", r.status, code), secs,
                        fmt_num(r.final_return()), r.status_detail.empty() ? "" : "; " + r.status_detail));
      } else {
        say(fmt::format("seed {}: failed (exit code {}): {}", entry["seed"].get<int64_t>(), code,
                        last_line_of(run_dir / "output.txt")));
      }
      it = running.erase(it);
    }
    if (tty && std::chrono::steady_clock::now() - last_draw > std::chrono::milliseconds(500)) {
      double work = static_cast<double>(done);
      std::string each;
      for (const auto& c : running) {
        const double f = seed_progress(dir / record["runs"][c.index]["run"].get<std::string>());
        work += f;
        each += fmt::format(" | seed {} {:3.0f}%", plan.seeds[c.index], 100 * f);
      }
      std::fputs(fmt::format("\r\033[K{} {}/{} seeds done{}", progress_bar(work / plan.seeds.size()), done,
                             plan.seeds.size(), each).c_str(), stdout);
      std::fflush(stdout);
      last_draw = std::chrono::steady_clock::now();
    }
    if (done < plan.seeds.size()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (tty) std::fputs("\r\033[K", stdout);

  record["status"] = "finished";
  record["finished_at"] = utc_now();
  save();
  const SweepInfo info = load_sweep(plan.dir);
  record["figures"] = sweep_figures(info);
  save();
  for (const auto& sd : info.seeds)  // each seed's own report, linked from the sweep's
    if (fs::is_regular_file(fs::path(sd.info.path) / "config.json"))
      write_file_atomic((fs::path(sd.info.path) / "report.html").string(), run_report_html(sd.info));
  write_file_atomic((dir / "report.html").string(), sweep_report_html(load_sweep(plan.dir)));
  return record;
}

}  // namespace prefrl
