// PPOAgent: the rollout buffer, action sampling, GAE and CleanRL's PPO update loop, on top of
// a Policy (policy.h: hand-written fast MLP or LibTorch autograd) and a fused Adam (nn/adam.h).
//
// Randomness comes only from prefrl::Rng streams derived from the agent's seed (parameter
// init, action sampling, minibatch shuffling, evaluation sampling), never from torch's global
// generator, so with one thread a seed fixes every action and parameter bit for bit.
#include "prefrl/rl/ppo.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>

#include "prefrl/core/error.h"
#include "prefrl/core/metric_names.h"
#include "prefrl/core/rng.h"
#include "prefrl/nn/adam.h"
#include "prefrl/rl/a2c.h"
#include "prefrl/rl/gae.h"
#include "prefrl/rl/normalizers.h"
#include "prefrl/rl/policy.h"

namespace prefrl {

namespace {

constexpr uint64_t kInitStream = 1;     // parameter initialisation
constexpr uint64_t kActStream = 2;      // rollout action sampling
constexpr uint64_t kShuffleStream = 3;  // minibatch shuffling
constexpr uint64_t kEvalStream = 4;     // act(): evaluation sampling, apart from training's
constexpr int64_t kCheckpointFormat = 1;

// A (n) int64 tensor holding the bits of u (n) (RNG states).
torch::Tensor u64_tensor(const std::vector<uint64_t>& u) {
  auto t = torch::empty({static_cast<int64_t>(u.size())}, torch::kInt64);
  std::memcpy(t.data_ptr<int64_t>(), u.data(), u.size() * sizeof(uint64_t));
  return t;
}
// The inverse of u64_tensor.
std::vector<uint64_t> tensor_u64(const torch::Tensor& t) {
  auto c = t.to(torch::kInt64).contiguous();
  std::vector<uint64_t> u(c.numel());
  std::memcpy(u.data(), c.data_ptr<int64_t>(), u.size() * sizeof(uint64_t));
  return u;
}
// A (n) float64 tensor of v (n).
torch::Tensor doubles_tensor(const std::vector<double>& v) {
  return torch::tensor(v, torch::TensorOptions().dtype(torch::kFloat64));
}
// The inverse of doubles_tensor.
std::vector<double> tensor_doubles(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}
// Text as a (n) uint8 tensor, and back.
torch::Tensor text_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}
std::string tensor_text(const torch::Tensor& t) {
  auto c = t.to(torch::kUInt8).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

nlohmann::json space_to_json(const Space& s) {
  return {{"discrete", s.discrete}, {"shape", s.shape}, {"low", s.low}, {"high", s.high}, {"n", s.n}};
}
Space space_from_json(const nlohmann::json& j) {
  Space s;
  s.discrete = j.at("discrete").get<bool>();
  s.shape = j.at("shape").get<std::vector<int64_t>>();
  s.low = j.at("low").get<std::vector<float>>();
  s.high = j.at("high").get<std::vector<float>>();
  s.n = j.at("n").get<int64_t>();
  return s;
}

// What a policy file says of itself: the algorithm, every ppo.* setting (the network's layout,
// widths, activations among them) and the spaces it acts in. Normaliser statistics and
// parameters are the file's other entries.
nlohmann::json describe(const std::string& algorithm, const PPOConfig& cfg, const EnvSpec& spec) {
  PPOConfig c = cfg;  // config_to_json visits (non-const)
  return {{"algorithm", algorithm},
          {"ppo", config_to_json(c)},
          {"env", {{"name", spec.name}, {"observation", space_to_json(spec.observation)},
                   {"action", space_to_json(spec.action)}, {"pixels", spec.pixels},
                   {"max_episode_steps", spec.max_episode_steps}, {"fps", spec.fps}}}};
}

}  // namespace

struct PPOAgent::Impl {
  std::string algorithm;     // "ppo", or "a2c" (a2c.h: PPO with A2C's settings)
  PPOConfig cfg;
  EnvSpec spec;
  int N, T;                  // environments, steps per rollout
  PolicyLayout layout;
  int D, A, H;               // floats per observation, per action; actor outputs
  int64_t P;                 // parameters
  bool fast;                 // hand-written MLP path in use
  bool reuse_forward = false;  // the update differentiates the acting forwards (Policy::forward_kept)
  torch::Tensor params;      // (P) every parameter, flat (the policy reads it in place)
  torch::Tensor grad;        // (P) gradient of the current minibatch
  nn::FlatAdam adam;          // optimizer = adam
  nn::FlatRMSprop rmsprop;    // optimizer = rmsprop
  std::unique_ptr<Policy> policy;
  ObsNormalizer obs_norm;
  RewardScaler reward_scaler;
  Rng act_rng, shuffle_rng, eval_rng;

  // Rollout buffer, columns of a RolloutColumns (the trainer's store's, or own_columns); row t
  // holds step t of every environment.
  RolloutColumns own_columns;
  float* obs = nullptr;            // (T x N x D) normalised observations acted on
  float* actions = nullptr;        // (T x N x A) sampled actions (unclipped)
  float* logprobs = nullptr;       // (T x N) their log-probabilities
  float* values = nullptr;         // (T x N) V(obs)
  float* rewards = nullptr;        // (T x N) rewards learned from (scaled when norm_reward)
  uint8_t* terminated = nullptr;   // (T x N)
  uint8_t* truncated = nullptr;    // (T x N)
  float* final_values = nullptr;   // (T x N) V(final obs) where truncated, else 0
  float* advantages = nullptr;     // (T x N)
  float* returns = nullptr;        // (T x N)
  std::vector<uint8_t> acted, recorded;  // (T) which steps of the rollout are filled in
  bool rewards_set = false;

  // Scratch, allocated once.
  std::vector<float> head;           // (max(N, n) x H) actor outputs
  std::vector<float> norm_obs;       // (max(N, n) x D) normalised observations
  std::vector<float> step_values;    // (N) values of next or final observations
  std::vector<float> row_values;     // (max(N, n)) values act() discards
  std::vector<float> step_logp;      // (max(N, n)) log-probabilities act() discards
  std::vector<float> logp_row;       // (H) log-softmax of one row
  std::vector<int> ended;            // (N) envs whose final observation needs a value
  std::vector<int64_t> perm;         // (T * N) shuffled transition indices
  std::vector<float> mb_obs, mb_actions, mb_logprobs, mb_values, mb_advantages, mb_returns;  // (B x ...)

  Impl(std::string algo, const PPOConfig& c, const EnvSpec& s, int num_envs, uint64_t seed)
      : algorithm(std::move(algo)), cfg(c), spec(s), N(num_envs), T(c.num_steps), layout(make_layout(c, s)), D(layout.obs_dim),
        A(layout.act_dim), H(layout.head_dim), P(layout.num_params), fast(c.fast_mlp && !layout.pixels),
        params(torch::zeros({P}, torch::kFloat32)), grad(torch::zeros({P}, torch::kFloat32)), adam(P),
        rmsprop(P, c.rmsprop_alpha, c.rmsprop_eps),
        obs_norm(D, c.norm_obs && !s.pixels, c.obs_clip), reward_scaler(num_envs, c.gamma, c.reward_clip),
        act_rng(derive_seed(seed, kActStream)), shuffle_rng(derive_seed(seed, kShuffleStream)),
        eval_rng(derive_seed(seed, kEvalStream)), own_columns(num_envs, c.num_steps) {
    if (N < 1) throw UsageError("PPO needs at least one environment, got num_envs = " + std::to_string(N));
    if (T < 1) throw UsageError("ppo.num_steps must be at least 1, got " + std::to_string(T));
    if (cfg.optimizer != "adam" && cfg.optimizer != "rmsprop")
      throw UsageError("ppo.optimizer: '" + cfg.optimizer + "' is not one of: adam, rmsprop");
    Rng init_rng(derive_seed(seed, kInitStream));
    init_params(layout, cfg.init_log_std, init_rng, params.data_ptr<float>());

    const int64_t batch = static_cast<int64_t>(T) * N;
    const int mb = static_cast<int>(std::min<int64_t>(cfg.minibatch_size, batch));
    policy = fast ? make_fast_mlp_policy(layout, cfg, params.data_ptr<float>(), std::max(mb, N))
                  : make_autograd_policy(layout, cfg, params.data_ptr<float>());

    reuse_forward = cfg.reuse_acting_forward && cfg.update_epochs == 1 && mb == batch;
    keep_rollout_in(own_columns);
    acted.assign(T, 0);
    recorded.assign(T, 0);
    reserve_rows(N);
    step_values.resize(N);
    logp_row.resize(H);
    ended.resize(N);
    perm.resize(batch);
    mb_obs.resize(static_cast<size_t>(mb) * D);
    mb_actions.resize(static_cast<size_t>(mb) * A);
    for (auto* v : {&mb_logprobs, &mb_values, &mb_advantages, &mb_returns}) v->resize(mb);
  }

  // The rollout buffer as columns of `c` (the data of a rollout in progress is not carried over).
  void keep_rollout_in(RolloutColumns& c) {
    if (c.num_envs() != N || c.rollout_steps() != T) {
      throw UsageError("PPO keeps rollouts of " + std::to_string(T) + " steps of " + std::to_string(N) +
                       " environments; the columns offered are for " + std::to_string(c.rollout_steps()) +
                       " steps of " + std::to_string(c.num_envs()));
    }
    const std::string pre = algorithm + "/";
    obs = c.add_floats(pre + "obs", D);
    actions = c.add_floats(pre + "actions", A);
    logprobs = c.add_floats(pre + "logprobs", 1);
    values = c.add_floats(pre + "values", 1);
    rewards = c.add_floats(pre + "rewards", 1);
    terminated = c.add_bytes(pre + "terminated", 1);
    truncated = c.add_bytes(pre + "truncated", 1);
    final_values = c.add_floats(pre + "final_values", 1);
    advantages = c.add_floats(pre + "advantages", 1);
    returns = c.add_floats(pre + "returns", 1);
    if (&c != &own_columns) own_columns.clear();
    clear_rollout();
  }

  // Grows the per-row scratch to hold n rows.
  void reserve_rows(int n) {
    if (static_cast<int>(step_logp.size()) >= n) return;
    head.resize(static_cast<size_t>(n) * H);
    norm_obs.resize(static_cast<size_t>(n) * D);
    row_values.resize(n);
    step_logp.resize(n);
  }

  // Throws a RuntimeError naming the first non-finite element of x (n x D).
  void check_finite(const float* x, int n, const char* what) const {
    for (int64_t k = 0; k < static_cast<int64_t>(n) * D; ++k) {
      if (!std::isfinite(x[k])) {
        throw RuntimeError(std::string("PPO: ") + what + " of env " + std::to_string(k / D) + " has element " +
                           std::to_string(k % D) + " = " + std::to_string(x[k]) + "; expected a finite number");
      }
    }
  }

  // Samples (or, deterministic, takes the mode of) actions (n x A) from actor outputs head
  // (n x H); writes their log-probabilities logp (n).
  void choose(int n, bool deterministic, Rng& rng, float* act, float* logp) {
    const float* log_std = layout.discrete ? nullptr : params.data_ptr<float>() + layout.log_std;
    choose_actions(layout, head.data(), log_std, n, deterministic, rng, act, logp, logp_row.data());
  }

  // Copies the transitions perm[start, start + B) into the minibatch arrays.
  Minibatch gather(int64_t start, int B) {
    for (int j = 0; j < B; ++j) {
      const int64_t k = perm[start + j];
      std::copy_n(obs + k * D, D, mb_obs.data() + static_cast<int64_t>(j) * D);
      std::copy_n(actions + k * A, A, mb_actions.data() + static_cast<int64_t>(j) * A);
      mb_logprobs[j] = logprobs[k];
      mb_values[j] = values[k];
      mb_advantages[j] = advantages[k];
      mb_returns[j] = returns[k];
    }
    Minibatch mb;
    mb.size = B;
    mb.obs = mb_obs.data();
    mb.actions = mb_actions.data();
    mb.logprobs = mb_logprobs.data();
    mb.values = mb_values.data();
    mb.advantages = mb_advantages.data();
    mb.returns = mb_returns.data();
    return mb;
  }

  // The whole rollout in row order, as the minibatch of the kept acting forwards.
  Minibatch whole_rollout() const {
    Minibatch mb;
    mb.size = static_cast<int>(static_cast<int64_t>(T) * N);
    mb.obs = obs;
    mb.actions = actions;
    mb.logprobs = logprobs;
    mb.values = values;
    mb.advantages = advantages;
    mb.returns = returns;
    mb.kept = true;
    return mb;
  }

  // Throws unless step t is inside the rollout.
  void check_step(int t, const char* fn) const {
    if (t < 0 || t >= T)
      throw RuntimeError(std::string("PPOAgent::") + fn + ": step " + std::to_string(t) + " is outside [0, " +
                         std::to_string(T) + ")");
  }

  // Forgets the rollout just used (the next one starts empty).
  void clear_rollout() {
    std::fill(acted.begin(), acted.end(), 0);
    std::fill(recorded.begin(), recorded.end(), 0);
    rewards_set = false;
    if (policy) policy->drop_kept();
  }

  // GAE, then CleanRL's epochs of shuffled minibatches: loss + gradient, clip, Adam.
  PPOStats update(const float* next_obs, double progress) {
    for (int t = 0; t < T; ++t) {
      if (!acted[t] || !recorded[t])
        throw RuntimeError("PPOAgent::update: step " + std::to_string(t) + " of the rollout was not " +
                           (acted[t] ? "recorded" : "acted on"));
    }
    if (!rewards_set) throw RuntimeError("PPOAgent::update: set_rewards was not called for this rollout");
    check_finite(next_obs, N, "next observation");

    // Advantages and returns, bootstrapping from V(next_obs).
    obs_norm.normalize(next_obs, N, norm_obs.data());
    policy->forward(norm_obs.data(), N, head.data(), step_values.data());
    GaeInput gae;
    gae.T = T;
    gae.N = N;
    gae.rewards = rewards;
    gae.values = values;
    gae.next_values = step_values.data();
    gae.terminated = terminated;
    gae.truncated = truncated;
    gae.final_values = final_values;
    compute_gae(gae, cfg.gamma, cfg.gae_lambda, advantages, returns);

    const double lr_now = cfg.anneal_lr ? cfg.lr * (1.0 - std::clamp(progress, 0.0, 1.0)) : cfg.lr;
    const int64_t batch = static_cast<int64_t>(T) * N;
    const int minibatch = static_cast<int>(std::min<int64_t>(cfg.minibatch_size, batch));
    std::iota(perm.begin(), perm.end(), int64_t{0});

    PPOStats stats;
    stats.lr = lr_now;
    float* p = params.data_ptr<float>();
    float* g = grad.data_ptr<float>();
    for (int epoch = 0; epoch < cfg.update_epochs; ++epoch) {
      shuffle_rng.shuffle(perm);
      double last_kl = 0.0;
      for (int64_t start = 0; start < batch; start += minibatch) {
        // The kept acting forwards are the whole rollout in row order: its arrays as they are.
        const Minibatch mb = policy->kept_rows() == batch ? whole_rollout()
                                                          : gather(start, static_cast<int>(std::min<int64_t>(minibatch, batch - start)));
        const LossTerms loss = policy->loss_and_grad(mb, g);
        const double norm = nn::grad_norm(g, P);
        if (!std::isfinite(loss.loss) || !std::isfinite(norm)) {  // never let NaN/Inf reach the weights
          ++stats.skipped_nonfinite;
          continue;
        }
        if (cfg.optimizer == "rmsprop") {
          rmsprop.step(p, g, lr_now, nn::clip_factor(norm, cfg.max_grad_norm));
        } else {
          adam.step(p, g, lr_now, nn::clip_factor(norm, cfg.max_grad_norm));
        }

        ++stats.minibatches;
        stats.policy_loss += loss.policy_loss;
        stats.value_loss += loss.value_loss;
        stats.entropy += loss.entropy;
        stats.approx_kl += loss.approx_kl;
        stats.clipfrac += loss.clipfrac;
        stats.grad_norm += norm;
        last_kl = loss.approx_kl;
      }
      if (cfg.target_kl > 0 && last_kl > cfg.target_kl) break;
    }
    if (stats.minibatches > 0) {
      const double n = static_cast<double>(stats.minibatches);
      for (double* s : {&stats.policy_loss, &stats.value_loss, &stats.entropy, &stats.approx_kl, &stats.clipfrac,
                        &stats.grad_norm})
        *s /= n;
    }
    stats.explained_variance = explained_variance();
    clear_rollout();
    return stats;
  }

  // 1 - Var(returns - values) / Var(returns) over the rollout's finite pairs (0 when Var(returns) = 0).
  double explained_variance() const {
    double n = 0, sy = 0, sd = 0;
    for (int64_t k = 0; k < static_cast<int64_t>(T) * N; ++k) {
      if (!std::isfinite(returns[k])) continue;
      n += 1;
      sy += returns[k];
      sd += returns[k] - values[k];
    }
    if (n < 1) return 0.0;
    const double my = sy / n, md = sd / n;
    double vy = 0, vd = 0;
    for (int64_t k = 0; k < static_cast<int64_t>(T) * N; ++k) {
      if (!std::isfinite(returns[k])) continue;
      vy += (returns[k] - my) * (returns[k] - my);
      const double d = returns[k] - values[k] - md;
      vd += d * d;
    }
    return vy > 0 ? 1.0 - vd / vy : 0.0;
  }
};

PPOAgent::PPOAgent(const PPOConfig& cfg, const EnvSpec& spec, int num_envs, uint64_t seed)
    : impl_(std::make_unique<Impl>("ppo", cfg, spec, num_envs, seed)) {}

PPOAgent::PPOAgent(const std::string& algorithm, const PPOConfig& cfg, const EnvSpec& spec, int num_envs,
                   uint64_t seed)
    : impl_(std::make_unique<Impl>(algorithm, cfg, spec, num_envs, seed)) {}

std::string PPOAgent::algorithm() const { return impl_->algorithm; }

PPOConfig a2c_as_ppo(const A2CConfig& a) {
  PPOConfig p;
  p.num_steps = a.num_steps;
  p.minibatch_size = 1 << 24;  // capped at the rollout: one minibatch
  p.update_epochs = 1;
  p.lr = a.lr;
  p.anneal_lr = a.anneal_lr;
  p.gamma = a.gamma;
  p.gae_lambda = a.gae_lambda;
  p.clip_coef = 0.2;  // never reached: the ratio is 1 in the only epoch
  p.clip_vloss = false;
  p.ent_coef = a.ent_coef;
  p.vf_coef = 2.0 * a.vf_coef;  // PPO's value loss is 0.5 * MSE
  p.max_grad_norm = a.max_grad_norm;
  p.norm_adv = false;
  p.target_kl = 0.0;
  p.hidden = a.hidden;
  p.activation = a.activation;
  p.norm_obs = a.norm_obs;
  p.obs_clip = a.obs_clip;
  p.norm_reward = a.norm_reward;
  p.reward_clip = a.reward_clip;
  p.init_log_std = a.init_log_std;
  p.conv_channels = a.conv_channels;
  p.cnn = a.cnn;
  p.optimizer = "rmsprop";
  p.rmsprop_alpha = a.rmsprop_alpha;
  p.rmsprop_eps = a.rmsprop_eps;
  p.reuse_acting_forward = a.reuse_acting_forward;
  return p;
}

PPOAgent::~PPOAgent() = default;

void PPOAgent::act(const float* obs, int n, float* actions, bool deterministic) {
  Impl& m = *impl_;
  if (n <= 0) return;
  m.check_finite(obs, n, "observation");
  m.reserve_rows(n);
  m.obs_norm.normalize(obs, n, m.norm_obs.data());
  m.policy->forward(m.norm_obs.data(), n, m.head.data(), m.row_values.data());
  m.choose(n, deterministic, m.eval_rng, actions, m.step_logp.data());
}

void PPOAgent::rollout_act(int t, const float* obs_in, float* actions_out) {
  Impl& m = *impl_;
  m.check_step(t, "rollout_act");
  if (t == 0) m.clear_rollout();
  m.check_finite(obs_in, m.N, "observation");
  const int64_t row = static_cast<int64_t>(t) * m.N;
  float* x = m.obs + row * m.D;
  m.obs_norm.update(obs_in, m.N);
  m.obs_norm.normalize(obs_in, m.N, x);
  // Kept for the update only while every step so far was (a rollout acted on in order).
  if (!(m.reuse_forward && m.policy->kept_rows() == row && m.policy->forward_kept(x, m.N, m.head.data(), m.values + row))) {
    m.policy->drop_kept();
    m.policy->forward(x, m.N, m.head.data(), m.values + row);
  }
  float* a = m.actions + row * m.A;
  m.choose(m.N, false, m.act_rng, a, m.logprobs + row);
  std::copy_n(a, static_cast<int64_t>(m.N) * m.A, actions_out);
  m.acted[t] = 1;
}

void PPOAgent::rollout_record(int t, const uint8_t* terminated, const uint8_t* truncated, const float* final_obs) {
  Impl& m = *impl_;
  m.check_step(t, "rollout_record");
  if (!m.acted[t]) throw RuntimeError("PPOAgent::rollout_record: step " + std::to_string(t) + " was not acted on");
  const int64_t row = static_cast<int64_t>(t) * m.N;
  int n_ended = 0;  // truncated envs: their return is bootstrapped from V(final obs)
  for (int i = 0; i < m.N; ++i) {
    m.terminated[row + i] = terminated[i] ? 1 : 0;
    m.truncated[row + i] = truncated[i] && !terminated[i] ? 1 : 0;
    m.final_values[row + i] = 0.0f;
    if (m.truncated[row + i]) m.ended[n_ended++] = i;
  }
  if (n_ended > 0) {
    if (final_obs == nullptr) throw RuntimeError("PPOAgent::rollout_record: an env was truncated but final_obs is null");
    for (int j = 0; j < n_ended; ++j)
      std::copy_n(final_obs + static_cast<int64_t>(m.ended[j]) * m.D, m.D, m.norm_obs.data() + static_cast<int64_t>(j) * m.D);
    m.check_finite(m.norm_obs.data(), n_ended, "final observation");
    m.obs_norm.normalize(m.norm_obs.data(), n_ended, m.norm_obs.data());
    m.policy->forward(m.norm_obs.data(), n_ended, m.head.data(), m.step_values.data());
    for (int j = 0; j < n_ended; ++j) m.final_values[row + m.ended[j]] = m.step_values[j];
  }
  m.recorded[t] = 1;
}

void PPOAgent::set_rewards(const float* r) {
  Impl& m = *impl_;
  for (int t = 0; t < m.T; ++t) {
    if (!m.recorded[t])
      throw RuntimeError("PPOAgent::set_rewards: step " + std::to_string(t) + " of the rollout was not recorded");
  }
  if (m.cfg.norm_reward) {
    m.reward_scaler.scale(m.T, r, m.terminated, m.truncated, m.rewards);
  } else {
    std::copy_n(r, static_cast<int64_t>(m.T) * m.N, m.rewards);
  }
  m.rewards_set = true;
}

PPOStats PPOAgent::ppo_update(const float* next_obs, double progress) { return impl_->update(next_obs, progress); }

AgentStats PPOAgent::update(const float* next_obs, double progress) {
  const PPOStats p = ppo_update(next_obs, progress);
  AgentStats a;
  if (impl_->algorithm == "a2c") {  // no ratio, no clipping; the value loss as A2C writes it (MSE)
    a.metrics = {{metric::kLearningRate, p.lr},      {metric::kPolicyLoss, p.policy_loss},
                 {metric::kValueLoss, 2.0 * p.value_loss}, {metric::kEntropy, p.entropy},
                 {metric::kExplainedVariance, p.explained_variance}};
  } else {
    a.metrics = {{metric::kLearningRate, p.lr},           {metric::kPolicyLoss, p.policy_loss},
                 {metric::kValueLoss, p.value_loss},      {metric::kEntropy, p.entropy},
                 {metric::kApproxKL, p.approx_kl},        {metric::kClipFrac, p.clipfrac},
                 {metric::kExplainedVariance, p.explained_variance}};
  }
  a.entropy = p.entropy;
  a.applied = p.minibatches;
  a.skipped_nonfinite = p.skipped_nonfinite;
  return a;
}

std::unique_ptr<ActingPolicy> PPOAgent::snapshot() const {
  const Impl& m = *impl_;
  auto copy = std::make_unique<PPOAgent>(m.algorithm, m.cfg, m.spec, 1, 0);
  Impl& c = *copy->impl_;
  {
    torch::NoGradGuard no_grad;
    c.params.copy_(m.params);
  }
  const auto& o = m.obs_norm.stats();
  c.obs_norm.set_stats(o.mean(), o.var(), o.count());
  c.eval_rng.set_state(m.eval_rng.state());
  return copy;
}

PolicyParts PPOAgent::export_parts() const {
  const Impl& m = *impl_;
  PolicyParts out;
  out.layout = m.layout;
  const float* p = m.params.data_ptr<float>();
  out.params.assign(p, p + m.P);
  out.norm_obs = m.obs_norm.enabled();
  if (out.norm_obs) {
    out.obs_shift = m.obs_norm.shift();
    out.obs_scale = m.obs_norm.scale();
    out.obs_clip = m.obs_norm.clip();
  }
  out.eval_rng_state = m.eval_rng.state();
  return out;
}

void PPOAgent::forward_heads(const float* obs, int n, float* head, float* values) {
  Impl& m = *impl_;
  if (n <= 0) return;
  m.check_finite(obs, n, "observation");
  m.reserve_rows(n);
  m.obs_norm.normalize(obs, n, m.norm_obs.data());
  m.policy->forward(m.norm_obs.data(), n, head, values);
}

void PPOAgent::use_libtorch_ops() {
  Impl& m = *impl_;
  if (!m.fast) return;
  m.policy = make_autograd_policy(m.layout, m.cfg, m.params.data_ptr<float>());
  m.fast = false;
}

bool policy_file_describes_itself(const std::string& path) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error&) {
    return false;
  }
  torch::Tensor t;
  return ar.try_read("describe", t);
}

std::unique_ptr<Agent> load_agent(const std::string& path, int num_envs) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw RuntimeError("cannot read policy file '" + path + "': " + e.what_without_backtrace());
  }
  torch::Tensor t;
  if (!ar.try_read("describe", t))
    throw RuntimeError("policy file '" + path + "' does not describe itself (written before prefrl's policy files "
                       "did); load it with its run's config (prefrl eval RUN_DIR does)");
  PPOConfig cfg;
  EnvSpec spec;
  std::string algorithm;
  try {
    const nlohmann::json d = nlohmann::json::parse(tensor_text(t));
    algorithm = d.at("algorithm").get<std::string>();
    if (algorithm != "ppo" && algorithm != "a2c")
      throw RuntimeError("policy file '" + path + "' holds a '" + algorithm + "' policy; this prefrl loads: ppo, a2c");
    config_from_json(cfg, d.at("ppo"));
    const nlohmann::json& e = d.at("env");
    spec.name = e.at("name").get<std::string>();
    spec.observation = space_from_json(e.at("observation"));
    spec.action = space_from_json(e.at("action"));
    spec.pixels = e.at("pixels").get<bool>();
    spec.max_episode_steps = e.at("max_episode_steps").get<int>();
    spec.fps = e.at("fps").get<double>();
  } catch (const RuntimeError&) {
    throw;
  } catch (const std::exception& ex) {
    throw RuntimeError("policy file '" + path + "' has a malformed description: " + ex.what());
  }
  auto agent = std::make_unique<PPOAgent>(algorithm, cfg, spec, num_envs, 0);
  agent->load(ar, path);  // the archive read above, not the file again
  return agent;
}

std::unique_ptr<Agent> make_agent(const AgentConfig& cfg, const PPOConfig& ppo, const A2CConfig& a2c,
                                  const EnvSpec& spec, int num_envs, uint64_t seed) {
  if (cfg.algorithm == "ppo") return std::make_unique<PPOAgent>(ppo, spec, num_envs, seed);
  if (cfg.algorithm == "a2c") return std::make_unique<PPOAgent>("a2c", a2c_as_ppo(a2c), spec, num_envs, seed);
  throw UsageError("agent.algorithm '" + cfg.algorithm + "' is not one of: ppo, a2c");
}
void PPOAgent::discard_rollout() { impl_->clear_rollout(); }

void PPOAgent::keep_rollout_in(RolloutColumns& columns) { impl_->keep_rollout_in(columns); }

int PPOAgent::num_steps() const { return impl_->T; }
int PPOAgent::num_envs() const { return impl_->N; }
torch::Tensor PPOAgent::parameters() const { return impl_->params.clone(); }
bool PPOAgent::uses_fast_mlp() const { return impl_->fast; }

void PPOAgent::save(const std::string& path) const {
  const Impl& m = *impl_;
  torch::serialize::OutputArchive ar;
  ar.write("format", torch::tensor(kCheckpointFormat, torch::kInt64));
  ar.write("layout", torch::tensor({m.P, int64_t{m.D}, int64_t{m.A}, int64_t{m.H}, int64_t{m.layout.discrete},
                                    int64_t{m.layout.pixels}}, torch::kInt64));
  ar.write("params", m.params);
  if (m.cfg.optimizer == "rmsprop") {
    ar.write("rmsprop/step", torch::tensor(m.rmsprop.steps(), torch::kInt64));
    ar.write("rmsprop/square_avg", m.rmsprop.square_avg());
  } else {
    ar.write("adam/step", torch::tensor(m.adam.steps(), torch::kInt64));
    ar.write("adam/exp_avg", m.adam.exp_avg());
    ar.write("adam/exp_avg_sq", m.adam.exp_avg_sq());
  }
  const auto& o = m.obs_norm.stats();
  ar.write("obs_rms/mean", doubles_tensor(o.mean()));
  ar.write("obs_rms/var", doubles_tensor(o.var()));
  ar.write("obs_rms/count", doubles_tensor({o.count()}));
  const auto& r = m.reward_scaler.stats();
  ar.write("ret_rms/mean", doubles_tensor(r.mean()));
  ar.write("ret_rms/var", doubles_tensor(r.var()));
  ar.write("ret_rms/count", doubles_tensor({r.count()}));
  ar.write("ret_rms/returns", doubles_tensor(m.reward_scaler.returns()));
  ar.write("rng/act", u64_tensor(m.act_rng.state()));
  ar.write("rng/shuffle", u64_tensor(m.shuffle_rng.state()));
  ar.write("rng/eval", u64_tensor(m.eval_rng.state()));
  ar.write("describe", text_tensor(describe(m.algorithm, m.cfg, m.spec).dump()));
  const std::string tmp = path + ".tmp";  // written whole, then renamed over the old checkpoint
  try {
    ar.save_to(tmp);
  } catch (const c10::Error& e) {
    throw RuntimeError("cannot write PPO checkpoint '" + tmp + "': " + e.what_without_backtrace());
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw RuntimeError("cannot rename PPO checkpoint '" + tmp + "' to '" + path + "'");
}

void PPOAgent::load(const std::string& path) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw RuntimeError("cannot read PPO checkpoint '" + path + "': " + e.what_without_backtrace());
  }
  load(ar, path);
}

void PPOAgent::load(torch::serialize::InputArchive& ar, const std::string& path) {
  Impl& m = *impl_;
  auto get = [&](const char* key) {
    torch::Tensor t;
    if (!ar.try_read(key, t)) throw RuntimeError("PPO checkpoint '" + path + "' has no '" + key + "'");
    return t;
  };
  if (get("format").item<int64_t>() != kCheckpointFormat)
    throw RuntimeError("PPO checkpoint '" + path + "' has format " + std::to_string(get("format").item<int64_t>()) +
                       ", expected " + std::to_string(kCheckpointFormat));
  const auto layout = tensor_u64(get("layout"));
  const std::vector<uint64_t> expected = {static_cast<uint64_t>(m.P), static_cast<uint64_t>(m.D),
                                          static_cast<uint64_t>(m.A), static_cast<uint64_t>(m.H),
                                          static_cast<uint64_t>(m.layout.discrete), static_cast<uint64_t>(m.layout.pixels)};
  if (layout != expected)
    throw RuntimeError("PPO checkpoint '" + path + "' holds a policy with " + std::to_string(layout.at(0)) +
                       " parameters for observations of " + std::to_string(layout.at(1)) + " floats; this agent has " +
                       std::to_string(m.P) + " parameters for " + std::to_string(m.D) +
                       " (different environment or ppo.hidden / conv_channels?)");
  {
    torch::NoGradGuard no_grad;
    m.params.copy_(get("params"));
  }
  if (m.cfg.optimizer == "rmsprop") {
    m.rmsprop.set_state(get("rmsprop/step").item<int64_t>(), get("rmsprop/square_avg"));
  } else {
    m.adam.set_state(get("adam/step").item<int64_t>(), get("adam/exp_avg"), get("adam/exp_avg_sq"));
  }
  m.obs_norm.set_stats(tensor_doubles(get("obs_rms/mean")), tensor_doubles(get("obs_rms/var")),
                       tensor_doubles(get("obs_rms/count")).at(0));
  m.reward_scaler.set_state(tensor_doubles(get("ret_rms/mean")), tensor_doubles(get("ret_rms/var")),
                            tensor_doubles(get("ret_rms/count")).at(0), tensor_doubles(get("ret_rms/returns")));
  m.act_rng.set_state(tensor_u64(get("rng/act")));
  m.shuffle_rng.set_state(tensor_u64(get("rng/shuffle")));
  m.eval_rng.set_state(tensor_u64(get("rng/eval")));
  m.clear_rollout();
}

}  // namespace prefrl
