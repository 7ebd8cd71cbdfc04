#include "prefrl/core/config.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace prefrl {

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) { if (i) out += sep; out += v[i]; }
  return out;
}

std::string format_number(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<long long>(x));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

double parse_number(const std::string& key, const std::string& text) {
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (text.empty() || end != s + text.size() || errno == ERANGE) {
    throw UsageError("config key '" + key + "': expected a number, got '" + text + "'");
  }
  return v;
}

bool parse_bool(const std::string& key, const std::string& text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  throw UsageError("config key '" + key + "': expected true or false, got '" + text + "'");
}

std::vector<int> parse_int_list(const std::string& key, const std::string& text) {
  // Accepts "64,64", "[64, 64]" or "" (empty list).
  std::string t;
  for (char c : text) if (c != '[' && c != ']' && c != ' ') t += c;
  std::vector<int> out;
  if (t.empty()) return out;
  std::stringstream ss(t);
  std::string item;
  while (std::getline(ss, item, ',')) {
    double v = parse_number(key, item);
    if (!(std::fabs(v) < 2147483648.0) || v != std::floor(v)) throw UsageError("config key '" + key + "': expected integers, got '" + text + "'");
    out.push_back(static_cast<int>(v));
  }
  return out;
}

namespace {
nlohmann::json toml_to_json(const toml::node& node, const std::string& path) {
  if (auto t = node.as_table()) {
    nlohmann::json j = nlohmann::json::object();
    for (auto&& [k, v] : *t) j[std::string(k.str())] = toml_to_json(v, path);
    return j;
  }
  if (auto a = node.as_array()) {
    nlohmann::json j = nlohmann::json::array();
    for (auto&& v : *a) j.push_back(toml_to_json(v, path));
    return j;
  }
  if (auto v = node.as_integer()) return static_cast<double>(v->get());
  if (auto v = node.as_floating_point()) return v->get();
  if (auto v = node.as_boolean()) return v->get();
  if (auto v = node.as_string()) return v->get();
  throw UsageError("config file '" + path + "': unsupported TOML value type (dates are not config values)");
}
}  // namespace

nlohmann::json read_config_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw UsageError("cannot read config file '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config_text(ss.str(), path, path.size() >= 5 && path.substr(path.size() - 5) == ".json");
}

nlohmann::json parse_config_text(const std::string& text, const std::string& path, bool json) {
  if (json) {
    try {
      return nlohmann::json::parse(text);
    } catch (const std::exception& e) {
      throw UsageError("config file '" + path + "' is not valid JSON: " + e.what());
    }
  }
  try {
    toml::table tbl = toml::parse(text, path);
    return toml_to_json(tbl, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "config file '" << path << "' is not valid TOML: " << e.description() << " at line "
        << e.source().begin.line;
    throw UsageError(msg.str());
  }
}

}  // namespace prefrl
