// Config structs describe their fields once, in a visit() method; generic visitors below
// set fields from `key=value` strings, read and write JSON, list keys with their docs, and
// validate ranges. That way no setting can be parsed but ignored, and every field has a
// default, a one-line doc and bounds in exactly one place.
//
// A config struct looks like:
//   struct PPOConfig {
//     double lr = 3e-4;  // Adam learning rate
//     template <class V> void visit(V& v) {
//       v.num("lr", lr, "Adam learning rate", 0.0, 1.0);
//     }
//   };
// Visitors call: num(name, field, doc, lo, hi) for int/int64/float/double;
// flag(name, bool&, doc); text(name, std::string&, doc, {allowed...} or {} for any);
// ints(name, std::vector<int>&, doc, lo, hi); group(name, SubConfig&).
#pragma once
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "prefrl/core/error.h"

namespace prefrl {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string join(const std::vector<std::string>& v, const std::string& sep);
// The message for `key`, which is none of the `known` config keys: the nearest few ("did you
// mean"), else the keys of its group or the group names; never the whole list.
std::string unknown_key_message(const std::string& key, const std::vector<std::string>& known);
// The few of `names` nearest to `word` by edit distance (ignoring case; at most 3 edits, fewer
// for short words), nearest first: for "did you mean" in messages.
std::vector<std::string> nearest_names(const std::string& word, const std::vector<std::string>& names,
                                       size_t max_count = 3);
// Formats a number for messages: integers without a decimal point, others with %g.
std::string format_number(double x);
// x as source text that reads back as exactly x (17 significant digits, always with a '.' or an
// exponent, so that it is a float literal: TorchScript code generated from parameters).
std::string exact_float_literal(double x);
// Parses numbers strictly: the whole string must be consumed. Throws UsageError naming key.
double parse_number(const std::string& key, const std::string& text);
bool parse_bool(const std::string& key, const std::string& text);
std::vector<int> parse_int_list(const std::string& key, const std::string& text);

namespace config_detail {

template <class T>
void assign_number(const std::string& key, T& field, double value, double lo, double hi) {
  if (std::isnan(value)) throw UsageError("config key '" + key + "': NaN is not allowed");
  if (value < lo || value > hi) {
    throw UsageError("config key '" + key + "': value " + format_number(value) + " is out of range [" +
                     format_number(lo) + ", " + format_number(hi) + "]");
  }
  if constexpr (std::is_integral_v<T>) {
    if (value != std::floor(value)) {
      throw UsageError("config key '" + key + "': expected an integer, got " + format_number(value));
    }
    // Representable (a range of +-inf, or one wider than T, must not make the cast undefined).
    const double end = std::ldexp(1.0, std::numeric_limits<T>::digits);  // 2^31 for int, 2^63 for int64_t
    if (value < (std::is_signed_v<T> ? -end : 0.0) || value >= end) {
      throw UsageError("config key '" + key + "': value " + format_number(value) + " is out of range for an integer");
    }
  }
  field = static_cast<T>(value);
}

inline void check_choice(const std::string& key, const std::string& value,
                         const std::vector<std::string>& allowed) {
  if (allowed.empty()) return;
  for (const auto& a : allowed) if (a == value) return;
  throw UsageError("config key '" + key + "': '" + value + "' is not one of: " + join(allowed, ", "));
}

// Sets one dotted key from a string.
struct Setter {
  std::string target, value, prefix;
  bool found = false;
  std::string full(const std::string& n) const { return prefix.empty() ? n : prefix + "." + n; }
  template <class T>
  void num(const std::string& n, T& f, const char*, double lo = -kInf, double hi = kInf) {
    if (full(n) != target) return;
    found = true;
    assign_number(target, f, parse_number(target, value), lo, hi);
  }
  void flag(const std::string& n, bool& f, const char*) {
    if (full(n) != target) return;
    found = true; f = parse_bool(target, value);
  }
  void text(const std::string& n, std::string& f, const char*, const std::vector<std::string>& allowed = {}) {
    if (full(n) != target) return;
    found = true; check_choice(target, value, allowed); f = value;
  }
  void ints(const std::string& n, std::vector<int>& f, const char*, double lo = -kInf, double hi = kInf) {
    if (full(n) != target) return;
    found = true;
    auto v = parse_int_list(target, value);
    for (int x : v) { int tmp; assign_number(target, tmp, x, lo, hi); }
    f = v;
  }
  template <class C>
  void group(const std::string& n, C& c) {
    std::string saved = prefix; prefix = full(n); c.visit(*this); prefix = saved;
  }
};

// Writes every field to JSON (nested by group).
struct JsonWriter {
  nlohmann::json* out;
  template <class T>
  void num(const std::string& n, T& f, const char*, double = 0, double = 0) { (*out)[n] = f; }
  void flag(const std::string& n, bool& f, const char*) { (*out)[n] = f; }
  void text(const std::string& n, std::string& f, const char*, const std::vector<std::string>& = {}) { (*out)[n] = f; }
  void ints(const std::string& n, std::vector<int>& f, const char*, double = 0, double = 0) { (*out)[n] = f; }
  template <class C>
  void group(const std::string& n, C& c) {
    nlohmann::json sub = nlohmann::json::object();
    JsonWriter w{&sub}; c.visit(w); (*out)[n] = sub;
  }
};

// Reads fields from JSON; unknown keys and wrong types are errors naming the key.
struct JsonReader {
  const nlohmann::json* in;
  std::string prefix;
  std::vector<std::string> seen;
  std::string full(const std::string& n) const { return prefix.empty() ? n : prefix + "." + n; }
  const nlohmann::json* get(const std::string& n) {
    auto it = in->find(n);
    if (it == in->end()) return nullptr;
    seen.push_back(n);
    return &*it;
  }
  [[noreturn]] void type_error(const std::string& n, const char* expected, const nlohmann::json& j) {
    throw UsageError("config key '" + full(n) + "': expected " + expected + ", got " + j.dump());
  }
  template <class T>
  void num(const std::string& n, T& f, const char*, double lo = -kInf, double hi = kInf) {
    if (auto j = get(n)) {
      if (!j->is_number()) type_error(n, "a number", *j);
      assign_number(full(n), f, j->get<double>(), lo, hi);
    }
  }
  void flag(const std::string& n, bool& f, const char*) {
    if (auto j = get(n)) { if (!j->is_boolean()) type_error(n, "true or false", *j); f = j->get<bool>(); }
  }
  void text(const std::string& n, std::string& f, const char*, const std::vector<std::string>& allowed = {}) {
    if (auto j = get(n)) {
      if (!j->is_string()) type_error(n, "a string", *j);
      check_choice(full(n), j->get<std::string>(), allowed);
      f = j->get<std::string>();
    }
  }
  void ints(const std::string& n, std::vector<int>& f, const char*, double lo = -kInf, double hi = kInf) {
    if (auto j = get(n)) {
      if (!j->is_array()) type_error(n, "an array of integers", *j);
      std::vector<int> v;
      for (const auto& e : *j) {
        if (!e.is_number()) type_error(n, "an array of integers", *j);
        int x; assign_number(full(n), x, e.get<double>(), lo, hi); v.push_back(x);
      }
      f = v;
    }
  }
  template <class C>
  void group(const std::string& n, C& c) {
    if (auto j = get(n)) {
      if (!j->is_object()) type_error(n, "a table of keys", *j);
      JsonReader r{j, full(n), {}};
      c.visit(r);
      r.check_unknown(c);
    }
  }
  template <class C>
  void check_unknown(C& c);
};

// Lists every key with its doc and current value.
struct Lister {
  struct Entry { std::string key, doc, value, range; };
  std::vector<Entry>* out;
  std::string prefix;
  std::string full(const std::string& n) const { return prefix.empty() ? n : prefix + "." + n; }
  static std::string range(double lo, double hi) {
    if (lo == -kInf && hi == kInf) return "";
    return "[" + format_number(lo) + ", " + format_number(hi) + "]";
  }
  template <class T>
  void num(const std::string& n, T& f, const char* d, double lo = -kInf, double hi = kInf) {
    out->push_back({full(n), d, nlohmann::json(f).dump(), range(lo, hi)});
  }
  void flag(const std::string& n, bool& f, const char* d) { out->push_back({full(n), d, f ? "true" : "false", "true|false"}); }
  void text(const std::string& n, std::string& f, const char* d, const std::vector<std::string>& allowed = {}) {
    out->push_back({full(n), d, f, join(allowed, "|")});
  }
  void ints(const std::string& n, std::vector<int>& f, const char* d, double lo = -kInf, double hi = kInf) {
    out->push_back({full(n), d, nlohmann::json(f).dump(), range(lo, hi)});
  }
  template <class C>
  void group(const std::string& n, C& c) {
    std::string saved = prefix; prefix = full(n); c.visit(*this); prefix = saved;
  }
};

template <class C>
void JsonReader::check_unknown(C& c) {
  for (auto it = in->begin(); it != in->end(); ++it) {
    bool ok = false;
    for (const auto& s : seen) ok = ok || s == it.key();
    if (!ok) {
      std::vector<Lister::Entry> entries;
      Lister l{&entries, ""};
      c.visit(l);
      std::vector<std::string> names;
      for (auto& e : entries) names.push_back(prefix.empty() ? e.key : prefix + "." + e.key);
      throw UsageError(unknown_key_message(full(it.key()), names));
    }
  }
}

}  // namespace config_detail

// Sets `key` (dotted, e.g. "ppo.lr") to `value`. Throws UsageError for unknown keys or bad values.
template <class C>
void config_set(C& cfg, const std::string& key, const std::string& value) {
  config_detail::Setter s{key, value, "", false};
  cfg.visit(s);
  if (!s.found) {
    std::vector<config_detail::Lister::Entry> entries;
    config_detail::Lister l{&entries, ""};
    cfg.visit(l);
    std::vector<std::string> names;
    for (auto& e : entries) names.push_back(e.key);
    throw UsageError(unknown_key_message(key, names));
  }
}

// Applies a `key=value` assignment string.
template <class C>
void config_assign(C& cfg, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw UsageError("--set expects key=value, got '" + assignment + "'");
  }
  config_set(cfg, assignment.substr(0, eq), assignment.substr(eq + 1));
}

template <class C>
nlohmann::json config_to_json(C& cfg) {
  nlohmann::json j = nlohmann::json::object();
  config_detail::JsonWriter w{&j};
  cfg.visit(w);
  return j;
}

// Applies every key present in `j`; keys absent keep their values. Unknown keys are errors.
template <class C>
void config_from_json(C& cfg, const nlohmann::json& j) {
  if (!j.is_object()) throw UsageError("config must be a table of keys, got " + j.dump());
  config_detail::JsonReader r{&j, "", {}};
  cfg.visit(r);
  r.check_unknown(cfg);
}

template <class C>
std::vector<config_detail::Lister::Entry> config_list(C& cfg) {
  std::vector<config_detail::Lister::Entry> entries;
  config_detail::Lister l{&entries, ""};
  cfg.visit(l);
  return entries;
}

// Reads a TOML or JSON file (by extension: .json is JSON, anything else TOML) into JSON.
nlohmann::json read_config_file(const std::string& path);
// The same for text already read: TOML, or JSON when `json`; `name` appears in messages.
// Throws UsageError (never anything else) for text that is not a table of values.
nlohmann::json parse_config_text(const std::string& text, const std::string& name, bool json);

}  // namespace prefrl
