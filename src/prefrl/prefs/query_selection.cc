// Query selection (which pairs to ask about) and the label schedule (how many, when).
#include "prefrl/prefs/query_selection.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "prefrl/core/error.h"

namespace prefrl {
namespace {

// Number of unordered pairs of distinct segments among n: n(n-1)/2.
uint64_t max_pairs(uint64_t n) { return n < 2 ? 0 : n * (n - 1) / 2; }

// Draws `m` distinct unordered pairs of distinct pool indices (m <= n(n-1)/2), each with a
// random left/right order. Deterministic given rng.
std::vector<CandidatePair> sample_pairs(uint64_t n, uint64_t m, Rng& rng) {
  std::vector<CandidatePair> out;
  out.reserve(m);
  const uint64_t all = max_pairs(n);
  if (m * 2 > all) {
    // Dense: enumerate every pair, take a uniform prefix of a partial shuffle.
    std::vector<CandidatePair> every;
    every.reserve(all);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i + 1; j < n; ++j) every.push_back({i, j, 0.0});
    for (uint64_t k = 0; k < m; ++k) {
      std::swap(every[k], every[k + rng.integer(all - k)]);
      CandidatePair p = every[k];
      if (rng.integer(2)) std::swap(p.left, p.right);
      out.push_back(p);
    }
    return out;
  }
  // Sparse: rejection sampling; at least half of all pairs are still free at every draw.
  std::unordered_set<uint64_t> seen;
  seen.reserve(m * 2);
  while (out.size() < m) {
    const uint64_t a = rng.integer(n);
    uint64_t b = rng.integer(n - 1);
    if (b >= a) ++b;
    const uint64_t key = std::min(a, b) * n + std::max(a, b);
    if (seen.insert(key).second) out.push_back({static_cast<size_t>(a), static_cast<size_t>(b), 0.0});
  }
  return out;
}

// Throws UsageError unless the schedule's fields are usable.
void check_schedule(const LabelSchedule& s) {
  if (s.total_labels < 0)
    throw UsageError("label schedule: total_labels " + std::to_string(s.total_labels) + " must be >= 0");
  if (!(s.initial_fraction >= 0.0 && s.initial_fraction <= 1.0))
    throw UsageError("label schedule: initial_fraction " + std::to_string(s.initial_fraction) +
                     " must be in [0, 1]");
  if (s.kind != "hyperbolic" && s.kind != "constant" && s.kind != "all_upfront")
    throw UsageError("label schedule: kind '" + s.kind + "' is not one of: hyperbolic, constant, all_upfront");
  if (s.kind == "hyperbolic" && !(s.horizon > 0.0 && std::isfinite(s.horizon)))
    throw UsageError("label schedule: hyperbolic horizon " + std::to_string(s.horizon) +
                     " must be a positive number");
}

// Scores the candidates with `fn` (NaN ranks last) and sorts them highest first, equal scores in
// sampling order.
void rank(const SegmentPool& pool, std::vector<CandidatePair>& cands, const DisagreementFn& fn, const char* what) {
  if (!fn) throw UsageError(std::string("select_pairs: selection by ") + what + " needs a scoring function");
  const std::vector<double> s = fn(pool, cands);
  if (s.size() != cands.size())
    throw RuntimeError("select_pairs: scoring function returned " + std::to_string(s.size()) + " scores for " +
                       std::to_string(cands.size()) + " candidate pairs");
  for (size_t i = 0; i < cands.size(); ++i)
    cands[i].score = std::isnan(s[i]) ? -std::numeric_limits<double>::infinity() : s[i];
  std::stable_sort(cands.begin(), cands.end(),
                   [](const CandidatePair& a, const CandidatePair& b) { return a.score > b.score; });
}

double squared_distance(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0.0;
  for (size_t k = 0; k < a.size(); ++k) {
    const double x = static_cast<double>(a[k]) - b[k];
    d += x * x;
  }
  return d;
}

// B-Pref's KCenterGreedy: `want` of the candidates, each the farthest from its nearest centre.
std::vector<CandidatePair> kcenter(const SegmentPool& pool, std::vector<CandidatePair> cands, uint64_t want,
                                   const std::vector<std::vector<float>>* labeled) {
  std::vector<std::vector<float>> f;
  f.reserve(cands.size());
  for (const CandidatePair& c : cands) f.push_back(pair_features(pool.at(c.left), pool.at(c.right)));
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> nearest(cands.size(), inf);  // squared distance to the nearest centre
  if (labeled)
    for (const std::vector<float>& centre : *labeled) {
      if (centre.size() != f.front().size())
        throw RuntimeError("select_pairs: a labeled pair's k-center features have " + std::to_string(centre.size()) +
                           " values, the candidates' " + std::to_string(f.front().size()) +
                           " (clips of another length or observation size)");
      for (size_t i = 0; i < f.size(); ++i) nearest[i] = std::min(nearest[i], squared_distance(f[i], centre));
    }
  std::vector<CandidatePair> out;
  std::vector<bool> taken(cands.size(), false);
  while (out.size() < want) {
    size_t best = cands.size();
    for (size_t i = 0; i < cands.size(); ++i)
      if (!taken[i] && (best == cands.size() || nearest[i] > nearest[best])) best = i;  // first of equals
    taken[best] = true;
    CandidatePair chosen = cands[best];
    chosen.score = std::isinf(nearest[best]) ? 0.0 : std::sqrt(nearest[best]);
    out.push_back(chosen);
    for (size_t i = 0; i < cands.size(); ++i)
      if (!taken[i]) nearest[i] = std::min(nearest[i], squared_distance(f[i], f[best]));
  }
  return out;
}

}  // namespace

std::vector<float> pair_features(const Segment& left, const Segment& right) {
  std::vector<float> out, scratch;
  out.reserve(static_cast<size_t>((left.length + right.length) * left.obs_size));
  for (const Segment* s : {&left, &right})
    for (int t = 0; t < s->length; ++t) {
      const float* row = s->obs_row(t, &scratch);
      out.insert(out.end(), row, row + s->obs_size);
    }
  return out;
}

const std::vector<std::string>& selection_methods() {
  static const std::vector<std::string> kAll = {"uniform", "disagreement", "entropy", "kcenter",
                                                "kcenter_disagreement", "kcenter_entropy"};
  return kAll;
}

std::vector<CandidatePair> select_pairs(const SegmentPool& pool, int count, const std::string& method,
                                        double oversample, const QueryScorer& scorer, Rng& rng) {
  const auto& methods = selection_methods();
  if (std::find(methods.begin(), methods.end(), method) == methods.end()) {
    std::string known;
    for (const std::string& m : methods) known += (known.empty() ? "" : ", ") + m;
    throw UsageError("select_pairs: method '" + method + "' is not one of: " + known);
  }
  if (count < 0) throw UsageError("select_pairs: count " + std::to_string(count) + " must be >= 0");
  const uint64_t n = pool.size();
  const uint64_t all = max_pairs(n);
  const uint64_t want = std::min<uint64_t>(static_cast<uint64_t>(count), all);
  if (want == 0) return {};
  if (method == "uniform") return sample_pairs(n, want, rng);

  if (!(oversample >= 1.0))
    throw UsageError("select_pairs: oversample " + std::to_string(oversample) + " must be >= 1");
  if (method == "disagreement" && !scorer.disagreement)
    throw UsageError("select_pairs: method 'disagreement' needs a scoring function");
  const double m_real = std::ceil(static_cast<double>(want) * oversample);
  const uint64_t m = m_real >= static_cast<double>(all) ? all : static_cast<uint64_t>(m_real);
  std::vector<CandidatePair> cands = sample_pairs(n, m, rng);
  if (method == "disagreement" || method == "entropy") {
    rank(pool, cands, method == "disagreement" ? scorer.disagreement : scorer.entropy, method.c_str());
    cands.resize(want);
    return cands;
  }
  if (method != "kcenter") {  // the more informative half first (at least `want`)
    const bool by_disagreement = method == "kcenter_disagreement";
    rank(pool, cands, by_disagreement ? scorer.disagreement : scorer.entropy,
         by_disagreement ? "disagreement" : "entropy");
    cands.resize(std::max<size_t>(want, cands.size() / 2));
  }
  return kcenter(pool, std::move(cands), want, scorer.labeled);
}

std::vector<CandidatePair> select_pairs(const SegmentPool& pool, int count, const std::string& method,
                                        double oversample, const DisagreementFn& score, Rng& rng) {
  QueryScorer scorer;
  scorer.disagreement = score;
  return select_pairs(pool, count, method, oversample, scorer, rng);
}

int LabelSchedule::initial_labels() const {
  check_schedule(*this);
  if (total_labels == 0) return 0;
  if (kind == "all_upfront") return total_labels;
  int n = static_cast<int>(std::llround(total_labels * initial_fraction));
  if (initial_fraction > 0.0) n = std::max(n, 1);
  return std::min(n, total_labels);
}

int LabelSchedule::target_labels(int64_t env_step) const {
  const int init = initial_labels();
  if (env_step >= total_steps) return total_labels;  // exact at the end (and if total_steps <= 0)
  if (env_step <= 0) return init;
  const double T = static_cast<double>(env_step), S = static_cast<double>(total_steps);
  double frac;  // share of the remaining labels due by T, in [0, 1]
  if (kind == "hyperbolic") {
    // Rate ∝ 1/(T + h) => cumulative ∝ log((T + h) / h), normalised to 1 at T = total_steps.
    frac = std::log1p(T / horizon) / std::log1p(S / horizon);
  } else {
    frac = T / S;  // "constant"; "all_upfront" has no remaining labels
  }
  frac = std::clamp(frac, 0.0, 1.0);
  const int rest = total_labels - init;
  const int n = init + static_cast<int>(std::floor(rest * frac));
  return std::clamp(n, init, total_labels);
}

}  // namespace prefrl
