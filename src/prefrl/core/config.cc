#include "prefrl/core/config.h"

#include <algorithm>
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

namespace {
// Optimal-string-alignment distance (insertions, deletions, substitutions and adjacent
// transpositions cost 1), ignoring case.
size_t edit_distance(const std::string& a, const std::string& b) {
  auto lower = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); };
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1, 0));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::string group_of(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? std::string() : key.substr(0, dot);
}
std::string leaf_of(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}
}  // namespace

std::string unknown_key_message(const std::string& key, const std::vector<std::string>& known) {
  // How far each known key is from the one given: the whole key, or its last part alone (a
  // misspelt or misplaced name: 'ppo.lrr', 'lr', 'reward.num_steps'), or containing it.
  const std::string leaf = leaf_of(key);
  const size_t limit = std::max<size_t>(1, std::min<size_t>(3, leaf.size() / 3 + 1));
  std::vector<std::pair<size_t, std::string>> near;
  for (const std::string& k : known) {
    size_t d = std::min(edit_distance(key, k), edit_distance(leaf, leaf_of(k)) + (group_of(k) == group_of(key) ? 0 : 1));
    if (leaf.size() >= 4 && leaf_of(k).find(leaf) != std::string::npos) d = std::min<size_t>(d, 2);
    if (d <= limit) near.emplace_back(d, k);
  }
  std::stable_sort(near.begin(), near.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string msg = "unknown config key '" + key + "'";
  if (!near.empty()) {
    std::vector<std::string> names;
    for (size_t i = 0; i < near.size() && i < 3; ++i) names.push_back(near[i].second);
    msg += "; did you mean " + join(names, ", ") + "?";
  } else {
    std::vector<std::string> in_group, groups;
    for (const std::string& k : known) {
      if (!group_of(key).empty() && group_of(k) == group_of(key)) in_group.push_back(leaf_of(k));
      const std::string g = group_of(k).substr(0, group_of(k).find('.'));
      if (!g.empty() && std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
    }
    if (!in_group.empty()) msg += "; the keys of " + group_of(key) + " are: " + join(in_group, ", ");
    else msg += "; the config groups are: " + join(groups, ", ");
  }
  return msg + " (`prefrl config` lists every key with its value and meaning)";
}

std::vector<std::string> nearest_names(const std::string& word, const std::vector<std::string>& names,
                                       size_t max_count) {
  const size_t limit = std::max<size_t>(1, std::min<size_t>(3, word.size() / 3 + 1));
  std::vector<std::pair<size_t, std::string>> near;
  for (const std::string& n : names) {
    const size_t d = edit_distance(word, n);
    if (d <= limit) near.emplace_back(d, n);
  }
  std::stable_sort(near.begin(), near.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (size_t i = 0; i < near.size() && i < max_count; ++i) out.push_back(near[i].second);
  return out;
}

std::string format_number(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<long long>(x));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

std::string exact_float_literal(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // n: nan and inf spell themselves
  return s;
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
