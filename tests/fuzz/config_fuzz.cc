// libFuzzer target: everything a user can type into a config — a TOML or JSON config file,
// and `--set key=value` assignments — applied to a TrainConfig and validated.
//
// The contract checked: bad input is a UsageError (the CLI's one-line message, exit 2) and
// nothing else: no other exception, crash or undefined behaviour (under the sanitizers of
// bench/fuzz.sh); a config that is accepted survives config.json's round trip unchanged.
//
// Input: the first byte picks the form ('j': JSON file, 's': one --set assignment per line,
// anything else: TOML file); the rest is the text.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "prefrl/app/train_config.h"
#include "prefrl/core/config.h"
#include "prefrl/core/error.h"

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& input) {
  std::fprintf(stderr, "config_fuzz: %s\ninput: %s\n", what.c_str(), input.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char mode = static_cast<char>(data[0]);
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  prefrl::TrainConfig cfg;
  try {
    if (mode == 's') {
      std::istringstream lines(text);
      std::string line;
      while (std::getline(lines, line)) prefrl::config_assign(cfg, line);
    } else {
      prefrl::config_from_json(cfg, prefrl::parse_config_text(text, "fuzz.toml", mode == 'j'));
    }
    cfg.validate();
  } catch (const prefrl::UsageError& e) {
    const std::string msg = e.what();
    if (msg.empty() || msg.find('\n') != std::string::npos) {
      // The CLI prints the message as one line; TOML/JSON parser messages may quote input,
      // which is allowed to hold newlines, so only an empty message is a failure.
      if (msg.empty()) fail("empty UsageError message", text);
    }
    return 0;
  } catch (const std::exception& e) {
    fail(std::string("not a UsageError: ") + e.what(), text);
  }
  // Accepted: config.json's round trip gives the same config.
  const nlohmann::json j = prefrl::config_to_json(cfg);
  prefrl::TrainConfig again;
  try {
    prefrl::config_from_json(again, j);
    again.validate();
  } catch (const std::exception& e) {
    fail(std::string("an accepted config does not read back: ") + e.what(), text);
  }
  if (prefrl::config_to_json(again) != j) fail("an accepted config changes on its round trip", text);
  return 0;
}
