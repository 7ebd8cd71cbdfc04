#include "prefrl/app/artifacts.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "prefrl/app/checkpoint.h"
#include "prefrl/core/error.h"
#include "prefrl/envs/atari_env.h"
#include "prefrl/tracking/tensorboard.h"

namespace prefrl {

namespace fs = std::filesystem;

namespace {
// A file's size and CRC-32C, read in chunks (a dataset's frames may be gigabytes).
std::pair<uint64_t, uint32_t> size_and_crc(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot be read");
  std::vector<char> buf(1 << 22);
  uint64_t n = 0;
  uint32_t crc = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    crc = crc32c_extend(crc, buf.data(), static_cast<size_t>(got));
    n += static_cast<uint64_t>(got);
  }
  return {n, crc};
}
}  // namespace

nlohmann::json file_manifest(const std::string& dir) {
  nlohmann::json files = nlohmann::json::object();
  std::vector<fs::path> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  for (const fs::path& p : paths) {
    const auto [bytes, crc] = size_and_crc(p.string());
    files[fs::relative(p, dir).generic_string()] = {{"bytes", bytes}, {"crc32c", crc}};
  }
  return files;
}

void check_manifest(const std::string& dir, const nlohmann::json& files, const std::string& listed_by) {
  for (const auto& [name, want] : files.items()) {
    const std::string path = dir + "/" + name;
    if (!fs::exists(path)) throw UsageError(path + ": missing (" + listed_by + " lists it)");
    const uint64_t size = want.is_object() ? want.value("bytes", uint64_t{0}) : 0;
    const uint64_t have = fs::file_size(path);
    if (have != size)
      throw UsageError(path + ": " + std::to_string(have) + " bytes, " + listed_by + " says " +
                       std::to_string(size) + (have < size ? " (truncated)" : ""));
    if (size_and_crc(path).second != want.value("crc32c", uint32_t{0}))
      throw UsageError(path + ": CRC-32C does not match " + listed_by + "'s (corrupt)");
  }
}

nlohmann::json read_json_object(const std::string& path, const std::string& what) {
  if (!fs::exists(path)) throw UsageError(path + ": missing (" + what + ")");
  std::string text;
  try {
    text = read_file_bytes(path);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw UsageError(path + ": not valid JSON (truncated or corrupt?)");
  return j;
}

namespace {
// A bound as one number where every element has it, else the list.
nlohmann::json bound_json(const std::vector<float>& b) {
  if (!b.empty() && std::all_of(b.begin(), b.end(), [&](float x) { return x == b[0]; })) return b[0];
  return b;
}
}  // namespace

nlohmann::json env_spec_json(const EnvSpec& spec, int frame_skip) {
  nlohmann::json env = {
      {"name", spec.name},
      {"reference", spec.reference},
      {"observation",
       {{"shape", spec.observation.shape}, {"dtype", dtype_name(spec.observation.dtype)},
        {"low", bound_json(spec.observation.low)}, {"high", bound_json(spec.observation.high)}}},
      {"action",
       {{"discrete", spec.action.discrete}, {"shape", spec.action.shape}, {"n", spec.action.n},
        {"low", bound_json(spec.action.low)}, {"high", bound_json(spec.action.high)}}},
      {"max_episode_steps", spec.max_episode_steps},
      {"fps", spec.fps},
      {"pixels", spec.pixels}};
  if (frame_skip > 0) env["frame_skip"] = frame_skip;
  return env;
}

int atari_frame_skip(const std::string& env_name, int configured) {
  const std::vector<std::string> games = atari_env_names();
  return std::find(games.begin(), games.end(), env_name) != games.end() ? configured : 0;
}

}  // namespace prefrl
