#include "prefrl/app/torchscript.h"

#include <sstream>
#include <vector>

#include "prefrl/core/config.h"
#include "prefrl/core/error.h"

namespace prefrl {

namespace {

// A tensor holding `n` floats from `data` in `shape` (a copy the module owns).
torch::Tensor owned(const float* data, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(data), shape, torch::kFloat32).clone();
}

// Registers the weight and bias of a linear slot as parameters `name`_w (out x in), `name`_b.
void add_linear(torch::jit::Module& m, const std::string& name, const LinearSlot& s, const float* p) {
  m.register_parameter(name + "_w", owned(p + s.w, {s.out, s.in}), false);
  m.register_parameter(name + "_b", owned(p + s.b, {s.out}), false);
}

// TorchScript: x = addmm(bias, x, weight.t()), as prefrl's linear().
std::string linear_line(const std::string& name, const std::string& x) {
  return "torch.addmm(self." + name + "_b, " + x + ", self." + name + "_w.t())";
}

}  // namespace

torch::jit::Module policy_module(const PolicyParts& parts, const EnvSpec& spec) {
  const PolicyLayout& L = parts.layout;
  if (static_cast<int64_t>(parts.params.size()) != L.num_params)
    throw RuntimeError("policy export: " + std::to_string(parts.params.size()) + " parameters, the layout has " +
                       std::to_string(L.num_params));
  const float* p = parts.params.data();
  torch::jit::Module m("PrefrlPolicy");
  std::ostringstream code;
  const std::string act_fn = L.relu ? "torch.relu" : "torch.tanh";

  // Observation normalisation: clamp((x - shift) * scale, -clip, clip), as ObsNormalizer.
  code << "def normalize(self, obs: Tensor) -> Tensor:\n"
       << "    x = obs.float().reshape([obs.size(0), " << L.obs_dim << "])\n";
  if (parts.norm_obs) {
    m.register_buffer("obs_shift", owned(parts.obs_shift.data(), {L.obs_dim}));
    m.register_buffer("obs_scale", owned(parts.obs_scale.data(), {L.obs_dim}));
    code << "    x = torch.clamp((x - self.obs_shift) * self.obs_scale, " << exact_float_literal(-parts.obs_clip) << ", "
         << exact_float_literal(parts.obs_clip) << ")\n";
  }
  code << "    return x\n\n";

  // The network: (head, value) of normalised observations, as AutogradPolicy::net.
  code << "def net(self, x: Tensor) -> Tuple[Tensor, Tensor]:\n";
  if (L.pixels) {
    const ConvSlot& c0 = L.convs.front();
    code << "    y = x.view([x.size(0), " << c0.cin << ", " << c0.h_in << ", " << c0.w_in << "])\n";
    for (size_t i = 0; i < L.convs.size(); ++i) {
      const ConvSlot& c = L.convs[i];
      const std::string n = "conv" + std::to_string(i);
      m.register_parameter(n + "_w", owned(p + c.w, {c.cout, c.cin, c.k, c.k}), false);
      m.register_parameter(n + "_b", owned(p + c.b, {c.cout}), false);
      code << "    y = torch.relu(torch.conv2d(y, self." << n << "_w, self." << n << "_b, [" << c.stride << ", "
           << c.stride << "], [" << c.pad << ", " << c.pad << "]))\n";
    }
    add_linear(m, "trunk", L.trunk_fc, p);
    add_linear(m, "actor0", L.actor.front(), p);
    add_linear(m, "critic0", L.critic.front(), p);
    code << "    y = torch.relu(" << linear_line("trunk", "y.flatten(1)") << ")\n"
         << "    return " << linear_line("actor0", "y") << ", " << linear_line("critic0", "y") << ".view([-1])\n\n";
  } else {
    for (const char* which : {"actor", "critic"}) {
      const std::vector<LinearSlot>& layers = std::string(which) == "actor" ? L.actor : L.critic;
      code << "    " << which << " = x\n";
      for (size_t i = 0; i < layers.size(); ++i) {
        const std::string n = which + std::to_string(i);
        add_linear(m, n, layers[i], p);
        const std::string lin = linear_line(n, which);
        code << "    " << which << " = " << (i + 1 < layers.size() ? act_fn + "(" + lin + ")" : lin) << "\n";
      }
    }
    code << "    return actor, critic.view([-1])\n\n";
  }

  if (L.discrete) {
    code << "def forward(self, obs: Tensor) -> Tuple[Tensor, Tensor]:\n"
         << "    return self.net(self.normalize(obs))\n\n"
         << "def act(self, obs: Tensor) -> Tensor:\n"
         << "    logits, value = self.net(self.normalize(obs))\n"
         << "    return torch.argmax(torch.log_softmax(logits, 1), 1, True).float()\n";
  } else {
    m.register_parameter("log_std", owned(p + L.log_std, {L.head_dim}), false);
    m.register_buffer("action_low", owned(spec.action.low.data(), {L.act_dim}));
    m.register_buffer("action_high", owned(spec.action.high.data(), {L.act_dim}));
    code << "def forward(self, obs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:\n"
         << "    mean, value = self.net(self.normalize(obs))\n"
         << "    return mean, self.log_std.expand_as(mean), value\n\n"
         << "def act(self, obs: Tensor) -> Tensor:\n"
         << "    mean, value = self.net(self.normalize(obs))\n"
         << "    return torch.max(torch.min(mean, self.action_high), self.action_low)\n";
  }
  m.define(code.str());
  return m;
}

}  // namespace prefrl
