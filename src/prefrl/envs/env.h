// Environments: a spec (shapes, bounds, time limit) plus Reset and Step, as in EnvPool.
// Observations and actions are flat float arrays; a discrete action is stored as its index
// in a single float. Every environment owns its RNG; VecEnv seeds env i with seed + i.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "prefrl/core/rng.h"

namespace prefrl {

// How observations are kept (core/segment.h): kFloat32 as floats; kUInt8 as bytes, each
// observation value being byte / 255 (byte_to_obs) wherever it is computed with: pixels.
enum class Dtype : uint8_t { kFloat32, kUInt8 };
inline const char* dtype_name(Dtype d) { return d == Dtype::kUInt8 ? "uint8" : "float32"; }

// A Box (continuous, with per-element bounds) or a Discrete(n) space.
struct Space {
  bool discrete = false;
  Dtype dtype = Dtype::kFloat32;  // observations: how they are kept (uint8: values byte / 255, in [0, 1])
  std::vector<int64_t> shape;   // e.g. {4} for a state vector, {C, H, W} for pixels
  std::vector<float> low, high; // Box bounds, one per element (size = numel); empty if discrete
  int64_t n = 0;                // number of discrete actions; 0 for Box

  int64_t numel() const {
    int64_t k = 1;
    for (auto d : shape) k *= d;
    return k;
  }
  static Space box(std::vector<int64_t> shape, std::vector<float> low, std::vector<float> high) {
    Space s; s.shape = std::move(shape); s.low = std::move(low); s.high = std::move(high); return s;
  }
  // A Box of bytes: values byte / 255 in [0, 1] (pixels), kept as bytes.
  static Space bytes(std::vector<int64_t> shape) {
    Space s; s.shape = std::move(shape); s.dtype = Dtype::kUInt8;
    s.low.assign(static_cast<size_t>(s.numel()), 0.0f); s.high.assign(static_cast<size_t>(s.numel()), 1.0f);
    return s;
  }
  static Space discrete_n(int64_t n) {
    Space s; s.discrete = true; s.shape = {1}; s.n = n; return s;
  }
};

struct EnvSpec {
  std::string name;            // prefrl's name, e.g. "cartpole"
  std::string reference;       // the reference it must agree with, e.g. "Gymnasium CartPole-v1"
  Space observation;
  Space action;
  int max_episode_steps = 0;   // time limit: truncated=true on this step
  double fps = 50.0;           // frames per second of simulated time (clip playback rate)
  bool pixels = false;         // observations are images (C x H x W floats in [0, 1])
  bool can_terminate = true;   // whether an episode can end before the time limit
  int state_size = 0;          // length of the physical state for get_state/set_state
  // Whether state_from_obs recovers a renderable state from every observation. Where it does
  // not (MuJoCo observations omit the body's x position), whoever keeps clips for people to
  // judge keeps each step's get_state() beside the observations (Segment::states).
  bool obs_determines_state = true;
  bool has_success = false;    // whether success() is defined (see the env's docs)
  // Whether rewards are the task's true reward. Where not (a task that declares none, or whose
  // scripted teacher judges by its own score), true-return metrics, correlations and the
  // checks that need them are absent, and the oracle teacher is refused.
  bool has_true_reward = true;
  // Names of the task's own per-step metrics (a task file's [metrics]); evaluation reports
  // each one's sum over an episode (Env::step_metrics).
  std::vector<std::string> metrics;
  // Observation elements (indices into the flat observation) the reward model must not see:
  // an Atari game's score display, which the paper hid from the reward model so that it
  // judges behaviour rather than reads the score. Empty for most environments.
  std::vector<int64_t> reward_hidden;
};

struct StepResult {
  float reward = 0.0f;
  bool terminated = false;   // reached a terminal state of the MDP
  bool truncated = false;    // hit the time limit (and not terminated)
};

// One environment instance. Not thread-safe; one thread at a time.
class Env {
 public:
  virtual ~Env() = default;
  virtual const EnvSpec& spec() const = 0;

  // Seeds this environment's RNG (used by later resets).
  void seed(uint64_t s) { rng().seed(s); }

  // Starts a new episode from a random initial state: writes observation (numel floats).
  void reset(float* obs) {
    elapsed_ = 0;
    reset_impl(obs);
  }

  // Advances one step: action (action numel floats; discrete: index as float) => obs, reward,
  // flags. Box actions outside the bounds are clipped as Gymnasium does. The time limit is
  // applied here: truncated is set on step max_episode_steps unless terminated (and, for an env
  // that reports_truncation(), where step_impl says so: an external env that truncates itself).
  StepResult step(const float* action, float* obs) {
    StepResult r = step_impl(action, obs);
    ++elapsed_;
    const int limit = spec().max_episode_steps;
    r.truncated = !r.terminated && ((reports_truncation() && r.truncated) || (limit > 0 && elapsed_ >= limit));
    return r;
  }

  // Physical state (e.g. cartpole: x, x_dot, theta, theta_dot), double precision.
  virtual std::vector<double> get_state() const = 0;
  // Sets the physical state, restarts the time-limit count, writes the observation.
  void set_state(const std::vector<double>& state, float* obs) {
    elapsed_ = 0;
    set_state_impl(state, obs);
  }

  // The physical state behind an observation, where the observation determines it (used to
  // render stored clips for people to judge). Returns false where it does not.
  virtual bool state_from_obs(const float* obs, std::vector<double>* state) const { return false; }

  // Renders the current state as RGB (height x width x 3 bytes, row-major, top row first).
  virtual void render(int width, int height, uint8_t* rgb) const = 0;

  // Task success at the end of an episode, where spec().has_success (e.g. movingdot).
  virtual bool success() const { return false; }

  // The values of spec().metrics on the last step (a reset leaves them as they were).
  virtual void step_metrics(double* out) const {}

  int elapsed_steps() const { return elapsed_; }
  // The RNG that draws this environment's initial states (a wrapper's is the wrapped env's).
  virtual Rng& rng() { return rng_; }
  virtual const Rng& rng() const { return rng_; }
  void set_elapsed_steps(int e) { elapsed_ = e; }

 protected:
  virtual void reset_impl(float* obs) = 0;
  virtual StepResult step_impl(const float* action, float* obs) = 0;
  virtual void set_state_impl(const std::vector<double>& state, float* obs) = 0;
  // Whether step_impl's `truncated` is the env's own (otherwise only the time limit truncates).
  virtual bool reports_truncation() const { return false; }

  Rng rng_;
  int elapsed_ = 0;
};

// Clips n Box actions (n x numel) in place to the space's bounds, NaN as 0, as the
// environments do when they execute them; discrete spaces are left as they are. Learners
// store what was executed, so they call this on sampled actions.
void clip_actions(const Space& space, float* actions, int n);

// ---- The registry: environment names => factories ----------------------------------------
// Built-in environments register through register_env like any other (at first use of the
// registry); every name is looked up at run time, so an environment registered before a config
// is resolved is as good as a built-in one.
using EnvFactory = std::function<std::unique_ptr<Env>()>;
// Adds an environment under `name` (lower-case letters, digits and '_', as used in run names).
// Throws UsageError when the name is malformed or already registered. Thread-safe.
void register_env(const std::string& name, EnvFactory factory);
// Registered names, built-in ones first, then in the order they were registered.
std::vector<std::string> env_names();
// The factory registered under `name`; throws UsageError listing known names if unknown.
EnvFactory env_factory(const std::string& name);
// Creates an environment by name; throws UsageError listing known names if unknown.
std::unique_ptr<Env> make_env(const std::string& name);
// The spec of a named environment (creates a throwaway instance unless it was registered with
// its spec).
EnvSpec env_spec(const std::string& name);

// ---- Vectorised environments ---------------------------------------------------------------
// N environments stepped together with automatic reset, behind one interface (serial now;
// threaded or remote later): an implementation steps each environment i with step_one(i, ...)
// and resets it with reset_one(i), in any order or in parallel, so every implementation
// computes the same thing. Env i is seeded seed + i.
// On an episode's end, final_obs holds the last observation of the ended episode and obs
// already holds the first observation of the next one (as Gymnasium's vector envs do).
class VecEnv {
 public:
  virtual ~VecEnv() = default;

  const EnvSpec& spec() const { return spec_; }
  int num_envs() const { return num_envs_; }
  int64_t obs_size() const { return obs_size_; }
  int64_t act_size() const { return act_size_; }

  // Resets all environments; obs() then holds (num_envs x obs_size).
  virtual void reset() = 0;
  // Steps every env with actions (num_envs x act_size). Ended envs are reset automatically.
  virtual void step(const float* actions) = 0;
  // Environment i itself (its state, RNG and clock, for checkpoints).
  virtual Env& env(int i) = 0;

  const std::vector<float>& obs() const { return obs_; }              // (num_envs x obs_size)
  const std::vector<float>& final_obs() const { return final_obs_; }  // (num_envs x obs_size), valid where done
  const std::vector<float>& rewards() const { return rewards_; }      // (num_envs)
  const std::vector<uint8_t>& terminated() const { return terminated_; }  // (num_envs)
  const std::vector<uint8_t>& truncated() const { return truncated_; }    // (num_envs)
  const std::vector<uint8_t>& success() const { return success_; }        // (num_envs), valid where done

  // Terminations replaced by a penalty (the paper's MuJoCo setting, so that how long an
  // episode lasts tells the learner nothing): episodes last to the time limit. A step on which
  // the task would end the episode earns the env's reward as usual and leaves its ended state
  // (a fallen body) in obs(), but terminated() stays false; the next step, whatever its action,
  // earns -penalty in rewards() and the env starts afresh from a new initial state inside the
  // same episode (whose step count runs on). The penalty thus belongs to an observation that
  // shows the end, so a reward model can tell it apart from the healthy state before it, and
  // the data stays on the task's states (a fallen hopper left lying for the rest of the
  // episode would fill it with the floor). Should the time limit come on the ending step, that
  // step carries the penalty itself. Call before reset().
  void replace_termination(float penalty);
  bool termination_replaced() const { return replace_termination_; }
  // Rewards under the task's own rules, whatever the mode: the env's reward up to and
  // including the step its episode would have ended on, 0 after that (so their sum over an
  // episode is the task's return, comparable with Gymnasium's). Equal to rewards() when
  // terminations are not replaced.
  const std::vector<float>& task_rewards() const { return task_rewards_; }  // (num_envs)
  // Penalty mode: whether env i's task episode has already ended inside the current episode
  // (its task rewards are 0 until the episode ends): kTaskRunning, kFallenShown (it ended on
  // the last step; its ended state is in obs() and the next step carries the penalty) or
  // kTaskOver. For checkpoints.
  static constexpr uint8_t kTaskRunning = 0, kTaskOver = 1, kFallenShown = 2;
  const std::vector<uint8_t>& task_over() const { return task_over_; }  // (num_envs)
  void set_task_over(int i, uint8_t phase);

  // Keeps every env's physical state (Env::get_state(), as floats) beside its observation from
  // now on: states() matches obs(), final_states() matches final_obs().
  // For clips of environments whose observations do not determine the state. Off by default.
  void keep_states(bool on);
  int64_t state_size() const { return spec().state_size; }
  const std::vector<float>& states() const { return states_; }              // (num_envs x S); empty when off
  const std::vector<float>& final_states() const { return final_states_; }  // (num_envs x S), valid where done

 protected:
  // For implementations: N environments of this spec. Throws UsageError unless N >= 1.
  VecEnv(const EnvSpec& spec, int num_envs);
  void reset_one(int i);                        // env i: a new episode into row i of obs()
  void step_one(int i, const float* actions);   // env i: one step of actions (N x A), row i of every buffer
  // For implementations whose resets finish after step_one/reset_one returned (a batch of
  // remote resets): row i of obs(), to be written, then refresh_state(i) to record its state.
  float* obs_row(int i) { return obs_.data() + i * obs_size_; }
  void refresh_state(int i) { if (keep_states_) store_state(i, &states_); }
  bool keeping_states() const { return keep_states_; }

 private:
  void store_state(int i, std::vector<float>* into);  // env i's state into row i
  EnvSpec spec_;
  int num_envs_ = 0;
  int64_t obs_size_ = 0, act_size_ = 0;
  bool keep_states_ = false;
  std::vector<float> states_, final_states_;
  std::vector<float> obs_, final_obs_, rewards_, task_rewards_;
  std::vector<uint8_t> terminated_, truncated_, success_;
  bool replace_termination_ = false;
  float termination_penalty_ = 0.0f;
  std::vector<uint8_t> task_over_;  // (num_envs) the task's episode would have ended (penalty mode)
};

// The environments stepped one after another on the calling thread.
class SerialVecEnv : public VecEnv {
 public:
  // N environments from `factory` (all of one spec), env i seeded seed + i.
  SerialVecEnv(const EnvFactory& factory, int num_envs, uint64_t seed);
  // N environments of a registered name.
  SerialVecEnv(const std::string& name, int num_envs, uint64_t seed);
  void reset() override;
  void step(const float* actions) override;
  Env& env(int i) override { return *envs_[i]; }

 private:
  SerialVecEnv(std::unique_ptr<Env> first, const EnvFactory& factory, int num_envs, uint64_t seed);
  std::vector<std::unique_ptr<Env>> envs_;
};

// How environments that are stepped elsewhere in batches (external workers) make their VecEnv:
// N environments, env i seeded seed + i.
using VecEnvFactory = std::function<std::unique_ptr<VecEnv>(int num_envs, uint64_t seed)>;
// Adds an environment with its own VecEnv and its spec known in advance (env_spec then creates
// no instance). Otherwise as register_env.
void register_env(const std::string& name, EnvFactory factory, VecEnvFactory vec_factory, const EnvSpec& spec);
// Replaces the factories of a name registered with register_env(name, ..., spec) (new options
// of the same environment); throws UsageError if the name is not such an environment.
void replace_env(const std::string& name, EnvFactory factory, VecEnvFactory vec_factory, const EnvSpec& spec);

// The VecEnv of N registered environments `name`: its own VecEnvFactory's, or serial.
std::unique_ptr<VecEnv> make_vec_env(const std::string& name, int num_envs, uint64_t seed);

}  // namespace prefrl
