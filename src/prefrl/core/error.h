// Errors as values with messages that name the bad value and what was expected.
#pragma once
#include <stdexcept>
#include <string>

namespace prefrl {

// A user's mistake (bad flag, bad config value, bad file): the CLI prints the message on
// one line and exits with code 2 before any work starts.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& msg) : std::runtime_error(msg) {}
};

// Something went wrong at run time that is not the user's fault (I/O, database, numerics).
class RuntimeError : public std::runtime_error {
 public:
  explicit RuntimeError(const std::string& msg) : std::runtime_error(msg) {}
};

}  // namespace prefrl
