// Queries and labels: candidate clips, query selection, the teacher's answers, claims.
#include "prefrl/app/queries.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <iterator>

#include "prefrl/app/rollout.h"
#include "prefrl/core/config.h"
#include "prefrl/prefs/prefs_config.h"
#include "prefrl/prefs/query_selection.h"
#include "prefrl/reward/reward_model.h"
#include "prefrl/teachers/teacher.h"
#include "prefrl/tracking/runs.h"

namespace prefrl {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double mean_of(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}
}  // namespace

Queries::Queries(const PrefsConfig& cfg, int segment_steps, uint64_t segment_seed, uint64_t query_seed, PrefStore& db,
                 Teacher& teacher, RewardModel& reward, RunLog& log)
    : cfg_(cfg),
      L_(segment_steps),
      db_(db),
      teacher_(teacher),
      reward_(reward),
      log_(log),
      pool_(static_cast<size_t>(cfg.pool_capacity)),
      segment_rng_(segment_seed),
      query_rng_(query_seed),
      last_disagreement_(std::nan("")) {}

std::vector<int> clip_envs(int num_envs, int segments_per_rollout, Rng& rng) {
  std::vector<int> envs;
  if (segments_per_rollout < num_envs) {
    // Fewer clips than envs (many envs, short rollouts: A2C on pixels): one clip from each of
    // segments_per_rollout envs drawn without replacement, in env order.
    std::vector<int> all(static_cast<size_t>(num_envs));
    for (int i = 0; i < num_envs; ++i) all[i] = i;
    for (int i = 0; i < segments_per_rollout; ++i)
      std::swap(all[i], all[i + rng.integer(static_cast<uint64_t>(num_envs - i))]);
    envs.assign(all.begin(), all.begin() + segments_per_rollout);
    std::sort(envs.begin(), envs.end());
  } else {
    for (int i = 0; i < num_envs; ++i) envs.insert(envs.end(), static_cast<size_t>(segments_per_rollout / num_envs), i);
  }
  return envs;
}

std::vector<Segment> Queries::cut(const TransitionStore& store) {
  std::vector<Segment> fresh;
  const std::vector<int> envs = clip_envs(store.num_envs(), cfg_.segments_per_rollout, segment_rng_);
  for (size_t k = 0; k < envs.size();) {
    size_t n = 1;  // clips from env envs[k]: cut together, as they must not overlap
    while (k + n < envs.size() && envs[k + n] == envs[k]) ++n;
    for (auto& s : cut_segments(store.trajectory(envs[k]), L_, static_cast<int>(n), segment_rng_)) fresh.push_back(s);
    k += n;
  }
  for (const auto& s : fresh) pool_.add(s);
  return fresh;
}

size_t Queries::add_clips(const TransitionStore& store, int env_index_offset, Rng& rng) {
  size_t added = 0;
  explore_index_ = env_index_offset;
  for (int i = 0; i < store.num_envs(); ++i) {
    for (Segment& s : cut_segments(store.trajectory(i), L_, 1, rng)) {
      s.env_index += env_index_offset;
      pool_.add(std::move(s));
      ++added;
    }
  }
  return added;
}

void Queries::count_explored(const std::vector<CandidatePair>& chosen) {
  if (explore_index_ < 0) return;
  for (const auto& c : chosen)
    if (pool_.at(c.left).env_index >= explore_index_ || pool_.at(c.right).env_index >= explore_index_) ++explored_asked_;
}

bool Queries::same_segment(const Segment& s, int64_t id) const {
  if (s.id >= 0) return s.id == id;
  const std::optional<Segment> stored = db_.get_segment(id);
  return stored && stored->env_step == s.env_step && stored->env_index == s.env_index && stored->same_obs(s) &&
         stored->actions == s.actions;
}

bool Queries::replayed(const std::vector<CandidatePair>& chosen, const std::string& method, PhaseTimes* times) {
  bool same = replay_.size() - replay_pos_ >= chosen.size();
  for (size_t k = 0; same && k < chosen.size(); ++k) {
    const Query& rq = replay_[replay_pos_ + k];
    same = same_segment(pool_.at(chosen[k].left), rq.left_id) && same_segment(pool_.at(chosen[k].right), rq.right_id);
    const auto it = replay_answers_.find(rq.id);
    same = same && it != replay_answers_.end() &&
           teacher_.answer(pool_.at(chosen[k].left), pool_.at(chosen[k].right)) == it->second.second;
    if (same) {
      if (pool_.at(chosen[k].left).id < 0) pool_.set_id(chosen[k].left, rq.left_id);
      if (pool_.at(chosen[k].right).id < 0) pool_.set_id(chosen[k].right, rq.right_id);
    }
  }
  if (same) {
    count_explored(chosen);
    for (size_t k = 0; k < chosen.size(); ++k) {
      const auto& [label_id, choice] = replay_answers_.at(replay_[replay_pos_ + k].id);
      label_bound_ = std::max(label_bound_, label_id);
      skipped_asked_ += choice == Choice::kSkip ? 1 : 0;
      ++labels_requested_;
    }
    replay_pos_ += chosen.size();
    std::vector<LabeledPair> now = db_.claim_labels(last_label_id_, kInf, &last_label_id_, label_bound_);
    claimed_.insert(claimed_.end(), std::make_move_iterator(now.begin()), std::make_move_iterator(now.end()));
    if (replay_pos_ == replay_.size()) {
      label_bound_ = INT64_MAX;
      log_.line(fmt::format("resume: the {} queries asked after the checkpoint were chosen again; their labels "
                            "came from prefs.db", replay_.size()));
    }
    if (method == "disagreement") {
      std::vector<double> scores;
      for (const auto& c : chosen) scores.push_back(c.score);
      last_disagreement_ = mean_of(scores);
    }
    return true;
  }
  // Another choice than the stopped run's (e.g. more than one thread): its remaining labels
  // stay in the database as given, and the reward model trains on them.
  log_.line(fmt::format("resume: the run chose other pairs than the stopped run at its query {}; the {} labels "
                        "it was given after that are kept and used", replay_[replay_pos_].id,
                        replay_.size() - replay_pos_));
  labels_requested_ += static_cast<int64_t>(replay_.size() - replay_pos_);
  replay_pos_ = replay_.size();
  label_bound_ = INT64_MAX;
  return false;
}

void Queries::ask(int count, bool initial, int64_t step, PhaseTimes* times) {
  count = static_cast<int>(teacher_.room(count, initial));
  if (count <= 0 || pool_.size() < 2) return;
  const auto tq = Clock::now();
  auto pairs_of = [](const SegmentPool& p, const std::vector<CandidatePair>& cands) {
    std::vector<std::pair<const Segment*, const Segment*>> pairs;
    pairs.reserve(cands.size());
    for (const auto& c : cands) pairs.emplace_back(&p.at(c.left), &p.at(c.right));
    return pairs;
  };
  const std::string method = initial ? "uniform" : cfg_.selection;
  QueryScorer scorer;
  scorer.disagreement = [&](const SegmentPool& p, const std::vector<CandidatePair>& c) {
    return reward_.disagreement(pairs_of(p, c));
  };
  scorer.entropy = [&](const SegmentPool& p, const std::vector<CandidatePair>& c) {
    return reward_.pair_entropy(pairs_of(p, c));
  };
  if (method.rfind("kcenter", 0) == 0) scorer.labeled = &labeled_features();
  auto chosen = select_pairs(pool_, count, method, cfg_.oversample, scorer, query_rng_);
  times->query += seconds_since(tq);
  const auto td = Clock::now();
  if (replay_pos_ < replay_.size() && replayed(chosen, method, times)) {
    times->db += seconds_since(td);
    return;
  }
  count_explored(chosen);
  // Store the chosen clips (each once, in one transaction), then the queries.
  std::vector<Segment> to_store;
  std::vector<size_t> to_store_index;
  for (const auto& c : chosen) {
    for (size_t idx : {c.left, c.right}) {
      if (pool_.at(idx).id >= 0) continue;
      if (std::find(to_store_index.begin(), to_store_index.end(), idx) != to_store_index.end()) continue;
      to_store.push_back(pool_.at(idx));
      to_store_index.push_back(idx);
    }
  }
  PrefStore::Batch batch(db_);  // clips, queries and the answers given now: one transaction
  db_.add_segments(to_store);
  for (size_t k = 0; k < to_store.size(); ++k) pool_.set_id(to_store_index[k], to_store[k].id);
  std::vector<Query> queries;
  std::vector<double> scores;
  for (const auto& c : chosen) {
    Query q;
    q.answers_wanted = teacher_.answers_wanted();
    q.left_id = pool_.at(c.left).id;
    q.right_id = pool_.at(c.right).id;
    q.env_step = step;
    q.source = initial ? "initial" : method;
    q.score = c.score;
    queries.push_back(q);
    scores.push_back(c.score);
  }
  db_.add_queries(queries);
  // A scripted teacher answers at once (its answers committed together, in one transaction);
  // people answer through the server, later. Either way each label is committed before it is used.
  std::vector<PrefStore::NewLabel> answers;
  for (size_t k = 0; k < chosen.size(); ++k) {
    if (const std::optional<Choice> answer = teacher_.answer(pool_.at(chosen[k].left), pool_.at(chosen[k].right))) {
      answers.push_back({queries[k].id, *answer, teacher_.name(), teacher_.name()});
      skipped_asked_ += *answer == Choice::kSkip ? 1 : 0;
    }
    ++labels_requested_;
  }
  db_.add_labels(answers);
  // Answers given now are final at once: claim them for the reward model in the same
  // transaction (one fsync in all); take_final hands them out.
  if (!answers.empty()) {
    std::vector<LabeledPair> now = db_.claim_labels(last_label_id_, teacher_.final_before(), &last_label_id_);
    claimed_.insert(claimed_.end(), std::make_move_iterator(now.begin()), std::make_move_iterator(now.end()));
  }
  batch.commit();
  if (method == "disagreement") last_disagreement_ = mean_of(scores);
  times->db += seconds_since(td);
}

const std::vector<std::vector<float>>& Queries::labeled_features() {
  // Pairs claimed so far (a resumed run's replay sees what the stopped run saw when it asked);
  // clips of another length (an imported dataset's) are not comparable and left out.
  const int64_t features = pool_.size() > 0 ? 2 * static_cast<int64_t>(pool_.at(0).length) * pool_.at(0).obs_size : 0;
  for (LabeledPair& p : db_.labeled_pairs(features_upto_)) {
    if (p.label_id > last_label_id_) break;
    features_upto_ = p.label_id;
    std::vector<float> f = pair_features(p.left, p.right);
    if (static_cast<int64_t>(f.size()) == features || features == 0) labeled_features_.push_back(std::move(f));
  }
  return labeled_features_;
}

std::vector<LabeledPair> Queries::take_final(PhaseTimes* times) {
  const auto td = Clock::now();
  // Claim (mark used) every label committed since the last round that is final by now
  // (people's labels only once they are older than the undo window).
  const double before = teacher_.final_before();
  std::vector<LabeledPair> fresh = std::move(claimed_);
  claimed_.clear();
  std::vector<LabeledPair> more = db_.claim_labels(last_label_id_, before, &last_label_id_, label_bound_);
  fresh.insert(fresh.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  times->db += seconds_since(td);
  return fresh;
}

size_t Queries::resume(int64_t last_label_id, int64_t labels_requested, int64_t after_query_id, bool from_checkpoint,
                     std::vector<LabeledPair>* had) {
  // The labels the restored reward model was trained on, in the order it got them.
  last_label_id_ = last_label_id;
  labels_requested_ = labels_requested;
  if (from_checkpoint)
    for (LabeledPair& p : db_.labeled_pairs(0)) if (p.label_id <= last_label_id_) had->push_back(std::move(p));
  // Labels claimed after the checkpoint are claimed again (the restored model lacks them).
  db_.unclaim_labels_after(last_label_id_);
  std::vector<Query> after = db_.queries_after(after_query_id);
  if (!teacher_.repeatable()) {
    labels_requested_ += static_cast<int64_t>(after.size());  // asked; the answers arrive through the store
    // Clips of the pool stored after the checkpoint keep their ids (they are not stored twice).
    for (const Query& q : after) {
      for (int64_t id : {q.left_id, q.right_id}) {
        const std::optional<Segment> stored = db_.get_segment(id);
        for (size_t k = 0; stored && k < pool_.size(); ++k) {
          const Segment& p = pool_.at(k);
          if (p.id < 0 && p.env_step == stored->env_step && p.env_index == stored->env_index && p.same_obs(*stored))
            pool_.set_id(k, id);
        }
      }
    }
  } else if (!after.empty()) {
    replay_ = after;
    for (const Label& l : db_.labels()) replay_answers_[l.query_id] = {l.id, l.choice};
    label_bound_ = last_label_id_;
  }
  return after.size();
}

}  // namespace prefrl
