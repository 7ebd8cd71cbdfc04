// LoopState: the checkpoint's contents, read and written by one list of fields.
#include "prefrl/app/loop_state.h"

#include <cmath>

#include "prefrl/app/checkpoint.h"
#include "prefrl/core/config.h"
#include "prefrl/core/error.h"

namespace prefrl {

namespace {

constexpr uint64_t kTrainerStateMagic = 0x50524546434b5054ULL;  // "PREFCKPT"

// The two directions of trainer.bin behind one interface: io(x) writes x, or reads into it.
struct BinWriter {
  ArchiveWriter w;
  static constexpr bool kReading = false;
  void io(uint64_t& x) { w.u64(x); }
  void io(int64_t& x) { w.i64(x); }
  void io(int& x) { w.i64(x); }
  template <class T>
  void io(std::vector<T>& v) { w.vec(v); }
  [[noreturn]] void fail(const std::string&) { throw RuntimeError("trainer state: unreachable"); }
};
struct BinReader {
  ArchiveReader r;
  static constexpr bool kReading = true;
  void io(uint64_t& x) { x = r.u64(); }
  void io(int64_t& x) { x = r.i64(); }
  void io(int& x) { x = static_cast<int>(r.i64()); }
  template <class T>
  void io(std::vector<T>& v) { v = r.vec<T>(); }
  [[noreturn]] void fail(const std::string& what) { r.fail(what); }
};

template <class Ar>
void segment_fields(Ar& ar, Segment& s) {
  ar.io(s.id); ar.io(s.length); ar.io(s.obs_size); ar.io(s.act_size); ar.io(s.obs); ar.io(s.actions);
  ar.io(s.true_rewards); ar.io(s.absorbing); ar.io(s.state_size); ar.io(s.states); ar.io(s.env_step);
  ar.io(s.env_index);
}

// Doubles in a checkpoint's JSON: exact, with non-finite values as strings.
nlohmann::json exact(double x) {
  if (std::isfinite(x)) return x;
  return std::isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf");
}
double from_exact(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string t = j.get<std::string>();
  return t == "inf" ? kInf : t == "-inf" ? -kInf : std::nan("");
}

}  // namespace

template <class Ar>
void LoopState::fields(Ar& ar) {
  uint64_t magic = kTrainerStateMagic;
  ar.io(magic);
  if (magic != kTrainerStateMagic) ar.fail("it does not start with PREFCKPT");
  uint64_t n = env_state.size();
  ar.io(n);
  if (n != env_state.size()) {  // reading: the caller sized env_state to the config's N
    ar.fail("it holds " + std::to_string(n) + " environments, the config has env.num_envs = " +
            std::to_string(env_state.size()));
  }
  const int N = static_cast<int>(n);
  for (int i = 0; i < N; ++i) {
    ar.io(env_state[i]);
    ar.io(env_rng[i]);
    ar.io(env_elapsed[i]);
    if (env_rng[i].size() != 6) ar.fail("environment " + std::to_string(i) + " has a malformed RNG state");
  }
  ar.io(task_over);
  if (task_over.size() != n) ar.fail("its per-environment task flags do not fit N environments");
  ar.io(policy_obs); ar.io(policy_states); ar.io(ep_true); ar.io(ep_pred); ar.io(ep_len);
  for (Trajectory& tr : history) {
    ar.io(tr.obs); ar.io(tr.actions); ar.io(tr.final_obs); ar.io(tr.states); ar.io(tr.final_states);
    ar.io(tr.true_rewards); ar.io(tr.terminated); ar.io(tr.truncated); ar.io(tr.start_env_step);
  }
  uint64_t pool_n = pool.size();
  ar.io(pool_n);
  if (Ar::kReading) pool.assign(pool_n, Segment{});
  for (Segment& s : pool) segment_fields(ar, s);
  ar.io(segment_rng); ar.io(query_rng); ar.io(teacher_rng);
  ar.io(torch_rng);
  ar.io(corr_pred); ar.io(corr_truth);
}

std::string LoopState::trainer_bin() const {
  BinWriter w;
  const_cast<LoopState*>(this)->fields(w);  // the writer only reads the fields
  return w.w.data();
}

nlohmann::json LoopState::info() const {
  const RewardTrainStats& r = rstats;
  nlohmann::json rs = {{"train_loss", exact(r.train_loss)}, {"val_loss", exact(r.val_loss)},
                       {"train_accuracy", exact(r.train_accuracy)}, {"val_accuracy", exact(r.val_accuracy)},
                       {"l2", exact(r.l2)}, {"n_train", r.n_train}, {"n_val", r.n_val},
                       {"updates", r.updates}, {"fit_loss", exact(r.fit_loss)}, {"diverged", r.diverged}};
  nlohmann::json returns = nlohmann::json::array(), curve = nlohmann::json::array();
  for (double x : recent_returns) returns.push_back(exact(x));
  for (const auto& [st, x] : return_curve) curve.push_back({st, exact(x)});
  const LoopCounters& c = counters;
  return {{"step", c.step}, {"iterations", c.iterations}, {"updates", c.updates},
          {"labels_requested", c.labels_requested}, {"last_label_id", c.last_label_id}, {"labels_used", c.labels_used},
          {"db", {{"segment", db.segment}, {"query", db.query}, {"label", db.label}}},
          {"skipped_minibatches", c.skipped_minibatches}, {"discarded_rollouts", c.discarded_rollouts},
          {"diverged_rounds", c.diverged_rounds}, {"last_disagreement", exact(last_disagreement)},
          {"rstats", rs}, {"recent_returns", returns}, {"return_curve", curve}, {"health", health},
          {"wall_s", wall_s}, {"metrics_bytes", metrics_bytes}, {"health_bytes", health_bytes},
          {"event_files", event_files}, {"config", config}};
}

LoopState LoopState::read(const Checkpoint& c, int N, int64_t D) {
  LoopState st;
  const nlohmann::json& info = c.info;
  try {
    LoopCounters& k = st.counters;
    k.step = info.at("step").get<int64_t>();
    k.iterations = info.at("iterations").get<int64_t>();
    k.updates = info.at("updates").get<int64_t>();
    k.labels_requested = info.at("labels_requested").get<int64_t>();
    k.last_label_id = info.at("last_label_id").get<int64_t>();
    k.labels_used = info.at("labels_used").get<int64_t>();
    k.skipped_minibatches = info.at("skipped_minibatches").get<int64_t>();
    k.discarded_rollouts = info.at("discarded_rollouts").get<int64_t>();
    k.diverged_rounds = info.at("diverged_rounds").get<int64_t>();
    st.db.segment = info.at("db").at("segment").get<int64_t>();
    st.db.query = info.at("db").at("query").get<int64_t>();
    st.db.label = info.at("db").at("label").get<int64_t>();
    st.last_disagreement = from_exact(info.at("last_disagreement"));
    const nlohmann::json& rs = info.at("rstats");
    RewardTrainStats& r = st.rstats;
    r.train_loss = from_exact(rs.at("train_loss"));
    r.val_loss = from_exact(rs.at("val_loss"));
    r.train_accuracy = from_exact(rs.at("train_accuracy"));
    r.val_accuracy = from_exact(rs.at("val_accuracy"));
    r.l2 = from_exact(rs.at("l2"));
    r.n_train = rs.at("n_train").get<int64_t>();
    r.n_val = rs.at("n_val").get<int64_t>();
    r.updates = rs.at("updates").get<int64_t>();
    r.fit_loss = from_exact(rs.at("fit_loss"));
    r.diverged = rs.at("diverged").get<bool>();
    for (const auto& x : info.at("recent_returns")) st.recent_returns.push_back(from_exact(x));
    for (const auto& x : info.at("return_curve")) st.return_curve.emplace_back(x.at(0).get<int64_t>(), from_exact(x.at(1)));
    st.health = info.at("health");
    st.wall_s = info.at("wall_s").get<double>();
    st.metrics_bytes = info.at("metrics_bytes").get<int64_t>();
    st.health_bytes = info.at("health_bytes").get<int64_t>();
    st.event_files = info.at("event_files");
    st.config = info.contains("config") ? info.at("config") : nlohmann::json();
  } catch (const std::exception& e) {
    throw RuntimeError("checkpoint '" + c.dir + "/manifest.json' has a malformed info: " + e.what());
  }
  const std::string path = c.file("trainer.bin");
  BinReader rd{ArchiveReader(read_file_bytes(path), path)};
  st.env_state.resize(N);
  st.env_rng.resize(N);
  st.env_elapsed.resize(N);
  st.history.resize(N);
  st.fields(rd);
  if (st.corr_pred.size() != st.corr_truth.size()) rd.fail("its correlation window is malformed");
  if (!rd.r.at_end()) rd.fail("it has bytes after the end of the state");
  if (st.policy_obs.size() != static_cast<size_t>(N) * D || st.ep_len.size() != static_cast<size_t>(N) ||
      st.ep_true.size() != static_cast<size_t>(N) || st.ep_pred.size() != static_cast<size_t>(N))
    rd.fail("its observations or episode sums do not fit " + std::to_string(N) + " environments");
  if (st.segment_rng.size() != 6 || st.query_rng.size() != 6) rd.fail("a malformed RNG state");
  return st;
}

}  // namespace prefrl
