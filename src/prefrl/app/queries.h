// Queries and labels: the trainer's part between the clips and the reward model.
//
//   store => cut() => candidate pool                          (segments of L steps)
//   pool + ensemble disagreement => ask() => stored clips and queries, the teacher's answers now
//   store => take_final() => labels to train on, in order    (each claimed once, committed first)
//
// A resumed run first re-chooses the queries the stopped run asked after its checkpoint
// (resume_replay): with a teacher that answers the same pair the same way again and one
// thread, it chooses the same pairs, and their clips, queries and answers come from the store
// instead of being stored twice.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/prefs/query_selection.h"
#include "prefrl/prefs/segments.h"
#include "prefrl/tracking/run_dir.h"

namespace prefrl {

class RewardModel;
class Teacher;
struct PhaseTimes;
struct PrefsConfig;

// Which envs of a rollout clips are cut from, one entry per clip: with segments_per_rollout >=
// num_envs, every env segments_per_rollout / num_envs times; with fewer, segments_per_rollout
// distinct envs drawn from rng without replacement; in env order either way.
std::vector<int> clip_envs(int num_envs, int segments_per_rollout, Rng& rng);

class Queries {
 public:
  Queries(const PrefsConfig& cfg, int segment_steps, uint64_t segment_seed, uint64_t query_seed, PrefStore& db,
          Teacher& teacher, RewardModel& reward, RunLog& log);

  // Cuts prefs.segments_per_rollout clips from every env's steps in the store (the rollout and the
  // history before it) into the pool => the new clips.
  std::vector<Segment> cut(const TransitionStore& store);
  // Cuts one clip from each env's steps in `store` (a collector of exploring episodes), drawing
  // where from `rng`, into the pool, their env_index offset by `env_index_offset` (so that they
  // are told apart from the agent's envs' clips) => how many.
  size_t add_clips(const TransitionStore& store, int env_index_offset, Rng& rng);
  // Queries asked so far by this process (pre-training's included) with at least one clip from
  // add_clips (an env_index at or past its offset).
  int64_t explored_asked() const { return explored_asked_; }
  // Queries asked so far by this process that the teacher skipped (answered "skip" at once).
  int64_t skipped_asked() const { return skipped_asked_; }
  // Asks up to `count` queries (as many as the teacher has room for), chosen uniformly
  // (`initial`: pre-training) or by prefs.selection, at global step `step`; stores them and the
  // teacher's answers given now in one transaction, and claims those answers.
  void ask(int count, bool initial, int64_t step, PhaseTimes* times);
  // Every label final by now (the teacher's final_before) not yet trained on, oldest first.
  std::vector<LabeledPair> take_final(PhaseTimes* times);

  // Resuming from a checkpoint whose counters are given (all 0 without one): the labels the
  // restored reward model had (into `had`, from_checkpoint only), the claims after it given
  // back, the queries asked after it lined up => how many were asked after it.
  size_t resume(int64_t last_label_id, int64_t labels_requested, int64_t after_query_id, bool from_checkpoint,
              std::vector<LabeledPair>* had);
  // Labels in the store, not counting those a resumed run has not re-chosen yet.
  int64_t count_labels() const { return db_.count_labels(label_bound_); }
  size_t replay_size() const { return replay_.size(); }

  SegmentPool& pool() { return pool_; }
  const SegmentPool& pool() const { return pool_; }
  Rng& segment_rng() { return segment_rng_; }
  Rng& query_rng() { return query_rng_; }
  int64_t labels_requested() const { return labels_requested_; }
  int64_t last_label_id() const { return last_label_id_; }
  double last_disagreement() const { return last_disagreement_; }
  void set_last_disagreement(double d) { last_disagreement_ = d; }

 private:
  // The run chose again what the stopped run asked next: take those labels from the store.
  bool replayed(const std::vector<CandidatePair>& chosen, const std::string& method, PhaseTimes* times);
  bool same_segment(const Segment& s, int64_t id) const;
  // k-center's centres: pair_features of the labeled pairs claimed so far, read from the store once.
  const std::vector<std::vector<float>>& labeled_features();
  std::vector<std::vector<float>> labeled_features_;
  int64_t features_upto_ = 0;  // the last label id read into labeled_features_

  const PrefsConfig& cfg_;
  int L_;
  PrefStore& db_;
  Teacher& teacher_;
  RewardModel& reward_;
  RunLog& log_;
  SegmentPool pool_;
  int explore_index_ = -1;        // env_index of add_clips' first env, once it added any
  int64_t explored_asked_ = 0;
  int64_t skipped_asked_ = 0;
  void count_explored(const std::vector<CandidatePair>& chosen);
  Rng segment_rng_, query_rng_;
  int64_t labels_requested_ = 0;  // queries asked (each wants its answers)
  int64_t last_label_id_ = 0;     // labels up to here are claimed (in, or on their way to, the reward model)
  double last_disagreement_;      // mean score of the latest queries chosen by disagreement
  std::vector<LabeledPair> claimed_;  // claimed by ask(), not yet handed out by take_final()
  // Resuming with a repeatable teacher: the queries after the checkpoint, oldest first.
  std::vector<Query> replay_;
  size_t replay_pos_ = 0;                                         // next one to be chosen again
  std::map<int64_t, std::pair<int64_t, Choice>> replay_answers_;  // query id => (label id, answer)
  int64_t label_bound_ = INT64_MAX;  // labels beyond this are not "given yet" while replaying
};

}  // namespace prefrl
