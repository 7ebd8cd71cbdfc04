// The SQLite backend of PrefStore: one SQLite file in the run directory holding segments,
// queries and labels. Durable: a label is committed (fsync'd WAL) before add_label returns.
// Schema and its versioning: docs/database.md. SQL only through prepared statements, and
// only in sqlite_pref_store.cc: no SQLite handle leaves this class.
// Thread-safety: one object per thread; SQLite handles cross-connection locking (WAL mode,
// busy timeout), so a trainer and an HTTP server may each open the same file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "prefrl/prefs/pref_store.h"

struct sqlite3;

namespace prefrl {

// `PRAGMA application_id` of every prefrl database: the bytes "PREF" read big-endian.
inline constexpr int32_t kPrefDBApplicationId = 0x50524546;
// `PRAGMA user_version`: the schema version this build reads and writes (docs/database.md).
// Version 2 added segments' render states; a version-1 file is upgraded in place when opened.
inline constexpr int kPrefDBSchemaVersion = 2;

class SqlitePrefStore final : public PrefStore {
 public:
  // Opens or creates the database at `path`. Refuses (throws UsageError naming the file)
  // a file that is not a prefrl database or has an unknown schema version; never
  // overwrites such a file. A version-1 file is upgraded to version 2 in one transaction.
  explicit SqlitePrefStore(const std::string& path);
  ~SqlitePrefStore() override;

  const std::string& path() const override { return path_; }

  int64_t add_segment(Segment& seg) override;
  std::vector<int64_t> add_segments(std::vector<Segment>& segs) override;
  std::optional<Segment> get_segment(int64_t id) const override;
  int64_t add_query(Query& q) override;
  std::vector<int64_t> add_queries(std::vector<Query>& qs) override;
  std::optional<Query> get_query(int64_t id) const override;
  std::vector<Query> pending_queries(int limit = -1) const override;
  int64_t count_pending() const override;
  int64_t add_label(int64_t query_id, Choice choice, const std::string& teacher,
                    const std::string& labeler) override;
  std::vector<int64_t> add_labels(const std::vector<NewLabel>& labels) override;
  std::vector<Label> labels() const override;
  int64_t count_labels(int64_t max_label_id = INT64_MAX) const override;
  int64_t count_segments() const override;
  std::optional<Label> last_label_by(const std::string& labeler) const override;
  void mark_used(const std::vector<int64_t>& label_ids) override;
  bool undo_label(int64_t label_id) override;
  bool has_answered(int64_t query_id, const std::string& labeler) const override;
  int64_t count_labels_by(const std::string& labeler) const override;
  std::vector<LabeledPair> claim_labels(int64_t after_label_id, double created_before, int64_t* last_id,
                                        int64_t max_label_id = INT64_MAX) override;
  int64_t unclaim_labels_after(int64_t label_id) override;
  std::vector<Query> queries_after(int64_t query_id) const override;
  HighWater high_water() const override;
  std::vector<LabeledPair> labeled_pairs(int64_t after_label_id = 0) const override;
  Counts counts() const override;
  // `PRAGMA integrity_check`: "ok" or the problems, one a line.
  std::string integrity_check() const override;
  std::vector<std::string> verify() const override;
  int64_t file_size() const override;
  std::optional<std::string> get_meta(const std::string& key) const override;
  void set_meta(const std::string& key, const std::string& value) override;

 private:
  // A Batch is a BEGIN IMMEDIATE transaction, or inside one a savepoint.
  bool begin_batch() override;
  void commit_batch(bool nested) override;
  void rollback_batch(bool nested) noexcept override;

  // The connection's own settings (synchronous, foreign_keys) are checked by the tests through
  // this, defined in tests/prefs/; nothing else reaches the handle.
  friend struct SqlitePrefStoreTestAccess;

  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace prefrl
