// The preference store: segments, queries and labels, durable, shared by the trainer, the
// labeling server and the `prefrl runs` tools. An interface: every rule of the store (what a
// label needs, who may answer a query and how often, undo, claiming labels for reward training
// exactly once, resuming) is a method here, implemented by each backend; no SQL and no engine
// handle leaves a backend. Backends: SQLite (sqlite_pref_store.h, one file in the run
// directory; docs/database.md). A store is opened by URL: open_pref_store().
//
// Thread-safety: one PrefStore object per thread; a backend handles cross-connection locking,
// so a trainer and an HTTP server may each open the same store.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prefrl/core/segment.h"

namespace prefrl {

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

class PrefStore {
 public:
  virtual ~PrefStore() = default;
  PrefStore(const PrefStore&) = delete;
  PrefStore& operator=(const PrefStore&) = delete;

  // Where the store is (for messages): a file path for SQLite.
  virtual const std::string& path() const = 0;

  // Groups the writes of several calls into one transaction: one durable commit at commit()
  // instead of one per call. Each call keeps its checks and stays all-or-nothing; its writes
  // become durable, and visible to other connections, at commit(). Destroyed uncommitted (e.g.
  // by an exception), the batch rolls every write in it back. Holds the write lock while open.
  // A batch opened inside another becomes part of it.
  class Batch {
   public:
    explicit Batch(PrefStore& store);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
    void commit();

   private:
    PrefStore& store_;
    bool nested_;
    bool open_ = true;
  };

  // Stores a segment; returns its id (also written into seg.id).
  virtual int64_t add_segment(Segment& seg) = 0;
  // Stores several segments in one transaction (one fsync); returns their ids (also written
  // into each seg.id). All or none are stored.
  virtual std::vector<int64_t> add_segments(std::vector<Segment>& segs) = 0;
  virtual std::optional<Segment> get_segment(int64_t id) const = 0;

  // Stores a pending query; returns its id.
  virtual int64_t add_query(Query& q) = 0;
  // Stores several pending queries in one transaction; returns their ids. All or none.
  virtual std::vector<int64_t> add_queries(std::vector<Query>& qs) = 0;
  virtual std::optional<Query> get_query(int64_t id) const = 0;
  // Pending queries, oldest first.
  virtual std::vector<Query> pending_queries(int limit = -1) const = 0;
  virtual int64_t count_pending() const = 0;

  // Commits a label and marks its query labeled once it has enough answers. Throws
  // UsageError for an unknown query id, a query that already has all its answers, or a
  // labeler who already answered it.
  virtual int64_t add_label(int64_t query_id, Choice choice, const std::string& teacher,
                            const std::string& labeler) = 0;
  // A label for add_labels().
  struct NewLabel {
    int64_t query_id = -1;
    Choice choice = Choice::kSkip;
    std::string teacher, labeler;
    double created_at = 0;  // unix seconds; 0: now (an imported label keeps its original time)
  };
  // Commits several labels in one transaction (one fsync), each checked as add_label does;
  // returns their ids. All or none are stored (a failed check stores none).
  virtual std::vector<int64_t> add_labels(const std::vector<NewLabel>& labels) = 0;
  virtual std::vector<Label> labels() const = 0;  // all labels, not undone, oldest first
  // Labels not undone (id <= max_label_id), skips included.
  virtual int64_t count_labels(int64_t max_label_id = INT64_MAX) const = 0;
  virtual int64_t count_segments() const = 0;     // stored segments
  // The newest label (not undone) by `labeler`, if any: what "undo" in the web UI reverts.
  virtual std::optional<Label> last_label_by(const std::string& labeler) const = 0;
  // Marks labels as consumed by reward training, in one transaction. Throws UsageError
  // naming the first unknown label id (and then marks none).
  virtual void mark_used(const std::vector<int64_t>& label_ids) = 0;
  // Withdraws a label: sets undone and returns its query to pending, in one transaction.
  // Returns true. Throws UsageError for an unknown label, a label already used by reward
  // training, or a label already undone.
  virtual bool undo_label(int64_t label_id) = 0;
  // Whether `labeler` has a (not undone) answer to the query.
  virtual bool has_answered(int64_t query_id, const std::string& labeler) const = 0;
  // Labels (not undone) by `labeler`.
  virtual int64_t count_labels_by(const std::string& labeler) const = 0;
  // Claims every label with id > after_label_id, not undone, not yet used and created at or
  // before `created_before` (unix seconds), stopping at the first younger one: marks them used
  // in one transaction (so none can be undone afterwards) and returns the labeled pairs among
  // them (skips excluded). *last_id receives the newest claimed label id (unchanged if none).
  // max_label_id bounds the claim (a resumed trainer replays the claims of the stopped run).
  virtual std::vector<LabeledPair> claim_labels(int64_t after_label_id, double created_before, int64_t* last_id,
                                                int64_t max_label_id = INT64_MAX) = 0;
  // Returns every label with id > label_id to unused, in one transaction => how many: a
  // trainer resumed from a checkpoint taken at label_id claims them again (its restored
  // reward model has not trained on them). Undone labels stay undone.
  virtual int64_t unclaim_labels_after(int64_t label_id) = 0;
  // Queries with id > query_id, oldest first (what a stopped run asked after its checkpoint).
  virtual std::vector<Query> queries_after(int64_t query_id) const = 0;
  // The newest id of each table (0 when empty): a checkpoint's position in the store.
  struct HighWater {
    int64_t segment = 0, query = 0, label = 0;
  };
  virtual HighWater high_water() const = 0;
  // Labeled pairs (skips excluded, undone excluded) with id > after_label_id, in order.
  virtual std::vector<LabeledPair> labeled_pairs(int64_t after_label_id = 0) const = 0;

  // What `prefrl runs verify` counts and compares between runs.
  struct Counts {
    int64_t labels = 0;             // labels not undone, skips included
    int64_t queries = 0;            // queries, pending or labeled
    int64_t segments = 0;           // stored segments (clips)
    int64_t pairs_asked_twice = 0;  // (left, right) pairs with more than one query
    int64_t over_answered = 0;      // queries with more labels (not undone) than answers_wanted
  };
  virtual Counts counts() const = 0;
  // The backend's own consistency check (SQLite: `PRAGMA integrity_check`); "ok" or the problems.
  virtual std::string integrity_check() const = 0;
  // Checks the store: integrity_check() and the invariants the store's methods keep (no query
  // has more answers than it asked for). One line per problem; empty when all is well.
  virtual std::vector<std::string> verify() const = 0;
  // The store's own records (key => text; e.g. "imports", what `prefrl prefs import` added):
  // the value, or nothing if the key was never set. set_meta replaces a value, durably.
  virtual std::optional<std::string> get_meta(const std::string& key) const = 0;
  virtual void set_meta(const std::string& key, const std::string& value) = 0;
  // Size of the stored data in bytes (SQLite: page_count x page_size, i.e. the main file's size
  // once the WAL is checkpointed, independent of when checkpoints happen).
  virtual int64_t file_size() const = 0;

 protected:
  PrefStore() = default;

 private:
  // The transaction of a Batch: begin_batch() opens one (or, inside one already open, a nested
  // one => true), commit_batch() makes it durable (or part of the enclosing one), and
  // rollback_batch() undoes everything since begin_batch() and never throws.
  virtual bool begin_batch() = 0;
  virtual void commit_batch(bool nested) = 0;
  virtual void rollback_batch(bool nested) noexcept = 0;
};

// The URL schemes open_pref_store() accepts, for messages: "sqlite:PATH".
inline constexpr const char* kPrefStoreSchemes = "sqlite:PATH";

// Opens (or creates) the store at `url`: "sqlite:PATH" is the SQLite file PATH (see
// SqlitePrefStore); a URL without a scheme (a plain path, e.g. a run directory's prefs.db) is
// an SQLite file too, unless its text before the first ':' reads as a scheme (letters, digits,
// '+', '-', '.'; e.g. "x:y.db"): write such a path "./x:y.db" or through sqlite_store_url().
// Throws UsageError naming the URL and the schemes allowed for any other scheme, and whatever
// the backend throws when the store cannot be opened.
std::unique_ptr<PrefStore> open_pref_store(const std::string& url);

// The URL of the SQLite file at `path`, whatever its characters (a run directory's prefs.db):
// "sqlite:" + path.
inline std::string sqlite_store_url(const std::string& path) { return "sqlite:" + path; }

}  // namespace prefrl
