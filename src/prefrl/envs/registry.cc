// The registry: environment names => factories.
#include <algorithm>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>

#include "prefrl/core/error.h"
#include "prefrl/envs/acrobot.h"
#include "prefrl/envs/atari_env.h"
#include "prefrl/envs/cartpole.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/mountaincar_continuous.h"
#include "prefrl/envs/movingdot.h"
#include "prefrl/envs/pendulum.h"
#include "prefrl/envs/task_file.h"
#include "prefrl/envs/wrappers.h"

namespace prefrl {

namespace {

struct Entry {
  std::string name;
  EnvFactory factory;
  VecEnvFactory vec_factory;   // or empty: SerialVecEnv
  std::optional<EnvSpec> spec;  // known in advance, or made by an instance
};

// Names => factories, in registration order (built-in environments first).
struct Registry {
  std::mutex mu;
  std::vector<Entry> entries;
};

// The one place a name enters the registry: checked, then added.
void add(Registry& r, const std::string& name, EnvFactory factory, VecEnvFactory vec_factory = nullptr,
         std::optional<EnvSpec> spec = std::nullopt) {
  const bool well_formed = !name.empty() && name.size() <= 64 &&
                           std::all_of(name.begin(), name.end(), [](char c) {
                             return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                           });
  if (!well_formed)
    throw UsageError("environment name '" + name + "' must be 1-64 lower-case letters, digits or '_'");
  if (!factory) throw UsageError("environment '" + name + "' registered without a factory");
  for (const Entry& e : r.entries)
    if (e.name == name) throw UsageError("environment '" + name + "' is already registered");
  r.entries.push_back({name, std::move(factory), std::move(vec_factory), std::move(spec)});
}

// The entry of `name`; throws UsageError listing the known names. Call with r.mu held.
const Entry& find(const Registry& r, const std::string& name) {
  for (const Entry& e : r.entries)
    if (e.name == name) return e;
  std::string known;
  for (const Entry& e : r.entries) known += (known.empty() ? "" : ", ") + e.name;
  throw UsageError("unknown environment '" + name + "'; known: " + known);
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
  // The MuJoCo tasks are task files (src/prefrl/envs/mjcf/*.toml, embedded), as a user's are;
  // the hand-written C++ ports of Gymnasium's (mujoco_tasks.h) are what tests hold them to.
  add(r, "hopper", builtin_task_factory("hopper", "hopper"));
  add(r, "halfcheetah", builtin_task_factory("halfcheetah", "halfcheetah"));
  add(r, "walker2d", builtin_task_factory("walker2d", "walker2d"));
  add(r, "swimmer", builtin_task_factory("swimmer", "swimmer"));
  add(r, "reacher", builtin_task_factory("reacher", "reacher"));
  add(r, "inverted_pendulum", builtin_task_factory("inverted_pendulum", "inverted_pendulum"));
  add(r, "inverted_double_pendulum", builtin_task_factory("inverted_double_pendulum", "inverted_double_pendulum"));
  // prefrl's own Atari games inside the standard preprocessing (atari_env.h); a run's atari.*
  // settings replace these registrations (configure_atari_envs).
  for (const std::string& name : atari_env_names()) {
    EnvFactory f = atari_env_factory(name, AtariConfig{});
    const EnvSpec spec = f()->spec();
    add(r, name, std::move(f), nullptr, spec);
  }
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

void register_env(const std::string& name, EnvFactory factory, VecEnvFactory vec_factory, const EnvSpec& spec) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  add(r, name, std::move(factory), std::move(vec_factory), spec);
}

void replace_env(const std::string& name, EnvFactory factory, VecEnvFactory vec_factory, const EnvSpec& spec) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  Entry& e = const_cast<Entry&>(find(r, name));
  if (!e.spec) throw UsageError("environment '" + name + "' was not registered with its spec; it cannot be replaced");
  e.factory = std::move(factory);
  e.vec_factory = std::move(vec_factory);
  e.spec = spec;
}

std::vector<std::string> env_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const Entry& e : r.entries) names.push_back(e.name);
  return names;
}

EnvFactory env_factory(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return find(r, name).factory;
}

std::unique_ptr<Env> make_env(const std::string& name) { return env_factory(name)(); }

EnvSpec env_spec(const std::string& name) {
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    const Entry& e = find(r, name);
    if (e.spec) return *e.spec;
  }
  return make_env(name)->spec();
}

std::unique_ptr<VecEnv> make_vec_env(const std::string& name, int num_envs, uint64_t seed) {
  VecEnvFactory vec;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    vec = find(r, name).vec_factory;
  }
  if (vec) return vec(num_envs, seed);
  return std::make_unique<SerialVecEnv>(name, num_envs, seed);
}

}  // namespace prefrl
