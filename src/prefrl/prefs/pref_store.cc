// PrefStore's backend-independent parts: the scoped Batch and opening a store by URL.
#include "prefrl/prefs/pref_store.h"

#include "prefrl/core/error.h"
#include "prefrl/prefs/sqlite_pref_store.h"

namespace prefrl {

PrefStore::Batch::Batch(PrefStore& store) : store_(store), nested_(store.begin_batch()) {}

PrefStore::Batch::~Batch() {
  if (open_) store_.rollback_batch(nested_);
}

void PrefStore::Batch::commit() {
  if (!open_) return;
  store_.commit_batch(nested_);
  open_ = false;
}

namespace {
// The scheme of `url` ("sqlite" for "sqlite:/a/b.db"), or "" when it has none: a scheme is a
// letter followed by letters, digits, '+', '-' or '.', ending at the first ':'. A path whose
// text before its first ':' has a '/' (or any other character) has no scheme.
std::string scheme_of(const std::string& url) {
  const size_t colon = url.find(':');
  if (colon == std::string::npos || colon == 0) return "";
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!alpha(url[0])) return "";
  for (size_t i = 1; i < colon; ++i) {
    const char c = url[i];
    if (!alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.') return "";
  }
  return url.substr(0, colon);
}
}  // namespace

std::unique_ptr<PrefStore> open_pref_store(const std::string& url) {
  const std::string scheme = scheme_of(url);
  if (scheme.empty()) return std::make_unique<SqlitePrefStore>(url);  // a plain path
  if (scheme == "sqlite") {
    std::string path = url.substr(scheme.size() + 1);
    if (path.rfind("//", 0) == 0)
      throw UsageError("preference store URL '" + url + "': write sqlite:PATH (e.g. sqlite:runs/x/prefs.db or "
                       "sqlite:/abs/prefs.db), not sqlite://");
    if (path.empty()) throw UsageError("preference store URL '" + url + "' names no file (expected sqlite:PATH)");
    return std::make_unique<SqlitePrefStore>(path);
  }
  throw UsageError("preference store URL '" + url + "': unknown scheme '" + scheme + ":' (expected " +
                   kPrefStoreSchemes + ", or a plain file path for SQLite)");
}

}  // namespace prefrl
