// RewardModel: stored labeled pairs => ensemble training rounds => normalised rewards.
//
// Data path of one label: add_pairs() encodes both clips once into the packed tensor
// `rows` (pairs x 2 x L x F; for a conv net on byte observations, the image part as bytes in
// `img` and the rest in `rows`, a quarter of the memory) and draws its split and bootstrap
// counts; with reward.max_pairs, the newest pair takes the slot of the oldest once the buffer
// is full. Every round,
// train_round() gathers shuffled minibatches from `rows`, evaluates all steps of all pairs of
// the minibatch for all members in one forward pass (M x B*2*L), and takes one Adam step on
// the sum over members of each member's bootstrap-weighted Bradley–Terry loss. For plain MLP
// nets (reward.fast_mlp, the default) forward, loss, backward and Adam are hand-written
// (fast_mlp.h, checked against this LibTorch path in tests/reward/test_fast_mlp.cc), and so is
// every no-grad forward pass (raw_eval).
//
// Training uses raw member outputs. The loss only sees differences of returns, so it is
// invariant to a shift of r̂ but not to its scale: the raw scale is what the preferences
// determined. update_normalisation() then maps each member to mean 0, std output_std on
// recent states, and everything the policy or query selection sees (predict,
// segment_returns, disagreement) uses those normalised outputs.
//
// Randomness: three prefrl::Rng streams derived from the constructor seed — init (weights),
// split (validation split and bootstrap counts, one draw sequence per pair in arrival order,
// so adding pairs incrementally never changes earlier pairs) and train (shuffles and dropout
// masks). Nothing depends on global torch RNG state; with one thread, same seed => same
// results.
#include "prefrl/reward/reward_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <unordered_map>

#include <sys/mman.h>

#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/reward/ensemble_net.h"
#include "prefrl/reward/fast_mlp.h"

namespace prefrl {

namespace {
constexpr uint64_t kInitStream = 1, kSplitStream = 2, kTrainStream = 3;  // Rng streams
// Activation floats per forward pass (64 MB in all): inference runs in chunks of rows and a
// training minibatch in chunks of pairs under this, which keeps each single activation
// tensor well under glibc's largest mmap threshold (32 MB); bigger blocks are mmapped and
// unmapped on every allocation, and the page faults then dominate the run time.
constexpr int64_t kChunkFloats = int64_t{1} << 24;
constexpr double kStdFloor = 1e-8;                  // floor of a member's output std
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Zeros of the given shape in their own anonymous memory mapping, unmapped when the tensor is
// freed: the label buffer (GBs for pixel clips) is then resident only as far as it is filled,
// and a buffer outgrown by doubling goes back to the OS instead of staying in the heap (the
// process keeps freed heap memory: core/allocator.h). Blocks under 1 MB come from the heap.
torch::Tensor mapped_zeros(const std::vector<int64_t>& shape, torch::ScalarType type) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const size_t bytes = static_cast<size_t>(n) * c10::elementSize(type);
  if (bytes < (size_t{1} << 20)) return torch::zeros(shape, type);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw RuntimeError("reward model: cannot map " + std::to_string(bytes) + " bytes for the label buffer");
  return torch::from_blob(p, shape, [bytes](void* q) { ::munmap(q, bytes); }, torch::TensorOptions().dtype(type));
}

// One Poisson(1) draw (Knuth's product of uniforms): a pair's online-bootstrap count.
int poisson1(Rng& rng) {
  const double limit = std::exp(-1.0);
  int k = 0;
  double p = rng.uniform();
  while (p > limit) {
    ++k;
    p *= rng.uniform();
  }
  return k;
}

// A CPU int64 tensor holding a copy of v: (n).
torch::Tensor index_tensor(const std::vector<int64_t>& v) {
  return torch::tensor(v, torch::kInt64);
}

// Rng state <=> int64 tensor (6), bit for bit.
torch::Tensor rng_to_tensor(const Rng& rng) {
  std::vector<uint64_t> s = rng.state();
  std::vector<int64_t> v(s.size());
  std::memcpy(v.data(), s.data(), s.size() * sizeof(uint64_t));
  return torch::tensor(v, torch::kInt64);
}
void rng_from_tensor(const torch::Tensor& t, Rng* rng) {
  torch::Tensor c = t.to(torch::kInt64).contiguous();
  std::vector<uint64_t> s(static_cast<size_t>(c.numel()));
  std::memcpy(s.data(), c.data_ptr<int64_t>(), s.size() * sizeof(uint64_t));
  rng->set_state(s);
}
}  // namespace

struct RewardModel::Impl {
  // A pair's split: held out, or trained on with these per-member bootstrap counts.
  struct Assignment {
    bool validation = false;
    std::vector<float> weights;  // (M)
  };

  RewardConfig cfg;
  std::vector<int64_t> obs_shape;
  int64_t obs_size = 0;    // D: floats per observation
  int64_t act_size = 0;    // A: floats per action as given
  bool discrete = false;
  int64_t n_actions = 0;
  int64_t act_width = 0;   // A': encoded action floats (one-hot n_actions, A, or 0 without actions)
  int64_t row_width = 0;   // F = D + A' + 1 (absorbing flag last)
  bool can_terminate = false;
  int64_t M = 0;           // ensemble members
  Rng split_rng, train_rng;
  std::unique_ptr<reward_detail::EnsembleNet> net;
  std::unique_ptr<reward_detail::FastEnsembleMlp> fast;  // the hand-written path, if it applies
  double l2 = 0;
  torch::Tensor norm_mean;  // (M) raw-output mean per member
  torch::Tensor norm_std;   // (M) raw-output std per member (floored)
  // standardise_inputs: per-input mean and 1/std of observation and action values (D + A'),
  // set from the first labeled batch; empty until then (inputs enter unscaled).
  std::vector<float> in_mean, in_inv_std;
  mutable std::vector<float> obs_scratch;  // one step's observation decoded from bytes (uint8 spaces)

  // Stored pairs, in slots: in order added until max_pairs is reached, then each new pair in
  // the slot of the oldest (slot = arrival index % max_pairs); capacity grows by doubling.
  int64_t seg_len = 0;      // L shared by every stored clip
  int64_t n_pairs = 0;      // pairs held (slots in use)
  int64_t n_arrived = 0;    // pairs ever added
  // Whether the image part of every step is kept as bytes (img) and rows holds only the rest
  // (a conv trunk on byte observations: pixels); decided by the first pair added.
  bool bytes_store = false;
  int64_t tail_width = 0;   // floats of a row kept in rows: F, or F - D with bytes_store
  torch::Tensor rows;       // (capacity x 2 x L x tail_width) encoded steps, left clip then right
  torch::Tensor img;        // bytes_store: (capacity x 2 x L x D) uint8, the observation bytes
  std::vector<int64_t> hidden;  // observation elements hidden from the net (entered as 0)
  // Assignments of pairs dropped from the buffer (by label id), kept so that a resumed run,
  // which adds every label again, gives each the split it had.
  std::map<int64_t, Assignment> evicted_by_label;
  torch::Tensor targets;    // (capacity) P(left better)
  torch::Tensor weights;    // (capacity x M) bootstrap counts; 0 for validation pairs
  std::vector<uint8_t> is_val;      // (P)
  std::vector<int64_t> label_ids;   // (P)
  std::vector<int64_t> train_idx, val_idx;
  // Raw outputs (M x P*2*L) of every step of the first `labeled_raw_pairs` stored pairs under
  // the current parameters, from train_round's statistics pass (undefined when stale): reused
  // by update_normalisation_on_labeled, which needs outputs of the same steps.
  torch::Tensor labeled_raw;
  int64_t labeled_raw_pairs = -1;
  // With stats_pairs: the slots (K) whose steps labeled_raw holds instead (the newest pairs);
  // the output normalisation is then computed over them.
  torch::Tensor labeled_raw_slots;
  torch::Tensor raw_returns_cache;  // the statistics pass's raw outputs with stats_pairs
  // Assignments from a loaded checkpoint for pairs not (yet) held: by label id, and by
  // position for pairs without one.
  std::map<int64_t, Assignment> saved_by_label, saved_by_position;

  // Encodes one step into row (F floats): [obs, action encoding, 0], or zeros and flag 1 if absorbing.
  void encode_step(const float* obs, const float* act, bool absorbing, float* row) const {
    std::fill(row, row + row_width, 0.0f);
    if (absorbing) {
      row[row_width - 1] = 1.0f;
      return;
    }
    std::memcpy(row, obs, sizeof(float) * obs_size);
    for (int64_t j : hidden) row[j] = 0.0f;
    if (act_width == 0) { standardise(row); return; }
    if (act == nullptr) throw UsageError("reward model uses actions (use_action=true) but no actions were given");
    float* a = row + obs_size;
    if (discrete) {
      const float v = act[0];
      if (!(v >= 0.0f && v < static_cast<float>(n_actions)) || v != std::floor(v)) {
        throw UsageError("discrete action " + std::to_string(v) + " is not an integer in [0, " +
                         std::to_string(n_actions) + ")");
      }
      a[static_cast<int64_t>(v)] = 1.0f;
    } else {
      std::memcpy(a, act, sizeof(float) * act_size);
    }
    standardise(row);
  }
  void standardise(float* row) const {
    if (in_mean.empty()) return;
    for (size_t j = 0; j < in_mean.size(); ++j) row[j] = (row[j] - in_mean[j]) * in_inv_std[j];
  }
  // Input statistics from the real steps of `pairs` (standardise_inputs; first batch only).
  // Inputs that do not vary (std < 1e-6) are centred but not scaled.
  void set_input_stats(const std::vector<LabeledPair>& pairs) {
    const int64_t W = row_width - 1;
    std::vector<double> sum(W, 0.0), sq(W, 0.0);
    std::vector<float> row(row_width);
    int64_t n = 0;
    for (const LabeledPair& p : pairs) {
      for (const Segment* s : {&p.left, &p.right}) {
        for (int t = 0; t < s->length; ++t) {
          if (!s->absorbing.empty() && s->absorbing[t]) continue;
          encode_step(s->obs_row(t, &obs_scratch), act_width ? s->actions.data() + t * act_size : nullptr, false,
                      row.data());
          for (int64_t j = 0; j < W; ++j) { sum[j] += row[j]; sq[j] += double(row[j]) * row[j]; }
          ++n;
        }
      }
    }
    if (n == 0) return;  // only absorbing steps so far: wait for a batch with real ones
    in_mean.assign(W, 0.0f);
    in_inv_std.assign(W, 1.0f);
    for (int64_t j = 0; j < W; ++j) {
      const double mean = sum[j] / n, var = std::max(0.0, sq[j] / n - mean * mean), sd = std::sqrt(var);
      in_mean[j] = static_cast<float>(mean);
      in_inv_std[j] = sd < 1e-6 ? 1.0f : static_cast<float>(1.0 / sd);
    }
  }

  // n ordinary steps (+ `absorbing_rows` absorbing rows at the end) => rows (n+extra x F).
  torch::Tensor encode_steps(const float* obs, const float* act, int64_t n, int64_t absorbing_rows) const {
    torch::Tensor out = torch::empty({n + absorbing_rows, row_width}, torch::kFloat32);
    float* p = out.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      encode_step(obs + i * obs_size, act ? act + i * act_size : nullptr, false, p + i * row_width);
    }
    for (int64_t i = n; i < n + absorbing_rows; ++i) encode_step(nullptr, nullptr, true, p + i * row_width);
    return out;
  }

  // Checks a segment's shapes and values; names the segment and what was expected.
  void check_segment(const Segment& s) const {
    const std::string who = "segment " + std::to_string(s.id);
    const size_t L = static_cast<size_t>(std::max(s.length, 0));
    if (s.length <= 0) throw UsageError(who + ": length must be positive, got " + std::to_string(s.length));
    if (s.obs_size != obs_size || s.obs_count() != L * obs_size || (s.obs_in_bytes() && !s.obs.empty())) {
      throw UsageError(who + ": expected " + std::to_string(L) + " x " + std::to_string(obs_size) +
                       " observation values, got obs_size " + std::to_string(s.obs_size) + " and " +
                       std::to_string(s.obs.size()) + " floats, " + std::to_string(s.obs_bytes.size()) + " bytes");
    }
    if (act_width > 0 && (s.act_size != act_size || s.actions.size() != L * act_size)) {
      throw UsageError(who + ": expected " + std::to_string(L) + " x " + std::to_string(act_size) +
                       " action floats, got act_size " + std::to_string(s.act_size) + " and " +
                       std::to_string(s.actions.size()) + " floats");
    }
    if (!s.absorbing.empty() && s.absorbing.size() != L) {
      throw UsageError(who + ": expected " + std::to_string(L) + " absorbing flags, got " +
                       std::to_string(s.absorbing.size()));
    }
    for (size_t t = 0; t < L; ++t) {
      if (!s.absorbing.empty() && s.absorbing[t]) continue;
      if (discrete && act_width > 0) {
        const float v = s.actions[t];
        if (!(v >= 0.0f && v < static_cast<float>(n_actions)) || v != std::floor(v)) {
          throw UsageError(who + ": discrete action " + std::to_string(v) + " of step " + std::to_string(t) +
                           " is not an integer in [0, " + std::to_string(n_actions) + ")");
        }
      }
      for (int64_t j = 0; j < obs_size && !s.obs_in_bytes(); ++j) {  // bytes are always finite
        if (!std::isfinite(s.obs[t * obs_size + j])) {
          throw UsageError(who + ": observation " + std::to_string(j) + " of step " + std::to_string(t) +
                           " is " + std::to_string(s.obs[t * obs_size + j]) + "; expected a finite number");
        }
      }
    }
  }

  // Stores a segment's L steps in storage slot (pair i, side 0 left / 1 right).
  void store_segment(const Segment& s, int64_t i, int side) {
    const int64_t L = seg_len, at = (2 * i + side) * L;
    if (!bytes_store) {
      encode_segment(s, rows.data_ptr<float>() + at * row_width);
      return;
    }
    std::vector<float> row(static_cast<size_t>(row_width));
    uint8_t* ib = img.data_ptr<uint8_t>() + at * obs_size;
    float* tail = rows.data_ptr<float>() + at * tail_width;
    for (int t = 0; t < s.length; ++t) {
      const bool absorbing = !s.absorbing.empty() && s.absorbing[t];
      uint8_t* b = ib + t * obs_size;
      if (absorbing) {
        std::memset(b, 0, static_cast<size_t>(obs_size));
      } else if (s.obs_in_bytes()) {
        std::memcpy(b, s.obs_bytes.data() + t * obs_size, static_cast<size_t>(obs_size));
      } else {
        for (int64_t j = 0; j < obs_size; ++j) {
          if (!obs_to_byte(s.obs[t * obs_size + j], b + j))
            throw UsageError("segment " + std::to_string(s.id) + ": observation " + std::to_string(j) + " of step " +
                             std::to_string(t) + " is not a byte / 255, as earlier clips of this model were");
        }
      }
      for (int64_t j : hidden) b[j] = 0;
      // The rest of the row: the action encoding and the absorbing flag.
      encode_step(absorbing ? nullptr : s.obs_row(t, &obs_scratch),
                  act_width && !absorbing ? s.actions.data() + t * act_size : nullptr, absorbing, row.data());
      std::memcpy(tail + t * tail_width, row.data() + obs_size, sizeof(float) * tail_width);
    }
  }

  // Float rows (K x 2 x L x F) of the stored pairs in slots idx (K).
  torch::Tensor stored_rows(const torch::Tensor& idx) const {
    if (!bytes_store) return rows.index_select(0, idx);
    const int64_t K = idx.size(0), L = seg_len, n = K * 2 * L;
    torch::Tensor out = torch::empty({K, 2, L, row_width}, torch::kFloat32);
    const torch::Tensor ic = idx.contiguous();
    const int64_t* slots = ic.data_ptr<int64_t>();
    float* o = out.data_ptr<float>();
    for (int64_t r = 0; r < n; ++r) decode_step(slots[r / (2 * L)] * 2 * L + r % (2 * L), o + r * row_width);
    return out;
  }
  // bytes_store: the float row (F) of stored step `step` (of all held steps, pair-major) into dst.
  void decode_step(int64_t step, float* dst) const {
    static const std::array<float, 256> kLut = [] {
      std::array<float, 256> t{};
      for (int b = 0; b < 256; ++b) t[b] = byte_to_obs(static_cast<uint8_t>(b));
      return t;
    }();
    const uint8_t* b = img.data_ptr<uint8_t>() + step * obs_size;
    for (int64_t j = 0; j < obs_size; ++j) dst[j] = kLut[b[j]];
    std::memcpy(dst + obs_size, rows.data_ptr<float>() + step * tail_width, sizeof(float) * tail_width);
  }
  // The same for slots [first, first + count).
  torch::Tensor stored_rows(int64_t first, int64_t count) const {
    if (!bytes_store) return rows.narrow(0, first, count);
    return stored_rows(torch::arange(first, first + count, torch::kInt64));
  }
  // The absorbing flag of every step of the held pairs: (n_pairs*2*L).
  torch::Tensor stored_absorbing() const {
    return rows.narrow(0, 0, n_pairs).reshape({-1, tail_width}).select(1, tail_width - 1);
  }

  // Raw member outputs (M x K*2*L) of every step of the stored pairs in slots idx (K), in chunks
  // of pairs (bytes are decoded one chunk at a time).
  torch::Tensor raw_eval_pairs(const torch::Tensor& idx) const {
    const int64_t K = idx.size(0), L = seg_len;
    const int64_t chunk = bytes_store ? std::max<int64_t>(1, kChunkFloats / (2 * L * row_width)) : std::max<int64_t>(K, 1);
    std::vector<torch::Tensor> parts;
    for (int64_t c = 0; c < K; c += chunk) {
      const int64_t n = std::min(chunk, K - c);
      parts.push_back(raw_eval(stored_rows(idx.narrow(0, c, n)).reshape({n * 2 * L, row_width})));
    }
    if (parts.empty()) return torch::zeros({M, 0}, torch::kFloat32);
    return parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
  }

  // Forgets the statistics pass's outputs (stale once parameters or pairs change).
  void drop_labeled_raw() {
    labeled_raw = torch::Tensor();
    labeled_raw_pairs = -1;
    labeled_raw_slots = torch::Tensor();
    raw_returns_cache = torch::Tensor();
  }

  // Slots of the held pairs, newest last (the ring's order once max_pairs is reached).
  std::vector<int64_t> slots_oldest_first() const {
    std::vector<int64_t> out;
    const int64_t first = n_arrived - n_pairs;
    for (int64_t a = first; a < n_arrived; ++a) out.push_back(cfg.max_pairs > 0 ? a % cfg.max_pairs : a);
    return out;
  }

  // Encodes a segment's L steps into dst (L x F).
  void encode_segment(const Segment& s, float* dst) const {
    for (int t = 0; t < s.length; ++t) {
      const bool absorbing = !s.absorbing.empty() && s.absorbing[t];
      encode_step(s.obs_row(t, &obs_scratch), act_width ? s.actions.data() + t * act_size : nullptr,
                  absorbing, dst + t * row_width);
    }
  }

  // Segments of any lengths => {rows (N x F), segment index of each row (N)}.
  std::pair<torch::Tensor, torch::Tensor> encode_segments(const std::vector<const Segment*>& segs) const {
    int64_t n = 0;
    for (const Segment* s : segs) {
      check_segment(*s);
      n += s->length;
    }
    torch::Tensor out = torch::empty({n, row_width}, torch::kFloat32);
    std::vector<int64_t> owner(static_cast<size_t>(n));
    int64_t at = 0;
    for (size_t k = 0; k < segs.size(); ++k) {
      encode_segment(*segs[k], out.data_ptr<float>() + at * row_width);
      std::fill(owner.begin() + at, owner.begin() + at + segs[k]->length, static_cast<int64_t>(k));
      at += segs[k]->length;
    }
    return {out, index_tensor(owner)};
  }

  // Raw member outputs without dropout or autograd, in memory-bounded chunks: (N x F) => (M x N).
  torch::Tensor raw_eval(const torch::Tensor& x) const {
    torch::NoGradGuard no_grad;
    const int64_t N = x.size(0);
    if (fast) {
      const torch::Tensor xc = x.contiguous();
      torch::Tensor out = torch::empty({M, N}, torch::kFloat32);
      fast->forward(xc.data_ptr<float>(), N, out.data_ptr<float>());
      return out;
    }
    const int64_t chunk = std::max<int64_t>(1, kChunkFloats / net->activation_floats_per_row());
    if (N <= chunk) return net->forward(x, {});
    std::vector<torch::Tensor> parts;
    for (int64_t s = 0; s < N; s += chunk) parts.push_back(net->forward(x.narrow(0, s, std::min(chunk, N - s)), {}));
    return torch::cat(parts, 1);
  }

  // Raw outputs => normalised: (M x N) => (M x N).
  torch::Tensor normalise(const torch::Tensor& raw) const {
    return (raw - norm_mean.unsqueeze(1)) / norm_std.unsqueeze(1) * cfg.output_std;
  }

  // One inverted-dropout multiplier per member, hidden layer and unit: {(M x 1 x h_i)}; empty if no dropout.
  std::vector<torch::Tensor> draw_masks() {
    std::vector<torch::Tensor> masks;
    if (cfg.dropout <= 0.0) return masks;
    const double keep = 1.0 - cfg.dropout;
    const float scale = static_cast<float>(1.0 / keep);
    for (int h : cfg.hidden) {
      std::vector<float> m(static_cast<size_t>(M * h));
      for (float& v : m) v = train_rng.uniform() < keep ? scale : 0.0f;
      masks.push_back(torch::tensor(m, torch::kFloat32).view({M, 1, h}));
    }
    return masks;
  }

  // How a training minibatch of `pairs` pairs goes through the net: the head's dropout masks
  // (one per minibatch), one conv dropout mask per pair (both clips, every step), and batch
  // norm on the minibatch's own statistics. update_running: batch norm's running statistics
  // follow (a real update; not when only evaluating as one would).
  reward_detail::ForwardMode training_mode(int64_t pairs, bool update_running) {
    reward_detail::ForwardMode mode;
    mode.fc_masks = draw_masks();
    mode.batch_stats = cfg.batch_norm;
    mode.update_running = update_running;
    if (cfg.conv_dropout > 0.0) {
      const double keep = 1.0 - cfg.conv_dropout;
      const float scale = static_cast<float>(1.0 / keep);
      for (const auto& o : net->conv_outputs()) {
        torch::Tensor mk = torch::empty({pairs, M * o.c, o.h, o.w}, torch::kFloat32);
        float* v = mk.data_ptr<float>();
        for (int64_t k = 0; k < mk.numel(); ++k) v[k] = train_rng.uniform() < keep ? scale : 0.0f;
        mode.conv_masks.push_back(mk);
      }
    }
    return mode;
  }

  // Raw returns of stored pairs idx without dropout => (M x |idx| x 2).
  torch::Tensor stored_returns(const torch::Tensor& idx) const {
    return raw_eval_pairs(idx).view({M, idx.size(0), 2, seg_len}).sum(3);
  }

  // Ensemble accuracy of raw returns (M x P x 2) against targets (P), ties excluded; NaN if none.
  static double ensemble_accuracy(const torch::Tensor& ret, const torch::Tensor& target) {
    torch::Tensor p = torch::sigmoid(ret.select(2, 0) - ret.select(2, 1)).mean(0).contiguous();  // (P)
    torch::Tensor t = target.contiguous();
    const float* pp = p.data_ptr<float>();
    const float* tp = t.data_ptr<float>();
    double correct = 0.0;
    int64_t counted = 0;
    for (int64_t i = 0; i < p.numel(); ++i) {
      if (tp[i] == 0.5f) continue;
      ++counted;
      if (pp[i] == 0.5f) correct += 0.5;
      else if ((pp[i] > 0.5f) == (tp[i] > 0.5f)) correct += 1.0;
    }
    return counted ? correct / counted : kNaN;
  }

  // Rebuilds the train/validation index lists from is_val.
  void rebuild_split() {
    train_idx.clear();
    val_idx.clear();
    for (int64_t i = 0; i < n_pairs; ++i) (is_val[i] ? val_idx : train_idx).push_back(i);
  }

  // The saved assignment of a pair (by label id, or by position without one), if any.
  const Assignment* saved_assignment(int64_t label_id, int64_t position) const {
    const auto& map = label_id >= 0 ? saved_by_label : saved_by_position;
    auto it = map.find(label_id >= 0 ? label_id : position);
    return it == map.end() ? nullptr : &it->second;
  }

  // Sets stored pair i's split and bootstrap counts.
  void apply_assignment(int64_t i, const Assignment& a) {
    is_val[i] = a.validation ? 1 : 0;
    std::copy(a.weights.begin(), a.weights.end(), weights.data_ptr<float>() + i * M);
  }

  // Draws a new pair's split and bootstrap counts from split_rng.
  Assignment draw_assignment() {
    Assignment a;
    a.validation = split_rng.uniform() < cfg.val_fraction;
    a.weights.assign(static_cast<size_t>(M), a.validation ? 0.0f : 1.0f);
    if (!a.validation && cfg.bootstrap) {
      for (float& w : a.weights) w = static_cast<float>(poisson1(split_rng));
    }
    return a;
  }

  // Makes room for `needed` pairs in the packed tensors (at most max_pairs, when set).
  void reserve(int64_t needed) {
    if (cfg.max_pairs > 0) needed = std::min<int64_t>(needed, cfg.max_pairs);
    const int64_t cap = rows.defined() ? rows.size(0) : 0;
    if (needed <= cap) return;
    int64_t new_cap = std::max<int64_t>({16, 2 * cap, needed});
    if (cfg.max_pairs > 0) new_cap = std::min<int64_t>(new_cap, cfg.max_pairs);
    torch::Tensor r = mapped_zeros({new_cap, 2, seg_len, tail_width}, torch::kFloat32);
    torch::Tensor im = bytes_store ? mapped_zeros({new_cap, 2, seg_len, obs_size}, torch::kUInt8) : torch::Tensor();
    torch::Tensor t = torch::zeros({new_cap}, torch::kFloat32);
    torch::Tensor w = torch::zeros({new_cap, M}, torch::kFloat32);
    if (n_pairs > 0) {
      r.narrow(0, 0, n_pairs).copy_(rows.narrow(0, 0, n_pairs));
      if (bytes_store) im.narrow(0, 0, n_pairs).copy_(img.narrow(0, 0, n_pairs));
      t.narrow(0, 0, n_pairs).copy_(targets.narrow(0, 0, n_pairs));
      w.narrow(0, 0, n_pairs).copy_(weights.narrow(0, 0, n_pairs));
    }
    rows = r;
    img = im;
    targets = t;
    weights = w;
  }

  // The slot the next pair goes to: a new one, or (the buffer full) the oldest pair's, which is
  // dropped from the split and its assignment kept for a resumed run.
  int64_t take_slot() {
    if (cfg.max_pairs <= 0 || n_arrived < cfg.max_pairs) {
      label_ids.push_back(-1);
      is_val.push_back(0);
      return n_pairs++;
    }
    const int64_t slot = n_arrived % cfg.max_pairs;
    auto& list = is_val[slot] ? val_idx : train_idx;
    list.erase(std::find(list.begin(), list.end(), slot));
    if (label_ids[slot] >= 0) {
      const float* w = weights.data_ptr<float>() + slot * M;
      evicted_by_label[label_ids[slot]] = {is_val[slot] != 0, std::vector<float>(w, w + M)};
    }
    return slot;
  }
};

RewardModel::RewardModel(const RewardConfig& cfg, std::vector<int64_t> obs_shape, int64_t act_size,
                         bool discrete_actions, int64_t n_actions, bool env_can_terminate, uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = cfg;
  if (obs_shape.empty()) throw UsageError("reward model: observation shape is empty");
  m.obs_size = 1;
  for (int64_t s : obs_shape) {
    if (s <= 0) throw UsageError("reward model: observation dimensions must be positive, got " + std::to_string(s));
    m.obs_size *= s;
  }
  if (cfg.ensemble_size < 1) throw UsageError("reward ensemble_size must be >= 1, got " + std::to_string(cfg.ensemble_size));
  if (cfg.batch_pairs < 1) throw UsageError("reward batch_pairs must be >= 1, got " + std::to_string(cfg.batch_pairs));
  if (!(cfg.dropout >= 0.0 && cfg.dropout < 1.0)) throw UsageError("reward dropout must be in [0, 1), got " + std::to_string(cfg.dropout));
  if (cfg.activation != "relu" && cfg.activation != "leaky_relu" && cfg.activation != "tanh") {
    throw UsageError("reward activation '" + cfg.activation + "' is not one of: relu, leaky_relu, tanh");
  }
  if (discrete_actions && cfg.use_action) {
    if (n_actions < 1) throw UsageError("reward model: discrete actions need n_actions >= 1, got " + std::to_string(n_actions));
    if (act_size != 1) throw UsageError("reward model: discrete actions are one index (act_size 1), got act_size " + std::to_string(act_size));
  }
  if (!discrete_actions && cfg.use_action && act_size < 0) {
    throw UsageError("reward model: act_size must be >= 0, got " + std::to_string(act_size));
  }
  if (cfg.standardise_inputs && obs_shape.size() != 1) {
    throw UsageError("reward.standardise_inputs is for flat observations; these have " + std::to_string(obs_shape.size()) +
                     " dimensions (pixels would be standardised one by one)");
  }
  m.obs_shape = std::move(obs_shape);
  m.act_size = act_size;
  m.discrete = discrete_actions;
  m.n_actions = n_actions;
  m.act_width = cfg.use_action ? (discrete_actions ? n_actions : act_size) : 0;
  m.row_width = m.obs_size + m.act_width + 1;
  m.can_terminate = env_can_terminate;
  m.M = cfg.ensemble_size;
  m.split_rng.seed(derive_seed(seed, kSplitStream));
  m.train_rng.seed(derive_seed(seed, kTrainStream));
  Rng init_rng(derive_seed(seed, kInitStream));
  reward_detail::NetShape shape;
  shape.members = m.M;
  if (cfg.pixel_encoder != "cnn" && cfg.pixel_encoder != "keypoints" && cfg.pixel_encoder != "mlp") {
    throw UsageError("reward pixel_encoder '" + cfg.pixel_encoder + "' is not one of: cnn, keypoints, mlp");
  }
  if (cfg.conv_padding != "same" && cfg.conv_padding != "valid")
    throw UsageError("reward conv_padding '" + cfg.conv_padding + "' is not one of: same, valid");
  if (!(cfg.conv_dropout >= 0.0 && cfg.conv_dropout < 1.0))
    throw UsageError("reward conv_dropout must be in [0, 1), got " + std::to_string(cfg.conv_dropout));
  if (m.obs_shape.size() == 3 && !cfg.conv_channels.empty() && cfg.pixel_encoder != "mlp") {
    shape.image = m.obs_shape;
    shape.conv_channels = cfg.conv_channels;
    shape.conv_strides = cfg.conv_strides;
    shape.conv_kernels = cfg.conv_kernels;
    shape.pixel_encoder = cfg.pixel_encoder;
    shape.same_padding = cfg.conv_padding == "same";
    shape.batch_norm = cfg.batch_norm;
  }
  shape.row_width = m.row_width;
  if (cfg.form != "direct" && cfg.form != "potential") {
    throw UsageError("reward form '" + cfg.form + "' is not one of: direct, potential");
  }
  if (cfg.form == "potential") {
    if (cfg.use_action) {
      throw UsageError("reward form 'potential' rates observations only; set reward.use_action=false");
    }
    if (shape.image.empty()) {
      throw UsageError("reward form 'potential' needs pixel observations and a conv trunk (pixel_encoder cnn or "
                       "keypoints, conv_channels not empty)");
    }
    shape.potential = true;
  }
  if (cfg.discrete_action != "input" && cfg.discrete_action != "select") {
    throw UsageError("reward discrete_action '" + cfg.discrete_action + "' is not one of: input, select");
  }
  if (cfg.discrete_action == "select" && m.discrete && m.act_width > 0) {
    shape.select_offset = m.obs_size;  // the one-hot action follows the observation
    shape.select_width = m.act_width;
  }
  shape.hidden = cfg.hidden;
  shape.activation = cfg.activation;
  m.net = std::make_unique<reward_detail::EnsembleNet>(shape, init_rng);
  if (cfg.fast_mlp && reward_detail::FastEnsembleMlp::supports(*m.net)) {
    m.fast = std::make_unique<reward_detail::FastEnsembleMlp>(*m.net);
  }
  m.tail_width = m.row_width;
  m.l2 = cfg.l2_init;
  m.norm_mean = torch::zeros({m.M}, torch::kFloat32);
  m.norm_std = torch::ones({m.M}, torch::kFloat32);
}

RewardModel::~RewardModel() = default;

void RewardModel::add_pairs(const std::vector<LabeledPair>& pairs) {
  Impl& m = *impl_;
  if (pairs.empty()) return;
  // Validate everything first so a bad pair adds nothing.
  int64_t L = m.seg_len;
  for (const LabeledPair& p : pairs) {
    m.check_segment(p.left);
    m.check_segment(p.right);
    if (L == 0) L = p.left.length;
    if (p.left.length != L || p.right.length != L) {
      throw UsageError("labeled pair " + std::to_string(p.label_id) + ": clips of " + std::to_string(p.left.length) +
                       " and " + std::to_string(p.right.length) + " steps; this reward model holds " +
                       std::to_string(L) + "-step clips");
    }
    if (!(p.target >= 0.0f && p.target <= 1.0f)) {
      throw UsageError("labeled pair " + std::to_string(p.label_id) + ": target " + std::to_string(p.target) +
                       " is not a probability in [0, 1] (skipped queries have no label)");
    }
  }
  if (m.n_arrived == 0 && !m.net->conv_outputs().empty() && pairs.front().left.obs_in_bytes()) {
    m.bytes_store = true;  // a conv net on byte observations: keep the image part as bytes
    m.tail_width = m.row_width - m.obs_size;
  }
  m.seg_len = L;
  m.drop_labeled_raw();  // the held pairs change
  if (m.cfg.standardise_inputs && m.in_mean.empty()) m.set_input_stats(pairs);
  m.reserve(m.n_pairs + static_cast<int64_t>(pairs.size()));
  for (const LabeledPair& p : pairs) {
    const int64_t i = m.take_slot();
    m.store_segment(p.left, i, 0);
    m.store_segment(p.right, i, 1);
    m.targets.data_ptr<float>()[i] = p.target;
    m.label_ids[i] = p.label_id;
    const Impl::Assignment* saved = m.saved_assignment(p.label_id, i);
    const Impl::Assignment a = saved ? *saved : m.draw_assignment();
    m.apply_assignment(i, a);
    (a.validation ? m.val_idx : m.train_idx).push_back(i);
    ++m.n_arrived;
  }
}

void RewardModel::hide_inputs(const std::vector<int64_t>& obs_indices) {
  Impl& m = *impl_;
  if (m.n_arrived > 0) throw RuntimeError("reward model: inputs can only be hidden before any pair is added");
  for (int64_t j : obs_indices) {
    if (j < 0 || j >= m.obs_size)
      throw UsageError("reward model: hidden input " + std::to_string(j) + " is outside the " +
                       std::to_string(m.obs_size) + " observation values");
  }
  m.hidden = obs_indices;
}

int64_t RewardModel::num_pairs() const { return impl_->n_pairs; }
int64_t RewardModel::buffer_bytes() const {
  int64_t b = 0;
  for (const torch::Tensor* t : {&impl_->rows, &impl_->img, &impl_->targets, &impl_->weights})
    if (t->defined()) b += t->numel() * static_cast<int64_t>(t->element_size());
  return b;
}

RewardTrainStats RewardModel::train_round() {
  Impl& m = *impl_;
  RewardTrainStats st;
  st.n_train = static_cast<int64_t>(m.train_idx.size());
  st.n_val = static_cast<int64_t>(m.val_idx.size());
  st.l2 = m.l2;
  if (m.train_idx.empty()) return st;
  m.drop_labeled_raw();  // the parameters are about to change

  reward_detail::EnsembleNet& net = *m.net;
  // Snapshot for rollback if the parameters diverge.
  const torch::Tensor saved_params = net.params().detach().clone();
  const torch::Tensor saved_m = net.adam().exp_avg().clone(), saved_v = net.adam().exp_avg_sq().clone();
  const int64_t saved_steps = net.adam().steps();
  std::vector<torch::Tensor> saved_bn;
  for (const torch::Tensor& t : net.running_stats()) saved_bn.push_back(t.clone());

  const int64_t L = m.seg_len, F = m.row_width, M = m.M;
  std::vector<int64_t> order = m.train_idx;
  // Batch norm needs the whole minibatch in one pass (its statistics are the minibatch's).
  const int64_t pairs_per_chunk = m.cfg.batch_norm
                                      ? std::max<int64_t>(1, m.cfg.batch_pairs)
                                      : std::max<int64_t>(1, kChunkFloats / (net.activation_floats_per_row() * 2 * L));
  double fit_sum = 0.0;  // sum of minibatch losses
  std::vector<const float*> pair_rows;     // fast path: each minibatch pair's rows
  std::vector<float> batch_targets, batch_weights;  // fast path: (B), (M x B)
  std::vector<double> member_loss(static_cast<size_t>(M));
  for (int epoch = 0; epoch < m.cfg.epochs_per_round && st.updates < m.cfg.max_updates_per_round; ++epoch) {
    m.train_rng.shuffle(order);
    for (size_t start = 0; start < order.size() && st.updates < m.cfg.max_updates_per_round;
         start += static_cast<size_t>(m.cfg.batch_pairs)) {
      const size_t end = std::min(order.size(), start + static_cast<size_t>(m.cfg.batch_pairs));
      const int64_t B = static_cast<int64_t>(end - start);
      if (m.fast) {
        const std::vector<torch::Tensor> masks = m.draw_masks();        // one mask for the whole minibatch
        // The same loss and gradient written out by hand (reward/fast_mlp.h).
        const float* rows = m.rows.data_ptr<float>();
        const float* targets = m.targets.data_ptr<float>();
        const float* weights = m.weights.data_ptr<float>();  // (capacity x M)
        pair_rows.clear();
        batch_targets.clear();
        batch_weights.assign(static_cast<size_t>(M * B), 0.0f);
        for (int64_t k = 0; k < B; ++k) {
          const int64_t i = order[start + k];
          pair_rows.push_back(rows + i * 2 * L * F);
          batch_targets.push_back(targets[i]);
          for (int64_t j = 0; j < M; ++j) batch_weights[j * B + k] = weights[i * M + j];
        }
        std::vector<const float*> mask_ptrs;
        for (const torch::Tensor& t : masks) mask_ptrs.push_back(t.data_ptr<float>());
        m.fast->loss_and_grad(pair_rows, L, batch_targets.data(), batch_weights.data(), mask_ptrs,
                              m.cfg.random_response, member_loss.data());
        m.fast->adam_step(m.cfg.lr, m.l2);
        double mean = 0.0;
        for (double v : member_loss) mean += v;
        fit_sum += mean / static_cast<double>(M);
        ++st.updates;
        continue;
      }
      const torch::Tensor idx = index_tensor(std::vector<int64_t>(order.begin() + start, order.begin() + end));
      const torch::Tensor w_all = m.weights.index_select(0, idx).t();  // (M x B)
      const torch::Tensor w_sum = w_all.sum(1).clamp_min(1.0);        // (M)
      // Each member's bootstrap-weighted mean NLL; members share no parameters, so the
      // gradient of the sum is each member's own gradient. Pairs contribute independently,
      // so a minibatch too big for one forward pass (activations over kChunkFloats) is run
      // in chunks of pairs whose gradients accumulate before the one Adam step.
      torch::Tensor loss = torch::zeros({M}, torch::kFloat32);  // (M)
      reward_detail::ForwardMode mode = m.training_mode(B, /*update_running=*/true);
      std::vector<torch::Tensor> conv_masks = mode.conv_masks;  // (B x ...) each; a chunk takes its pairs'
      for (int64_t c0 = 0; c0 < B; c0 += pairs_per_chunk) {
        const int64_t Bc = std::min(pairs_per_chunk, B - c0);
        const torch::Tensor cidx = idx.narrow(0, c0, Bc);
        for (size_t k = 0; k < conv_masks.size(); ++k) mode.conv_masks[k] = conv_masks[k].narrow(0, c0, Bc);
        const torch::Tensor x = m.stored_rows(cidx).view({Bc * 2 * L, F});          // (Bc*2*L x F)
        const torch::Tensor target = m.targets.index_select(0, cidx);                // (Bc)
        const torch::Tensor w = w_all.narrow(1, c0, Bc);                             // (M x Bc)
        const torch::Tensor ret = net.forward(x, mode).view({M, Bc, 2, L}).sum(3);   // (M x Bc x 2)
        const torch::Tensor nll = preference_nll(ret.select(2, 0), ret.select(2, 1), target, m.cfg.random_response);
        const torch::Tensor part = (nll * w).sum(1) / w_sum;  // (M)
        part.sum().backward();
        loss += part.detach();
      }
      net.adam_step(m.cfg.lr, m.l2);
      fit_sum += loss.mean().item<double>();
      ++st.updates;
    }
  }
  if (st.updates > 0) st.fit_loss = fit_sum / static_cast<double>(st.updates);

  torch::NoGradGuard no_grad;
  if (!torch::isfinite(net.params()).all().item<bool>()) {
    net.params().copy_(saved_params);
    net.adam().set_state(saved_steps, saved_m, saved_v);
    net.set_running_stats(saved_bn);
    st.diverged = true;
  }

  // Statistics without dropout, over every stored pair (or the newest stats_pairs) in one pass.
  // tslots / vslots: the evaluated train / validation pairs' slots; tidx / vidx: their positions
  // among the evaluated pairs (whose returns are ret and targets target).
  std::vector<int64_t> tslots = m.train_idx, vslots = m.val_idx;
  torch::Tensor ret, target, tidx, vidx;
  if (m.cfg.stats_pairs > 0 && m.cfg.stats_pairs < m.n_pairs) {
    std::vector<int64_t> slots = m.slots_oldest_first();
    slots.erase(slots.begin(), slots.end() - m.cfg.stats_pairs);
    std::vector<int64_t> tp, vp;
    tslots.clear();
    vslots.clear();
    for (size_t k = 0; k < slots.size(); ++k) {
      (m.is_val[slots[k]] ? vp : tp).push_back(static_cast<int64_t>(k));
      (m.is_val[slots[k]] ? vslots : tslots).push_back(slots[k]);
    }
    const torch::Tensor sidx = index_tensor(slots);
    m.raw_returns_cache = m.raw_eval_pairs(sidx);  // (M x K*2*L)
    ret = m.raw_returns_cache.view({M, sidx.size(0), 2, L}).sum(3);
    target = m.targets.index_select(0, sidx);
    tidx = index_tensor(tp);
    vidx = index_tensor(vp);
    m.labeled_raw = m.raw_returns_cache;
    m.labeled_raw_pairs = -1;
    m.labeled_raw_slots = sidx;
  } else {
    m.labeled_raw = m.raw_eval_pairs(torch::arange(m.n_pairs, torch::kInt64));  // (M x P*2*L)
    m.labeled_raw_pairs = m.n_pairs;
    m.labeled_raw_slots = torch::Tensor();
    ret = m.labeled_raw.view({M, m.n_pairs, 2, L}).sum(3);  // (M x P x 2)
    target = m.targets.narrow(0, 0, m.n_pairs);
    tidx = index_tensor(m.train_idx);
    vidx = index_tensor(m.val_idx);
  }
  const torch::Tensor nll = preference_nll(ret.select(2, 0), ret.select(2, 1), target, m.cfg.random_response);
  const torch::Tensor tw = m.weights.index_select(0, index_tensor(tslots)).t();  // (M x T)
  st.train_loss = tslots.empty() ? kNaN
                                 : ((nll.index_select(1, tidx) * tw).sum(1) / tw.sum(1).clamp_min(1.0)).mean().item<double>();
  st.train_accuracy = tslots.empty() ? kNaN : Impl::ensemble_accuracy(ret.index_select(1, tidx), target.index_select(0, tidx));
  st.val_loss = kNaN;
  st.val_accuracy = kNaN;
  if (!vslots.empty()) {
    st.val_loss = nll.index_select(1, vidx).mean().item<double>();
    st.val_accuracy = Impl::ensemble_accuracy(ret.index_select(1, vidx), target.index_select(0, vidx));
    // Adapt L2 (multiplicatively, so an L2 of 0 stays 0).
    if (m.cfg.adapt_l2 && std::isfinite(st.val_loss) && std::isfinite(st.train_loss)) {
      const double ratio = st.train_loss > 0 ? st.val_loss / st.train_loss : std::numeric_limits<double>::infinity();
      if (ratio > m.cfg.l2_band_high) m.l2 *= m.cfg.l2_factor;
      else if (ratio < m.cfg.l2_band_low) m.l2 /= m.cfg.l2_factor;
    }
  }
  st.l2 = m.l2;
  return st;
}

void RewardModel::update_normalisation(const float* obs, const float* act, int64_t n) {
  Impl& m = *impl_;
  if (n <= 0) return;
  torch::Tensor raw = m.raw_eval(m.encode_steps(obs, act, n, 0));  // (M x n)
  const torch::Tensor finite = torch::isfinite(raw).all(0);        // (n)
  if (!finite.all().item<bool>()) raw = raw.index_select(1, finite.nonzero().squeeze(1));
  if (raw.size(1) == 0) return;
  m.norm_mean = raw.mean(1);
  m.norm_std = (raw - m.norm_mean.unsqueeze(1)).pow(2).mean(1).sqrt().clamp_min(kStdFloor);  // population std
}

void RewardModel::update_normalisation_on_labeled(int64_t max_steps) {
  Impl& m = *impl_;
  if (m.n_pairs == 0 || max_steps <= 0) return;
  // Every step of every stored clip, strided down to max_steps. Absorbing steps count too
  // when the policy's reward is measured against them (subtract_absorbing on an environment
  // that can terminate: predict subtracts r̂_abs): "after the end" is then a state of the MDP,
  // so the spread between it and ordinary states must be part of the scale, or a
  // near-constant r̂ on ordinary states would blow the alive-versus-absorbing gap up without
  // bound. Otherwise the policy never sees r̂_abs, and counting it would let a few absorbing
  // steps set the scale: on pong (2% of the labeled steps absorbing, r̂_abs 7 std below the
  // rest) the ordinary steps' r̂ came out with std 0.0055 instead of output_std 0.05.
  // With stats_pairs, the newest pairs the statistics pass evaluated.
  const bool subset = m.labeled_raw.defined() && m.labeled_raw_slots.defined();
  const torch::Tensor absorbing =
      subset ? m.rows.index_select(0, m.labeled_raw_slots).reshape({-1, m.tail_width}).select(1, m.tail_width - 1)
             : m.stored_absorbing();  // (P*2*L)
  const bool with_absorbing = m.can_terminate && m.cfg.subtract_absorbing;
  const torch::Tensor keep = with_absorbing ? torch::arange(absorbing.size(0))
                                            : (absorbing == 0).nonzero().squeeze(1);  // (K)
  const int64_t k = keep.size(0);
  if (k == 0) return;
  const int64_t stride = (k + max_steps - 1) / max_steps;
  const torch::Tensor pick = keep.index({torch::indexing::Slice(0, torch::indexing::None, stride)});
  torch::Tensor raw;  // (M x k')
  if (subset || m.labeled_raw_pairs == m.n_pairs) {
    raw = m.labeled_raw.index_select(1, pick);
  } else if (!m.bytes_store) {
    raw = m.raw_eval(m.rows.narrow(0, 0, m.n_pairs).reshape({-1, m.row_width}).index_select(0, pick));
  } else {  // the picked steps' rows, decoded a chunk at a time
    const torch::Tensor pc = pick.contiguous();
    const int64_t* pk = pc.data_ptr<int64_t>();
    std::vector<torch::Tensor> parts;
    const int64_t chunk = std::max<int64_t>(1, kChunkFloats / m.row_width);
    for (int64_t c = 0; c < pc.numel(); c += chunk) {
      const int64_t n = std::min(chunk, pc.numel() - c);
      torch::Tensor x = torch::empty({n, m.row_width}, torch::kFloat32);
      for (int64_t r = 0; r < n; ++r) m.decode_step(pk[c + r], x.data_ptr<float>() + r * m.row_width);
      parts.push_back(m.raw_eval(x));
    }
    raw = torch::cat(parts, 1);
  }
  const torch::Tensor finite = torch::isfinite(raw).all(0);
  if (!finite.all().item<bool>()) raw = raw.index_select(1, finite.nonzero().squeeze(1));
  if (raw.size(1) == 0) return;
  m.norm_mean = raw.mean(1);
  m.norm_std = (raw - m.norm_mean.unsqueeze(1)).pow(2).mean(1).sqrt().clamp_min(kStdFloor);
}

RewardEncoding RewardModel::encoding() const {
  const Impl& m = *impl_;
  RewardEncoding e;
  e.members = m.M;
  e.obs_size = m.obs_size;
  e.act_size = m.act_size;
  e.discrete = m.discrete;
  e.n_actions = m.n_actions;
  e.act_width = m.act_width;
  e.row_width = m.row_width;
  e.hidden = m.hidden;
  e.in_mean = m.in_mean;
  e.in_inv_std = m.in_inv_std;
  const torch::Tensor mean = m.norm_mean.contiguous(), sd = m.norm_std.contiguous();
  e.norm_mean.assign(mean.data_ptr<float>(), mean.data_ptr<float>() + m.M);
  e.norm_std.assign(sd.data_ptr<float>(), sd.data_ptr<float>() + m.M);
  e.output_std = m.cfg.output_std;
  e.subtract_absorbing = m.cfg.subtract_absorbing && m.can_terminate;
  return e;
}

const reward_detail::EnsembleNet& RewardModel::net_for_export() const { return *impl_->net; }

void RewardModel::predict(const float* obs, const float* act, int64_t n, float* out) {
  Impl& m = *impl_;
  if (n <= 0) return;
  const bool subtract = m.cfg.subtract_absorbing && m.can_terminate;
  const torch::Tensor x = m.encode_steps(obs, act, n, subtract ? 1 : 0);  // (n[+1] x F)
  torch::Tensor r = m.normalise(m.raw_eval(x)).mean(0);                  // (n[+1])
  if (subtract) r = r.narrow(0, 0, n) - r[n];
  r = r.contiguous();
  std::memcpy(out, r.data_ptr<float>(), sizeof(float) * n);
}

torch::Tensor RewardModel::member_rewards(const float* obs, const float* act, int64_t n) {
  Impl& m = *impl_;
  if (n <= 0) return torch::zeros({m.M, 0}, torch::kFloat32);
  return m.normalise(m.raw_eval(m.encode_steps(obs, act, n, 0)));
}

double RewardModel::absorbing_value() {
  Impl& m = *impl_;
  return m.normalise(m.raw_eval(m.encode_steps(nullptr, nullptr, 0, 1))).mean().item<double>();
}

torch::Tensor RewardModel::segment_returns(const std::vector<const Segment*>& segs) {
  Impl& m = *impl_;
  // Each distinct segment is evaluated once (query candidates share pool segments).
  std::vector<const Segment*> unique;
  std::vector<int64_t> slot(segs.size());
  std::unordered_map<const Segment*, int64_t> seen;
  for (size_t i = 0; i < segs.size(); ++i) {
    auto [it, inserted] = seen.try_emplace(segs[i], static_cast<int64_t>(unique.size()));
    if (inserted) unique.push_back(segs[i]);
    slot[i] = it->second;
  }
  auto [x, owner] = m.encode_segments(unique);
  const torch::Tensor r = m.normalise(m.raw_eval(x));  // (M x N)
  const torch::Tensor ret = torch::zeros({m.M, static_cast<int64_t>(unique.size())}, torch::kFloat32).index_add_(1, owner, r);
  return unique.size() == segs.size() ? ret : ret.index_select(1, index_tensor(slot));
}

torch::Tensor RewardModel::return_gaps(const std::vector<std::pair<const Segment*, const Segment*>>& pairs) {
  std::vector<const Segment*> segs;
  segs.reserve(2 * pairs.size());
  for (const auto& [l, r] : pairs) {
    segs.push_back(l);
    segs.push_back(r);
  }
  const int64_t P = static_cast<int64_t>(pairs.size());
  const torch::Tensor ret = segment_returns(segs).view({impl_->M, P, 2});  // (M x P x 2)
  return ret.select(2, 0) - ret.select(2, 1);
}

std::vector<double> RewardModel::disagreement(const std::vector<std::pair<const Segment*, const Segment*>>& pairs) {
  const int64_t P = static_cast<int64_t>(pairs.size());
  const torch::Tensor p = torch::sigmoid(return_gaps(pairs));                                  // (M x P)
  const torch::Tensor var = (p - p.mean(0)).pow(2).mean(0).to(torch::kFloat64).contiguous();  // (P) population variance
  return std::vector<double>(var.data_ptr<double>(), var.data_ptr<double>() + P);
}

std::vector<double> RewardModel::pair_entropy(const std::vector<std::pair<const Segment*, const Segment*>>& pairs) {
  const int64_t P = static_cast<int64_t>(pairs.size());
  const torch::Tensor d = return_gaps(pairs).to(torch::kFloat64);  // (M x P)
  // H(p) with p = sigmoid(d), written with log-sigmoids so that large |d| stays finite.
  const torch::Tensor p = torch::sigmoid(d);
  const torch::Tensor h = -(p * torch::log_sigmoid(d) + (1 - p) * torch::log_sigmoid(-d));  // (M x P)
  const torch::Tensor mean = h.mean(0).contiguous();
  return std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + P);
}

double RewardModel::validation_accuracy() {
  Impl& m = *impl_;
  if (m.val_idx.empty()) return kNaN;
  const torch::Tensor vidx = index_tensor(m.val_idx);
  return Impl::ensemble_accuracy(m.stored_returns(vidx), m.targets.index_select(0, vidx));
}

std::pair<torch::Tensor, torch::Tensor> RewardModel::pair_returns(const std::vector<LabeledPair>& pairs, bool training) {
  Impl& m = *impl_;
  std::vector<const Segment*> segs;
  for (const LabeledPair& p : pairs) {
    segs.push_back(&p.left);
    segs.push_back(&p.right);
  }
  auto [x, owner] = m.encode_segments(segs);
  torch::NoGradGuard no_grad;
  // Training: one conv dropout mask per pair (its 2 L rows, consecutive); batch norm on the
  // pass's statistics, the running ones untouched.
  const torch::Tensor raw = training ? m.net->forward(x, m.training_mode(static_cast<int64_t>(pairs.size()), false))
                                     : m.raw_eval(x);  // (M x N)
  const int64_t P = static_cast<int64_t>(pairs.size());
  const torch::Tensor ret = torch::zeros({m.M, 2 * P}, torch::kFloat32).index_add_(1, owner, raw).view({m.M, P, 2});
  return {ret.select(2, 0).contiguous(), ret.select(2, 1).contiguous()};
}

torch::Tensor RewardModel::pair_weights() const {
  const Impl& m = *impl_;
  if (m.n_pairs == 0) return torch::zeros({0, m.M}, torch::kFloat32);
  return m.weights.narrow(0, 0, m.n_pairs).clone();
}

std::vector<uint8_t> RewardModel::validation_flags() const { return impl_->is_val; }

std::vector<int64_t> RewardModel::validation_label_ids() const {
  std::vector<int64_t> out;
  for (int64_t i : impl_->val_idx) out.push_back(impl_->label_ids[i]);
  std::sort(out.begin(), out.end());
  return out;
}

double RewardModel::l2() const { return impl_->l2; }

const RewardConfig& RewardModel::config() const { return impl_->cfg; }

bool RewardModel::uses_fast_mlp() const { return impl_->fast != nullptr; }

void RewardModel::save(const std::string& path) const {
  const Impl& m = *impl_;
  reward_detail::EnsembleNet& net = *m.net;
  // Every pair's assignment: the held pairs, then saved ones from a load not yet re-added.
  std::vector<int64_t> labels, positions, val;
  std::vector<float> w;
  auto put = [&](int64_t label, int64_t pos, const Impl::Assignment& a) {
    labels.push_back(label);
    positions.push_back(pos);
    val.push_back(a.validation ? 1 : 0);
    w.insert(w.end(), a.weights.begin(), a.weights.end());
  };
  const torch::Tensor held_w = m.n_pairs ? m.weights.narrow(0, 0, m.n_pairs).contiguous() : torch::zeros({0, m.M});
  std::map<int64_t, bool> held_labels;
  for (int64_t i = 0; i < m.n_pairs; ++i) {
    const float* row = held_w.data_ptr<float>() + i * m.M;
    put(m.label_ids[i], i, {m.is_val[i] != 0, std::vector<float>(row, row + m.M)});
    if (m.label_ids[i] >= 0) held_labels[m.label_ids[i]] = true;
  }
  for (const auto& [label, a] : m.saved_by_label) {
    if (!held_labels.count(label)) put(label, -1, a);
  }
  for (const auto& [label, a] : m.evicted_by_label) {  // dropped from the buffer (max_pairs)
    if (!held_labels.count(label) && !m.saved_by_label.count(label)) put(label, -1, a);
  }
  for (const auto& [pos, a] : m.saved_by_position) {
    if (pos >= m.n_pairs) put(-1, pos, a);
  }
  const int64_t K = static_cast<int64_t>(labels.size());

  torch::serialize::OutputArchive ar;
  ar.write("architecture", torch::tensor(std::vector<int64_t>{m.M, m.row_width, net.num_params(), m.obs_size, m.act_width}));
  ar.write("params", net.params().detach());
  ar.write("adam_m", net.adam().exp_avg());
  ar.write("adam_v", net.adam().exp_avg_sq());
  ar.write("adam_steps", torch::tensor(std::vector<int64_t>{net.adam().steps()}));
  ar.write("norm_mean", m.norm_mean);
  ar.write("norm_std", m.norm_std);
  ar.write("l2", torch::tensor(std::vector<double>{m.l2}, torch::kFloat64));
  ar.write("split_rng", rng_to_tensor(m.split_rng));
  ar.write("train_rng", rng_to_tensor(m.train_rng));
  ar.write("pair_label_ids", index_tensor(labels));
  ar.write("pair_positions", index_tensor(positions));
  ar.write("pair_is_val", index_tensor(val));
  ar.write("pair_weights", torch::tensor(w, torch::kFloat32).view({K, m.M}));
  ar.write("input_mean", torch::tensor(m.in_mean, torch::kFloat32));
  ar.write("input_inv_std", torch::tensor(m.in_inv_std, torch::kFloat32));
  const std::vector<torch::Tensor> bn = net.running_stats();
  if (!bn.empty()) ar.write("bn_running", torch::cat(bn));
  try {
    ar.save_to(path);
  } catch (const c10::Error& e) {
    throw RuntimeError("cannot write reward model checkpoint '" + path + "': " + e.what_without_backtrace());
  }
}

void RewardModel::load(const std::string& path) {
  Impl& m = *impl_;
  reward_detail::EnsembleNet& net = *m.net;
  torch::serialize::InputArchive ar;
  auto get = [&](const char* key) {
    torch::Tensor t;
    ar.read(key, t);
    return t;
  };
  torch::Tensor arch, params, adam_m, adam_v, adam_steps, norm_mean, norm_std, l2, split_rng, train_rng, labels,
      positions, val, w, in_mean, in_inv_std, bn_running;
  try {
    ar.load_from(path);
    arch = get("architecture");
    params = get("params");
    adam_m = get("adam_m");
    adam_v = get("adam_v");
    adam_steps = get("adam_steps");
    norm_mean = get("norm_mean");
    norm_std = get("norm_std");
    l2 = get("l2");
    split_rng = get("split_rng");
    train_rng = get("train_rng");
    labels = get("pair_label_ids");
    positions = get("pair_positions");
    val = get("pair_is_val");
    w = get("pair_weights");
    // Absent from checkpoints written before reward.standardise_inputs existed: no statistics.
    if (!ar.try_read("input_mean", in_mean)) in_mean = torch::empty({0});
    if (!ar.try_read("input_inv_std", in_inv_std)) in_inv_std = torch::empty({0});
    if (!net.running_stats().empty() && !ar.try_read("bn_running", bn_running))
      throw RuntimeError("reward model checkpoint '" + path + "' has no batch-norm statistics (reward.batch_norm)");
  } catch (const c10::Error& e) {
    throw RuntimeError("cannot read reward model checkpoint '" + path + "': " + e.what_without_backtrace());
  }
  const std::vector<int64_t> expected = {m.M, m.row_width, net.num_params(), m.obs_size, m.act_width};
  const std::vector<int64_t> found(arch.data_ptr<int64_t>(), arch.data_ptr<int64_t>() + arch.numel());
  if (found != expected) {
    auto show = [](const std::vector<int64_t>& v) {
      std::string s;
      for (int64_t x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
      return "[" + s + "]";
    };
    throw RuntimeError("reward model checkpoint '" + path + "' has architecture (members, input width, parameters, obs size, action width) " +
                       show(found) + ", this model has " + show(expected));
  }
  {
    torch::NoGradGuard no_grad;
    net.params().copy_(params);
  }
  if (bn_running.defined()) {
    std::vector<torch::Tensor> parts;
    int64_t at = 0;
    const torch::Tensor flat = bn_running.to(torch::kFloat32).reshape({-1});
    for (const torch::Tensor& t : net.running_stats()) {
      if (at + t.numel() > flat.numel())
        throw RuntimeError("reward model checkpoint '" + path + "' has too few batch-norm statistics");
      parts.push_back(flat.narrow(0, at, t.numel()));
      at += t.numel();
    }
    if (at != flat.numel()) throw RuntimeError("reward model checkpoint '" + path + "' has too many batch-norm statistics");
    net.set_running_stats(parts);
  }
  m.drop_labeled_raw();
  net.adam().set_state(adam_steps.item<int64_t>(), adam_m, adam_v);
  m.norm_mean = norm_mean.clone();
  m.norm_std = norm_std.clone();
  m.l2 = l2.item<double>();
  {
    const torch::Tensor mc = in_mean.to(torch::kFloat32).contiguous(), sc = in_inv_std.to(torch::kFloat32).contiguous();
    if (mc.numel() != sc.numel() || (mc.numel() != 0 && mc.numel() != m.row_width - 1)) {
      throw RuntimeError("reward model checkpoint '" + path + "' has input statistics of " + std::to_string(mc.numel()) +
                         " and " + std::to_string(sc.numel()) + " values, expected 0 or " + std::to_string(m.row_width - 1));
    }
    m.in_mean.assign(mc.data_ptr<float>(), mc.data_ptr<float>() + mc.numel());
    m.in_inv_std.assign(sc.data_ptr<float>(), sc.data_ptr<float>() + sc.numel());
  }
  rng_from_tensor(split_rng, &m.split_rng);
  rng_from_tensor(train_rng, &m.train_rng);

  m.saved_by_label.clear();
  m.saved_by_position.clear();
  const int64_t K = labels.numel();
  const torch::Tensor wc = w.to(torch::kFloat32).contiguous();
  const torch::Tensor lc = labels.to(torch::kInt64).contiguous(), pc = positions.to(torch::kInt64).contiguous();
  const torch::Tensor vc = val.to(torch::kInt64).contiguous();
  for (int64_t k = 0; k < K; ++k) {
    Impl::Assignment a;
    a.validation = vc.data_ptr<int64_t>()[k] != 0;
    const float* row = wc.data_ptr<float>() + k * m.M;
    a.weights.assign(row, row + m.M);
    const int64_t label = lc.data_ptr<int64_t>()[k];
    if (label >= 0) m.saved_by_label[label] = a;
    else m.saved_by_position[pc.data_ptr<int64_t>()[k]] = a;
  }
  for (int64_t i = 0; i < m.n_pairs; ++i) {
    if (const Impl::Assignment* a = m.saved_assignment(m.label_ids[i], i)) m.apply_assignment(i, *a);
  }
  m.rebuild_split();
}

void RewardModel::forget_saved_pairs() {
  impl_->saved_by_label.clear();
  impl_->saved_by_position.clear();
}

}  // namespace prefrl
