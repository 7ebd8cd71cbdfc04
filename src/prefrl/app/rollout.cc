// Collection: rollouts of the policy, their history for clips, and the episodes they ended.
#include "prefrl/app/rollout.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "prefrl/envs/action_util.h"
#include "prefrl/rl/agent.h"

namespace prefrl {

namespace {
bool all_finite(const float* x, int64_t n) {
  for (int64_t k = 0; k < n; ++k) if (!std::isfinite(x[k])) return false;
  return true;
}
}  // namespace

void RolloutRecord::resize(int t, int n, int64_t d, int64_t a, int64_t s) {
  T = t; N = n; D = d; A = a; S = s;
  states.assign(static_cast<size_t>(T) * N * S, 0.f);
  final_states.assign(static_cast<size_t>(T) * N * S, 0.f);
  obs.assign(static_cast<size_t>(T) * N * D, 0.f);
  actions.assign(static_cast<size_t>(T) * N * A, 0.f);
  true_rewards.assign(static_cast<size_t>(T) * N, 0.f);
  task_rewards.assign(static_cast<size_t>(T) * N, 0.f);
  terminated.assign(static_cast<size_t>(T) * N, 0);
  truncated.assign(static_cast<size_t>(T) * N, 0);
  success.assign(static_cast<size_t>(T) * N, 0);
  final_obs.assign(static_cast<size_t>(T) * N * D, 0.f);
  learned.assign(static_cast<size_t>(T) * N, 0.f);
  broken.assign(static_cast<size_t>(T) * N, 0);
}

SegmentHistory::SegmentHistory(int num_envs, int64_t D, int64_t A, int64_t S, int keep)
    : keep_(keep), trajs_(num_envs) {
  for (int i = 0; i < num_envs; ++i) {
    trajs_[i].obs_size = D; trajs_[i].act_size = A; trajs_[i].env_index = i; trajs_[i].num_envs = num_envs;
    trajs_[i].state_size = S;
  }
}

void SegmentHistory::append(const RolloutRecord& r, int64_t start_step) {
  for (int i = 0; i < r.N; ++i) {
    Trajectory& tr = trajs_[i];
    const int64_t old_size = tr.size();
    if (old_size == 0) tr.start_env_step = start_step;
    for (int t = 0; t < r.T; ++t) {
      const size_t k = static_cast<size_t>(t) * r.N + i;
      tr.obs.insert(tr.obs.end(), r.obs.begin() + k * r.D, r.obs.begin() + (k + 1) * r.D);
      tr.actions.insert(tr.actions.end(), r.actions.begin() + k * r.A, r.actions.begin() + (k + 1) * r.A);
      tr.final_obs.insert(tr.final_obs.end(), r.final_obs.begin() + k * r.D, r.final_obs.begin() + (k + 1) * r.D);
      tr.states.insert(tr.states.end(), r.states.begin() + k * r.S, r.states.begin() + (k + 1) * r.S);
      tr.final_states.insert(tr.final_states.end(), r.final_states.begin() + k * r.S,
                             r.final_states.begin() + (k + 1) * r.S);
      tr.true_rewards.push_back(r.true_rewards[k]);
      tr.terminated.push_back(r.terminated[k]);
      tr.truncated.push_back(r.truncated[k]);
    }
    const int excess = tr.size() - (keep_ + r.T);
    if (excess > 0) {
      tr.obs.erase(tr.obs.begin(), tr.obs.begin() + excess * r.D);
      tr.actions.erase(tr.actions.begin(), tr.actions.begin() + excess * r.A);
      tr.final_obs.erase(tr.final_obs.begin(), tr.final_obs.begin() + excess * r.D);
      tr.states.erase(tr.states.begin(), tr.states.begin() + excess * r.S);
      tr.final_states.erase(tr.final_states.begin(), tr.final_states.begin() + excess * r.S);
      tr.true_rewards.erase(tr.true_rewards.begin(), tr.true_rewards.begin() + excess);
      tr.terminated.erase(tr.terminated.begin(), tr.terminated.begin() + excess);
      tr.truncated.erase(tr.truncated.begin(), tr.truncated.begin() + excess);
      // Global steps advance N per row (Segment::env_step = start_env_step + start * N).
      tr.start_env_step += static_cast<int64_t>(excess) * r.N;
    }
  }
}

void SegmentHistory::clear() {
  for (Trajectory& tr : trajs_) {
    tr.obs.clear(); tr.actions.clear(); tr.final_obs.clear(); tr.states.clear(); tr.final_states.clear();
    tr.true_rewards.clear(); tr.terminated.clear(); tr.truncated.clear();
  }
}

Collector::Collector(const std::string& env_name, int N, int T, uint64_t env_seed,
                     std::optional<float> termination_penalty, int segment_steps)
    : envs_(make_vec_env(env_name, N, env_seed)),
      spec_(envs_->spec()),
      penalty_(spec_.can_terminate ? termination_penalty : std::nullopt),
      N_(N),
      T_(T),
      D_(envs_->obs_size()),
      A_(envs_->act_size()),
      // Clips are rendered for people from stored observations, or, where those do not
      // determine the physical state (MuJoCo), from the states kept beside them.
      S_(spec_.obs_determines_state ? 0 : spec_.state_size),
      history_(N, D_, A_, S_, std::max(0, segment_steps - 1)),
      act_buf_(static_cast<size_t>(N) * A_),
      step_terminated_(N),
      step_truncated_(N),
      ep_true_(N, 0.0),
      ep_pred_(N, 0.0),
      ep_len_(N, 0) {
  if (penalty_) envs_->replace_termination(*penalty_);
  envs_->keep_states(S_ > 0);
  roll_.resize(T, N, D_, A_, S_);
  envs_->reset();
  policy_obs_ = envs_->obs();
  policy_states_ = envs_->states();
}

void Collector::collect(Agent& agent, int64_t* global_step, PhaseTimes* times) {
  using Clock = std::chrono::steady_clock;
  const int N = N_, T = T_;
  const int64_t D = D_, A = A_, S = S_;
  RolloutRecord& roll = roll_;
  nonfinite_ = false;
  std::fill(roll.broken.begin(), roll.broken.end(), 0);
  for (int t = 0; t < T; ++t) {
    const auto t0 = Clock::now();
    std::copy(policy_obs_.begin(), policy_obs_.end(), roll.obs.begin() + static_cast<size_t>(t) * N * D);
    std::copy(policy_states_.begin(), policy_states_.end(), roll.states.begin() + static_cast<size_t>(t) * N * S);
    agent.rollout_act(t, policy_obs_.data(), act_buf_.data());
    clip_actions(spec_.action, act_buf_.data(), N);  // store what the environment executes
    const auto t1 = Clock::now();
    envs_->step(act_buf_.data());
    const auto t2 = Clock::now();
    std::copy(envs_->obs().begin(), envs_->obs().end(), policy_obs_.begin());
    std::copy(envs_->states().begin(), envs_->states().end(), policy_states_.begin());
    for (int i = 0; i < N; ++i) {
      const size_t k = static_cast<size_t>(t) * N + i;
      roll.true_rewards[k] = envs_->rewards()[i];
      roll.task_rewards[k] = envs_->task_rewards()[i];
      roll.terminated[k] = step_terminated_[i] = envs_->terminated()[i];
      roll.truncated[k] = step_truncated_[i] = envs_->truncated()[i];
      roll.success[k] = envs_->success()[i];
      const bool ended = roll.terminated[k] || roll.truncated[k];
      if (ended) {
        std::copy(envs_->final_obs().begin() + i * D, envs_->final_obs().begin() + (i + 1) * D,
                  roll.final_obs.begin() + k * D);
        std::copy(envs_->final_states().begin() + i * S, envs_->final_states().begin() + (i + 1) * S,
                  roll.final_states.begin() + k * S);
      }
      if (!std::isfinite(roll.true_rewards[k]) || !all_finite(policy_obs_.data() + i * D, D) ||
          (ended && !all_finite(envs_->final_obs().data() + i * D, D))) {
        Env& env = envs_->env(i);
        env.reset(policy_obs_.data() + i * D);  // a fresh episode; nothing non-finite reaches the policy
        if (S > 0) {
          const std::vector<double> st = env.get_state();
          std::copy(st.begin(), st.end(), policy_states_.begin() + static_cast<size_t>(i) * S);
        }
        roll.broken[k] = 1;
        roll.true_rewards[k] = roll.task_rewards[k] = 0.f;
        roll.terminated[k] = step_terminated_[i] = 1;  // no bootstrap from a non-finite final observation
        roll.truncated[k] = step_truncated_[i] = 0;
        nonfinite_ = true;
      }
    }
    agent.rollout_record(t, step_terminated_.data(), step_truncated_.data(), envs_->final_obs().data());
    std::copy(act_buf_.begin(), act_buf_.end(), roll.actions.begin() + static_cast<size_t>(t) * N * A);
    times->inference += std::chrono::duration<double>(t1 - t0).count();
    times->env += std::chrono::duration<double>(t2 - t1).count();
  }
  if (nonfinite_) history_.clear();  // no clip spans the broken steps
  else history_.append(roll, *global_step);
  *global_step += static_cast<int64_t>(T) * N;
}

EpisodeTally Collector::tally() {
  EpisodeTally out;
  for (int t = 0; t < T_; ++t) {
    for (int i = 0; i < N_; ++i) {
      const size_t k = static_cast<size_t>(t) * N_ + i;
      if (roll_.broken[k]) {  // the env restarted: its episode is not counted
        ep_true_[i] = ep_pred_[i] = 0.0;
        ep_len_[i] = 0;
        continue;
      }
      ep_true_[i] += roll_.task_rewards[k];  // the task's return (penalty mode: by the task's rules)
      ep_pred_[i] += roll_.learned[k];
      ep_len_[i] += 1;
      if (roll_.terminated[k] || roll_.truncated[k]) {
        out.true_returns.push_back(ep_true_[i]);
        out.predicted_returns.push_back(ep_pred_[i]);
        out.lengths.push_back(ep_len_[i]);
        out.successes.push_back(roll_.success[k]);
        ep_true_[i] = ep_pred_[i] = 0.0;
        ep_len_[i] = 0;
      }
    }
  }
  return out;
}

}  // namespace prefrl
