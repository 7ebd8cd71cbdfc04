// prefrl's networks as TorchScript modules (torch::jit::Module), loadable by torch.jit.load in
// Python and torch::jit::load in C++ with no prefrl code: the code of each module is generated
// from the network's layout and calls the same ATen operators, in the same order, as prefrl's
// LibTorch paths, so a module computes what prefrl computes (bit for bit where prefrl runs those
// paths; within float rounding of the hand-written MLP kernels). Batch dimension first.
#pragma once
#include <string>

#include <torch/torch.h>  // torch::jit::Module (through the serialization headers)

#include "prefrl/envs/env.h"
#include "prefrl/rl/policy.h"
#include "prefrl/rl/ppo.h"

namespace prefrl {

// The acting policy of `parts` for observations of `spec`:
//   forward(obs) -> (logits, value)                      discrete actions
//   forward(obs) -> (mean, log_std, value)               Box actions (a Gaussian)
//   act(obs) -> actions                                  deterministic: the argmax (as float
//                                                         indices, (n x 1)) or the mean clipped to
//                                                         the action space's bounds (n x A)
// obs: (n x obs shape) or (n x D) float32, as the environment gives them (pixels: byte / 255);
// the observation normalisation the agent applied is part of the module.
torch::jit::Module policy_module(const PolicyParts& parts, const EnvSpec& spec);

}  // namespace prefrl
