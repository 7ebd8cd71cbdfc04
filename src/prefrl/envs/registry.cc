// The registry: environment names => factories.
#include <algorithm>
#include <functional>
#include <mutex>
#include <utility>

#include "prefrl/core/error.h"
#include "prefrl/envs/acrobot.h"
#include "prefrl/envs/cartpole.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/mountaincar_continuous.h"
#include "prefrl/envs/movingdot.h"
#include "prefrl/envs/mujoco_tasks.h"
#include "prefrl/envs/pendulum.h"
#include "prefrl/envs/wrappers.h"

namespace prefrl {

namespace {

// Names => factories, in registration order (built-in environments first).
struct Registry {
  std::mutex mu;
  std::vector<std::pair<std::string, EnvFactory>> entries;
};

// The one place a name enters the registry: checked, then added.
void add(Registry& r, const std::string& name, EnvFactory factory) {
  const bool well_formed = !name.empty() && name.size() <= 64 &&
                           std::all_of(name.begin(), name.end(), [](char c) {
                             return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                           });
  if (!well_formed)
    throw UsageError("environment name '" + name + "' must be 1-64 lower-case letters, digits or '_'");
  if (!factory) throw UsageError("environment '" + name + "' registered without a factory");
  for (const auto& [n, f] : r.entries)
    if (n == name) throw UsageError("environment '" + name + "' is already registered");
  r.entries.emplace_back(name, std::move(factory));
}

// The built-in environments, registered as any other would be.
void register_builtins(Registry& r) {
  add(r, "cartpole", [] { return std::make_unique<CartPole>(); });
  add(r, "pendulum", [] { return std::make_unique<Pendulum>(); });
  add(r, "mountaincar_continuous", [] { return std::make_unique<MountainCarContinuous>(); });
  add(r, "acrobot", [] { return std::make_unique<Acrobot>(); });
  // Two frames (the current and the one before the last action), as the paper's Atari inputs
  // are stacks of recent frames.
  add(r, "movingdot", [] { return std::make_unique<FrameStack>(std::make_unique<MovingDot>(), 2); });
  add(r, "hopper", [] { return std::make_unique<Hopper>(); });
  add(r, "halfcheetah", [] { return std::make_unique<HalfCheetah>(); });
  add(r, "walker2d", [] { return std::make_unique<Walker2d>(); });
  add(r, "swimmer", [] { return std::make_unique<Swimmer>(); });
  add(r, "reacher", [] { return std::make_unique<Reacher>(); });
  add(r, "inverted_pendulum", [] { return std::make_unique<InvertedPendulum>(); });
  add(r, "inverted_double_pendulum", [] { return std::make_unique<InvertedDoublePendulum>(); });
}

Registry& registry() {
  static Registry r;
  static std::once_flag builtins;
  std::call_once(builtins, [] { register_builtins(r); });
  return r;
}

}  // namespace

void register_env(const std::string& name, EnvFactory factory) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  add(r, name, std::move(factory));
}

std::vector<std::string> env_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [name, factory] : r.entries) names.push_back(name);
  return names;
}

EnvFactory env_factory(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& [n, factory] : r.entries) {
    if (n == name) return factory;
  }
  std::string known;
  for (const auto& [n, factory] : r.entries) known += (known.empty() ? "" : ", ") + n;
  throw UsageError("unknown environment '" + name + "'; known: " + known);
}

std::unique_ptr<Env> make_env(const std::string& name) { return env_factory(name)(); }

EnvSpec env_spec(const std::string& name) { return make_env(name)->spec(); }

}  // namespace prefrl
