// The labeling server inside the trainer (and `prefrl label`): a small HTTP server that shows
// people pairs of clips and stores their answers in the run's preference database.
//
// Threads: cpp-httplib's pool answers requests; the server has its own database connection
// (SQLite WAL, so the trainer's connection never waits long), guarded by one mutex, and a
// status snapshot the trainer publishes. Training never waits on the server: publish() only
// swaps a JSON value under a mutex. JSON API: docs/labeling.md.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace prefrl {

struct ServerConfig {
  std::string host = "127.0.0.1";  // address to bind; anything but loopback requires a token
  int port = 8765;                 // 0: any free port
  std::string token;               // required by every request if set; generated for non-loopback hosts
  int answers_per_query = 1;       // answers each query collects (from different labelers)
  double lease_s = 300;            // how long a page holds its query before others may get it
  double undo_window_s = 10;       // a label waits this long before training uses it (so it can be undone)
  int max_pending = 30;            // at most this many unanswered queries are asked ahead
  int max_label_lag = -1;          // >= 0: training pauses while more asked queries are unanswered
  int frame_size = 256;            // clip frames are frame_size x frame_size pixels
  int max_body_bytes = 16384;      // request bodies above this get 413

  template <class V>
  void visit(V& v) {
    v.text("host", host, "address the labeling server binds (non-loopback needs a token)", {});
    v.num("port", port, "port of the labeling server (0: any free port)", 0, 65535);
    v.text("token", token, "access token required by every request (generated if empty and host is not loopback)", {});
    v.num("answers_per_query", answers_per_query, "answers each query collects, from different labelers", 1, 100);
    v.num("lease_s", lease_s, "seconds a page holds its query before another page may get it", 1.0, 86400.0);
    v.num("undo_window_s", undo_window_s, "seconds a label waits before training uses it (it can be undone until then)", 0.0, 3600.0);
    v.num("max_pending", max_pending, "unanswered queries asked ahead of the labelers at most", 1, 100000);
    v.num("max_label_lag", max_label_lag,
          "-1: training never waits for people; N >= 0: training pauses while more than N of the queries "
          "it asked are unanswered (paces training to the labelers; 0 = every label is in before training "
          "goes on, as with a scripted teacher)", -1, 1000000);
    v.num("frame_size", frame_size, "clip frame size in pixels (square)", 16, 1024);
    v.num("max_body_bytes", max_body_bytes, "request body size limit in bytes", 256, 1 << 24);
  }
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

class LabelServer {
 public:
  // Opens its own connection to the store at db_path (which must exist; a path or a store URL,
  // see open_pref_store). env_name decides how clips render; run_name is shown on the page.
  // With a runs_root, the reports of every run and sweep under it are served at /runs
  // (server/runs_pages.h). An empty db_path serves the run dashboard alone (`prefrl runs
  // serve`; / redirects to /runs). Throws UsageError for a bad config.
  LabelServer(ServerConfig cfg, const std::string& db_path, const std::string& env_name,
              const std::string& run_name, const std::string& runs_root = "");
  ~LabelServer();  // stops the server
  LabelServer(const LabelServer&) = delete;
  LabelServer& operator=(const LabelServer&) = delete;

  // Binds and starts serving in the background. Throws UsageError naming host and port if
  // the address cannot be bound.
  void start();
  void stop();

  int port() const;
  const std::string& token() const;       // empty if none is required
  std::string url() const;                // what a person opens (with ?token=... if required)
  std::string runs_url() const;           // the run dashboard: url() with /runs

  // Replaces the run's live status shown on the page (steps, return, labels, phase, ...).
  void publish(nlohmann::json run_status);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefrl
