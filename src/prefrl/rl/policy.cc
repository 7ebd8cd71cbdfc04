#include "prefrl/rl/policy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "prefrl/core/error.h"

namespace prefrl {

namespace {

// Writes gain * (a random orthogonal matrix) into w (rows x cols), as torch.nn.init.orthogonal_:
// QR of a Gaussian matrix (transposed when wide) with R's diagonal made positive. QR by
// twice-iterated modified Gram-Schmidt in double, which yields exactly that sign convention.
void orthogonal_init(float* w, int64_t rows, int64_t cols, double gain, Rng& rng) {
  const bool wide = rows < cols;
  const int64_t m = wide ? cols : rows, n = wide ? rows : cols;  // tall m x n, m >= n
  std::vector<double> q(m * n);                                    // column c at q[c * m]
  for (auto& x : q) x = rng.normal();
  for (int64_t c = 0; c < n; ++c) {
    double* v = q.data() + c * m;
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t p = 0; p < c; ++p) {
        const double* u = q.data() + p * m;
        double dot = 0;
        for (int64_t r = 0; r < m; ++r) dot += u[r] * v[r];
        for (int64_t r = 0; r < m; ++r) v[r] -= dot * u[r];
      }
    }
    double norm = 0;
    for (int64_t r = 0; r < m; ++r) norm += v[r] * v[r];
    norm = std::sqrt(norm);
    for (int64_t r = 0; r < m; ++r) v[r] /= norm;
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      w[i * cols + j] = static_cast<float>(gain * (wide ? q[i * m + j] : q[j * m + i]));
}

// Initialises one linear layer: orthogonal weight, zero bias.
void init_linear(const LinearSlot& s, Rng& rng, float* params) {
  orthogonal_init(params + s.w, s.out, s.in, s.gain, rng);
  std::fill(params + s.b, params + s.b + s.out, 0.0f);
}

}  // namespace

PolicyLayout make_layout(const PPOConfig& cfg, const EnvSpec& spec) {
  PolicyLayout L;
  L.obs_dim = static_cast<int>(spec.observation.numel());
  L.discrete = spec.action.discrete;
  L.act_dim = L.discrete ? 1 : static_cast<int>(spec.action.numel());
  L.head_dim = L.discrete ? static_cast<int>(spec.action.n) : L.act_dim;
  L.pixels = spec.pixels;
  L.relu = cfg.activation == "relu";
  if (cfg.activation != "tanh" && cfg.activation != "relu")
    throw UsageError("ppo.activation: '" + cfg.activation + "' is not one of: tanh, relu");
  if (L.obs_dim < 1) throw UsageError("environment '" + spec.name + "' has an empty observation space");
  if (L.head_dim < 1) throw UsageError("environment '" + spec.name + "' has an empty action space");

  int64_t off = 0;
  auto linear = [&](int in, int out, double gain) {
    LinearSlot s;
    s.in = in; s.out = out; s.gain = gain;
    s.w = off; off += static_cast<int64_t>(in) * out;
    s.b = off; off += out;
    return s;
  };
  const double sqrt2 = std::sqrt(2.0);
  if (L.pixels) {
    const auto& shape = spec.observation.shape;
    if (shape.size() != 3)
      throw UsageError("pixel observations of '" + spec.name + "' must be C x H x W, got " +
                       std::to_string(shape.size()) + " dimensions");
    if (cfg.cnn != "small" && cfg.cnn != "nature")
      throw UsageError("ppo.cnn: '" + cfg.cnn + "' is not one of: small, nature");
    struct ConvSpec { int cout, k, stride, pad; };
    std::vector<ConvSpec> specs;
    if (cfg.cnn == "nature") {
      specs = {{32, 8, 4, 0}, {64, 4, 2, 0}, {64, 3, 1, 0}};
    } else {
      for (int ch : cfg.conv_channels) specs.push_back({ch, 3, 2, 1});
    }
    const int features = cfg.cnn == "nature" ? kNatureFeatures : kPixelFeatures;
    int c = static_cast<int>(shape[0]), h = static_cast<int>(shape[1]), w = static_cast<int>(shape[2]);
    for (const ConvSpec& cs : specs) {
      ConvSlot s;
      s.cin = c; s.cout = cs.cout; s.k = cs.k; s.stride = cs.stride; s.pad = cs.pad; s.h_in = h; s.w_in = w;
      s.h_out = (h + 2 * s.pad - s.k) / s.stride + 1;
      s.w_out = (w + 2 * s.pad - s.k) / s.stride + 1;
      if (s.h_out < 1 || s.w_out < 1)
        throw UsageError(std::string(cfg.cnn == "nature" ? "ppo.cnn nature" : "ppo.conv_channels") +
                         ": too many conv layers for " + std::to_string(shape[1]) + "x" + std::to_string(shape[2]) +
                         " images");
      s.w = off; off += static_cast<int64_t>(s.cout) * s.cin * s.k * s.k;
      s.b = off; off += s.cout;
      L.convs.push_back(s);
      c = s.cout; h = s.h_out; w = s.w_out;
    }
    L.trunk_fc = linear(c * h * w, features, sqrt2);
    L.actor.push_back(linear(features, L.head_dim, 0.01));
    L.critic.push_back(linear(features, 1, 1.0));
  } else {
    for (auto* net : {&L.actor, &L.critic}) {
      int in = L.obs_dim;
      for (int h : cfg.hidden) { net->push_back(linear(in, h, sqrt2)); in = h; }
      net->push_back(net == &L.actor ? linear(in, L.head_dim, 0.01) : linear(in, 1, 1.0));
    }
  }
  if (!L.discrete) { L.log_std = off; off += L.head_dim; }
  L.num_params = off;
  return L;
}

void init_params(const PolicyLayout& L, double init_log_std, Rng& rng, float* params) {
  for (const auto& c : L.convs) {
    orthogonal_init(params + c.w, c.cout, static_cast<int64_t>(c.cin) * c.k * c.k, std::sqrt(2.0), rng);
    std::fill(params + c.b, params + c.b + c.cout, 0.0f);
  }
  if (L.pixels) init_linear(L.trunk_fc, rng, params);
  for (const auto& s : L.actor) init_linear(s, rng, params);
  for (const auto& s : L.critic) init_linear(s, rng, params);
  if (L.log_std >= 0) std::fill(params + L.log_std, params + L.log_std + L.head_dim, static_cast<float>(init_log_std));
}

void gaussian_logprob(const float* mean, const float* log_std, const float* actions, int n, int A, float* logp) {
  for (int i = 0; i < n; ++i) {
    float s = 0.0f;
    for (int a = 0; a < A; ++a) {
      const float sd = std::exp(log_std[a]);
      const float var = sd * sd;
      const float d = actions[i * A + a] - mean[i * A + a];
      s += -(d * d) / (2.0f * var) - log_std[a] - static_cast<float>(kLogSqrt2Pi);
    }
    logp[i] = s;
  }
}

void log_softmax_row(const float* logits, int n, float* out) {
  float mx = logits[0];
  for (int k = 1; k < n; ++k) mx = std::max(mx, logits[k]);
  float s = 0.0f;
  for (int k = 0; k < n; ++k) s += std::exp(logits[k] - mx);
  const float lse = mx + std::log(s);
  for (int k = 0; k < n; ++k) out[k] = logits[k] - lse;
}

namespace {

using torch::Tensor;

// The reference implementation: LibTorch ops on views of the flat parameter vector, the loss
// written as in CleanRL's ppo.py / ppo_continuous_action.py, gradients by autograd.
class AutogradPolicy final : public Policy {
 public:
  AutogradPolicy(const PolicyLayout& layout, const PPOConfig& cfg, float* params) : L_(layout), cfg_(cfg) {
    // One leaf per weight and bias, each a view of the caller's vector: the gradient of a loss
    // comes per parameter (no flat-sized zero tensor per slice, as differentiating narrow()s of
    // one flat leaf costs), and is written into the flat gradient where the parameter lives.
    auto leaf = [&](int64_t offset, int64_t numel) {
      leaves_.emplace(offset, torch::from_blob(params + offset, {numel}, torch::kFloat32).requires_grad_(true));
    };
    auto linear_leaves = [&](const LinearSlot& s) {
      leaf(s.w, int64_t{s.in} * s.out);
      leaf(s.b, s.out);
    };
    for (const auto& c : L_.convs) {
      leaf(c.w, int64_t{c.cout} * c.cin * c.k * c.k);
      leaf(c.b, c.cout);
    }
    if (L_.pixels) linear_leaves(L_.trunk_fc);
    for (const auto& s : L_.actor) linear_leaves(s);
    for (const auto& s : L_.critic) linear_leaves(s);
    if (L_.log_std >= 0) leaf(L_.log_std, L_.head_dim);
    for (const auto& [offset, t] : leaves_) {
      leaf_offsets_.push_back(offset);
      leaf_list_.push_back(t);
    }
  }

  void forward(const float* obs, int n, float* head, float* values) override {
    torch::NoGradGuard no_grad;
    auto x = torch::from_blob(const_cast<float*>(obs), {n, L_.obs_dim}, torch::kFloat32);
    auto [h, v] = net(x);
    h = h.contiguous();
    v = v.contiguous();
    std::memcpy(head, h.data_ptr<float>(), sizeof(float) * n * L_.head_dim);
    std::memcpy(values, v.data_ptr<float>(), sizeof(float) * n);
  }

  bool forward_kept(const float* obs, int n, float* head, float* values) override {
    auto x = torch::from_blob(const_cast<float*>(obs), {n, L_.obs_dim}, torch::kFloat32);
    auto [h, v] = net(x);
    {
      torch::NoGradGuard no_grad;
      std::memcpy(head, h.contiguous().data_ptr<float>(), sizeof(float) * n * L_.head_dim);
      std::memcpy(values, v.contiguous().data_ptr<float>(), sizeof(float) * n);
    }
    kept_heads_.push_back(h);
    kept_values_.push_back(v);
    kept_rows_ += n;
    return true;
  }
  int64_t kept_rows() const override { return kept_rows_; }
  void drop_kept() override {
    kept_heads_.clear();
    kept_values_.clear();
    kept_rows_ = 0;
  }

  LossTerms loss_and_grad(const Minibatch& mb, float* grad) override {
    const int64_t B = mb.size;
    if (mb.kept && kept_rows_ != B)
      throw RuntimeError("Policy::loss_and_grad: the minibatch is the kept forwards' " + std::to_string(kept_rows_) +
                         " rows, but has " + std::to_string(B));
    auto blob = [&](const float* p, at::IntArrayRef shape) {
      return torch::from_blob(const_cast<float*>(p), shape, torch::kFloat32);
    };
    const Tensor obs = blob(mb.obs, {B, L_.obs_dim});          // (B x D)
    const Tensor actions = blob(mb.actions, {B, L_.act_dim});  // (B x A)
    const Tensor old_logprob = blob(mb.logprobs, {B});         // (B)
    const Tensor old_value = blob(mb.values, {B});             // (B)
    const Tensor returns = blob(mb.returns, {B});              // (B)
    Tensor adv = blob(mb.advantages, {B});                     // (B)

    auto [head, newvalue] = mb.kept ? std::pair<Tensor, Tensor>{torch::cat(kept_heads_), torch::cat(kept_values_)}
                                    : net(obs);  // (B x H), (B)
    drop_kept();  // differentiated below (or made stale by this step)
    Tensor newlogprob, entropy;        // (B), (B)
    if (L_.discrete) {
      const Tensor logp_all = torch::log_softmax(head, 1);
      newlogprob = logp_all.gather(1, actions.to(torch::kLong)).squeeze(1);
      entropy = -(logp_all.exp() * logp_all).sum(1);
    } else {
      const Tensor log_std = param(L_.log_std, {1, L_.head_dim}).expand_as(head);
      const Tensor var = log_std.exp() * log_std.exp();
      newlogprob = (-(actions - head).pow(2) / (2 * var) - log_std - kLogSqrt2Pi).sum(1);
      entropy = (0.5 + kLogSqrt2Pi + log_std).sum(1);
    }
    const Tensor logratio = newlogprob - old_logprob;
    const Tensor ratio = logratio.exp();

    LossTerms out;
    {
      torch::NoGradGuard no_grad;
      out.old_approx_kl = (-logratio).mean().item<double>();
      out.approx_kl = ((ratio - 1) - logratio).mean().item<double>();
      out.clipfrac = ((ratio - 1.0).abs() > cfg_.clip_coef).to(torch::kFloat32).mean().item<double>();
    }
    if (cfg_.norm_adv && B > 1) adv = (adv - adv.mean()) / (adv.std() + 1e-8);

    // Policy loss
    const Tensor pg_loss1 = -adv * ratio;
    const Tensor pg_loss2 = -adv * torch::clamp(ratio, 1 - cfg_.clip_coef, 1 + cfg_.clip_coef);
    const Tensor pg_loss = torch::max(pg_loss1, pg_loss2).mean();

    // Value loss
    Tensor v_loss;
    if (cfg_.clip_vloss) {
      const Tensor v_loss_unclipped = (newvalue - returns).pow(2);
      const Tensor v_clipped = old_value + torch::clamp(newvalue - old_value, -cfg_.clip_coef, cfg_.clip_coef);
      const Tensor v_loss_clipped = (v_clipped - returns).pow(2);
      v_loss = 0.5 * torch::max(v_loss_unclipped, v_loss_clipped).mean();
    } else {
      v_loss = 0.5 * (newvalue - returns).pow(2).mean();
    }

    const Tensor entropy_loss = entropy.mean();
    const Tensor loss = pg_loss - cfg_.ent_coef * entropy_loss + v_loss * cfg_.vf_coef;

    const std::vector<Tensor> g = torch::autograd::grad({loss}, leaf_list_, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                                        /*create_graph=*/false, /*allow_unused=*/true);
    std::fill(grad, grad + L_.num_params, 0.0f);
    for (size_t i = 0; i < g.size(); ++i) {
      if (!g[i].defined()) continue;  // e.g. a head the loss does not reach
      const Tensor gi = g[i].contiguous();
      std::memcpy(grad + leaf_offsets_[i], gi.data_ptr<float>(), sizeof(float) * gi.numel());
    }
    out.loss = loss.item<double>();
    out.policy_loss = pg_loss.item<double>();
    out.value_loss = v_loss.item<double>();
    out.entropy = entropy_loss.item<double>();
    return out;
  }

 private:
  // A view of the flat vector as a parameter tensor.
  Tensor param(int64_t offset, at::IntArrayRef shape) const { return leaves_.at(offset).view(shape);
  }
  // x (B x in) => (B x out).
  Tensor linear(const Tensor& x, const LinearSlot& s) const {
    return torch::addmm(param(s.b, {s.out}), x, param(s.w, {s.out, s.in}).t());
  }
  // Hidden activation of the MLP.
  Tensor activate(const Tensor& x) const { return L_.relu ? torch::relu(x) : torch::tanh(x); }
  // An MLP: hidden layers with the activation, a linear output layer.
  Tensor mlp(Tensor x, const std::vector<LinearSlot>& layers) const {
    for (size_t i = 0; i + 1 < layers.size(); ++i) x = activate(linear(x, layers[i]));
    return linear(x, layers.back());
  }
  // obs (B x D) => actor head (B x H), value (B).
  std::pair<Tensor, Tensor> net(const Tensor& obs) const {
    if (!L_.pixels) return {mlp(obs, L_.actor), mlp(obs, L_.critic).view({-1})};
    const auto& c0 = L_.convs.empty() ? ConvSlot{} : L_.convs.front();
    Tensor x = L_.convs.empty() ? obs : obs.view({obs.size(0), c0.cin, c0.h_in, c0.w_in});
    for (const auto& c : L_.convs) {
      x = torch::relu(torch::conv2d(x, param(c.w, {c.cout, c.cin, c.k, c.k}), param(c.b, {c.cout}), c.stride, c.pad));
    }
    x = torch::relu(linear(x.flatten(1), L_.trunk_fc));
    return {linear(x, L_.actor.front()), linear(x, L_.critic.front()).view({-1})};
  }

  PolicyLayout L_;
  PPOConfig cfg_;
  std::map<int64_t, Tensor> leaves_;  // offset => that parameter (1-D view of the caller's vector), requires grad
  std::vector<int64_t> leaf_offsets_;  // leaves_' offsets and tensors, in offset order
  std::vector<Tensor> leaf_list_;
  std::vector<Tensor> kept_heads_, kept_values_;  // forward_kept's outputs, with their graphs
  int64_t kept_rows_ = 0;
};

}  // namespace

void choose_actions(const PolicyLayout& layout, const float* head, const float* log_std, int n, bool deterministic,
                    Rng& rng, float* act, float* logp, float* scratch) {
  const int H = layout.head_dim, A = layout.act_dim;
  if (layout.discrete) {
    for (int i = 0; i < n; ++i) {
      log_softmax_row(head + static_cast<int64_t>(i) * H, H, scratch);
      int a = 0;
      if (deterministic) {
        for (int k = 1; k < H; ++k) if (scratch[k] > scratch[a]) a = k;
      } else {  // inverse CDF
        double total = 0;
        for (int k = 0; k < H; ++k) total += std::exp(static_cast<double>(scratch[k]));
        const double u = rng.uniform() * total;
        double cum = 0;
        a = H - 1;
        for (int k = 0; k < H; ++k) {
          cum += std::exp(static_cast<double>(scratch[k]));
          if (u < cum) { a = k; break; }
        }
      }
      act[i] = static_cast<float>(a);
      logp[i] = scratch[a];
    }
    return;
  }
  for (int i = 0; i < n; ++i)
    for (int a = 0; a < A; ++a) {
      const float mean = head[static_cast<int64_t>(i) * H + a];
      act[static_cast<int64_t>(i) * A + a] =
          deterministic ? mean : mean + std::exp(log_std[a]) * static_cast<float>(rng.normal());
    }
  gaussian_logprob(head, log_std, act, n, A, logp);
}

std::unique_ptr<Policy> make_autograd_policy(const PolicyLayout& layout, const PPOConfig& cfg, float* params) {
  return std::make_unique<AutogradPolicy>(layout, cfg, params);
}

}  // namespace prefrl
