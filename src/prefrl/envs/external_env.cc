// External environments (see external_env.h and docs/env_protocol.md).
#include "prefrl/envs/external_env.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

#include "prefrl/core/error.h"

extern char** environ;

namespace prefrl {

namespace fs = std::filesystem;

// ---- The SPEC ------------------------------------------------------------------------------
namespace {

[[noreturn]] void bad_spec(const std::string& field, const std::string& what) {
  throw UsageError("external env: the worker's hello: '" + field + "' " + what + " (docs/env_protocol.md)");
}

const nlohmann::json& need(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) bad_spec(where + key, "is missing");
  return j.at(key);
}

float bound(const nlohmann::json& v, const std::string& field) {
  if (v.is_string()) {
    if (v == "inf") return std::numeric_limits<float>::infinity();
    if (v == "-inf") return -std::numeric_limits<float>::infinity();
  } else if (v.is_number()) {
    return static_cast<float>(v.get<double>());
  }
  bad_spec(field, "has " + v.dump() + "; expected a number, \"inf\" or \"-inf\"");
}

// A SPACE; `*bytes` is set for a uint8 Box.
Space parse_space(const nlohmann::json& j, const std::string& field, bool* bytes) {
  const nlohmann::json& type = need(j, "type", field + ".");
  if (type == "discrete") {
    const nlohmann::json& n = need(j, "n", field + ".");
    if (!n.is_number_integer() || n.get<int64_t>() < 1) bad_spec(field + ".n", "is " + n.dump() + "; expected an integer >= 1");
    return Space::discrete_n(n.get<int64_t>());
  }
  if (type != "box") bad_spec(field + ".type", "is " + type.dump() + "; expected \"box\" or \"discrete\"");
  const nlohmann::json& shape = need(j, "shape", field + ".");
  std::vector<int64_t> dims;
  if (!shape.is_array() || shape.empty()) bad_spec(field + ".shape", "is " + shape.dump() + "; expected a list of sizes");
  int64_t numel = 1;
  for (const auto& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > (1 << 24))
      bad_spec(field + ".shape", "is " + shape.dump() + "; expected sizes >= 1");
    dims.push_back(d.get<int64_t>());
    numel *= dims.back();
  }
  if (numel > (1 << 26)) bad_spec(field + ".shape", "is " + shape.dump() + ": too many elements");
  const nlohmann::json& dtype = need(j, "dtype", field + ".");
  if (dtype != "float32" && dtype != "float64" && dtype != "uint8")
    bad_spec(field + ".dtype", "is " + dtype.dump() + "; expected \"float32\", \"float64\" or \"uint8\"");
  if (dtype == "uint8") {
    if (bytes) *bytes = true;
    return Space::bytes(dims);
  }
  std::vector<float> lo, hi;
  for (const char* key : {"low", "high"}) {
    const nlohmann::json& b = need(j, key, field + ".");
    if (!b.is_array() || static_cast<int64_t>(b.size()) != numel)
      bad_spec(field + "." + key, "has " + std::to_string(b.is_array() ? b.size() : 0) + " values; expected " +
                                      std::to_string(numel) + " (the shape's elements, row-major)");
    auto& into = std::string(key) == "low" ? lo : hi;
    for (const auto& v : b) into.push_back(bound(v, field + "." + key));
  }
  for (int64_t k = 0; k < numel; ++k)
    if (!(lo[k] <= hi[k])) bad_spec(field, "has low > high at element " + std::to_string(k));
  return Space::box(dims, lo, hi);
}

}  // namespace

ExternalSpec parse_external_spec(const nlohmann::json& j) {
  ExternalSpec x;
  x.json = j;
  EnvSpec& s = x.spec;
  const nlohmann::json& name = need(j, "name", "");
  const bool name_ok = name.is_string() && !name.get<std::string>().empty() && name.get<std::string>().size() <= 64 &&
                       std::all_of(name.get_ref<const std::string&>().begin(), name.get_ref<const std::string&>().end(),
                                   [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
  if (!name_ok) bad_spec("name", "is " + name.dump() + "; expected 1-64 lower-case letters, digits or '_'");
  s.name = name.get<std::string>();
  s.reference = "an external environment (docs/env_protocol.md)";
  s.observation = parse_space(need(j, "observation_space", ""), "observation_space", &x.obs_bytes);
  if (s.observation.discrete) bad_spec("observation_space", "is discrete; expected a Box");
  s.action = parse_space(need(j, "action_space", ""), "action_space", nullptr);
  if (!s.action.discrete && s.action.dtype == Dtype::kUInt8) bad_spec("action_space.dtype", "is uint8; expected a float Box or Discrete");
  for (int64_t k = 0; !s.action.discrete && k < s.action.numel(); ++k)
    if (!std::isfinite(s.action.low[k]) || !std::isfinite(s.action.high[k]))
      bad_spec("action_space", "has an infinite bound at element " + std::to_string(k) + "; expected finite bounds");
  const nlohmann::json& fps = need(j, "fps", "");
  if (!fps.is_number() || !(fps.get<double>() > 0) || fps.get<double>() > 1000) bad_spec("fps", "is " + fps.dump() + "; expected a number in (0, 1000]");
  s.fps = fps.get<double>();
  const nlohmann::json& limit = need(j, "time_limit", "");
  if (!limit.is_number_integer() || limit.get<int64_t>() < 0 || limit.get<int64_t>() > 100000000)
    bad_spec("time_limit", "is " + limit.dump() + "; expected an integer >= 0");
  s.max_episode_steps = static_cast<int>(limit.get<int64_t>());
  const nlohmann::json& render = need(j, "render", "");
  if (!render.is_null()) {
    const nlohmann::json& w = need(render, "width", "render."), &h = need(render, "height", "render.");
    if (!w.is_number_integer() || !h.is_number_integer() || w.get<int>() < 1 || h.get<int>() < 1 || w.get<int>() > 4096 ||
        h.get<int>() > 4096)
      bad_spec("render", "is " + render.dump() + "; expected width and height in 1..4096, or null");
    x.render_width = w.get<int>();
    x.render_height = h.get<int>();
  }
  const nlohmann::json& truth = need(j, "has_true_reward", "");
  if (!truth.is_boolean()) bad_spec("has_true_reward", "is " + truth.dump() + "; expected true or false");
  s.has_true_reward = truth.get<bool>();
  const nlohmann::json& state = need(j, "state_size", "");
  if (!state.is_number_integer() || state.get<int64_t>() < 0 || state.get<int64_t>() > 1000000)
    bad_spec("state_size", "is " + state.dump() + "; expected an integer >= 0");
  s.state_size = static_cast<int>(state.get<int64_t>());
  s.pixels = s.observation.shape.size() == 3;
  s.obs_determines_state = false;  // clips keep the states (get_state) and render through the worker
  s.can_terminate = true;
  return x;
}

// ---- A worker process ------------------------------------------------------------------------
namespace {

std::mutex g_mu;
std::string g_log_dir;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string default_log_dir() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_log_dir.empty()) return g_log_dir;
  return (fs::temp_directory_path() / ("prefrl-workers-" + std::to_string(getpid()))).string();
}

// The last lines of a log (at most ~2 KB), indented, or a note that it is empty.
std::string log_tail(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "  (no log)";
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 2048);
  f.seekg(from);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (from > 0) {
    const size_t nl = text.find('\n');
    text = nl == std::string::npos ? text : text.substr(nl + 1);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty()) return "  (the log is empty)";
  std::string out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) out += "  | " + line + "\n";
  out.pop_back();
  return out;
}

size_t align64(size_t x) { return (x + 63) / 64 * 64; }

constexpr double kSpinS = 200e-6;  // how long a wait for a reply spins before it sleeps

std::atomic<int> g_shm_counter{0};

}  // namespace

EnvWorker::EnvWorker(const ExternalEnvOptions& options, int index, int first_env, int num_envs)
    : options_(options), index_(index), first_env_(first_env), num_envs_(num_envs) {
  if (options_.cmd.empty()) throw UsageError("external env: the command is empty");
  const std::string dir = options_.log_dir.empty() ? default_log_dir() : options_.log_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  log_path_ = (fs::path(dir) / ("worker-" + std::to_string(index) + ".log")).string();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw RuntimeError(std::string("external env: socketpair failed: ") + std::strerror(errno));
  const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    close(sv[0]); close(sv[1]);
    throw RuntimeError("external env: cannot open the worker log '" + log_path_ + "': " + std::strerror(errno));
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Everything the child needs is made before fork (only async-signal-safe calls after it).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "PREFRL_ENV_FD=", 14) != 0) env_strings.emplace_back(*e);
  env_strings.emplace_back("PREFRL_ENV_FD=3");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string cwd = options_.dir;
  const char* argv[] = {"sh", "-c", options_.cmd.c_str(), nullptr};
  const pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]); close(sv[1]); close(log_fd); if (null_fd >= 0) close(null_fd);
    throw RuntimeError(std::string("external env: fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);  // its own process group: a timeout kills the command and what it started
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    dup2(sv[1], 3);  // dup2 clears close-on-exec on 3
    if (sv[1] == 3) fcntl(3, F_SETFD, 0);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
      const char msg[] = "prefrl: cannot change to the worker's directory\n";
      (void)!write(2, msg, sizeof msg - 1);
      _exit(127);
    }
    execve("/bin/sh", const_cast<char* const*>(argv), envp.data());
    _exit(127);
  }
  setpgid(pid, pid);
  pid_ = pid;
  close(sv[1]);
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  fd_ = sv[0];
  send({{"op", "hello"}, {"protocol", "prefrl-env"}, {"version", kEnvProtocolVersion}, {"worker", index},
        {"num_envs", num_envs}, {"first_env", first_env}});
}

EnvWorker::~EnvWorker() {
  if (fd_ >= 0 && !exited_) {
    try {
      // A clean close: the worker replies and exits; a short wait for it.
      const double saved = options_.step_timeout_s;
      options_.step_timeout_s = std::min(saved, 2.0);
      call({{"op", "close"}});
    } catch (const std::exception&) {
    }
  }
  if (fd_ >= 0) close(fd_);
  if (pid_ > 0 && !exited_) {
    int status = 0;
    for (int k = 0; k < 50; ++k) {  // up to 0.5 s for it to exit by itself
      if (waitpid(pid_, &status, WNOHANG) == pid_) { exited_ = true; break; }
      usleep(10000);
    }
    if (!exited_) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  if (base_) munmap(base_, shm_bytes_);
  if (!shm_path_.empty()) unlink(shm_path_.c_str());
}

std::string EnvWorker::describe() const {
  return "external env worker " + std::to_string(index_) + " (envs " + std::to_string(first_env_) + ".." +
         std::to_string(first_env_ + num_envs_ - 1) + " of `" + options_.cmd + "`)";
}

std::string EnvWorker::exit_status() {
  if (pid_ <= 0) return "";
  if (!exited_) {
    for (int k = 0; k < 100 && !exited_; ++k) {  // it is going away: up to 1 s for its status
      if (waitpid(pid_, &wait_status_, WNOHANG) == pid_) exited_ = true;
      else usleep(10000);
    }
  }
  if (!exited_) return "";
  if (WIFEXITED(wait_status_)) return "it exited with status " + std::to_string(WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_)) return std::string("it was killed by signal ") + strsignal(WTERMSIG(wait_status_));
  return "it ended";
}

void EnvWorker::fail(const std::string& what, int row) const {
  std::string where = describe();
  if (row >= 0) where += ", env " + std::to_string(first_env_ + row);
  throw RuntimeError(where + ", batched step " + std::to_string(batch_) + ": " + what + "; its log " + log_path_ +
                     " ends:\n" + log_tail(log_path_));
}

void EnvWorker::send(const nlohmann::json& msg) {
  const std::string body = msg.dump();
  std::string frame(4, '\0');
  const uint32_t n = static_cast<uint32_t>(body.size());
  for (int k = 0; k < 4; ++k) frame[k] = static_cast<char>((n >> (8 * k)) & 0xff);
  frame += body;
  size_t done = 0;
  while (done < frame.size()) {
    const ssize_t w = ::send(fd_, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const std::string status = exit_status();
      fail("sending '" + msg.value("op", std::string("?")) + "' failed: the worker closed its socket" +
           (status.empty() ? "" : "; " + status));
    }
    done += static_cast<size_t>(w);
  }
}

void EnvWorker::read_exact(void* into, size_t n, const std::string& during, double deadline) {
  // Buffered: a reply usually arrives whole (length and body) in one recv.
  while (inbuf_.size() < n) {
    pollfd pfd{fd_, POLLIN, 0};
    // Spins for up to kSpinS before sleeping in poll: a worker's reply usually comes within
    // microseconds, and a sleeping CPU takes tens of them to wake (a virtual machine's most).
    int r = 0;
    for (const double spin_end = now_s() + kSpinS; (r = poll(&pfd, 1, 0)) == 0 && now_s() < spin_end;) {
    }
    if (r == 0) {
      const double left = deadline - now_s();
      if (left <= 0) {
        kill(-pid_, SIGKILL);
        kill(pid_, SIGKILL);
        fail("no reply to '" + during + "' within env.step_timeout_s = " + std::to_string(options_.step_timeout_s) +
             " s; the worker was killed");
      }
      if (poll(&pfd, 1, static_cast<int>(std::ceil(std::min(left, 3600.0) * 1000))) <= 0) continue;
    } else if (r < 0) {
      continue;  // EINTR
    }
    char buf[65536];
    const ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const std::string status = exit_status();
      fail("the worker closed its socket while prefrl waited for the reply to '" + during + "'" +
           (status.empty() ? "" : "; " + status));
    }
    inbuf_.append(buf, static_cast<size_t>(got));
  }
  std::memcpy(into, inbuf_.data(), n);
  inbuf_.erase(0, n);
}

nlohmann::json EnvWorker::receive(const std::string& during) {
  const double deadline = now_s() + options_.step_timeout_s;
  uint8_t head[4];
  read_exact(head, 4, during, deadline);
  const uint32_t n = head[0] | (head[1] << 8) | (head[2] << 16) | (static_cast<uint32_t>(head[3]) << 24);
  if (n > (64u << 20)) fail("a reply of " + std::to_string(n) + " bytes to '" + during + "'; control messages are small");
  std::string body(n, '\0');
  read_exact(body.data(), n, during, deadline);
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("op"))
    fail("the reply to '" + during + "' is not a JSON object with an \"op\": " + body.substr(0, 200));
  if (j["op"] == "error") {
    const int row = j.contains("env") && j["env"].is_number_integer() ? j["env"].get<int>() : -1;
    const std::string field = j.contains("field") && j["field"].is_string() ? j["field"].get<std::string>() : "";
    const std::string message = j.contains("message") && j["message"].is_string() ? j["message"].get<std::string>() : j.dump();
    fail("'" + during + "' failed" + (field.empty() ? "" : " (" + field + ")") + ": " + message,
         row >= 0 && row < num_envs_ ? row : -1);
  }
  return j;
}

void EnvWorker::expect_ok(const std::string& during) {
  const nlohmann::json j = receive(during);
  if (j["op"] != "ok") fail("the reply to '" + during + "' is " + j.dump().substr(0, 200) + "; expected {\"op\": \"ok\"}");
}

nlohmann::json EnvWorker::finish_hello() {
  const nlohmann::json j = receive("hello");
  if (j["op"] != "hello") fail("the reply to 'hello' is " + j.dump().substr(0, 200) + "; expected {\"op\": \"hello\", ...}");
  if (j.value("protocol", nlohmann::json()) != "prefrl-env")
    fail("the worker's hello names protocol " + j.value("protocol", nlohmann::json()).dump() + "; expected \"prefrl-env\"");
  if (j.value("version", nlohmann::json()) != kEnvProtocolVersion)
    fail("the worker speaks protocol version " + j.value("version", nlohmann::json()).dump() + "; prefrl speaks " +
         std::to_string(kEnvProtocolVersion));
  if (!j.contains("env")) fail("the worker's hello has no \"env\" (its SPEC)");
  return j["env"];
}

void EnvWorker::setup(const ExternalSpec& x) {
  const EnvSpec& s = x.spec;
  const size_t k = static_cast<size_t>(num_envs_);
  act_size_ = s.action.numel();
  state_size_ = s.state_size;
  obs_row_bytes_ = static_cast<size_t>(s.observation.numel()) * (x.obs_bytes ? 1 : 4);
  frame_bytes_ = static_cast<size_t>(x.render_width) * x.render_height * 3;
  nlohmann::json layout = nlohmann::json::object();
  size_t at = 0;
  auto place = [&](const char* name, size_t bytes, size_t* off) {
    *off = at;
    layout[name] = {at, bytes};
    at = align64(at + bytes);
  };
  place("obs", k * obs_row_bytes_, &obs_off_);
  place("action", k * act_size_ * 4, &act_off_);
  place("reward", k * 8, &rew_off_);
  place("terminated", k, &term_off_);
  place("truncated", k, &trunc_off_);
  place("active", k, &active_off_);
  if (state_size_ > 0) place("state", k * state_size_ * 8, &state_off_);
  if (frame_bytes_ > 0) place("frame", k * frame_bytes_, &frame_off_);
  place("autoreset", k, &autoreset_off_);
  place("seed", k * 8, &seed_off_);
  place("was_reset", k, &was_reset_off_);
  place("reset_obs", k * obs_row_bytes_, &reset_obs_off_);
  if (state_size_ > 0) place("reset_state", k * state_size_ * 8, &reset_state_off_);
  shm_bytes_ = std::max<size_t>(at, 64);
  const std::string dir = fs::is_directory("/dev/shm") ? "/dev/shm" : fs::temp_directory_path().string();
  shm_path_ = dir + "/prefrl-" + std::to_string(getpid()) + "-" + std::to_string(g_shm_counter++) + "-w" +
              std::to_string(index_);
  const int fd = open(shm_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const std::string err = std::strerror(errno);
    shm_path_.clear();
    fail("cannot create the shared memory file: " + err);
  }
  if (ftruncate(fd, static_cast<off_t>(shm_bytes_)) != 0) {
    close(fd);
    fail("cannot size the shared memory file " + shm_path_ + " to " + std::to_string(shm_bytes_) + " bytes");
  }
  void* p = mmap(nullptr, shm_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) fail("cannot map the shared memory file " + shm_path_);
  base_ = static_cast<uint8_t*>(p);
  std::memset(base_, 0, shm_bytes_);
  call({{"op", "setup"}, {"shm", shm_path_}, {"bytes", shm_bytes_}, {"layout", layout}});
}

// ---- One environment on a worker -----------------------------------------------------------
namespace {

// What the envs of one ExternalVecEnv share while it steps them in a batch.
struct Batch {
  // From the batch's message to its last reset: step results, states and reset observations are
  // read from the rows (what step_one and reset_one record before a reset arrives is patched by
  // finish_resets), and resets wait to go in one message per worker.
  bool in_batch = false;
  std::vector<std::vector<std::pair<int, uint64_t>>> pending;  // per worker: (row, seed) to reset
};

class RemoteEnv : public Env {
 public:
  // Row `row` of `worker` (owned elsewhere: an ExternalVecEnv's), stepped in batches.
  RemoteEnv(std::shared_ptr<const ExternalSpec> x, EnvWorker* worker, int row, Batch* batch)
      : x_(std::move(x)), worker_(worker), row_(row), batch_(batch) {}
  // A standalone environment: its own worker with one env.
  RemoteEnv(std::shared_ptr<const ExternalSpec> x, const ExternalEnvOptions& options)
      : x_(std::move(x)), owned_(std::make_unique<EnvWorker>(options, 0, 0, 1)), worker_(owned_.get()) {
    const nlohmann::json spec = owned_->finish_hello();
    if (spec != x_->json)
      owned_->fail("its SPEC " + spec.dump() + " differs from the one the environment was registered with " + x_->json.dump());
    owned_->setup(*x_);
  }

  const EnvSpec& spec() const override { return x_->spec; }

  std::vector<double> get_state() const override {
    const int S = x_->spec.state_size;
    if (S == 0) return {};
    if (!started_) return std::vector<double>(S, 0.0);  // no episode yet: nothing to ask for
    const bool in_rows = batch_ && batch_->in_batch;
    if (!in_rows) worker_->call({{"op", "get_state"}, {"envs", {row_}}});
    const double* s = in_rows && auto_reset_used_ ? worker_->reset_state(row_) : worker_->state(row_);
    return std::vector<double>(s, s + S);
  }

  void render(int width, int height, uint8_t* rgb) const override {
    const int W = x_->render_width, H = x_->render_height;
    if (W == 0) {
      std::fill(rgb, rgb + static_cast<size_t>(width) * height * 3, uint8_t{0});
      throw RuntimeError("external env '" + x_->spec.name + "' does not render (its SPEC's render is null)");
    }
    worker_->call({{"op", "render"}, {"envs", {row_}}});
    const uint8_t* f = worker_->frame(row_);
    // Scaled (nearest neighbour) to fit the size asked for, its aspect kept: the margins take the
    // colour of the frame's top-left pixel.
    const double scale = std::min(static_cast<double>(width) / W, static_cast<double>(height) / H);
    const int w = std::max(1, std::min(width, static_cast<int>(std::lround(W * scale))));
    const int h = std::max(1, std::min(height, static_cast<int>(std::lround(H * scale))));
    const int x0 = (width - w) / 2, y0 = (height - h) / 2;
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        uint8_t* out = rgb + (static_cast<size_t>(y) * width + x) * 3;
        const int u = x - x0, v = y - y0;
        if (u < 0 || v < 0 || u >= w || v >= h) {
          std::copy_n(f, 3, out);
          continue;
        }
        const int sx = std::min(W - 1, static_cast<int>((u + 0.5) * W / w));
        const int sy = std::min(H - 1, static_cast<int>((v + 0.5) * H / h));
        std::copy_n(f + (static_cast<size_t>(sy) * W + sx) * 3, 3, out);
      }
  }

  // The row's observation (or, `after_reset`, the automatic reset's) as floats, checked finite.
  void read_obs(float* obs, bool after_reset = false) const {
    const int64_t D = x_->spec.observation.numel();
    const uint8_t* row = after_reset ? worker_->reset_obs_row(row_) : worker_->obs_row(row_);
    if (x_->obs_bytes) {
      for (int64_t k = 0; k < D; ++k) obs[k] = static_cast<float>(row[k]) / 255.0f;
      return;
    }
    std::memcpy(obs, row, static_cast<size_t>(D) * 4);
    for (int64_t k = 0; k < D; ++k)
      if (!std::isfinite(obs[k]))
        worker_->fail("observation element " + std::to_string(k) + " is " + std::to_string(obs[k]) +
                      "; observations must be finite", row_);
  }

  uint64_t draw_seed() { return rng().next_u64() >> 1; }  // in [0, 2^63)
  // The seed the next reset will draw (the env's stream is not advanced).
  uint64_t next_seed() const {
    Rng copy = rng();
    return copy.next_u64() >> 1;
  }
  // A batch begins: the worker resets this env by itself if its step ends the episode (prefrl
  // would then reset it with next_seed()).
  void offer_autoreset(bool on) {
    auto_reset_used_ = false;
    worker_->autoreset(row_) = on;
    if (on) worker_->seed(row_) = next_seed();
  }

 protected:
  void reset_impl(float* obs) override {
    started_ = true;
    const uint64_t seed = draw_seed();
    if (batch_ && batch_->in_batch && worker_->autoreset(row_) && worker_->was_reset(row_) && !auto_reset_used_) {
      // The worker reset it with this very seed right after the step: nothing to ask.
      if (worker_->seed(row_) != seed) worker_->fail("an automatic reset used another seed than prefrl's", row_);
      auto_reset_used_ = true;
      read_obs(obs, /*after_reset=*/true);
      return;
    }
    if (batch_ && batch_->in_batch) {
      batch_->pending[worker_->index()].emplace_back(row_, seed);
      return;
    }
    worker_->call({{"op", "reset"}, {"envs", {row_}}, {"seeds", {seed}}});
    read_obs(obs);
  }

  StepResult step_impl(const float* action, float* obs) override {
    if (!(batch_ && batch_->in_batch)) {
      std::copy_n(action, x_->spec.action.numel(), worker_->action(row_));
      clip_actions(x_->spec.action, worker_->action(row_), 1);
      for (int j = 0; j < worker_->num_envs(); ++j) worker_->active(j) = j == row_;
      worker_->autoreset(row_) = 0;
      worker_->call({{"op", "step"}});
    }
    StepResult r;
    read_obs(obs);
    const double reward = worker_->reward(row_);
    if (!std::isfinite(reward)) worker_->fail("the reward is " + std::to_string(reward) + "; rewards must be finite", row_);
    r.reward = x_->spec.has_true_reward ? static_cast<float>(reward) : 0.0f;
    r.terminated = worker_->terminated(row_) != 0;
    r.truncated = worker_->truncated(row_) != 0;
    return r;
  }

  void set_state_impl(const std::vector<double>& state, float* obs) override {
    const size_t S = static_cast<size_t>(x_->spec.state_size);
    if (S == 0 && state.empty()) {  // no state hooks: a fresh episode is the best there is
      reset_impl(obs);
      return;
    }
    if (state.size() != S)
      throw UsageError("external env '" + x_->spec.name + "': a state of " + std::to_string(state.size()) +
                       " values; its state_size is " + std::to_string(S));
    std::copy(state.begin(), state.end(), worker_->state(row_));
    started_ = true;
    worker_->call({{"op", "set_state"}, {"envs", {row_}}});
    read_obs(obs);
  }

  bool reports_truncation() const override { return true; }

 private:
  std::shared_ptr<const ExternalSpec> x_;
  std::unique_ptr<EnvWorker> owned_;
  EnvWorker* worker_ = nullptr;
  int row_ = 0;
  Batch* batch_ = nullptr;
  bool started_ = false;  // reset or set to a state at least once
  bool auto_reset_used_ = false;  // this batch's reset was the worker's automatic one
};

// N environments on W workers, each stepped with one message per batch.
class ExternalVecEnv : public VecEnv {
 public:
  ExternalVecEnv(std::shared_ptr<const ExternalSpec> x, const ExternalEnvOptions& options, int num_envs, uint64_t seed)
      : VecEnv(x->spec, num_envs), x_(x) {
    const int W = std::max(1, std::min(options.num_workers, num_envs));
    for (int w = 0, first = 0; w < W; ++w) {  // all start at once (their imports overlap)
      const int k = num_envs / W + (w < num_envs % W ? 1 : 0);
      workers_.push_back(std::make_unique<EnvWorker>(options, w, first, k));
      first += k;
    }
    for (auto& w : workers_) {
      const nlohmann::json spec = w->finish_hello();
      if (spec != x->json)
        w->fail("its SPEC " + spec.dump() + " differs from the one the environment was registered with " + x->json.dump());
      w->setup(*x);
    }
    batch_.pending.resize(workers_.size());
    for (auto& w : workers_)
      for (int j = 0; j < w->num_envs(); ++j) {
        remotes_.push_back(std::make_unique<RemoteEnv>(x, w.get(), j, &batch_));
        where_.emplace_back(w.get(), j);
      }
    for (int i = 0; i < num_envs; ++i) remotes_[i]->seed(seed + static_cast<uint64_t>(i));
  }

  void reset() override {
    ++batches_;
    for (auto& r : remotes_) r->offer_autoreset(false);
    begin_batch();
    for (int i = 0; i < num_envs(); ++i) reset_one(i);
    finish_resets();
  }

  void step(const float* actions) override {
    ++batches_;
    const int64_t A = act_size();
    for (int i = 0; i < num_envs(); ++i) {
      auto [w, j] = where_[i];
      const bool active = task_over()[i] != kFallenShown;  // that env restarts instead (step_one)
      w->active(j) = active;
      if (active) std::copy_n(actions + i * A, A, w->action(j));
      // Where the env's own end of an episode is the episode's end (not in penalty mode), the
      // worker starts the next one at once: no second message. Ends prefrl adds (the time limit)
      // are reset by finish_resets.
      remotes_[i]->offer_autoreset(active && !termination_replaced());
    }
    for (auto& w : workers_) clip_actions(spec().action, w->action(0), w->num_envs());
    const bool states = keeping_states() && spec().state_size > 0;
    for (auto& w : workers_) {
      w->set_batch(batches_);
      w->send({{"op", "step"}, {"state", states}});
    }
    for (auto& w : workers_) w->expect_ok("step");
    begin_batch();
    for (int i = 0; i < num_envs(); ++i) step_one(i, actions);
    finish_resets();
  }

  Env& env(int i) override { return *remotes_.at(i); }

 private:
  void begin_batch() {
    batch_.in_batch = true;
    for (auto& p : batch_.pending) p.clear();
  }

  // The resets step_one and reset_one asked for: one message per worker, then their rows.
  void finish_resets() {
    const bool states = keeping_states() && spec().state_size > 0;
    std::vector<EnvWorker*> asked;
    for (size_t w = 0; w < workers_.size(); ++w) {
      if (batch_.pending[w].empty()) continue;
      nlohmann::json envs = nlohmann::json::array(), seeds = nlohmann::json::array();
      for (auto [row, seed] : batch_.pending[w]) { envs.push_back(row); seeds.push_back(seed); }
      workers_[w]->set_batch(batches_);
      workers_[w]->send({{"op", "reset"}, {"envs", envs}, {"seeds", seeds}, {"state", states}});
      asked.push_back(workers_[w].get());
    }
    for (EnvWorker* w : asked) w->expect_ok("reset");
    for (size_t w = 0; w < workers_.size(); ++w)
      for (auto [row, seed] : batch_.pending[w]) {
        const int i = workers_[w]->first_env() + row;
        remotes_[i]->read_obs(obs_row(i));
        refresh_state(i);
      }
    batch_.in_batch = false;
    for (auto& p : batch_.pending) p.clear();
  }

  std::shared_ptr<const ExternalSpec> x_;
  std::vector<std::unique_ptr<EnvWorker>> workers_;
  std::vector<std::unique_ptr<RemoteEnv>> remotes_;
  std::vector<std::pair<EnvWorker*, int>> where_;  // env i => (its worker, its row)
  Batch batch_;
  int64_t batches_ = 0;
};

// Commands registered so far (directory and command) => their environment.
struct Registered {
  std::string name;
  std::shared_ptr<const ExternalSpec> spec;
};
std::map<std::string, Registered>& registered_commands() {
  static std::map<std::string, Registered> m;
  return m;
}

}  // namespace

void set_external_env_log_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_log_dir = dir;
}

std::string register_external_env(const ExternalEnvOptions& options) {
  if (options.num_workers < 1) throw UsageError("env.num_workers is " + std::to_string(options.num_workers) + "; expected >= 1");
  if (!(options.step_timeout_s > 0)) throw UsageError("env.step_timeout_s must be > 0");
  const std::string key = options.dir + "\n" + options.cmd;
  std::shared_ptr<const ExternalSpec> x;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = registered_commands().find(key);
    if (it != registered_commands().end()) x = it->second.spec;
  }
  const bool again = x != nullptr;
  if (!again) {
    try {  // a command that cannot give its SPEC is the user's to fix, before any work
      EnvWorker probe(options, 0, 0, 1);  // asked once for its SPEC, then closed
      const nlohmann::json spec = probe.finish_hello();
      try {
        x = std::make_shared<const ExternalSpec>(parse_external_spec(spec));
      } catch (const UsageError& e) {
        probe.fail(e.what());
      }
    } catch (const RuntimeError& e) {
      throw UsageError(e.what());
    }
  }
  EnvFactory make = [x, options] { return std::unique_ptr<Env>(std::make_unique<RemoteEnv>(x, options)); };
  VecEnvFactory make_vec = [x, options](int n, uint64_t seed) {
    return std::unique_ptr<VecEnv>(std::make_unique<ExternalVecEnv>(x, options, n, seed));
  };
  const std::string& name = x->spec.name;
  if (again) {
    replace_env(name, std::move(make), std::move(make_vec), x->spec);
  } else {
    const std::vector<std::string> names = env_names();
    if (std::find(names.begin(), names.end(), name) != names.end())
      throw UsageError("external env `" + options.cmd + "` names itself '" + name +
                       "', which is already an environment; give its SPEC another name");
    register_env(name, std::move(make), std::move(make_vec), x->spec);
    std::lock_guard<std::mutex> lock(g_mu);
    registered_commands()[key] = {name, x};
  }
  return name;
}

}  // namespace prefrl
