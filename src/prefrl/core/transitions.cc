// The transition store (see transitions.h).
#include "prefrl/core/transitions.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>

#include "prefrl/core/error.h"

namespace prefrl {

// ---- RolloutColumns -------------------------------------------------------------------------

void RolloutColumns::Free::operator()(void* p) const { ::operator delete(p, std::align_val_t{64}); }

void* RolloutColumns::add(const std::string& name, int64_t width, size_t elem, bool floats) {
  if (width < 1) throw UsageError("RolloutColumns: column '" + name + "' has width " + std::to_string(width));
  if (find(name)) throw UsageError("RolloutColumns: a column named '" + name + "' exists already");
  Column c;
  c.name = name;
  c.width = width;
  c.floats = floats;
  c.bytes = static_cast<size_t>(T_) * N_ * width * elem;
  const size_t padded = (c.bytes + 63) / 64 * 64;  // a multiple of the alignment
  c.data.reset(::operator new(padded, std::align_val_t{64}));
  std::memset(c.data.get(), 0, padded);
  cols_.push_back(std::move(c));
  return cols_.back().data.get();
}

float* RolloutColumns::add_floats(const std::string& name, int64_t width) {
  return static_cast<float*>(add(name, width, sizeof(float), true));
}

uint8_t* RolloutColumns::add_bytes(const std::string& name, int64_t width) {
  return static_cast<uint8_t*>(add(name, width, 1, false));
}

const RolloutColumns::Column* RolloutColumns::find(const std::string& name) const {
  for (const Column& c : cols_)
    if (c.name == name) return &c;
  return nullptr;
}

const float* RolloutColumns::floats(const std::string& name) const {
  const Column* c = find(name);
  return c && c->floats ? static_cast<const float*>(c->data.get()) : nullptr;
}

const uint8_t* RolloutColumns::bytes(const std::string& name) const {
  const Column* c = find(name);
  return c && !c->floats ? static_cast<const uint8_t*>(c->data.get()) : nullptr;
}

std::vector<std::string> RolloutColumns::names() const {
  std::vector<std::string> out;
  for (const Column& c : cols_) out.push_back(c.name);
  return out;
}

int64_t RolloutColumns::bytes_held() const {
  int64_t n = 0;
  for (const Column& c : cols_) n += static_cast<int64_t>(c.bytes);
  return n;
}

// ---- TransitionStore ------------------------------------------------------------------------

TransitionStore::TransitionStore(int N, int T, int64_t D, int64_t A, int64_t S, int H)
    : N_(N), T_(T), H_(H), D_(D), A_(A), S_(S), columns_(N, T) {
  if (N < 1 || T < 1 || H < 0 || D < 1 || A < 0 || S < 0) {
    throw UsageError("TransitionStore: N=" + std::to_string(N) + " T=" + std::to_string(T) + " H=" +
                     std::to_string(H) + " D=" + std::to_string(D) + " A=" + std::to_string(A) + " S=" +
                     std::to_string(S) + "; expected N, T, D >= 1 and H, A, S >= 0");
  }
  slots_ = 1 + (H + T - 1) / T;
  slot_ = slots_ - 1;  // the first rollout goes to slot 0
  const size_t rows = static_cast<size_t>(slots_) * T * N;
  obs_.assign(rows * D, 0.f);
  final_obs_.assign(rows * D, 0.f);
  actions_.assign(rows * A, 0.f);
  states_.assign(rows * S, 0.f);
  final_states_.assign(rows * S, 0.f);
  true_rewards_.assign(rows, 0.f);
  task_rewards_.assign(rows, 0.f);
  learned_.assign(rows, 0.f);
  terminated_.assign(rows, 0);
  truncated_.assign(rows, 0);
  success_.assign(rows, 0);
  broken_.assign(rows, 0);
}

void TransitionStore::begin_rollout(int64_t global_step) {
  const int keep = std::min(H_, valid_);
  if (valid_ == 0) first_step_ = global_step;
  else first_step_ += static_cast<int64_t>(valid_ - keep) * N_;
  slot_ = (slot_ + 1) % slots_;
  valid_ = keep + T_;
  std::fill(broken_.begin() + row(0), broken_.begin() + row(T_), 0);
}

void TransitionStore::forget() { valid_ = 0; }

TrajectoryView TransitionStore::trajectory(int i) const {
  TrajectoryView v;
  const int64_t ring = static_cast<int64_t>(slots_) * T_;
  v.T = valid_;
  v.D = D_; v.A = A_; v.S = S_;
  v.stride = N_;
  v.first = (end_row() - valid_ + ring) % ring;
  v.ring = ring;
  v.obs = obs_.data() + i * D_;  // env i's column in row 0
  v.actions = actions_.data() + i * A_;
  v.final_obs = final_obs_.data() + i * D_;
  v.states = states_.data() + i * S_;
  v.final_states = final_states_.data() + i * S_;
  v.true_rewards = true_rewards_.data() + i;
  v.terminated = terminated_.data() + i;
  v.truncated = truncated_.data() + i;
  v.start_env_step = first_step_;
  v.num_envs = N_;
  v.env_index = i;
  v.obs_bytes = obs_bytes_;
  return v;
}

void TransitionStore::set_trajectory(int i, const TrajectoryView& v) {
  if (v.D != D_ || v.A != A_ || v.S != S_) {
    throw RuntimeError("TransitionStore: env " + std::to_string(i) + "'s saved steps have widths (" +
                       std::to_string(v.D) + ", " + std::to_string(v.A) + ", " + std::to_string(v.S) +
                       "), the store (" + std::to_string(D_) + ", " + std::to_string(A_) + ", " + std::to_string(S_) +
                       ")");
  }
  const int n = std::min(v.T, H_ + T_);
  const int skip = v.T - n;
  const int64_t start = v.start_env_step + static_cast<int64_t>(skip) * N_;
  if (i > 0 && (n != valid_ || start != first_step_)) {
    throw RuntimeError("TransitionStore: env " + std::to_string(i) + "'s saved steps (" + std::to_string(n) +
                       " from step " + std::to_string(start) + ") do not line up with env 0's (" +
                       std::to_string(valid_) + " from step " + std::to_string(first_step_) + ")");
  }
  valid_ = n;
  first_step_ = start;
  const int64_t ring = static_cast<int64_t>(slots_) * T_;
  for (int t = 0; t < n; ++t) {
    const int src = skip + t;
    const int64_t k = ((end_row() - n + t + ring) % ring) * N_ + i;
    std::copy(v.obs_at(src), v.obs_at(src) + D_, obs_.begin() + k * D_);
    std::copy(v.final_obs_at(src), v.final_obs_at(src) + D_, final_obs_.begin() + k * D_);
    std::copy(v.action_at(src), v.action_at(src) + A_, actions_.begin() + k * A_);
    if (S_ > 0) {
      std::copy(v.state_at(src), v.state_at(src) + S_, states_.begin() + k * S_);
      std::copy(v.final_state_at(src), v.final_state_at(src) + S_, final_states_.begin() + k * S_);
    }
    true_rewards_[k] = v.true_reward(src);
    terminated_[k] = v.terminated_at(src);
    truncated_[k] = v.truncated_at(src);
  }
}

}  // namespace prefrl
