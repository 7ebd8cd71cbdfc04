// Preference datasets: a run's clips and answers in an open format that outlives the run
// (docs/dataset.md): NumPy .npy arrays for the clips and JSON lines for the answers, read in
// Python with numpy and json alone. `prefrl prefs export | import | merge | show`, and
// `prefrl train --prefs-from` (earlier answers at the start of a new run).
//
// An answer's identity across runs is its uid: a hash of the two clips' contents, the choice,
// the labeler and the time it was given; import and merge never store one uid twice, and a
// clip whose content is already stored is not stored again.
#pragma once
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefrl/app/train_config.h"
#include "prefrl/core/segment.h"
#include "prefrl/prefs/pref_store.h"

namespace prefrl {

inline constexpr const char* kDatasetFormat = "prefrl-preferences";
inline constexpr int kDatasetVersion = 1;
// The store's meta key under which imports are recorded (a JSON array, one entry per import).
inline constexpr const char* kImportsMetaKey = "imports";

// What a dataset's clips are of: the environment's spec, the clip length and the task hash
// (CRC-32C of the spec's canonical JSON, with the task file's bytes where the task is one).
// A dataset is imported only where all three match.
struct DatasetTask {
  nlohmann::json spec;  // {"env": env_spec_json, "segment_length": L, "task_file_crc32c"?: ...}
  std::string hash;     // 8 hex digits
  int segment_length = 0;
  int64_t obs_size = 0, act_size = 0;
  bool obs_bytes = false;  // observations kept as bytes (a uint8 space)
  std::vector<int64_t> obs_shape;
};
// The task spec of a run's config (its task file, if any, registered already).
DatasetTask task_spec(const TrainConfig& cfg);

struct DatasetAnswer {
  int64_t query = 0;            // the dataset's query index: answers to one question share it
  int64_t left = 0, right = 0;  // clip indices
  Choice choice = Choice::kSkip;
  std::string teacher, labeler;
  double created_at = 0;        // unix seconds
  std::string query_source;     // how the pair was chosen: initial | uniform | disagreement
  double query_score = 0;
  int64_t env_step = 0;         // the step at which it was asked
  std::string uid;              // 16 hex digits (answer_uid)
};

// A dataset's clips are read one at a time where they are kept (the store or the dataset's
// files, which must outlive the Dataset and its copies): a whole Atari run's clips (~11,000 of
// 25 stacked 84 x 84 x 4 frames, ~7.7 GB) never sit in memory at once. Only their content
// hashes are held.
struct Dataset {
  DatasetTask task;
  int frame_size = 0;  // > 0: write_dataset adds every clip rendered at this size (clips/frames.npy)
  nlohmann::json provenance = nlohmann::json::object();  // where and when it was written (not content)
  std::vector<DatasetAnswer> answers;                    // oldest first
  std::vector<uint64_t> clip_hashes;                     // clip_hash of each clip
  int64_t state_size = 0;  // the clips' physical-state size where all have the same, else 0
  // Clip k as kept (id -1); clip() checks it against its hash.
  std::function<Segment(int64_t)> read_clip;

  int64_t clip_count() const { return static_cast<int64_t>(clip_hashes.size()); }
  // Clip k; RuntimeError if its content no longer has the hash it had when the dataset was made
  // (its files changed underneath).
  Segment clip(int64_t k) const;
  // Makes `clips` the dataset's clips, held in memory (small datasets, tests).
  void hold_clips(std::vector<Segment> clips);
};

// FNV-1a 64 over a clip's content (length, observations as kept, actions, absorbing flags,
// true rewards, states, env step) and over an answer's identity.
uint64_t clip_hash(const Segment& s);
std::string answer_uid(uint64_t left_hash, uint64_t right_hash, Choice c, const std::string& labeler, double created_at);

// Every answer in the store (undone ones excepted; skips included), oldest first, with the
// clips they are about (in order of first use), read from the store (which must outlive it).
Dataset dataset_from_store(const PrefStore& store, const DatasetTask& task);
// Writes the dataset into `dir` (which must not exist), through a temporary directory.
void write_dataset(const Dataset& d, const std::string& dir);
// Reads a dataset, checking its format, version, files (sizes, CRC-32C), shapes, references
// and uids: UsageError naming the file and what is wrong. Its clips stay in its files (read
// one at a time, and once here for their hashes).
Dataset read_dataset(const std::string& dir);

// UsageError naming `what` and the first mismatch (spaces, clip length, task hash) unless the
// dataset's clips are of `task`.
void check_compatible(const Dataset& d, const DatasetTask& task, const std::string& what);

struct ImportResult {
  int64_t answers = 0, duplicates = 0;     // answers stored; answers already in the store
  int64_t clips = 0, clips_reused = 0;     // clips stored; clips already in the store
  int64_t queries = 0;
  int64_t first_label = 0, last_label = 0; // the label ids stored (consecutive), 0 if none
};
// Stores the answers of `d` the store lacks (and their clips and queries) in one transaction,
// and records the import (kImportsMetaKey: source, label ids, counts). Check compatibility first.
ImportResult import_dataset(const Dataset& d, PrefStore& store, const std::string& source);
// Labels the store holds from imports (ids from..to, inclusive), as recorded.
struct ImportedRange {
  int64_t first = 0, last = 0;
};
std::vector<ImportedRange> imported_ranges(const PrefStore& store);
int64_t imported_label_count(const PrefStore& store, int64_t max_label_id = INT64_MAX);

// The union of several datasets of one task: clips by content, answers by uid, oldest first
// (its clips read from the inputs' sources).
// UsageError naming the first dataset whose task differs from the first's.
Dataset merge_datasets(const std::vector<Dataset>& ds, const std::vector<std::string>& names);

// `prefrl prefs export RUN --out DIR [--frames SIZE]`: the run's answers as a dataset (default
// DIR: RUN/prefs) => DIR. frame_size > 0: also every clip rendered as people see it
// (clips/frames.npy, uint8 (C, L, SIZE, SIZE, 3)).
std::string export_run_prefs(const std::string& run, const std::string& out, std::ostream& log, int frame_size = 0);
// `prefrl prefs import DIR --into RUN`: checked against the run's task, refused for a run that is
// running; nothing is written unless every check passes.
ImportResult import_into_run(const std::string& dataset_dir, const std::string& run, std::ostream& log);

// `prefrl prefs show`: counts by choice, labeler, teacher and query source, the time span, and
// where several labelers answered the same pair of clips, how often they agreed (overall and
// per pair of labelers, with Cohen's kappa).
std::string describe_dataset(const Dataset& d);

}  // namespace prefrl
