// Collection: rollouts of the policy, their history for clips, and the episodes they ended.
#include "prefrl/app/rollout.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "prefrl/core/error.h"
#include "prefrl/envs/action_util.h"
#include "prefrl/rl/agent.h"

namespace prefrl {

namespace {
bool all_finite(const float* x, int64_t n) {
  for (int64_t k = 0; k < n; ++k) if (!std::isfinite(x[k])) return false;
  return true;
}
}  // namespace

Collector::Collector(const std::string& env_name, int N, int T, uint64_t env_seed,
                     std::optional<float> termination_penalty, int segment_steps, bool keep_states)
    : envs_(make_vec_env(env_name, N, env_seed)),
      spec_(envs_->spec()),
      penalty_(spec_.can_terminate ? termination_penalty : std::nullopt),
      N_(N),
      T_(T),
      D_(envs_->obs_size()),
      A_(envs_->act_size()),
      // Clips are rendered for people from stored observations, or, where those do not
      // determine the physical state (MuJoCo), from the states kept beside them.
      S_(spec_.obs_determines_state || !keep_states ? 0 : spec_.state_size),
      store_(N, T, D_, A_, S_, std::max(0, segment_steps - 1)),
      act_buf_(static_cast<size_t>(N) * A_),
      step_terminated_(N),
      step_truncated_(N),
      ep_true_(N, 0.0),
      ep_pred_(N, 0.0),
      ep_len_(N, 0) {
  if (penalty_) envs_->replace_termination(*penalty_);
  envs_->keep_states(S_ > 0);
  store_.set_obs_bytes(spec_.observation.dtype == Dtype::kUInt8);
  envs_->reset();
  policy_obs_ = envs_->obs();
  policy_states_ = envs_->states();
}

template <class Act, class Record>
void Collector::collect_steps(Act&& act, Record&& record, int64_t* global_step, PhaseTimes* times) {
  using Clock = std::chrono::steady_clock;
  const int N = N_, T = T_;
  const int64_t D = D_, S = S_;
  TransitionStore& st = store_;
  nonfinite_ = false;
  st.begin_rollout(*global_step);
  for (int t = 0; t < T; ++t) {
    const auto t0 = Clock::now();
    std::copy(policy_obs_.begin(), policy_obs_.end(), st.obs(t));
    std::copy(policy_states_.begin(), policy_states_.end(), st.states(t));
    act(t, policy_obs_.data(), act_buf_.data());
    clip_actions(spec_.action, act_buf_.data(), N);  // store what the environment executes
    const auto t1 = Clock::now();
    envs_->step(act_buf_.data());
    const auto t2 = Clock::now();
    std::copy(envs_->obs().begin(), envs_->obs().end(), policy_obs_.begin());
    std::copy(envs_->states().begin(), envs_->states().end(), policy_states_.begin());
    float* true_rewards = st.true_rewards(t);
    float* task_rewards = st.task_rewards(t);
    uint8_t* terminated = st.terminated(t);
    uint8_t* truncated = st.truncated(t);
    for (int i = 0; i < N; ++i) {
      true_rewards[i] = envs_->rewards()[i];
      task_rewards[i] = envs_->task_rewards()[i];
      terminated[i] = step_terminated_[i] = envs_->terminated()[i];
      truncated[i] = step_truncated_[i] = envs_->truncated()[i];
      st.success(t)[i] = envs_->success()[i];
      const bool ended = terminated[i] || truncated[i];
      if (ended) {
        std::copy(envs_->final_obs().begin() + i * D, envs_->final_obs().begin() + (i + 1) * D,
                  st.final_obs(t) + i * D);
        std::copy(envs_->final_states().begin() + i * S, envs_->final_states().begin() + (i + 1) * S,
                  st.final_states(t) + i * S);
      }
      if (!std::isfinite(true_rewards[i]) || !all_finite(policy_obs_.data() + i * D, D) ||
          (ended && !all_finite(envs_->final_obs().data() + i * D, D))) {
        Env& env = envs_->env(i);
        env.reset(policy_obs_.data() + i * D);  // a fresh episode; nothing non-finite reaches the policy
        if (S > 0) {
          const std::vector<double> state = env.get_state();
          std::copy(state.begin(), state.end(), policy_states_.begin() + static_cast<size_t>(i) * S);
        }
        st.broken(t)[i] = 1;
        true_rewards[i] = task_rewards[i] = 0.f;
        terminated[i] = step_terminated_[i] = 1;  // no bootstrap from a non-finite final observation
        truncated[i] = step_truncated_[i] = 0;
        nonfinite_ = true;
      }
    }
    record(t);
    std::copy(act_buf_.begin(), act_buf_.end(), st.actions(t));
    times->inference += std::chrono::duration<double>(t1 - t0).count();
    times->env += std::chrono::duration<double>(t2 - t1).count();
  }
  if (nonfinite_) st.forget();  // no clip spans the broken steps
  *global_step += static_cast<int64_t>(T) * N;
}

void Collector::collect(Agent& agent, int64_t* global_step, PhaseTimes* times) {
  collect_steps([&](int t, const float* obs, float* actions) { agent.rollout_act(t, obs, actions); },
                [&](int t) {
                  agent.rollout_record(t, step_terminated_.data(), step_truncated_.data(), envs_->final_obs().data());
                },
                global_step, times);
}

void Collector::collect(ActingPolicy& policy, bool deterministic, int64_t* global_step, PhaseTimes* times) {
  collect_steps([&](int, const float* obs, float* actions) { policy.act(obs, N_, actions, deterministic); },
                [](int) {}, global_step, times);
}

EpsilonPolicy::EpsilonPolicy(ActingPolicy& base, const Space& action, double epsilon, uint64_t seed)
    : base_(base), action_(action), epsilon_(epsilon), rng_(seed) {
  check(action, epsilon);
}

void EpsilonPolicy::check(const Space& action, double epsilon) {
  if (!(epsilon >= 0.0 && epsilon <= 1.0)) throw UsageError("EpsilonPolicy: epsilon must be in [0, 1]");
  if (!action.discrete) {
    for (size_t j = 0; j < action.low.size(); ++j) {
      if (!std::isfinite(action.low[j]) || !std::isfinite(action.high[j]))
        throw UsageError("exploring with random actions needs a bounded action space; action " + std::to_string(j) +
                         " has bounds [" + std::to_string(action.low[j]) + ", " + std::to_string(action.high[j]) + "]");
    }
  }
}

void EpsilonPolicy::act(const float* obs, int n, float* actions, bool deterministic) {
  base_.act(obs, n, actions, deterministic);
  const int64_t A = action_.discrete ? 1 : action_.numel();
  for (int i = 0; i < n; ++i) {
    float* a = actions + static_cast<int64_t>(i) * A;
    const bool replace = rng_.bernoulli(epsilon_);
    if (action_.discrete) {
      const auto k = static_cast<float>(rng_.integer(static_cast<uint64_t>(action_.n)));
      if (replace) a[0] = k;
    } else {
      for (int64_t j = 0; j < A; ++j) {
        const auto u = static_cast<float>(rng_.uniform(action_.low[j], action_.high[j]));
        if (replace) a[j] = u;
      }
    }
  }
}

EpisodeTally Collector::tally() {
  EpisodeTally out;
  const TransitionStore& st = store_;
  for (int t = 0; t < T_; ++t) {
    for (int i = 0; i < N_; ++i) {
      if (st.broken(t)[i]) {  // the env restarted: its episode is not counted
        ep_true_[i] = ep_pred_[i] = 0.0;
        ep_len_[i] = 0;
        continue;
      }
      ep_true_[i] += st.task_rewards(t)[i];  // the task's return (penalty mode: by the task's rules)
      ep_pred_[i] += st.learned(t)[i];
      ep_len_[i] += 1;
      if (st.terminated(t)[i] || st.truncated(t)[i]) {
        out.true_returns.push_back(ep_true_[i]);
        out.predicted_returns.push_back(ep_pred_[i]);
        out.lengths.push_back(ep_len_[i]);
        out.successes.push_back(st.success(t)[i]);
        out.envs.push_back(i);
        ep_true_[i] = ep_pred_[i] = 0.0;
        ep_len_[i] = 0;
      }
    }
  }
  return out;
}

}  // namespace prefrl
