// Wrappers: frame stack, frame skip, time limit.
#include "prefrl/envs/wrappers.h"

#include <algorithm>
#include <string>

#include "prefrl/core/error.h"

namespace prefrl {

namespace {
std::unique_ptr<Env> checked(std::unique_ptr<Env> inner) {
  if (!inner) throw UsageError("an environment wrapper was given no environment to wrap");
  return inner;
}

void check_count(const EnvSpec& spec, const char* what, int k) {
  if (k < 1) throw UsageError(spec.name + ": " + what + " is " + std::to_string(k) + "; expected >= 1");
}
}  // namespace

EnvWrapper::EnvWrapper(std::unique_ptr<Env> inner) : inner_(checked(std::move(inner))) { spec_ = inner_->spec(); }

// ---- FrameStack ----------------------------------------------------------------------------

FrameStack::FrameStack(std::unique_ptr<Env> inner, int k) : EnvWrapper(std::move(inner)), k_(k) {
  check_count(spec_, "frame_stack", k);
  Space& o = spec_.observation;
  frame_size_ = o.numel();
  if (o.discrete) throw UsageError(spec_.name + ": frame_stack needs a Box observation, not a Discrete one");
  if (o.shape.empty()) o.shape = {1};
  o.shape[0] *= k;
  std::vector<float> low, high;
  for (int j = 0; j < k; ++j) {
    low.insert(low.end(), o.low.begin(), o.low.end());
    high.insert(high.end(), o.high.begin(), o.high.end());
  }
  o.low = std::move(low);
  o.high = std::move(high);
  spec_.state_size *= k;
  std::vector<int64_t> hidden;  // the inner observation's hidden elements, in every frame
  for (int j = 0; j < k; ++j)
    for (int64_t i : spec_.reward_hidden) hidden.push_back(j * frame_size_ + i);
  spec_.reward_hidden = std::move(hidden);
  stack_.assign(static_cast<size_t>(k) * frame_size_, 0.0f);
  states_.assign(k, inner_->get_state());  // before any reset: the inner env's initial state in every frame
}

void FrameStack::fill_from_newest(float* obs) {
  for (int j = 1; j < k_; ++j) {
    std::copy(stack_.begin(), stack_.begin() + frame_size_, stack_.begin() + j * frame_size_);
    states_[j] = states_[0];
  }
  std::copy(stack_.begin(), stack_.end(), obs);
}

void FrameStack::reset_impl(float* obs) {
  inner_->reset(stack_.data());
  states_[0] = inner_->get_state();
  fill_from_newest(obs);
}

StepResult FrameStack::step_impl(const float* action, float* obs) {
  // Every frame moves one place back; the newest goes in front.
  std::copy_backward(stack_.begin(), stack_.end() - frame_size_, stack_.end());
  std::rotate(states_.rbegin(), states_.rbegin() + 1, states_.rend());
  const StepResult r = inner_->step(action, stack_.data());
  states_[0] = inner_->get_state();
  std::copy(stack_.begin(), stack_.end(), obs);
  return r;
}

void FrameStack::set_state_impl(const std::vector<double>& state, float* obs) {
  const size_t s = static_cast<size_t>(inner_->spec().state_size);
  if (state.size() == s) {
    inner_->set_state(state, stack_.data());
    states_[0] = inner_->get_state();
    fill_from_newest(obs);
    return;
  }
  if (state.size() != s * k_) {
    throw UsageError(spec_.name + ": set_state got " + std::to_string(state.size()) + " values; expected " +
                     std::to_string(s) + " (one frame) or " + std::to_string(s * k_) + " (" + std::to_string(k_) +
                     " frames, newest first)");
  }
  for (int j = k_ - 1; j >= 0; --j) {  // the newest last, so the inner env ends in its state
    const std::vector<double> part(state.begin() + j * s, state.begin() + (j + 1) * s);
    inner_->set_state(part, stack_.data() + j * frame_size_);
    states_[j] = inner_->get_state();
  }
  std::copy(stack_.begin(), stack_.end(), obs);
}

std::vector<double> FrameStack::get_state() const {
  std::vector<double> out;
  for (const auto& s : states_) out.insert(out.end(), s.begin(), s.end());
  return out;
}

bool FrameStack::state_from_obs(const float* obs, std::vector<double>* state) const {
  state->clear();
  std::vector<double> part;
  for (int j = 0; j < k_; ++j) {
    if (!inner_->state_from_obs(obs + j * frame_size_, &part)) return false;
    state->insert(state->end(), part.begin(), part.end());
  }
  return true;
}

// ---- FrameSkip -----------------------------------------------------------------------------

FrameSkip::FrameSkip(std::unique_ptr<Env> inner, int k) : EnvWrapper(std::move(inner)), k_(k) {
  check_count(spec_, "frame_skip", k);
  if (spec_.max_episode_steps > 0) spec_.max_episode_steps = (spec_.max_episode_steps + k - 1) / k;
  spec_.fps /= k;
}

StepResult FrameSkip::step_impl(const float* action, float* obs) {
  StepResult total;
  for (int j = 0; j < k_; ++j) {
    const StepResult r = inner_->step(action, obs);
    total.reward += r.reward;
    if (r.terminated) {
      total.terminated = true;
      break;
    }
  }
  return total;
}

// ---- TimeLimit -----------------------------------------------------------------------------

TimeLimit::TimeLimit(std::unique_ptr<Env> inner, int max_steps) : EnvWrapper(std::move(inner)) {
  check_count(spec_, "time_limit", max_steps);
  spec_.max_episode_steps = max_steps;
}

}  // namespace prefrl
