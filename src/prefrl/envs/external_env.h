// External environments: simulators prefrl cannot load, hosted by worker processes that speak
// the protocol of docs/env_protocol.md (version 1) — JSON control messages over a Unix socket,
// the arrays in one shared-memory file per worker, one message per batch.
//
//   ExternalEnvOptions o; o.cmd = "python3 my_env.py"; o.num_workers = 2;
//   const std::string name = register_external_env(o);   // the name the worker's SPEC gives
//   auto envs = make_vec_env(name, 8, seed);               // 2 workers x 4 envs, batched
//   auto one = make_env(name);                             // its own one-env worker
//
// Every failure of a worker (an error reply, an exit, a closed socket, a reply slower than
// step_timeout_s, non-finite observations or rewards) throws RuntimeError naming the worker,
// the env (in the run's numbering), the request and the batch, with the tail of its log.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefrl/envs/env.h"

namespace prefrl {

inline constexpr int kEnvProtocolVersion = 1;

struct ExternalEnvOptions {
  std::string cmd;             // run as `sh -c CMD`
  std::string dir;             // its working directory (empty: the current one)
  int num_workers = 1;         // worker processes of a VecEnv (at most its num_envs)
  double step_timeout_s = 30;  // longest wait for any reply
  std::string log_dir;         // worker-W.log go here (empty: the one set_external_env_log_dir set)
};

// What a worker's hello says (docs/env_protocol.md, "Handshake"), as prefrl uses it.
struct ExternalSpec {
  EnvSpec spec;
  nlohmann::json json;         // the SPEC as the worker sent it (every worker must send the same)
  bool obs_bytes = false;      // the observation Box is uint8 (obs rows hold bytes; values byte / 255)
  int render_width = 0, render_height = 0;  // 0: the env does not render
};
// Parses and checks a SPEC; throws UsageError naming the field that is wrong.
ExternalSpec parse_external_spec(const nlohmann::json& spec);

// One worker process hosting `num_envs` environments (the run's envs first_env ...).
class EnvWorker {
 public:
  // Starts the worker and sends hello; finish_hello() reads its reply.
  EnvWorker(const ExternalEnvOptions& options, int index, int first_env, int num_envs);
  ~EnvWorker();  // close, then the worker's process group is killed if it lingers
  EnvWorker(const EnvWorker&) = delete;
  EnvWorker& operator=(const EnvWorker&) = delete;

  // The SPEC of the hello reply (checked: protocol and version).
  nlohmann::json finish_hello();
  // Creates the shared memory for `spec` and sends setup (reply awaited).
  void setup(const ExternalSpec& spec);

  void send(const nlohmann::json& msg);
  // Waits for the reply to `during` (e.g. "step"); an error reply, an exit or a timeout throws.
  void expect_ok(const std::string& during);
  void call(const nlohmann::json& msg) { send(msg); expect_ok(msg.at("op").get<std::string>()); }
  // Throws RuntimeError: `what` about this worker (and its env row `row`, if >= 0), with its log's tail.
  [[noreturn]] void fail(const std::string& what, int row = -1) const;
  void set_batch(int64_t b) { batch_ = b; }

  int index() const { return index_; }
  int first_env() const { return first_env_; }
  int num_envs() const { return num_envs_; }

  // Row j of each shared array (docs/env_protocol.md's table).
  uint8_t* obs_row(int j) const { return base_ + obs_off_ + j * obs_row_bytes_; }
  float* action(int j) const { return reinterpret_cast<float*>(base_ + act_off_) + j * act_size_; }
  double& reward(int j) const { return reinterpret_cast<double*>(base_ + rew_off_)[j]; }
  uint8_t& terminated(int j) const { return base_[term_off_ + j]; }
  uint8_t& truncated(int j) const { return base_[trunc_off_ + j]; }
  uint8_t& active(int j) const { return base_[active_off_ + j]; }
  double* state(int j) const { return reinterpret_cast<double*>(base_ + state_off_) + j * state_size_; }
  const uint8_t* frame(int j) const { return base_ + frame_off_ + j * frame_bytes_; }
  // A step's automatic reset: prefrl asks (autoreset, seed); the worker says (was_reset) and
  // writes the new episode's first observation and state beside the ended one's.
  uint8_t& autoreset(int j) const { return base_[autoreset_off_ + j]; }
  uint64_t& seed(int j) const { return reinterpret_cast<uint64_t*>(base_ + seed_off_)[j]; }
  uint8_t& was_reset(int j) const { return base_[was_reset_off_ + j]; }
  uint8_t* reset_obs_row(int j) const { return base_ + reset_obs_off_ + j * obs_row_bytes_; }
  double* reset_state(int j) const { return reinterpret_cast<double*>(base_ + reset_state_off_) + j * state_size_; }

 private:
  nlohmann::json receive(const std::string& during);
  void read_exact(void* into, size_t n, const std::string& during, double deadline);
  std::string describe() const;
  std::string exit_status();

  ExternalEnvOptions options_;
  int index_ = 0, first_env_ = 0, num_envs_ = 0;
  int fd_ = -1;
  int pid_ = -1;
  bool exited_ = false;
  int wait_status_ = 0;
  std::string log_path_;
  int64_t batch_ = 0;
  std::string inbuf_;  // bytes received and not yet read
  std::string shm_path_;
  uint8_t* base_ = nullptr;
  size_t shm_bytes_ = 0;
  size_t obs_off_ = 0, act_off_ = 0, rew_off_ = 0, term_off_ = 0, trunc_off_ = 0, active_off_ = 0,
         state_off_ = 0, frame_off_ = 0, autoreset_off_ = 0, seed_off_ = 0, was_reset_off_ = 0, reset_obs_off_ = 0,
         reset_state_off_ = 0;
  size_t obs_row_bytes_ = 0, frame_bytes_ = 0;
  int64_t act_size_ = 0, state_size_ = 0;
};

// Registers the environment the command's workers host, under the name its SPEC gives (one
// worker is started to ask), and returns the name. make_env(name) then starts a one-env worker
// per environment; make_vec_env(name, N, seed) starts options.num_workers workers hosting the N
// environments in contiguous blocks. Registering the same command again updates its options
// (workers, timeout) and returns the same name; a name taken by another environment is refused.
std::string register_external_env(const ExternalEnvOptions& options);
// Where the logs of workers started from now on go (a run's RUN/workers).
void set_external_env_log_dir(const std::string& dir);

}  // namespace prefrl
