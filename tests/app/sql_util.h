// A test's look into a run's prefs.db: one integer from a query.
#pragma once
#include <cstdint>
#include <sqlite3.h>
#include <string>

namespace prefrl::testing {

// The first column of the first row of `sql` on the database at db_path (opened read-only);
// -1 if there is none.
inline int64_t sql_int(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  int64_t n = -1;
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

}  // namespace prefrl::testing
