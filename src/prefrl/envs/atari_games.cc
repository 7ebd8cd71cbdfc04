// The Atari games as registered environments: `pong` and `enduro`, each the game inside the
// standard preprocessing (atari_env.h) with the atari.* settings of the run.
#include <utility>

#include "prefrl/core/error.h"
#include "prefrl/envs/atari.h"
#include "prefrl/envs/atari_env.h"
#include "prefrl/envs/env.h"

namespace prefrl {

namespace {
struct AtariGameEntry {
  const char* name;
  std::unique_ptr<AtariGame> (*make)();
};
constexpr AtariGameEntry kGames[] = {{"pong", make_pong}, {"enduro", make_enduro}};
}  // namespace

std::vector<std::string> atari_env_names() {
  std::vector<std::string> names;
  for (const AtariGameEntry& g : kGames) names.push_back(g.name);
  return names;
}

EnvFactory atari_env_factory(const std::string& name, const AtariConfig& cfg) {
  for (const AtariGameEntry& g : kGames) {
    if (name == g.name) {
      auto make = g.make;
      return [make, cfg] { return make_atari(make(), cfg); };
    }
  }
  throw UsageError("'" + name + "' is not an Atari game; known: pong, enduro");
}

void configure_atari_envs(const AtariConfig& cfg) {
  for (const AtariGameEntry& g : kGames) {
    EnvFactory f = atari_env_factory(g.name, cfg);
    const EnvSpec spec = f()->spec();
    replace_env(g.name, std::move(f), nullptr, spec);
  }
}

}  // namespace prefrl
