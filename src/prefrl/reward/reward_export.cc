// RewardModel::to_torchscript: the reward network and predict()'s encoding and normalisation
// as a TorchScript module whose generated code calls the ATen operators EnsembleNet::run calls
// in an evaluation pass (no dropout, batch norm on running statistics), in the same order.
#include <sstream>
#include <string>
#include <vector>

#include "prefrl/core/config.h"
#include "prefrl/core/error.h"
#include "prefrl/reward/ensemble_net.h"
#include "prefrl/reward/reward_model.h"

namespace prefrl {

namespace {

torch::Tensor floats(const std::vector<float>& v) { return torch::tensor(v, torch::kFloat32); }

// The activation of EnsembleNet::activate applied to the TorchScript expression x.
std::string activation(const std::string& name, const std::string& x) {
  if (name == "relu") return "torch.relu(" + x + ")";
  if (name == "tanh") return "torch.tanh(" + x + ")";
  return "torch.leaky_relu(" + x + ", 0.01)";
}

// def rows(self, obs, action) -> (n x F): RewardModel's encode_step for n ordinary steps.
void rows_code(const RewardEncoding& e, torch::jit::Module& m, std::ostringstream& code) {
  code << "def rows(self, obs: Tensor, action: Optional[Tensor]) -> Tensor:\n"
       << "    n = obs.size(0)\n"
       << "    x = obs.float().reshape([n, " << e.obs_size << "])\n";
  if (!e.hidden.empty()) {
    torch::Tensor mask = torch::zeros({e.obs_size}, torch::kBool);
    for (int64_t j : e.hidden) mask[j] = true;
    m.register_buffer("hidden_inputs", mask);
    code << "    x = x.masked_fill(self.hidden_inputs, 0.0)\n";
  }
  if (e.act_width > 0) {
    code << "    assert action is not None, \"this reward model rates (observation, action): give the actions\"\n"
         << "    a = action.reshape([n, " << e.act_size << "])\n";
    if (e.discrete) {
      code << "    index = a.long()\n"
           << "    assert not bool(((index < 0) | (index >= " << e.n_actions << ") | (index.float() != a.float())).any()), "
           << "\"a discrete action is not an integer in [0, " << e.n_actions << ")\"\n"
           << "    a = x.new_zeros([n, " << e.n_actions << "]).scatter_(1, index, 1.0)\n";
    } else {
      code << "    a = a.float()\n";
    }
    code << "    x = torch.cat([x, a], 1)\n";
  }
  if (!e.in_mean.empty()) {
    m.register_buffer("in_mean", floats(e.in_mean));
    m.register_buffer("in_inv_std", floats(e.in_inv_std));
    code << "    x = (x - self.in_mean) * self.in_inv_std\n";
  }
  code << "    return torch.cat([x, x.new_zeros([n, 1])], 1)\n\n";
}

// def raw(self, rows) -> (M x N): EnsembleNet::run in an evaluation pass.
void raw_code(const reward_detail::EnsembleNet& net, torch::jit::Module& m, std::ostringstream& code) {
  const reward_detail::NetShape& sh = net.shape();
  const reward_detail::EnsembleNet::EvalTensors t = net.eval_tensors();
  const int64_t M = sh.members, F = sh.row_width, S = sh.select_width, off = sh.select_offset;
  // The columns entering the head (EnsembleNet::head_columns).
  std::string head_cols = "rows";
  if (S > 0) {
    head_cols = off + S == F ? "rows.narrow(1, 0, " + std::to_string(off) + ")"
                             : "torch.cat([rows.narrow(1, 0, " + std::to_string(off) + "), rows.narrow(1, " +
                                   std::to_string(off + S) + ", " + std::to_string(F - off - S) + ")], 1)";
  }
  code << "def raw(self, rows: Tensor) -> Tensor:\n"
       << "    N = rows.size(0)\n";
  if (!t.conv_w.empty()) {
    const int64_t C = sh.image[0], H = sh.image[1], W = sh.image[2], image = C * H * W;
    code << "    y = rows.narrow(1, 0, " << image << ").reshape([N, " << C << ", " << H << ", " << W << "])\n"
         << "    R = N\n";
    if (sh.potential) {
      code << "    frames = y.view([N, 2, " << C / 2 << ", " << H << ", " << W << "])\n"
           << "    y = torch.cat([frames.select(1, 0), frames.select(1, 1)], 0)\n"
           << "    R = 2 * N\n";
    }
    for (size_t i = 0; i < t.conv_w.size(); ++i) {
      const std::string n = std::to_string(i);
      m.register_parameter("conv" + n + "_w", t.conv_w[i], false);
      m.register_parameter("conv" + n + "_b", t.conv_b[i], false);
      const int64_t pad = sh.same_padding ? t.kernels[i] / 2 : 0;
      code << "    y = torch.conv2d(y, self.conv" << n << "_w, self.conv" << n << "_b, [" << t.strides[i] << ", "
           << t.strides[i] << "], [" << pad << ", " << pad << "], [1, 1], " << t.groups[i] << ")\n";
      if (i < t.bn_w.size()) {
        m.register_parameter("bn" + n + "_w", t.bn_w[i], false);
        m.register_parameter("bn" + n + "_b", t.bn_b[i], false);
        m.register_buffer("bn" + n + "_mean", t.bn_mean[i]);
        m.register_buffer("bn" + n + "_var", t.bn_var[i]);
        code << "    y = torch.batch_norm(y, self.bn" << n << "_w, self.bn" << n << "_b, self.bn" << n << "_mean, self.bn"
             << n << "_var, False, " << exact_float_literal(sh.bn_momentum) << ", " << exact_float_literal(t.bn_eps) << ", False)\n";
      }
      if (!t.kp_temp.defined() || i + 1 < t.conv_w.size()) code << "    y = " << activation(sh.activation, "y") << "\n";
    }
    if (t.kp_temp.defined()) {
      m.register_parameter("kp_temp", t.kp_temp, false);
      m.register_buffer("kp_grid", t.kp_grid);
      code << "    MC = y.size(1)\n"
           << "    logits = y.reshape([R, MC, y.size(2) * y.size(3)]) * self.kp_temp.exp().view([1, MC, 1])\n"
           << "    y = torch.matmul(torch.softmax(logits, 2), self.kp_grid)\n";
    }
    code << "    features = y.reshape([R, " << M << ", " << t.conv_features << "]).permute([1, 0, 2])\n"
         << "    extra = " << head_cols << ".narrow(1, " << image << ", " << F - S - image << ")\n";
    if (sh.potential) code << "    extra = torch.cat([extra, extra], 0)\n";
    code << "    h = torch.cat([features, extra.unsqueeze(0).expand([" << M << ", R, extra.size(1)])], 2)\n";
  } else {
    code << "    x = " << head_cols << "\n"
         << "    h = x.unsqueeze(0).expand([" << M << ", N, x.size(1)])\n";
  }
  for (size_t i = 0; i < t.fc_w.size(); ++i) {
    const std::string n = std::to_string(i);
    m.register_parameter("fc" + n + "_w", t.fc_w[i], false);
    m.register_parameter("fc" + n + "_b", t.fc_b[i], false);
    code << "    h = torch.baddbmm(self.fc" << n << "_b, h, self.fc" << n << "_w)\n";
    if (i + 1 < t.fc_w.size()) code << "    h = " << activation(sh.activation, "h") << "\n";
  }
  if (S > 0) {
    code << "    return (h * rows.narrow(1, " << off << ", " << S << ").unsqueeze(0)).sum(2)\n\n";
  } else if (sh.potential) {
    code << "    phi = h.squeeze(2)\n"
         << "    return phi.narrow(1, 0, N) - phi.narrow(1, N, N)\n\n";
  } else {
    code << "    return h.squeeze(2)\n\n";
  }
}

}  // namespace

torch::jit::Module RewardModel::to_torchscript() const {
  const RewardEncoding e = encoding();
  const reward_detail::EnsembleNet& net = net_for_export();
  torch::jit::Module m("PrefrlReward");
  std::ostringstream code;
  rows_code(e, m, code);
  raw_code(net, m, code);
  m.register_buffer("norm_mean", floats(e.norm_mean));
  m.register_buffer("norm_std", floats(e.norm_std));
  // RewardModel's normalise: (raw - mean) / std * output_std, per member.
  code << "def normalise(self, raw: Tensor) -> Tensor:\n"
       << "    return (raw - self.norm_mean.unsqueeze(1)) / self.norm_std.unsqueeze(1) * " << exact_float_literal(e.output_std) << "\n\n"
       << "def members(self, obs: Tensor, action: Optional[Tensor] = None) -> Tensor:\n"
       << "    return self.normalise(self.raw(self.rows(obs, action)))\n\n"
       << "def forward(self, obs: Tensor, action: Optional[Tensor] = None) -> Tensor:\n"
       << "    x = self.rows(obs, action)\n";
  if (e.subtract_absorbing) {
    // predict(): the absorbing input's row rides along in the same pass, then is subtracted.
    code << "    absorbing = x.new_zeros([1, " << e.row_width << "])\n"
         << "    absorbing[0, " << e.row_width - 1 << "] = 1.0\n"
         << "    n = x.size(0)\n"
         << "    r = self.normalise(self.raw(torch.cat([x, absorbing], 0))).mean(0)\n"
         << "    return r.narrow(0, 0, n) - r[n]\n";
  } else {
    code << "    return self.normalise(self.raw(x)).mean(0)\n";
  }
  m.define(code.str());
  return m;
}

}  // namespace prefrl
