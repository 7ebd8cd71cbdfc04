#include "prefrl/server/label_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/server/clip_media.h"
#include "prefrl/server/runs_pages.h"
#include "prefrl/server/web_assets.h"

namespace prefrl {

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr size_t kMaxLabelerChars = 64;
constexpr size_t kSheetCacheEntries = 64;

std::string random_token() {
  std::random_device rd;
  std::string t;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) t += hex[rd() % 16];
  return t;
}

// Compares without an early exit (the token is a secret).
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

void reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(), "application/json");
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  reply_json(res, status, json{{"error", message}});
}

// A labeler's name: 1..64 printable characters.
bool valid_labeler(const std::string& s) {
  if (s.empty() || s.size() > kMaxLabelerChars) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
}

// Frames per row of a clip's sprite sheet (as render_clip lays it out).
int sheet_columns(int length) {
  int c = 1;
  while (c * c < length) ++c;
  return std::max(1, std::min(length, c));
}

}  // namespace

struct LabelServer::Impl {
  ServerConfig cfg;
  std::string env_name, run_name, runs_root;
  EnvSpec spec;
  bool token_required = false;
  httplib::Server http;
  std::thread thread;
  int port = -1;

  std::mutex db_mu;              // guards db and leases
  std::unique_ptr<PrefStore> db;
  struct Lease { std::string client, labeler; Clock::time_point expires; };
  std::map<int64_t, Lease> leases;  // query id => page holding it

  std::mutex status_mu;
  json run_status = json::object();

  std::mutex sheet_mu;           // guards the sprite-sheet cache (rendering happens outside it)
  std::list<std::pair<int64_t, std::shared_ptr<const ClipSheet>>> sheets;  // most recent first

  void drop_expired_leases() {
    const auto now = Clock::now();
    for (auto it = leases.begin(); it != leases.end();) it = it->second.expires <= now ? leases.erase(it) : std::next(it);
  }

  json clip_json(const Segment& s) const {
    return {{"segment_id", s.id},
            {"url", "/media/segment/" + std::to_string(s.id) + ".png"},
            {"frames", s.length},
            {"fps", spec.fps},
            {"frame_width", cfg.frame_size},
            {"frame_height", cfg.frame_size},
            {"columns", sheet_columns(s.length)},
            {"absorbing", s.absorbing}};
  }

  // Under db_mu: the query as the page needs it.
  json query_json(const Query& q) const {
    const std::optional<Segment> l = db->get_segment(q.left_id), r = db->get_segment(q.right_id);
    if (!l || !r) throw RuntimeError("query " + std::to_string(q.id) + " refers to a missing segment");
    return {{"id", q.id}, {"env_step", q.env_step}, {"source", q.source},
            {"left", clip_json(*l)}, {"right", clip_json(*r)}};
  }

  json counters(const std::string& labeler) const {
    json j = {{"labels", db->count_labels()}, {"pending", db->count_pending()}};
    if (!labeler.empty()) j["your_labels"] = db->count_labels_by(labeler);
    return j;
  }

  std::shared_ptr<const ClipSheet> sheet(int64_t segment_id) {
    {
      std::lock_guard<std::mutex> lock(sheet_mu);
      for (auto it = sheets.begin(); it != sheets.end(); ++it) {
        if (it->first == segment_id) {
          sheets.splice(sheets.begin(), sheets, it);
          return it->second;
        }
      }
    }
    std::optional<Segment> seg;
    {
      std::lock_guard<std::mutex> lock(db_mu);
      seg = db->get_segment(segment_id);
    }
    if (!seg) return nullptr;
    auto made = std::make_shared<const ClipSheet>(render_clip(env_name, *seg, cfg.frame_size));
    std::lock_guard<std::mutex> lock(sheet_mu);
    sheets.emplace_front(segment_id, made);
    if (sheets.size() > kSheetCacheEntries) sheets.pop_back();
    return made;
  }

  // The token of a request: ?token=, "Authorization: Bearer", X-Prefrl-Token, or the cookie.
  static std::string request_token(const httplib::Request& req) {
    if (req.has_param("token")) return req.get_param_value("token");
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0) return auth.substr(7);
    if (req.has_header("X-Prefrl-Token")) return req.get_header_value("X-Prefrl-Token");
    const std::string cookie = req.get_header_value("Cookie");
    const std::string key = "prefrl_token=";
    for (size_t p = 0; p < cookie.size();) {
      size_t e = cookie.find(';', p);
      if (e == std::string::npos) e = cookie.size();
      size_t b = p;
      while (b < e && cookie[b] == ' ') ++b;
      if (cookie.compare(b, key.size(), key) == 0) return cookie.substr(b + key.size(), e - b - key.size());
      p = e + 1;
    }
    return "";
  }

  // Parses a JSON object body; on failure replies 400 and returns nullopt.
  static std::optional<json> body_object(const httplib::Request& req, httplib::Response& res) {
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded()) {
      reply_error(res, 400, "malformed JSON body");
      return std::nullopt;
    }
    if (!j.is_object()) {
      reply_error(res, 400, "the body must be a JSON object");
      return std::nullopt;
    }
    return j;
  }

  // Reads a string field; on failure replies 400 and returns nullopt.
  static std::optional<std::string> labeler_of(const json& j, httplib::Response& res) {
    if (!j.contains("labeler") || !j["labeler"].is_string() || !valid_labeler(j["labeler"].get<std::string>())) {
      reply_error(res, 400, "'labeler' must be a name of 1 to 64 printable characters");
      return std::nullopt;
    }
    return j["labeler"].get<std::string>();
  }

  static std::string client_of(const json& j, const std::string& labeler) {
    if (j.contains("client") && j["client"].is_string()) {
      const std::string c = j["client"].get<std::string>();
      if (!c.empty() && c.size() <= kMaxLabelerChars) return c;
    }
    return labeler;
  }

  void routes() {
    http.set_payload_max_length(static_cast<size_t>(cfg.max_body_bytes));
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second
    // prefrl silently share a port that is in use.
    http.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!token_required) return httplib::Server::HandlerResponse::Unhandled;
      if (same_secret(request_token(req), cfg.token)) {
        if (req.has_param("token"))  // the page's first load: later requests carry the cookie
          res.set_header("Set-Cookie", "prefrl_token=" + cfg.token + "; Path=/; HttpOnly; SameSite=Strict");
        return httplib::Server::HandlerResponse::Unhandled;
      }
      reply_error(res, 401, "missing or wrong token: open the URL prefrl printed (it ends in ?token=...)");
      return httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      const char* what = res.status == 413 ? "request body too large" : res.status == 404 ? "not found" : "bad request";
      reply_error(res, res.status, what);
    });

    // The run dashboard (before the static assets, whose pattern would match /runs).
    add_runs_routes(http, runs_root);
    if (!db) {  // the dashboard alone (`prefrl runs serve`): no labeling page
      http.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/runs"); });
      return;
    }

    // Static assets, embedded in the binary: only these paths exist.
    http.Get(R"(/|/[A-Za-z0-9_.-]+)", [](const httplib::Request& req, httplib::Response& res) {
      const std::string path = req.path == "/" ? "/index.html" : req.path;
      for (size_t i = 0; i < kWebAssetCount; ++i) {
        if (path == kWebAssets[i].path) {
          res.set_header("Cache-Control", "no-cache");
          res.set_content(reinterpret_cast<const char*>(kWebAssets[i].data), kWebAssets[i].size, kWebAssets[i].mime);
          return;
        }
      }
      reply_error(res, 404, "no such file: " + req.path);
    });

    http.Get("/api/status", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string labeler = req.get_param_value("labeler");
      json j;
      {
        std::lock_guard<std::mutex> lock(db_mu);
        j = counters(valid_labeler(labeler) ? labeler : "");
      }
      {
        std::lock_guard<std::mutex> lock(status_mu);
        j["run"] = run_status;
      }
      j["env"] = env_name;
      j["run_name"] = run_name;
      j["answers_per_query"] = cfg.answers_per_query;
      j["undo_window_s"] = cfg.undo_window_s;
      reply_json(res, 200, j);
    });

    http.Get("/api/query/next", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string labeler = req.get_param_value("labeler");
      if (!valid_labeler(labeler)) return reply_error(res, 400, "'labeler' must be a name of 1 to 64 printable characters");
      std::string client = req.get_param_value("client");
      if (client.empty() || client.size() > kMaxLabelerChars) client = labeler;
      std::lock_guard<std::mutex> lock(db_mu);
      drop_expired_leases();
      const auto expires = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.lease_s));
      const std::vector<Query> pending = db->pending_queries();
      // The page's own query first (a reload, or the query it just undid).
      for (const Query& q : pending) {
        auto it = leases.find(q.id);
        if (it != leases.end() && it->second.client == client && !db->has_answered(q.id, labeler)) {
          it->second.expires = expires;
          json j = counters(labeler);
          j["query"] = query_json(q);
          return reply_json(res, 200, j);
        }
      }
      for (const Query& q : pending) {
        if (leases.count(q.id) || db->has_answered(q.id, labeler)) continue;
        for (auto it = leases.begin(); it != leases.end();)  // a page holds one query at a time
          it = it->second.client == client ? leases.erase(it) : std::next(it);
        leases[q.id] = {client, labeler, expires};
        json j = counters(labeler);
        j["query"] = query_json(q);
        return reply_json(res, 200, j);
      }
      json j = counters(labeler);
      j["query"] = nullptr;
      reply_json(res, 200, j);
    });

    http.Post("/api/label", [this](const httplib::Request& req, httplib::Response& res) {
      std::optional<json> body = body_object(req, res);
      if (!body) return;
      const json& j = *body;
      if (!j.contains("query_id") || !j["query_id"].is_number_integer())
        return reply_error(res, 400, "'query_id' must be an integer");
      const int64_t query_id = j["query_id"].get<int64_t>();
      Choice choice;
      if (!j.contains("choice") || !j["choice"].is_string() || !parse_choice(j["choice"].get<std::string>().c_str(), &choice))
        return reply_error(res, 400, "'choice' must be one of: left, right, equal, skip");
      std::optional<std::string> labeler = labeler_of(j, res);
      if (!labeler) return;
      const std::string client = client_of(j, *labeler);
      std::lock_guard<std::mutex> lock(db_mu);
      const std::optional<Query> q = db->get_query(query_id);
      if (!q) return reply_error(res, 404, "unknown query id " + std::to_string(query_id));
      if (db->has_answered(query_id, *labeler))
        return reply_error(res, 409, "'" + *labeler + "' has already answered query " + std::to_string(query_id));
      if (q->status != "pending") return reply_error(res, 409, "query " + std::to_string(query_id) + " is already answered");
      drop_expired_leases();
      auto it = leases.find(query_id);
      if (it != leases.end() && it->second.client != client)
        return reply_error(res, 409, "query " + std::to_string(query_id) + " is held by another page");
      int64_t label_id = -1;
      try {
        label_id = db->add_label(query_id, choice, "human", *labeler);  // committed before the reply
      } catch (const UsageError& e) {
        return reply_error(res, 409, e.what());
      }
      leases.erase(query_id);
      json out = counters(*labeler);
      out["label_id"] = label_id;
      out["query_id"] = query_id;
      out["choice"] = choice_name(choice);
      reply_json(res, 200, out);
    });

    http.Post("/api/undo", [this](const httplib::Request& req, httplib::Response& res) {
      std::optional<json> body = body_object(req, res);
      if (!body) return;
      std::optional<std::string> labeler = labeler_of(*body, res);
      if (!labeler) return;
      const std::string client = client_of(*body, *labeler);
      std::lock_guard<std::mutex> lock(db_mu);
      const std::optional<Label> last = db->last_label_by(*labeler);
      if (!last) return reply_error(res, 404, "'" + *labeler + "' has no label to undo");
      if (last->used)
        return reply_error(res, 409, "label " + std::to_string(last->id) +
                                         " has already been used to train the reward model; it can no longer be undone");
      db->undo_label(last->id);
      drop_expired_leases();
      for (auto it = leases.begin(); it != leases.end();)
        it = it->second.client == client ? leases.erase(it) : std::next(it);
      leases[last->query_id] = {client, *labeler,
                                Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.lease_s))};
      json out = counters(*labeler);
      out["undone_label_id"] = last->id;
      out["query_id"] = last->query_id;
      out["choice"] = choice_name(last->choice);
      reply_json(res, 200, out);
    });

    http.Get(R"(/media/segment/(\d{1,18})\.png)", [this](const httplib::Request& req, httplib::Response& res) {
      const int64_t id = std::stoll(req.matches[1].str());
      std::shared_ptr<const ClipSheet> s;
      try {
        s = sheet(id);
      } catch (const UsageError& e) {
        return reply_error(res, 422, e.what());
      }
      if (!s) return reply_error(res, 404, "unknown segment id " + std::to_string(id));
      res.set_header("Cache-Control", "private, max-age=3600");
      res.set_content(s->png, "image/png");
    });
  }
};

LabelServer::LabelServer(ServerConfig cfg, const std::string& db_path, const std::string& env_name,
                         const std::string& run_name, const std::string& runs_root)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = std::move(cfg);
  m.env_name = env_name;
  m.run_name = run_name;
  m.runs_root = runs_root;
  if (!db_path.empty()) m.spec = env_spec(env_name);
  if (!is_loopback_host(m.cfg.host) && m.cfg.token.empty()) m.cfg.token = random_token();
  if (!m.cfg.token.empty() && (m.cfg.token.size() < 8 || m.cfg.token.find_first_of(" ;,&=?#\"") != std::string::npos))
    throw UsageError("server token must be at least 8 characters without spaces or ;,&=?#\"");
  m.token_required = !m.cfg.token.empty();
  if (!db_path.empty()) m.db = open_pref_store(db_path);
  m.routes();
}

LabelServer::~LabelServer() { stop(); }

void LabelServer::start() {
  Impl& m = *impl_;
  if (m.thread.joinable()) return;
  if (m.cfg.port == 0) {
    m.port = m.http.bind_to_any_port(m.cfg.host);
  } else {
    m.port = m.http.bind_to_port(m.cfg.host, m.cfg.port) ? m.cfg.port : -1;
  }
  if (m.port < 0)
    throw UsageError("cannot serve on " + m.cfg.host + ":" + std::to_string(m.cfg.port) +
                     " (address in use or not available); choose another with --host/--port");
  m.thread = std::thread([&m] { m.http.listen_after_bind(); });
  for (int i = 0; i < 5000 && !m.http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void LabelServer::stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) return;
  m.http.stop();
  m.thread.join();
}

int LabelServer::port() const { return impl_->port; }
const std::string& LabelServer::token() const { return impl_->cfg.token; }

std::string LabelServer::url() const {
  const Impl& m = *impl_;
  const std::string host = m.cfg.host.find(':') != std::string::npos ? "[" + m.cfg.host + "]" : m.cfg.host;
  std::string u = "http://" + (host == "0.0.0.0" ? std::string("127.0.0.1") : host) + ":" + std::to_string(m.port) + "/";
  if (m.token_required) u += "?token=" + m.cfg.token;
  return u;
}

std::string LabelServer::runs_url() const {
  const std::string u = url();
  const size_t query = u.find('?');
  return u.substr(0, query) + "runs" + (query == std::string::npos ? "" : u.substr(query));
}

void LabelServer::publish(nlohmann::json run_status) {
  std::lock_guard<std::mutex> lock(impl_->status_mu);
  impl_->run_status = std::move(run_status);
}

}  // namespace prefrl
