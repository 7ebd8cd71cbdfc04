// What prefrl writes for other tools to read (export bundles, preference datasets): a
// manifest of the files in a directory (each one's size and CRC-32C, checked on reading), and
// an environment's spec as JSON (spaces, time limit, clip rate).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "prefrl/envs/env.h"

namespace prefrl {

// {"relative/path": {"bytes": N, "crc32c": C}} for every regular file under `dir`.
nlohmann::json file_manifest(const std::string& dir);
// Checks every file `files` (a manifest) lists under `dir`: present, its size, its CRC-32C.
// UsageError naming the file and what is wrong (missing, truncated, corrupt); `listed_by`
// (e.g. "the card") names the manifest in messages.
void check_manifest(const std::string& dir, const nlohmann::json& files, const std::string& listed_by);
// Reads and parses a JSON file: UsageError naming it if it is missing or not a JSON object
// (`what` says what it should be, e.g. "not a prefrl bundle").
nlohmann::json read_json_object(const std::string& path, const std::string& what);

// The environment's spec: name, reference, observation and action spaces (shape, dtype, bounds:
// one number where every element has the same bound), time limit, fps, pixels; frame_skip
// (> 0) where the env is an Atari game.
nlohmann::json env_spec_json(const EnvSpec& spec, int frame_skip = 0);
// The frame skip a run's env has: its atari.frame_skip for an Atari game, else 0.
int atari_frame_skip(const std::string& env_name, int configured);

}  // namespace prefrl
