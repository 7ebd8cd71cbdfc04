// The registry: environment names => factories.
#include <functional>
#include <utility>

#include "prefrl/core/error.h"
#include "prefrl/envs/acrobot.h"
#include "prefrl/envs/cartpole.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/mountaincar_continuous.h"
#include "prefrl/envs/movingdot.h"
#include "prefrl/envs/mujoco_tasks.h"
#include "prefrl/envs/pendulum.h"

namespace prefrl {

namespace {

using Factory = std::function<std::unique_ptr<Env>()>;

// In the order env_names() lists them.
const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> r = {
      {"cartpole", [] { return std::make_unique<CartPole>(); }},
      {"pendulum", [] { return std::make_unique<Pendulum>(); }},
      {"mountaincar_continuous", [] { return std::make_unique<MountainCarContinuous>(); }},
      {"acrobot", [] { return std::make_unique<Acrobot>(); }},
      {"movingdot", [] { return std::make_unique<MovingDot>(); }},
      {"hopper", [] { return std::make_unique<Hopper>(); }},
      {"halfcheetah", [] { return std::make_unique<HalfCheetah>(); }},
      {"walker2d", [] { return std::make_unique<Walker2d>(); }},
      {"swimmer", [] { return std::make_unique<Swimmer>(); }},
      {"reacher", [] { return std::make_unique<Reacher>(); }},
      {"inverted_pendulum", [] { return std::make_unique<InvertedPendulum>(); }},
      {"inverted_double_pendulum", [] { return std::make_unique<InvertedDoublePendulum>(); }},
  };
  return r;
}

}  // namespace

std::vector<std::string> env_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Env> make_env(const std::string& name) {
  for (const auto& [n, factory] : registry()) {
    if (n == name) return factory();
  }
  std::string known;
  for (const auto& [n, factory] : registry()) known += (known.empty() ? "" : ", ") + n;
  throw UsageError("unknown environment '" + name + "'; known: " + known);
}

EnvSpec env_spec(const std::string& name) { return make_env(name)->spec(); }

}  // namespace prefrl
