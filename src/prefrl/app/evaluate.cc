#include "prefrl/app/evaluate.h"

#include <cmath>
#include <filesystem>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "prefrl/app/checkpoint.h"
#include "prefrl/app/rollout.h"
#include "prefrl/app/task_archive.h"
#include "prefrl/app/train_config.h"
#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"
#include "prefrl/prefs/segments.h"
#include "prefrl/tracking/run_dir.h"

namespace prefrl {

std::unique_ptr<Agent> load_run_policy(const std::string& run_path, int num_envs, TrainConfig* cfg) {
  RunDir run = RunDir::open(run_path);
  *cfg = TrainConfig();
  config_from_json(*cfg, read_run_config(run));
  configure_atari_envs(cfg->atari);  // the run's game settings (sticky actions, ...), as training had them
  const std::string policy = run.file("checkpoints/policy.pt");
  if (!std::filesystem::exists(policy)) throw UsageError("run '" + run_path + "' has no final policy (" + policy + ")");
  if (policy_file_describes_itself(policy)) return load_agent(policy, num_envs);  // the file says what it holds
  // A policy file from before files described themselves: built from the run's config.
  std::unique_ptr<Agent> agent = make_agent(cfg->agent, cfg->ppo, cfg->a2c, env_spec(cfg->env.name), num_envs, 0);
  agent->load(policy);
  return agent;
}

std::unique_ptr<RewardModel> make_reward_model(const TrainConfig& cfg, uint64_t seed) {
  const EnvSpec& spec = env_spec(cfg.env.name);
  const bool penalty = cfg.env.termination == "penalty" && spec.can_terminate;  // as train() builds it
  const int64_t A = spec.action.numel();
  auto reward = std::make_unique<RewardModel>(cfg.reward, spec.observation.shape, A, spec.action.discrete,
                                              spec.action.n, spec.can_terminate && !penalty, seed);
  if (!spec.reward_hidden.empty()) reward->hide_inputs(spec.reward_hidden);
  return reward;
}

std::unique_ptr<RewardModel> load_reward_model(const TrainConfig& cfg, const std::string& file) {
  std::unique_ptr<RewardModel> reward = make_reward_model(cfg, 0);
  reward->load(file);
  return reward;
}

std::unique_ptr<RewardModel> load_run_reward(const std::string& run_path, const TrainConfig& cfg) {
  if (cfg.run.policy_reward != "learned") return nullptr;
  const std::string file = RunDir::open(run_path).file("checkpoints/reward.pt");
  if (!std::filesystem::exists(file)) return nullptr;
  return load_reward_model(cfg, file);
}

std::unique_ptr<RewardModel> load_other_run_reward(const std::string& reward_run, const std::string& env_name) {
  TrainConfig rc;
  config_from_json(rc, read_run_config(RunDir::open(reward_run)));
  if (rc.env.name != env_name)
    throw UsageError("run '" + reward_run + "' learned a reward for " + rc.env.name + ", not for " + env_name);
  if (rc.run.policy_reward != "learned")
    throw UsageError("run '" + reward_run + "' trained on the true reward: it has no reward model");
  rc.reward.fast_mlp = false;  // r̂ through LibTorch's operators, as prefrl eval computes a run's own
  std::unique_ptr<RewardModel> reward = load_run_reward(reward_run, rc);
  if (reward) return reward;
  // A run stopped part way: its newest good checkpoint's reward model.
  std::vector<std::string> problems;
  const std::optional<Checkpoint> ckpt = find_checkpoint(RunDir::open(reward_run).file("checkpoints"), &problems);
  if (!ckpt || !std::filesystem::exists(ckpt->file("reward.pt")))
    throw UsageError("run '" + reward_run + "' has neither a final reward model (checkpoints/reward.pt) nor a checkpoint with one");
  return load_reward_model(rc, ckpt->file("reward.pt"));
}

EvalResult evaluate_policy(ActingPolicy& agent, const std::string& env_name, int episodes, uint64_t seed,
                           bool deterministic, std::ostream* trace, RewardModel* model) {
  StepReward reward;
  if (model) reward = [model](const float* obs, const float* act, int64_t n, float* out) { model->predict(obs, act, n, out); };
  return evaluate_policy(agent, env_name, episodes, seed, deterministic, trace, reward);
}

EvalResult evaluate_policy(ActingPolicy& agent, const std::string& env_name, int episodes, uint64_t seed,
                           bool deterministic, std::ostream* trace, const StepReward& reward) {
  EvalResult res;
  if (episodes <= 0) return res;
  // Up to 8 environments side by side; env i runs a fixed quota of episodes (so short
  // episodes are not over-represented), and results are ordered by env then episode.
  // One step of all of them at a time, through the trainer's own stepping loop.
  const int n = std::min(episodes, 8);
  Collector col(env_name, n, /*T=*/1, seed, std::nullopt, /*segment_steps=*/1, /*keep_states=*/false);
  const TransitionStore& st = col.store();
  res.has_success = col.spec().has_success;
  const int64_t D = col.obs_size(), A = col.act_size();
  std::vector<int> quota(n), done(n, 0);
  for (int i = 0; i < n; ++i) quota[i] = episodes / n + (i < episodes % n ? 1 : 0);
  std::vector<std::vector<double>> per_env(n);
  std::vector<std::vector<int>> per_env_lengths(n);
  std::vector<std::vector<double>> per_env_predicted(n);
  std::vector<double> predicted_sum(n, 0.0);
  res.has_true_reward = col.spec().has_true_reward;
  res.metric_names = col.spec().metrics;
  const size_t M = res.metric_names.size();
  std::vector<double> metric_now(M), metric_sum(static_cast<size_t>(n) * M, 0.0);
  std::vector<std::vector<std::vector<double>>> per_env_metrics(n, std::vector<std::vector<double>>(M));
  std::vector<int> steps(n, 0), first_episode(n, 0);
  for (int i = 1; i < n; ++i) first_episode[i] = first_episode[i - 1] + quota[i - 1];
  int successes = 0, remaining = episodes;
  int64_t step = 0;
  PhaseTimes times;
  while (remaining > 0) {
    col.collect(agent, deterministic, &step, &times);
    float* predicted = col.store().learned(0);
    if (reward) reward(st.obs(0), st.actions(0), n, predicted);
    for (int i = 0; i < n; ++i) {
      if (reward) predicted_sum[i] += predicted[i];
      if (trace && done[i] < quota[i]) {
        nlohmann::json j = {{"episode", first_episode[i] + done[i]},
                            {"t", steps[i]},
                            {"obs", std::vector<float>(st.obs(0) + i * D, st.obs(0) + (i + 1) * D)},
                            {"action", std::vector<float>(st.actions(0) + i * A, st.actions(0) + (i + 1) * A)},
                            {"reward", st.true_rewards(0)[i]},
                            {"terminated", static_cast<bool>(st.terminated(0)[i])},
                            {"truncated", static_cast<bool>(st.truncated(0)[i])}};
        if (reward) j["predicted"] = predicted[i];
        *trace << j.dump() << "\n";
      }
      ++steps[i];
      const bool ended_now = st.terminated(0)[i] || st.truncated(0)[i];
      if (M > 0) {  // the task's metrics of this step (a reset after it leaves them as they were)
        col.envs().env(i).step_metrics(metric_now.data());
        for (size_t k = 0; k < M; ++k) metric_sum[i * M + k] += metric_now[k];
        if (ended_now && done[i] < quota[i])
          for (size_t k = 0; k < M; ++k) per_env_metrics[i][k].push_back(std::exchange(metric_sum[i * M + k], 0.0));
      }
      if (ended_now) steps[i] = 0;
    }
    const EpisodeTally ended = col.tally();
    for (size_t k = 0; k < ended.envs.size(); ++k) {
      const int i = ended.envs[k];
      const double predicted_return = std::exchange(predicted_sum[i], 0.0);
      if (done[i] >= quota[i]) continue;
      per_env[i].push_back(ended.true_returns[k]);
      per_env_lengths[i].push_back(static_cast<int>(ended.lengths[k]));
      if (reward) per_env_predicted[i].push_back(predicted_return);
      successes += ended.successes[k] != 0 ? 1 : 0;
      ++done[i];
      --remaining;
    }
  }
  for (const auto& v : per_env) res.returns.insert(res.returns.end(), v.begin(), v.end());
  for (const auto& v : per_env_lengths) res.lengths.insert(res.lengths.end(), v.begin(), v.end());
  for (const auto& v : per_env_predicted) res.predicted_returns.insert(res.predicted_returns.end(), v.begin(), v.end());
  res.metrics.assign(M, {});
  for (int i = 0; i < n; ++i)
    for (size_t k = 0; k < M; ++k)
      res.metrics[k].insert(res.metrics[k].end(), per_env_metrics[i][k].begin(), per_env_metrics[i][k].end());
  res.episodes = static_cast<int>(res.returns.size());
  double s = 0, ss = 0;
  for (double r : res.returns) s += r;
  res.mean_return = s / res.episodes;
  for (double r : res.returns) ss += (r - res.mean_return) * (r - res.mean_return);
  res.std_return = std::sqrt(ss / res.episodes);
  res.success_rate = static_cast<double>(successes) / res.episodes;
  return res;
}

double EvalResult::mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
double EvalResult::stddev(const std::vector<double>& v) {
  const double m = mean(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return v.empty() ? std::nan("") : std::sqrt(ss / static_cast<double>(v.size()));
}
double EvalResult::mean_length() const { return mean(std::vector<double>(lengths.begin(), lengths.end())); }

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = std::min(a.size(), b.size());
  if (n < 2) return std::nan("");
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) { ma += a[i]; mb += b[i]; }
  ma /= n; mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  if (saa <= 0 || sbb <= 0) return std::nan("");
  return sab / std::sqrt(saa * sbb);
}

std::string undefined_correlation(const std::vector<double>& predicted, const std::vector<double>& truth) {
  const size_t n = std::min(predicted.size(), truth.size());
  if (n < 2) return "fewer than 2 clips";
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(predicted[i]) || !std::isfinite(truth[i])) return "a return is not finite";
  auto all_same = [n](const std::vector<double>& v) {
    for (size_t i = 1; i < n; ++i) if (v[i] != v[0]) return false;
    return true;
  };
  if (all_same(truth)) return "every clip's true return is the same";
  if (all_same(predicted)) return "every clip's predicted return is the same";
  return std::isfinite(pearson(predicted, truth)) ? "" : "no variance";
}

std::string correlation_text(double r, const std::string& why, int decimals) {
  if (std::isfinite(r)) return fmt::format("{:+.{}f}", r, decimals);
  return "undefined (" + (why.empty() ? std::string("not computed") : why) + ")";
}

double reward_true_correlation(ActingPolicy& agent, RewardModel& reward, const std::string& env_name,
                               int num_envs, int length, int num_segments, uint64_t seed,
                               std::optional<float> termination_penalty, std::string* undefined) {
  // Enough steps per env for num_segments windows with little overlap: one rollout of them.
  const int steps = std::max(2 * length, (num_segments / num_envs + 1) * length);
  Collector col(env_name, num_envs, steps, seed, termination_penalty, /*segment_steps=*/1, /*keep_states=*/false);
  int64_t step = 0;
  PhaseTimes times;
  col.collect(agent, /*deterministic=*/false, &step, &times);
  Rng rng(seed ^ 0x5eedULL);
  std::vector<Segment> segs;
  const int per_env = std::max(1, num_segments / num_envs);
  for (int i = 0; i < num_envs; ++i)
    for (auto& s : cut_segments(col.store().trajectory(i), length, per_env, rng)) segs.push_back(std::move(s));
  if (undefined) *undefined = "";
  if (segs.size() < 2) {
    if (undefined) *undefined = "fewer than 2 clips";
    return std::nan("");
  }
  std::vector<const Segment*> ptrs;
  std::vector<double> truth, pred;
  for (const auto& s : segs) { ptrs.push_back(&s); truth.push_back(s.true_return()); }
  torch::Tensor r = reward.segment_returns(ptrs).mean(0).contiguous();
  auto acc = r.accessor<float, 1>();
  for (int64_t j = 0; j < r.size(0); ++j) pred.push_back(acc[j]);
  const double corr = pearson(pred, truth);
  if (undefined && !std::isfinite(corr)) *undefined = undefined_correlation(pred, truth);
  return corr;
}

}  // namespace prefrl
