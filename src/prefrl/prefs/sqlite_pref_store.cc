// The preference store on SQLite's C API (SqlitePrefStore). File format: docs/database.md.
//
// Opening is careful never to modify a file that is not a prefrl database: a non-empty file
// is first identified through a read-only connection (magic header bytes, application_id,
// user_version, schema objects), and only then opened for writing. Every write runs in a
// BEGIN IMMEDIATE transaction (so a writer never fails mid-way on a lock upgrade), in WAL
// mode with synchronous=FULL (a commit is on disk before the call returns) — or, while a
// PrefStore::Batch is open, in a savepoint of the batch's transaction (on disk at its commit).
#include "prefrl/prefs/sqlite_pref_store.h"

#include <sqlite3.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "prefrl/core/error.h"
#include "prefrl_version.h"

namespace prefrl {
namespace {

constexpr int kBusyTimeoutMs = 5000;  // how long a writer waits for another connection's lock

// The schema of version 2, one statement per entry (documented in docs/database.md): version
// 1's with the segments' state_size and states columns last, as kUpgradeV1 adds them.
constexpr const char* kSchemaV2[] = {
    "CREATE TABLE meta ("
    "  key   TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL)",
    "CREATE TABLE segments ("
    "  id           INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  env_step     INTEGER NOT NULL,"
    "  env_index    INTEGER NOT NULL,"
    "  length       INTEGER NOT NULL CHECK (length >= 1),"
    "  obs_size     INTEGER NOT NULL CHECK (obs_size >= 0),"
    "  act_size     INTEGER NOT NULL CHECK (act_size >= 0),"
    "  obs          BLOB NOT NULL,"
    "  actions      BLOB NOT NULL,"
    "  true_rewards BLOB NOT NULL,"
    "  absorbing    BLOB NOT NULL,"
    "  true_return  REAL,"
    "  created_at   REAL NOT NULL,"
    "  state_size   INTEGER NOT NULL DEFAULT 0 CHECK (state_size >= 0),"
    "  states       BLOB NOT NULL DEFAULT x'')",
    "CREATE TABLE queries ("
    "  id             INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  left_id        INTEGER NOT NULL REFERENCES segments(id),"
    "  right_id       INTEGER NOT NULL REFERENCES segments(id),"
    "  env_step       INTEGER NOT NULL,"
    "  source         TEXT NOT NULL,"
    "  score          REAL NOT NULL,"
    "  status         TEXT NOT NULL CHECK (status IN ('pending', 'labeled')),"
    "  answers_wanted INTEGER NOT NULL CHECK (answers_wanted >= 1),"
    "  created_at     REAL NOT NULL,"
    "  CHECK (left_id <> right_id))",
    "CREATE INDEX queries_by_status ON queries(status, id)",
    "CREATE TABLE labels ("
    "  id         INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  query_id   INTEGER NOT NULL REFERENCES queries(id),"
    "  choice     TEXT NOT NULL CHECK (choice IN ('left', 'right', 'equal', 'skip')),"
    "  teacher    TEXT NOT NULL,"
    "  labeler    TEXT NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  undone     INTEGER NOT NULL DEFAULT 0 CHECK (undone IN (0, 1)),"
    "  used       INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)))",
    "CREATE INDEX labels_by_query ON labels(query_id, undone)",
    "CREATE INDEX labels_by_labeler ON labels(labeler, id)",
};

// Version 1 => 2: segments gain render states (none for the segments already stored).
constexpr const char* kUpgradeV1[] = {
    "ALTER TABLE segments ADD COLUMN state_size INTEGER NOT NULL DEFAULT 0 CHECK (state_size >= 0)",
    "ALTER TABLE segments ADD COLUMN states BLOB NOT NULL DEFAULT x''",
    "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
};

// Unix time in seconds.
double now_unix() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// Throws RuntimeError describing the connection's last SQLite error.
[[noreturn]] void fail(sqlite3* db, const std::string& path, const std::string& what) {
  // An I/O error says what the system said (e.g. "No space left on device", "File too large").
  const int code = sqlite3_extended_errcode(db);
  const int sys = sqlite3_system_errno(db);
  const bool io = (code & 0xff) == SQLITE_IOERR || (code & 0xff) == SQLITE_FULL;
  throw RuntimeError("preference database '" + path + "': " + what + ": " + sqlite3_errmsg(db) +
                     (io && sys != 0 ? std::string(": ") + std::strerror(sys) : std::string()) + " (SQLite code " +
                     std::to_string(code) + ")");
}

// A prepared statement (RAII). Binds are 1-based; columns 0-based, as in SQLite.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path), sql_(sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) fail(db_, path_, std::string("preparing \"") + sql + "\"");
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) { check(sqlite3_bind_int64(st_, i, v)); return *this; }
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v) { check(sqlite3_bind_double(st_, i, v)); return *this; }
  Stmt& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  // Binds bytes as a BLOB (an empty one stays a zero-length BLOB, not NULL).
  Stmt& bind_blob(int i, const std::vector<unsigned char>& v) {
    static const unsigned char kEmpty = 0;
    check(sqlite3_bind_blob(st_, i, v.empty() ? &kEmpty : v.data(), static_cast<int>(v.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  // Steps once: true if a row is available, false when done; throws on error.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, path_, std::string("running \"") + sql_ + "\"");
  }
  // Steps to completion (for statements without results).
  void run() { while (step()) {} }
  // Clears bindings and rewinds, to run again.
  void reset() { sqlite3_reset(st_); sqlite3_clear_bindings(st_); }

  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  double dbl(int c) const { return sqlite3_column_double(st_, c); }
  int type(int c) const { return sqlite3_column_type(st_, c); }
  std::string text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
    return p ? std::string(p, sqlite3_column_bytes(st_, c)) : std::string();
  }
  // A BLOB column's bytes; empty for a zero-length BLOB. Check type() first.
  std::string_view blob(int c) const {
    const void* p = sqlite3_column_blob(st_, c);
    const int n = sqlite3_column_bytes(st_, c);
    return p ? std::string_view(static_cast<const char*>(p), n) : std::string_view();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, path_, std::string("binding a value of \"") + sql_ + "\"");
  }
  sqlite3* db_;
  const std::string& path_;
  const char* sql_;
  sqlite3_stmt* st_ = nullptr;
};

// Opens a write transaction (BEGIN IMMEDIATE: takes the write lock up front, waiting up to
// the busy timeout) or, inside one already open (a SqlitePrefStore::Batch), a savepoint => nested.
bool begin_write(sqlite3* db, const std::string& path) {
  const bool nested = sqlite3_get_autocommit(db) == 0;
  Stmt(db, path, nested ? "SAVEPOINT prefrl_write" : "BEGIN IMMEDIATE").run();
  return nested;
}
// Commits (durable on return: WAL fsync'd, synchronous=FULL), or releases the savepoint into
// the enclosing transaction.
void commit_write(sqlite3* db, const std::string& path, bool nested) {
  Stmt(db, path, nested ? "RELEASE prefrl_write" : "COMMIT").run();
}
// Undoes everything since begin_write; never throws.
void rollback_write(sqlite3* db, bool nested) noexcept {
  static const char* const kNested[] = {"ROLLBACK TO prefrl_write", "RELEASE prefrl_write"};
  static const char* const kOuter[] = {"ROLLBACK"};
  const char* const* sqls = nested ? kNested : kOuter;
  for (int i = 0; i < (nested ? 2 : 1); ++i) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sqls[i], -1, &st, nullptr) == SQLITE_OK) sqlite3_step(st);
    sqlite3_finalize(st);
  }
}

// A write transaction of one SqlitePrefStore call (a savepoint when a Batch is open). Rolled back
// unless commit() is reached.
class Txn {
 public:
  Txn(sqlite3* db, const std::string& path) : db_(db), path_(path), nested_(begin_write(db, path)) {}
  ~Txn() {
    if (open_) rollback_write(db_, nested_);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  // Commits; on return the transaction is durable (WAL fsync'd, synchronous=FULL), or, inside
  // a Batch, part of the batch.
  void commit() {
    commit_write(db_, path_, nested_);
    open_ = false;
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool nested_;
  bool open_ = true;
};

// --- blobs: little-endian float32 / uint8 ------------------------------------------------

// Floats as little-endian IEEE-754 float32 bytes.
std::vector<unsigned char> encode_f32(const std::vector<float>& v) {
  std::vector<unsigned char> out(v.size() * 4);
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = 0; i < out.size(); i += 4) {
      std::swap(out[i], out[i + 3]);
      std::swap(out[i + 1], out[i + 2]);
    }
  }
  return out;
}

// Inverse of encode_f32; `bytes` has already been checked to hold n floats.
std::vector<float> decode_f32(std::string_view bytes, size_t n) {
  std::vector<float> v(n);
  if (n == 0) return v;
  if constexpr (std::endian::native == std::endian::big) {
    std::vector<unsigned char> tmp(bytes.begin(), bytes.end());
    for (size_t i = 0; i < tmp.size(); i += 4) {
      std::swap(tmp[i], tmp[i + 3]);
      std::swap(tmp[i + 1], tmp[i + 2]);
    }
    std::memcpy(v.data(), tmp.data(), n * 4);
  } else {
    std::memcpy(v.data(), bytes.data(), n * 4);
  }
  return v;
}

// Column layout of a segment in SELECTs: kSegmentCols, starting at some first column.
#define PREFRL_SEGMENT_COLS(t) \
  t ".id, " t ".env_step, " t ".env_index, " t ".length, " t ".obs_size, " t ".act_size, " \
  t ".obs, " t ".actions, " t ".true_rewards, " t ".absorbing, " t ".state_size, " t ".states"
constexpr int kSegmentCols = 12;

// Reads the segment at columns [c, c + kSegmentCols) of the current row, validating every
// size. Throws RuntimeError naming the segment id for a corrupt row.
Segment read_segment(const Stmt& st, int c) {
  Segment s;
  s.id = st.i64(c);
  s.env_step = st.i64(c + 1);
  s.env_index = static_cast<int>(st.i64(c + 2));
  const int64_t L = st.i64(c + 3), D = st.i64(c + 4), A = st.i64(c + 5), S = st.i64(c + 10);
  const std::string sid = "segment " + std::to_string(s.id);
  if (L < 1 || L > (1 << 24) || D < 0 || D > (int64_t{1} << 32) || A < 0 || A > (int64_t{1} << 32) || S < 0 ||
      S > (int64_t{1} << 32))
    throw RuntimeError("preference database: " + sid + " is corrupt: length " + std::to_string(L) +
                       ", obs_size " + std::to_string(D) + ", act_size " + std::to_string(A) + ", state_size " +
                       std::to_string(S));
  s.length = static_cast<int>(L);
  s.obs_size = D;
  s.act_size = A;
  s.state_size = S;
  auto column = [&](int k, const char* name, int64_t count, int64_t elem) -> std::string_view {
    if (st.type(c + k) != SQLITE_BLOB)
      throw RuntimeError("preference database: " + sid + " is corrupt: column '" + name +
                         "' is not a BLOB");
    std::string_view b = st.blob(c + k);
    if (static_cast<int64_t>(b.size()) != count * elem)
      throw RuntimeError("preference database: " + sid + " is corrupt: column '" + name + "' has " +
                         std::to_string(b.size()) + " bytes, expected " + std::to_string(count * elem) +
                         " (length " + std::to_string(L) + ", obs_size " + std::to_string(D) +
                         ", act_size " + std::to_string(A) + ", state_size " + std::to_string(S) + ")");
    return b;
  };
  // Observations of a uint8 space are kept as bytes (L x D bytes), others as floats (L x D x 4):
  // the blob's size says which.
  if (st.type(c + 6) == SQLITE_BLOB && static_cast<int64_t>(st.blob(c + 6).size()) == L * D && D > 0) {
    std::string_view ob = st.blob(c + 6);
    s.obs_bytes.assign(ob.begin(), ob.end());
  } else {
    s.obs = decode_f32(column(6, "obs", L * D, 4), L * D);
  }
  s.actions = decode_f32(column(7, "actions", L * A, 4), L * A);
  s.true_rewards = decode_f32(column(8, "true_rewards", L, 4), L);
  s.states = decode_f32(column(11, "states", L * S, 4), L * S);
  std::string_view ab = column(9, "absorbing", L, 1);
  s.absorbing.assign(ab.begin(), ab.end());
  for (int64_t i = 0; i < L; ++i)
    if (s.absorbing[i] > 1)
      throw RuntimeError("preference database: " + sid + " is corrupt: absorbing flag " +
                         std::to_string(s.absorbing[i]) + " at step " + std::to_string(i) +
                         " (expected 0 or 1)");
  return s;
}

#define PREFRL_QUERY_COLS "id, left_id, right_id, env_step, source, score, status, answers_wanted"

// Reads a query from columns PREFRL_QUERY_COLS of the current row.
Query read_query(const Stmt& st) {
  Query q;
  q.id = st.i64(0);
  q.left_id = st.i64(1);
  q.right_id = st.i64(2);
  q.env_step = st.i64(3);
  q.source = st.text(4);
  q.score = st.dbl(5);
  q.status = st.text(6);
  q.answers_wanted = static_cast<int>(st.i64(7));
  return q;
}

// Parses a stored choice; throws RuntimeError naming the label for an unknown one.
Choice read_choice(const Stmt& st, int c, int64_t label_id) {
  Choice ch;
  const std::string name = st.text(c);
  if (!parse_choice(name.c_str(), &ch))
    throw RuntimeError("preference database: label " + std::to_string(label_id) +
                       " is corrupt: choice '" + name + "'");
  return ch;
}

#define PREFRL_LABEL_COLS "id, query_id, choice, teacher, labeler, created_at, undone, used"

// Reads a label from columns PREFRL_LABEL_COLS of the current row.
Label read_label(const Stmt& st) {
  Label l;
  l.id = st.i64(0);
  l.query_id = st.i64(1);
  l.choice = read_choice(st, 2, l.id);
  l.teacher = st.text(3);
  l.labeler = st.text(4);
  l.created_at = st.dbl(5);
  l.undone = st.i64(6) != 0;
  l.used = st.i64(7) != 0;
  return l;
}

// --- identification ------------------------------------------------------------------------

// What a file says about itself.
struct Identity {
  int64_t application_id = 0;
  int64_t user_version = 0;
  std::vector<std::string> objects;  // names of tables/indexes/views/triggers in the schema
};

// Reads the identity through `db`; throws UsageError if SQLite does not accept the file.
Identity read_identity(sqlite3* db, const std::string& path) {
  Identity id;
  try {
    Stmt a(db, path, "PRAGMA application_id");
    if (a.step()) id.application_id = a.i64(0);
    Stmt v(db, path, "PRAGMA user_version");
    if (v.step()) id.user_version = v.i64(0);
    Stmt o(db, path, "SELECT name FROM sqlite_master ORDER BY name");
    while (o.step()) id.objects.push_back(o.text(0));
  } catch (const RuntimeError& e) {
    const int code = sqlite3_errcode(db);
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
      throw UsageError("'" + path + "' is not a prefrl preference database: SQLite cannot read it (" +
                       sqlite3_errmsg(db) + ")");
    throw;
  }
  return id;
}

// What opening a file takes.
enum class Opening { kCreate, kUpgradeV1, kOpen };

// kCreate if the file is empty (needs the schema), kUpgradeV1 for a prefrl database of schema
// version 1, kOpen for one of this version; throws UsageError naming the path and the reason
// otherwise.
Opening needs_schema(const Identity& id, const std::string& path) {
  const std::string refuse = "refusing to open '" + path + "' as a prefrl preference database: ";
  if (id.application_id == kPrefDBApplicationId) {
    if (id.user_version == kPrefDBSchemaVersion) return Opening::kOpen;
    if (id.user_version == 1) return Opening::kUpgradeV1;
    throw UsageError(refuse + "unknown schema version " + std::to_string(id.user_version) +
                     " (this build reads versions 1 and " + std::to_string(kPrefDBSchemaVersion) +
                     (id.user_version > kPrefDBSchemaVersion ? "; the file was written by a newer prefrl)" : ")"));
  }
  if (id.application_id != 0)
    throw UsageError(refuse + "it is an SQLite database of another application (application_id " +
                     std::to_string(id.application_id) + ", expected " +
                     std::to_string(kPrefDBApplicationId) + ")");
  if (id.user_version != 0 || !id.objects.empty()) {
    std::string names;
    for (size_t i = 0; i < id.objects.size() && i < 5; ++i) names += (i ? ", " : "") + id.objects[i];
    throw UsageError(refuse + "it is an SQLite database without prefrl's application_id (user_version " +
                     std::to_string(id.user_version) + ", " + std::to_string(id.objects.size()) +
                     " schema objects" + (names.empty() ? "" : ": " + names) + ")");
  }
  return Opening::kCreate;
}

// Checks a non-empty existing file without SQLite writing anything: the 16-byte SQLite magic,
// then application_id / user_version / schema through a read-only connection.
void identify_existing(const std::string& path) {
  static const char kMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f', 'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};
  char head[16] = {};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read '" + path + "': " + std::strerror(errno));
  in.read(head, sizeof head);
  if (in.gcount() != 16 || std::memcmp(head, kMagic, 16) != 0)
    throw UsageError("refusing to open '" + path +
                     "' as a prefrl preference database: it is not an SQLite file (no SQLite header)");
  sqlite3* ro = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &ro, SQLITE_OPEN_READONLY, nullptr);
  struct Closer { sqlite3* d; ~Closer() { sqlite3_close_v2(d); } } closer{ro};
  if (rc != SQLITE_OK)
    throw UsageError("cannot open '" + path + "': " + (ro ? sqlite3_errmsg(ro) : sqlite3_errstr(rc)));
  sqlite3_busy_timeout(ro, kBusyTimeoutMs);
  needs_schema(read_identity(ro, path), path);
}

// Runs a PRAGMA that returns one value; returns it as text.
std::string pragma(sqlite3* db, const std::string& path, const char* sql) {
  Stmt st(db, path, sql);
  std::string v = st.step() ? st.text(0) : std::string();
  st.run();
  return v;
}

// Throws UsageError unless the segment's arrays match its shape.
void check_segment(const Segment& s) {
  auto bad = [&](const std::string& what) {
    throw UsageError("cannot store segment (env_step " + std::to_string(s.env_step) + ", env " +
                     std::to_string(s.env_index) + "): " + what);
  };
  if (s.length < 1) bad("length " + std::to_string(s.length) + " must be >= 1");
  if (s.obs_size < 0 || s.act_size < 0 || s.state_size < 0)
    bad("obs_size " + std::to_string(s.obs_size) + ", act_size " + std::to_string(s.act_size) +
        " and state_size " + std::to_string(s.state_size) + " must be >= 0");
  const int64_t L = s.length;
  auto size = [&](const char* name, size_t got, int64_t want) {
    if (static_cast<int64_t>(got) != want)
      bad(std::string("'") + name + "' has " + std::to_string(got) + " values, expected " +
          std::to_string(want) + " (length " + std::to_string(L) + ", obs_size " +
          std::to_string(s.obs_size) + ", act_size " + std::to_string(s.act_size) + ", state_size " +
          std::to_string(s.state_size) + ")");
  };
  size("obs", s.obs_count(), L * s.obs_size);
  if (s.obs_in_bytes() && !s.obs.empty()) bad("has observations both as floats and as bytes");
  size("actions", s.actions.size(), L * s.act_size);
  size("true_rewards", s.true_rewards.size(), L);
  size("absorbing", s.absorbing.size(), L);
  size("states", s.states.size(), L * s.state_size);
  for (int64_t i = 0; i < L; ++i)
    if (s.absorbing[i] > 1)
      bad("absorbing flag " + std::to_string(s.absorbing[i]) + " at step " + std::to_string(i) +
          " must be 0 or 1");
}

// Inserts one segment inside an open transaction; sets and returns seg.id.
int64_t insert_segment(sqlite3* db, const std::string& path, Segment& seg) {
  check_segment(seg);
  Stmt st(db, path,
          "INSERT INTO segments (env_step, env_index, length, obs_size, act_size, obs, actions, "
          "true_rewards, absorbing, true_return, created_at, state_size, states) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  const std::vector<unsigned char> absorbing(seg.absorbing.begin(), seg.absorbing.end());
  const double ret = seg.true_return();
  st.bind(1, seg.env_step).bind(2, seg.env_index).bind(3, seg.length).bind(4, seg.obs_size)
      .bind(5, seg.act_size).bind_blob(6, seg.obs_in_bytes() ? std::vector<unsigned char>(seg.obs_bytes.begin(), seg.obs_bytes.end())
                                           : encode_f32(seg.obs)).bind_blob(7, encode_f32(seg.actions))
      .bind_blob(8, encode_f32(seg.true_rewards)).bind_blob(9, absorbing)
      .bind(10, ret).bind(11, now_unix())  // a NaN return is stored as NULL
      .bind(12, seg.state_size).bind_blob(13, encode_f32(seg.states));
  st.run();
  seg.id = sqlite3_last_insert_rowid(db);
  return seg.id;
}

// Inserts one pending query inside an open transaction; sets and returns q.id.
int64_t insert_query(sqlite3* db, const std::string& path, Query& q) {
  if (q.left_id == q.right_id)
    throw UsageError("cannot store query: left and right are the same segment " + std::to_string(q.left_id));
  if (q.answers_wanted < 1)
    throw UsageError("cannot store query: answers_wanted " + std::to_string(q.answers_wanted) + " must be >= 1");
  if (std::isnan(q.score)) throw UsageError("cannot store query: score is NaN");
  Stmt exists(db, path, "SELECT 1 FROM segments WHERE id = ?");
  for (int64_t sid : {q.left_id, q.right_id}) {
    exists.reset();
    exists.bind(1, sid);
    if (!exists.step()) throw UsageError("cannot store query: unknown segment id " + std::to_string(sid));
  }
  Stmt st(db, path,
          "INSERT INTO queries (left_id, right_id, env_step, source, score, status, answers_wanted, "
          "created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)");
  st.bind(1, q.left_id).bind(2, q.right_id).bind(3, q.env_step).bind(4, q.source).bind(5, q.score)
      .bind(6, q.answers_wanted).bind(7, now_unix());
  st.run();
  q.id = sqlite3_last_insert_rowid(db);
  q.status = "pending";
  return q.id;
}

}  // namespace

SqlitePrefStore::SqlitePrefStore(const std::string& path) : path_(path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(path_, ec);
  if (fs::is_directory(st)) throw UsageError("cannot open preference database '" + path_ + "': it is a directory");
  if (fs::exists(st) && fs::file_size(path_, ec) > 0 && !ec) identify_existing(path_);

  const int rc = sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw UsageError("cannot open preference database '" + path_ + "': " + msg);
  }
  try {
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    sqlite3_extended_result_codes(db_, 1);
    // Until the file is accepted, closing must not checkpoint a WAL into it, and nothing may
    // be written: identify first (a file can appear between the check above and the open).
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    needs_schema(read_identity(db_, path_), path_);
    const std::string mode = pragma(db_, path_, "PRAGMA journal_mode = WAL");
    if (mode != "wal")
      throw RuntimeError("preference database '" + path_ + "': cannot use WAL mode (journal_mode is '" +
                         mode + "'); is it on a network file system?");
    pragma(db_, path_, "PRAGMA synchronous = FULL");
    pragma(db_, path_, "PRAGMA foreign_keys = ON");

    // Re-identify under the write lock: two processes may create (or upgrade) the file at once.
    Txn txn(db_, path_);
    const Opening opening = needs_schema(read_identity(db_, path_), path_);
    if (opening == Opening::kUpgradeV1) {
      for (const char* sql : kUpgradeV1) Stmt(db_, path_, sql).run();
      Stmt(db_, path_, "INSERT OR REPLACE INTO meta (key, value) VALUES ('upgraded_from_1_at', ?)")
          .bind(1, std::to_string(now_unix())).run();
      Stmt(db_, path_, ("PRAGMA user_version = " + std::to_string(kPrefDBSchemaVersion)).c_str()).run();
    } else if (opening == Opening::kCreate) {
      for (const char* sql : kSchemaV2) Stmt(db_, path_, sql).run();
      Stmt meta(db_, path_, "INSERT INTO meta (key, value) VALUES (?, ?)");
      const std::pair<std::string, std::string> rows[] = {
          {"format", "prefrl preference database"},
          {"schema_version", std::to_string(kPrefDBSchemaVersion)},
          {"created_at", std::to_string(now_unix())},
          {"created_by", std::string("prefrl ") + PREFRL_VERSION + " (" + PREFRL_GIT_COMMIT + ")"},
      };
      for (const auto& [k, v] : rows) {
        meta.reset();
        meta.bind(1, k).bind(2, v).run();
      }
      // Constants, not user data: PRAGMA values cannot be bound parameters.
      Stmt(db_, path_, ("PRAGMA application_id = " + std::to_string(kPrefDBApplicationId)).c_str()).run();
      Stmt(db_, path_, ("PRAGMA user_version = " + std::to_string(kPrefDBSchemaVersion)).c_str()).run();
    }
    txn.commit();
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

SqlitePrefStore::~SqlitePrefStore() { sqlite3_close_v2(db_); }

bool SqlitePrefStore::begin_batch() { return begin_write(db_, path_); }

void SqlitePrefStore::commit_batch(bool nested) { commit_write(db_, path_, nested); }

void SqlitePrefStore::rollback_batch(bool nested) noexcept { rollback_write(db_, nested); }

int64_t SqlitePrefStore::add_segment(Segment& seg) {
  Txn txn(db_, path_);
  const int64_t id = insert_segment(db_, path_, seg);
  txn.commit();
  return id;
}

std::vector<int64_t> SqlitePrefStore::add_segments(std::vector<Segment>& segs) {
  for (const Segment& s : segs) check_segment(s);  // fail before writing anything
  std::vector<int64_t> ids;
  ids.reserve(segs.size());
  std::vector<int64_t> old_ids;
  for (const Segment& s : segs) old_ids.push_back(s.id);
  try {
    Txn txn(db_, path_);
    for (Segment& s : segs) ids.push_back(insert_segment(db_, path_, s));
    txn.commit();
  } catch (...) {
    for (size_t i = 0; i < segs.size(); ++i) segs[i].id = old_ids[i];  // nothing was stored
    throw;
  }
  return ids;
}

std::optional<Segment> SqlitePrefStore::get_segment(int64_t id) const {
  Stmt st(db_, path_, "SELECT " PREFRL_SEGMENT_COLS("s") " FROM segments s WHERE s.id = ?");
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  return read_segment(st, 0);
}

int64_t SqlitePrefStore::count_segments() const {
  Stmt st(db_, path_, "SELECT count(*) FROM segments");
  st.step();
  return st.i64(0);
}

int64_t SqlitePrefStore::add_query(Query& q) {
  Txn txn(db_, path_);
  const int64_t id = insert_query(db_, path_, q);
  txn.commit();
  return id;
}

std::vector<int64_t> SqlitePrefStore::add_queries(std::vector<Query>& qs) {
  std::vector<Query> copy = qs;  // ids/status are written back only if all are stored
  std::vector<int64_t> ids;
  ids.reserve(qs.size());
  Txn txn(db_, path_);
  for (Query& q : copy) ids.push_back(insert_query(db_, path_, q));
  txn.commit();
  qs = std::move(copy);
  return ids;
}

std::optional<Query> SqlitePrefStore::get_query(int64_t id) const {
  Stmt st(db_, path_, "SELECT " PREFRL_QUERY_COLS " FROM queries WHERE id = ?");
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  return read_query(st);
}

std::vector<Query> SqlitePrefStore::pending_queries(int limit) const {
  Stmt st(db_, path_, "SELECT " PREFRL_QUERY_COLS " FROM queries WHERE status = 'pending' ORDER BY id LIMIT ?");
  st.bind(1, limit < 0 ? int64_t{-1} : int64_t{limit});  // LIMIT -1: no limit
  std::vector<Query> out;
  while (st.step()) out.push_back(read_query(st));
  return out;
}

int64_t SqlitePrefStore::count_pending() const {
  Stmt st(db_, path_, "SELECT count(*) FROM queries WHERE status = 'pending'");
  st.step();
  return st.i64(0);
}

namespace {
// add_label's work inside an open write transaction: checks, insert, query status => label id.
int64_t insert_label(sqlite3* db, const std::string& path, int64_t query_id, Choice choice,
                     const std::string& teacher, const std::string& labeler, double created_at = 0) {
  if (!(created_at >= 0) || !std::isfinite(created_at))
    throw UsageError("cannot store label: created_at " + std::to_string(created_at) + " is not a time");
  Stmt q(db, path, "SELECT answers_wanted FROM queries WHERE id = ?");
  q.bind(1, query_id);
  if (!q.step()) throw UsageError("unknown query id " + std::to_string(query_id));
  const int64_t wanted = q.i64(0);
  Stmt n(db, path, "SELECT count(*) FROM labels WHERE query_id = ? AND undone = 0");
  n.bind(1, query_id);
  n.step();
  const int64_t have = n.i64(0);
  if (have >= wanted)
    throw UsageError("query " + std::to_string(query_id) + " already has its " + std::to_string(wanted) +
                     " answer(s)");
  Stmt mine(db, path, "SELECT 1 FROM labels WHERE query_id = ? AND labeler = ? AND undone = 0");
  mine.bind(1, query_id).bind(2, labeler);
  if (mine.step())
    throw UsageError("labeler '" + labeler + "' has already answered query " + std::to_string(query_id));
  Stmt ins(db, path,
           "INSERT INTO labels (query_id, choice, teacher, labeler, created_at) VALUES (?, ?, ?, ?, ?)");
  ins.bind(1, query_id).bind(2, std::string(choice_name(choice))).bind(3, teacher).bind(4, labeler)
      .bind(5, created_at > 0 ? created_at : now_unix());
  ins.run();
  const int64_t id = sqlite3_last_insert_rowid(db);
  if (have + 1 >= wanted) {
    Stmt up(db, path, "UPDATE queries SET status = 'labeled' WHERE id = ?");
    up.bind(1, query_id).run();
  }
  return id;
}
}  // namespace

int64_t SqlitePrefStore::add_label(int64_t query_id, Choice choice, const std::string& teacher,
                          const std::string& labeler) {
  Txn txn(db_, path_);
  const int64_t id = insert_label(db_, path_, query_id, choice, teacher, labeler);
  txn.commit();
  return id;
}

std::vector<int64_t> SqlitePrefStore::add_labels(const std::vector<NewLabel>& labels) {
  std::vector<int64_t> ids;
  if (labels.empty()) return ids;
  Txn txn(db_, path_);
  for (const NewLabel& l : labels) ids.push_back(insert_label(db_, path_, l.query_id, l.choice, l.teacher, l.labeler, l.created_at));
  txn.commit();
  return ids;
}

std::vector<Label> SqlitePrefStore::labels() const {
  Stmt st(db_, path_, "SELECT " PREFRL_LABEL_COLS " FROM labels WHERE undone = 0 ORDER BY id");
  std::vector<Label> out;
  while (st.step()) out.push_back(read_label(st));
  return out;
}

int64_t SqlitePrefStore::count_labels(int64_t max_label_id) const {
  Stmt st(db_, path_, "SELECT count(*) FROM labels WHERE undone = 0 AND id <= ?");
  st.bind(1, max_label_id);
  st.step();
  return st.i64(0);
}

std::optional<Label> SqlitePrefStore::last_label_by(const std::string& labeler) const {
  Stmt st(db_, path_,
          "SELECT " PREFRL_LABEL_COLS " FROM labels WHERE labeler = ? AND undone = 0 ORDER BY id DESC LIMIT 1");
  st.bind(1, labeler);
  if (!st.step()) return std::nullopt;
  return read_label(st);
}

void SqlitePrefStore::mark_used(const std::vector<int64_t>& label_ids) {
  if (label_ids.empty()) return;
  Txn txn(db_, path_);
  Stmt up(db_, path_, "UPDATE labels SET used = 1 WHERE id = ?");
  for (int64_t id : label_ids) {
    up.reset();
    up.bind(1, id).run();
    if (sqlite3_changes(db_) == 0) throw UsageError("cannot mark label as used: unknown label id " + std::to_string(id));
  }
  txn.commit();
}

bool SqlitePrefStore::undo_label(int64_t label_id) {
  Txn txn(db_, path_);
  Stmt sel(db_, path_, "SELECT query_id, undone, used FROM labels WHERE id = ?");
  sel.bind(1, label_id);
  if (!sel.step()) throw UsageError("cannot undo label " + std::to_string(label_id) + ": unknown label id");
  const int64_t query_id = sel.i64(0);
  if (sel.i64(1) != 0) throw UsageError("cannot undo label " + std::to_string(label_id) + ": it is already undone");
  if (sel.i64(2) != 0)
    throw UsageError("cannot undo label " + std::to_string(label_id) +
                     ": it has already been used to train the reward model");
  Stmt(db_, path_, "UPDATE labels SET undone = 1 WHERE id = ?").bind(1, label_id).run();
  Stmt(db_, path_, "UPDATE queries SET status = 'pending' WHERE id = ?").bind(1, query_id).run();
  txn.commit();
  return true;
}

std::vector<LabeledPair> SqlitePrefStore::labeled_pairs(int64_t after_label_id) const {
  Stmt st(db_, path_,
          "SELECT l.id, l.query_id, l.choice, " PREFRL_SEGMENT_COLS("a") ", " PREFRL_SEGMENT_COLS("b")
          " FROM labels l JOIN queries q ON q.id = l.query_id"
          " JOIN segments a ON a.id = q.left_id JOIN segments b ON b.id = q.right_id"
          " WHERE l.id > ? AND l.undone = 0 AND l.choice <> 'skip' ORDER BY l.id");
  st.bind(1, after_label_id);
  std::vector<LabeledPair> out;
  while (st.step()) {
    LabeledPair p;
    p.label_id = st.i64(0);
    p.query_id = st.i64(1);
    p.target = choice_target(read_choice(st, 2, p.label_id));
    p.left = read_segment(st, 3);
    p.right = read_segment(st, 3 + kSegmentCols);
    out.push_back(std::move(p));
  }
  return out;
}

PrefStore::Counts SqlitePrefStore::counts() const {
  auto scalar = [&](const char* sql) {
    Stmt st(db_, path_, sql);
    return st.step() ? st.i64(0) : int64_t{-1};
  };
  Counts c;
  c.labels = scalar("SELECT count(*) FROM labels WHERE undone = 0");
  c.queries = scalar("SELECT count(*) FROM queries");
  c.segments = scalar("SELECT count(*) FROM segments");
  c.pairs_asked_twice =
      scalar("SELECT count(*) FROM (SELECT 1 FROM queries GROUP BY left_id, right_id HAVING count(*) > 1)");
  c.over_answered = scalar("SELECT count(*) FROM queries q WHERE (SELECT count(*) FROM labels l WHERE "
                           "l.query_id = q.id AND l.undone = 0) > q.answers_wanted");
  return c;
}

std::vector<std::string> SqlitePrefStore::verify() const {
  std::vector<std::string> problems;
  const std::string integrity = integrity_check();
  if (integrity != "ok") problems.push_back("PRAGMA integrity_check of " + path_ + ": " + integrity);
  const int64_t over = counts().over_answered;
  if (over > 0) problems.push_back(std::to_string(over) + " queries have more labels than they asked for");
  return problems;
}

std::string SqlitePrefStore::integrity_check() const {
  Stmt st(db_, path_, "PRAGMA integrity_check");
  std::string out;
  while (st.step()) {
    if (!out.empty()) out += '\n';
    out += st.text(0);
  }
  return out;
}

int64_t SqlitePrefStore::file_size() const {
  Stmt pc(db_, path_, "PRAGMA page_count");
  Stmt ps(db_, path_, "PRAGMA page_size");
  pc.step();
  ps.step();
  return pc.i64(0) * ps.i64(0);
}

std::optional<std::string> SqlitePrefStore::get_meta(const std::string& key) const {
  Stmt st(db_, path_, "SELECT value FROM meta WHERE key = ?");
  st.bind(1, key);
  if (!st.step()) return std::nullopt;
  return st.text(0);
}

void SqlitePrefStore::set_meta(const std::string& key, const std::string& value) {
  Txn txn(db_, path_);
  Stmt(db_, path_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").bind(1, key).bind(2, value).run();
  txn.commit();
}

bool SqlitePrefStore::has_answered(int64_t query_id, const std::string& labeler) const {
  Stmt st(db_, path_, "SELECT 1 FROM labels WHERE query_id = ? AND labeler = ? AND undone = 0");
  st.bind(1, query_id).bind(2, labeler);
  return st.step();
}

int64_t SqlitePrefStore::count_labels_by(const std::string& labeler) const {
  Stmt st(db_, path_, "SELECT count(*) FROM labels WHERE labeler = ? AND undone = 0");
  st.bind(1, labeler);
  st.step();
  return st.i64(0);
}

std::vector<LabeledPair> SqlitePrefStore::claim_labels(int64_t after_label_id, double created_before, int64_t* last_id,
                                              int64_t max_label_id) {
  Txn txn(db_, path_);
  std::vector<int64_t> ids;
  {
    Stmt sel(db_, path_,
             "SELECT id, created_at FROM labels WHERE id > ? AND id <= ? AND undone = 0 AND used = 0 ORDER BY id");
    sel.bind(1, after_label_id).bind(2, max_label_id);
    while (sel.step()) {
      if (sel.dbl(1) > created_before) break;  // younger labels wait (they may still be undone)
      ids.push_back(sel.i64(0));
    }
  }
  if (ids.empty()) return {};
  Stmt up(db_, path_, "UPDATE labels SET used = 1 WHERE id = ?");
  for (int64_t id : ids) {
    up.reset();
    up.bind(1, id).run();
  }
  std::vector<LabeledPair> out;
  Stmt st(db_, path_,
          "SELECT l.id, l.query_id, l.choice, " PREFRL_SEGMENT_COLS("a") ", " PREFRL_SEGMENT_COLS("b")
          " FROM labels l JOIN queries q ON q.id = l.query_id"
          " JOIN segments a ON a.id = q.left_id JOIN segments b ON b.id = q.right_id"
          " WHERE l.id > ? AND l.id <= ? AND l.undone = 0 AND l.used = 1 AND l.choice <> 'skip' ORDER BY l.id");
  st.bind(1, after_label_id).bind(2, ids.back());
  while (st.step()) {
    LabeledPair p;
    p.label_id = st.i64(0);
    p.query_id = st.i64(1);
    p.target = choice_target(read_choice(st, 2, p.label_id));
    p.left = read_segment(st, 3);
    p.right = read_segment(st, 3 + kSegmentCols);
    out.push_back(std::move(p));
  }
  txn.commit();
  *last_id = ids.back();
  return out;
}

int64_t SqlitePrefStore::unclaim_labels_after(int64_t label_id) {
  Txn txn(db_, path_);
  Stmt up(db_, path_, "UPDATE labels SET used = 0 WHERE id > ? AND used = 1");
  up.bind(1, label_id).run();
  const int64_t n = sqlite3_changes(db_);
  txn.commit();
  return n;
}

std::vector<Query> SqlitePrefStore::queries_after(int64_t query_id) const {
  Stmt st(db_, path_, "SELECT " PREFRL_QUERY_COLS " FROM queries WHERE id > ? ORDER BY id");
  st.bind(1, query_id);
  std::vector<Query> out;
  while (st.step()) out.push_back(read_query(st));
  return out;
}

PrefStore::HighWater SqlitePrefStore::high_water() const {
  HighWater h;
  auto max_id = [&](const char* sql) {
    Stmt st(db_, path_, sql);
    st.step();
    return st.i64(0);
  };
  h.segment = max_id("SELECT coalesce(max(id), 0) FROM segments");
  h.query = max_id("SELECT coalesce(max(id), 0) FROM queries");
  h.label = max_id("SELECT coalesce(max(id), 0) FROM labels");
  return h;
}

}  // namespace prefrl
