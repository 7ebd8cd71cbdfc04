// libFuzzer target: raw bytes sent to the labeling server as an HTTP request, through a real
// socket (cpp-httplib's parsing, the routes, the JSON bodies, the database behind them).
//
// The contract checked: whatever arrives, the server answers with a status below 500 (or
// closes the connection) and keeps serving; the database passes `PRAGMA integrity_check`
// (checked every 256 inputs and when the process exits).
//
// The server runs once per process on 127.0.0.1 (any free port), over a fresh database of
// pending queries on cartpole clips.
#include <arpa/inet.h>
#include <cerrno>
#include <poll.h>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include "prefrl/prefs/pref_store.h"
#include "prefrl/server/label_server.h"

namespace {

struct Fixture {
  std::string dir, db_path;
  std::unique_ptr<prefrl::LabelServer> server;
  std::unique_ptr<prefrl::PrefStore> db;  // the checker's own connection
  int64_t inputs = 0;

  Fixture() {
    std::signal(SIGPIPE, SIG_IGN);
    dir = (std::filesystem::temp_directory_path() / ("prefrl_http_fuzz_" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    db_path = dir + "/prefs.db";
    db = prefrl::open_pref_store(db_path);
    std::vector<prefrl::Segment> segs;
    for (int k = 0; k < 8; ++k) {
      prefrl::Segment s;
      s.length = 4;
      s.obs_size = 4;
      s.act_size = 1;
      for (int t = 0; t < s.length; ++t) {
        for (int d = 0; d < 4; ++d) s.obs.push_back(0.01f * (k + t + d));
        s.actions.push_back(static_cast<float>((k + t) % 2));
        s.true_rewards.push_back(1.0f);
        s.absorbing.push_back(0);
      }
      s.env_step = 100 * k;
      segs.push_back(s);
    }
    db->add_segments(segs);
    std::vector<prefrl::Query> qs;
    for (int k = 0; k + 1 < static_cast<int>(segs.size()); k += 2) {
      prefrl::Query q;
      q.left_id = segs[k].id;
      q.right_id = segs[k + 1].id;
      q.source = "uniform";
      q.answers_wanted = 2;
      qs.push_back(q);
    }
    db->add_queries(qs);
    prefrl::ServerConfig cfg;
    cfg.port = 0;
    cfg.frame_size = 16;
    cfg.undo_window_s = 0;
    server = std::make_unique<prefrl::LabelServer>(cfg, db_path, "cartpole", "fuzz-run");
    server->start();
  }
  ~Fixture() {
    check_db();
    server.reset();
    db.reset();
    std::filesystem::remove_all(dir);
  }
  void check_db() const {
    const std::string ok = db->integrity_check();
    if (ok != "ok") {
      std::fprintf(stderr, "http_fuzz: integrity_check: %s\n", ok.c_str());
      std::abort();
    }
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// Sends `request` to the server => everything it answered before closing ("" if nothing).
std::string exchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) { std::perror("socket"); std::abort(); }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // libFuzzer's timer signal can interrupt any of these calls (EINTR): wait, or retry.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == EINTR) {
      pollfd p{fd, POLLOUT, 0};
      while (::poll(&p, 1, 5000) < 0 && errno == EINTR) {}
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err != 0 && err != EINTR) {
      std::fprintf(stderr, "http_fuzz: the server stopped accepting connections: %s\n", std::strerror(err));
      std::abort();
    }
  }
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t w = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;  // the server may close early on a bad request
    sent += static_cast<size_t>(w);
  }
  // cpp-httplib does not answer a half-closed connection, so the write side stays open while
  // a reply may come; a request the server is still waiting on (incomplete headers, a short
  // body) gets no reply within 5 ms, and then the end of input: the server closes. (A reply
  // slower than that is missed, never mistaken for a failure.)
  pollfd p{fd, POLLIN, 0};
  int ready;
  while ((ready = ::poll(&p, 1, 5)) < 0 && errno == EINTR) {}
  if (ready == 0) ::shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
    // One whole response (headers and Content-Length bytes of body) is enough.
    const size_t end = reply.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    const std::string head = reply.substr(0, end);
    size_t body = 0;
    for (const char* key : {"\r\nContent-Length: ", "\r\ncontent-length: "}) {
      const size_t at = head.find(key);
      if (at != std::string::npos) body = std::strtoull(head.c_str() + at + std::strlen(key), nullptr, 10);
    }
    if (reply.size() >= end + 4 + body) break;
  }
  ::close(fd);
  return reply;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = fixture();
  const std::string request(reinterpret_cast<const char*>(data), size);
  const std::string reply = exchange(f.server->port(), request);
  // Every response's status line (pipelined requests get several).
  for (size_t at = reply.find("HTTP/1.1 "); at != std::string::npos; at = reply.find("\r\nHTTP/1.1 ", at + 1)) {
    const size_t code_at = reply[at] == '\r' ? at + 11 : at + 9;
    if (code_at + 3 > reply.size()) break;
    const int code = std::atoi(reply.substr(code_at, 3).c_str());
    if (code >= 500) {
      std::fprintf(stderr, "http_fuzz: status %d for request:\n%s\nreply:\n%s\n", code, request.c_str(), reply.c_str());
      std::abort();
    }
  }
  if (std::getenv("HTTP_FUZZ_VERBOSE"))  // e.g. to see what the seed corpus gets
    std::fprintf(stderr, "%zu bytes => %s\n", size, reply.substr(0, reply.find('\r')).c_str());
  if (++f.inputs % 256 == 0) f.check_db();
  return 0;
}
