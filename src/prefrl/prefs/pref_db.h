// The preference database: one SQLite file in the run directory holding segments,
// queries and labels. Durable: a label is committed (fsync'd WAL) before add_label returns.
// Schema and its versioning: docs/database.md. SQL only through prepared statements.
// Thread-safety: one PrefDB object per thread; SQLite handles cross-connection locking
// (WAL mode, busy timeout), so a trainer and an HTTP server may each open the same file.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "prefrl/core/segment.h"

struct sqlite3;

namespace prefrl {

// `PRAGMA application_id` of every prefrl database: the bytes "PREF" read big-endian.
inline constexpr int32_t kPrefDBApplicationId = 0x50524546;
// `PRAGMA user_version`: the schema version this build reads and writes (docs/database.md).
// Version 2 added segments' render states; a version-1 file is upgraded in place when opened.
inline constexpr int kPrefDBSchemaVersion = 2;

// A query: "which of these two segments is better?"
struct Query {
  int64_t id = -1;
  int64_t left_id = -1, right_id = -1;   // segment ids
  int64_t env_step = 0;                  // when it was asked
  std::string source;                    // "initial" | "disagreement" | "uniform"
  double score = 0.0;                    // selection score (ensemble disagreement), 0 if uniform
  std::string status;                    // "pending" | "labeled"
  int answers_wanted = 1;                // how many labels this query collects
};

// A label: one teacher's (or person's) answer to a query.
struct Label {
  int64_t id = -1;
  int64_t query_id = -1;
  Choice choice = Choice::kSkip;
  std::string teacher;    // "oracle", "noisy", "human"
  std::string labeler;    // person's name or teacher instance
  double created_at = 0;  // unix seconds
  bool undone = false;
  bool used = false;      // consumed by reward training (then it can no longer be undone)
};

class PrefDB {
 public:
  // Opens or creates the database at `path`. Refuses (throws UsageError naming the file)
  // a file that is not a prefrl database or has an unknown schema version; never
  // overwrites such a file. A version-1 file is upgraded to version 2 in one transaction.
  explicit PrefDB(const std::string& path);
  ~PrefDB();
  PrefDB(const PrefDB&) = delete;
  PrefDB& operator=(const PrefDB&) = delete;

  const std::string& path() const { return path_; }

  // Groups the writes of several calls into one transaction: one fsync at commit() instead of
  // one per call. Each call keeps its checks and stays all-or-nothing; its writes become
  // durable, and visible to other connections, at commit(). Destroyed uncommitted (e.g. by an
  // exception), the batch rolls every write in it back. Holds the write lock while open.
  class Batch {
   public:
    explicit Batch(PrefDB& db);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
    void commit();

   private:
    PrefDB& db_;
    bool nested_;
    bool open_ = true;
  };

  // Stores a segment; returns its id (also written into seg.id).
  int64_t add_segment(Segment& seg);
  // Stores several segments in one transaction (one fsync); returns their ids (also written
  // into each seg.id). All or none are stored.
  std::vector<int64_t> add_segments(std::vector<Segment>& segs);
  std::optional<Segment> get_segment(int64_t id) const;

  // Stores a pending query; returns its id.
  int64_t add_query(Query& q);
  // Stores several pending queries in one transaction; returns their ids. All or none.
  std::vector<int64_t> add_queries(std::vector<Query>& qs);
  std::optional<Query> get_query(int64_t id) const;
  // Pending queries, oldest first.
  std::vector<Query> pending_queries(int limit = -1) const;
  int64_t count_pending() const;

  // Commits a label and marks its query labeled once it has enough answers. Throws
  // UsageError for an unknown query id, a query that already has all its answers, or a
  // labeler who already answered it.
  int64_t add_label(int64_t query_id, Choice choice, const std::string& teacher,
                    const std::string& labeler);
  // A label for add_labels().
  struct NewLabel {
    int64_t query_id = -1;
    Choice choice = Choice::kSkip;
    std::string teacher, labeler;
  };
  // Commits several labels in one transaction (one fsync), each checked as add_label does;
  // returns their ids. All or none are stored (a failed check stores none).
  std::vector<int64_t> add_labels(const std::vector<NewLabel>& labels);
  std::vector<Label> labels() const;           // all labels, not undone, oldest first
  int64_t count_labels(int64_t max_label_id = INT64_MAX) const;  // labels not undone (id <= max_label_id), skips included
  int64_t count_segments() const;              // stored segments
  // The newest label (not undone) by `labeler`, if any: what "undo" in the web UI reverts.
  std::optional<Label> last_label_by(const std::string& labeler) const;
  // Marks labels as consumed by reward training, in one transaction. Throws UsageError
  // naming the first unknown label id (and then marks none).
  void mark_used(const std::vector<int64_t>& label_ids);
  // Withdraws a label: sets undone=1 and returns its query to pending, in one transaction.
  // Returns true. Throws UsageError for an unknown label, a label already used by reward
  // training, or a label already undone.
  bool undo_label(int64_t label_id);
  // Whether `labeler` has a (not undone) answer to the query.
  bool has_answered(int64_t query_id, const std::string& labeler) const;
  // Labels (not undone) by `labeler`.
  int64_t count_labels_by(const std::string& labeler) const;
  // Claims every label with id > after_label_id, not undone, not yet used and created at or
  // before `created_before` (unix seconds), stopping at the first younger one: marks them used
  // in one transaction (so none can be undone afterwards) and returns the labeled pairs among
  // them (skips excluded). *last_id receives the newest claimed label id (unchanged if none).
  // max_label_id bounds the claim (a resumed trainer replays the claims of the stopped run).
  std::vector<LabeledPair> claim_labels(int64_t after_label_id, double created_before, int64_t* last_id,
                                        int64_t max_label_id = INT64_MAX);
  // Returns every label with id > label_id to unused, in one transaction => how many: a
  // trainer resumed from a checkpoint taken at label_id claims them again (its restored
  // reward model has not trained on them). Undone labels stay undone.
  int64_t unclaim_labels_after(int64_t label_id);
  // Queries with id > query_id, oldest first (what a stopped run asked after its checkpoint).
  std::vector<Query> queries_after(int64_t query_id) const;
  // The newest id of each table (0 when empty): a checkpoint's position in the database.
  struct HighWater {
    int64_t segment = 0, query = 0, label = 0;
  };
  HighWater high_water() const;
  // Labeled pairs (skips excluded, undone excluded) with id > after_label_id, in order.
  std::vector<LabeledPair> labeled_pairs(int64_t after_label_id = 0) const;

  // Runs `PRAGMA integrity_check`; returns "ok" or the problems.
  std::string integrity_check() const;
  // Size of the database in bytes: page_count x page_size, i.e. the main file's size once the
  // WAL is checkpointed (independent of when checkpoints happen).
  int64_t file_size() const;

  sqlite3* handle() { return db_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace prefrl
