#include "prefrl/app/dataset.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "prefrl/app/artifacts.h"
#include "prefrl/app/checkpoint.h"
#include "prefrl/app/task_archive.h"
#include "prefrl/core/error.h"
#include "prefrl/core/npy.h"
#include "prefrl/envs/env.h"
#include "prefrl/prefs/sqlite_pref_store.h"
#include "prefrl/server/clip_media.h"
#include "prefrl/tracking/run_dir.h"
#include "prefrl/tracking/runs.h"
#include "prefrl/tracking/tensorboard.h"
#include "prefrl_version.h"

namespace prefrl {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

struct Fnv {
  uint64_t h = kFnvOffset;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t k = 0; k < n; ++k) h = (h ^ b[k]) * kFnvPrime;
  }
  template <class T>
  void pod(const T& v) { bytes(&v, sizeof v); }
  template <class T>
  void vec(const std::vector<T>& v) {
    pod(static_cast<uint64_t>(v.size()));
    if (!v.empty()) bytes(v.data(), v.size() * sizeof(T));
  }
  void str(const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    bytes(s.data(), s.size());
  }
};

std::string hex8(uint32_t v) { return fmt::format("{:08x}", v); }
std::string hex16(uint64_t v) { return fmt::format("{:016x}", v); }

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// DatasetTask's derived fields from its JSON (a run's or a dataset's).
DatasetTask task_from_json(const nlohmann::json& spec, const std::string& where) {
  DatasetTask t;
  t.spec = spec;
  try {
    const nlohmann::json& env = spec.at("env");
    t.segment_length = spec.at("segment_length").get<int>();
    t.obs_shape = env.at("observation").at("shape").get<std::vector<int64_t>>();
    t.obs_size = product(t.obs_shape);
    t.obs_bytes = env.at("observation").at("dtype").get<std::string>() == "uint8";
    const nlohmann::json& a = env.at("action");
    t.act_size = a.at("discrete").get<bool>() ? 1 : product(a.at("shape").get<std::vector<int64_t>>());
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(where + ": the task spec is incomplete (" + e.what() + ")");
  }
  if (t.segment_length < 1) throw UsageError(where + ": segment_length " + std::to_string(t.segment_length) + " must be >= 1");
  const std::string text = spec.dump();
  t.hash = hex8(crc32c(text.data(), text.size()));
  return t;
}

// The common value of the sizes added, 0 if they differ (or none was added).
struct CommonSize {
  int64_t value = -1;
  bool mixed = false;
  void add(int64_t v) {
    if (value < 0) value = v;
    else if (v != value) mixed = true;
  }
  int64_t get() const { return mixed || value < 0 ? 0 : value; }
};

// A store's clip as a dataset keeps it. obs_bytes: the task's observations are bytes, so clips
// an older prefrl kept as floats are converted (and hash as the same clip kept as bytes).
Segment stored_clip(const PrefStore& store, int64_t id, bool obs_bytes) {
  std::optional<Segment> seg = store.get_segment(id);
  if (!seg) throw RuntimeError(store.path() + ": a query refers to segment " + std::to_string(id) + ", which is missing");
  if (obs_bytes && !seg->obs_in_bytes() && !seg->pack_obs())
    throw RuntimeError(store.path() + ": segment " + std::to_string(id) +
                       " of a byte observation space holds values that are not byte / 255");
  return std::move(*seg);
}

// What the store holds: its answers, and the store ids and hashes of the clips they are about
// (each clip read once, for its hash). fit: the task every clip must fit, if given.
struct Scanned {
  std::vector<int64_t> clip_ids;
  std::vector<uint64_t> clip_hashes;
  int64_t state_size = 0;
  std::vector<DatasetAnswer> answers;
};

Scanned scan_store(const PrefStore& store, bool obs_bytes, const DatasetTask* fit) {
  Scanned s;
  CommonSize states;
  std::map<int64_t, int64_t> clip_index;   // store segment id => index into s.clip_ids
  std::map<int64_t, int64_t> query_index;  // store query id => dataset query index
  std::map<int64_t, Query> queries;
  auto clip = [&](int64_t id) {
    auto it = clip_index.find(id);
    if (it != clip_index.end()) return it->second;
    const Segment seg = stored_clip(store, id, obs_bytes);
    if (fit && (seg.length != fit->segment_length || seg.obs_size != fit->obs_size || seg.act_size != fit->act_size))
      throw UsageError(store.path() + ": a clip of " + std::to_string(seg.length) + " steps x " +
                       std::to_string(seg.obs_size) + " observation values does not fit the run's task (" +
                       std::to_string(fit->segment_length) + " steps x " + std::to_string(fit->obs_size) + ")");
    const int64_t k = static_cast<int64_t>(s.clip_ids.size());
    s.clip_hashes.push_back(clip_hash(seg));
    s.clip_ids.push_back(id);
    states.add(seg.state_size);
    clip_index[id] = k;
    return k;
  };
  for (const Label& l : store.labels()) {
    auto qit = queries.find(l.query_id);
    if (qit == queries.end()) {
      std::optional<Query> q = store.get_query(l.query_id);
      if (!q) throw RuntimeError(store.path() + ": label " + std::to_string(l.id) + " answers query " +
                                 std::to_string(l.query_id) + ", which is missing");
      qit = queries.emplace(l.query_id, *q).first;
    }
    const Query& q = qit->second;
    DatasetAnswer a;
    auto [qi, fresh] = query_index.emplace(q.id, static_cast<int64_t>(query_index.size()));
    (void)fresh;
    a.query = qi->second;
    a.left = clip(q.left_id);
    a.right = clip(q.right_id);
    a.choice = l.choice;
    a.teacher = l.teacher;
    a.labeler = l.labeler;
    a.created_at = l.created_at;
    a.query_source = q.source;
    a.query_score = q.score;
    a.env_step = q.env_step;
    a.uid = answer_uid(s.clip_hashes[a.left], s.clip_hashes[a.right], a.choice, a.labeler, a.created_at);
    s.answers.push_back(std::move(a));
  }
  s.state_size = states.get();
  return s;
}

std::vector<int64_t> with_front(int64_t a, int64_t b, const std::vector<int64_t>& rest) {
  std::vector<int64_t> v = {a, b};
  v.insert(v.end(), rest.begin(), rest.end());
  return v;
}

nlohmann::json answer_json(const DatasetAnswer& a) {
  return {{"uid", a.uid}, {"query", a.query}, {"left", a.left}, {"right", a.right},
          {"choice", choice_name(a.choice)}, {"teacher", a.teacher}, {"labeler", a.labeler},
          {"created_at", a.created_at}, {"query_source", a.query_source}, {"query_score", a.query_score},
          {"env_step", a.env_step}};
}

DatasetAnswer answer_from_json(const nlohmann::json& j, const std::string& where) {
  DatasetAnswer a;
  try {
    a.uid = j.at("uid").get<std::string>();
    a.query = j.at("query").get<int64_t>();
    a.left = j.at("left").get<int64_t>();
    a.right = j.at("right").get<int64_t>();
    const std::string c = j.at("choice").get<std::string>();
    if (!parse_choice(c.c_str(), &a.choice))
      throw UsageError(where + ": choice '" + c + "' is not left, right, equal or skip");
    a.teacher = j.at("teacher").get<std::string>();
    a.labeler = j.at("labeler").get<std::string>();
    a.created_at = j.at("created_at").get<double>();
    a.query_source = j.at("query_source").get<std::string>();
    a.query_score = j.at("query_score").get<double>();
    a.env_step = j.at("env_step").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(where + ": " + e.what());
  }
  return a;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + ")";
}

// One .npy of the dataset, its shape and type checked, read row by row where it lies.
NpyRows open_npy(const std::string& dir, const std::string& name, NpyType type, const std::vector<int64_t>& shape) {
  const std::string path = dir + "/" + name;
  if (!fs::exists(path)) throw UsageError(path + ": missing");
  std::optional<NpyRows> a;
  try {
    a.emplace(path);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  if (a->header().type != type)
    throw UsageError(path + ": dtype " + npy_descr(a->header().type) + ", expected " + npy_descr(type));
  if (a->header().shape != shape)
    throw UsageError(path + ": shape " + shape_text(a->header().shape) + ", expected " + shape_text(shape) +
                     " (clips, steps, ...)");
  return std::move(*a);
}

// A dataset directory's clips, read one at a time from its .npy files.
struct DirClips {
  int64_t L, D, A, S;
  bool obs_bytes;
  NpyRows obs, actions, rewards, absorbing;
  std::optional<NpyRows> states;
  std::vector<int64_t> steps;

  DirClips(const std::string& dir, const DatasetTask& t, int64_t C, int64_t state_size)
      : L(t.segment_length), D(t.obs_size), A(t.act_size), S(state_size), obs_bytes(t.obs_bytes),
        obs(open_npy(dir, "clips/obs.npy", t.obs_bytes ? NpyType::kUInt8 : NpyType::kFloat32, with_front(C, L, t.obs_shape))),
        actions(open_npy(dir, "clips/actions.npy", NpyType::kFloat32, {C, L, A})),
        rewards(open_npy(dir, "clips/true_rewards.npy", NpyType::kFloat32, {C, L})),
        absorbing(open_npy(dir, "clips/absorbing.npy", NpyType::kUInt8, {C, L})) {
    if (S > 0) states.emplace(open_npy(dir, "clips/states.npy", NpyType::kFloat32, {C, L, S}));
    const NpyRows st = open_npy(dir, "clips/env_steps.npy", NpyType::kInt64, {C});
    steps.resize(static_cast<size_t>(C));
    if (C > 0) st.read(0, C, steps.data());
  }

  Segment get(int64_t c) const {
    Segment s;
    s.length = static_cast<int>(L);
    s.obs_size = D;
    s.act_size = A;
    if (obs_bytes) {
      s.obs_bytes.resize(static_cast<size_t>(L * D));
      obs.read(c, 1, s.obs_bytes.data());
    } else {
      s.obs.resize(static_cast<size_t>(L * D));
      obs.read(c, 1, s.obs.data());
    }
    s.actions.resize(static_cast<size_t>(L * A));
    actions.read(c, 1, s.actions.data());
    s.true_rewards.resize(static_cast<size_t>(L));
    rewards.read(c, 1, s.true_rewards.data());
    s.absorbing.resize(static_cast<size_t>(L));
    absorbing.read(c, 1, s.absorbing.data());
    if (states) {
      s.state_size = S;
      s.states.resize(static_cast<size_t>(L * S));
      states->read(c, 1, s.states.data());
    }
    s.env_step = steps[static_cast<size_t>(c)];
    return s;
  }
};

std::string time_text(double unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// A clip as the labeling page renders it, frame by frame: uint8 (L, size, size, 3).
std::vector<uint8_t> clip_frames(const std::string& env, const Segment& c, int size, int64_t L) {
  const ClipSheet sheet = render_clip(env, c, size);
  std::vector<uint8_t> rgb, frames;
  int w = 0, h = 0;
  if (!decode_png(sheet.png, &rgb, &w, &h)) throw RuntimeError("rendering a clip of " + env + " gave no image");
  if (sheet.frames != L || sheet.frame_width != size || sheet.frame_height != size)
    throw RuntimeError("rendered clips of " + env + " are not " + std::to_string(L) + " frames of " + std::to_string(size) +
                       " x " + std::to_string(size));
  for (int k = 0; k < sheet.frames; ++k) {
    const int x0 = (k % sheet.columns) * sheet.frame_width, y0 = (k / sheet.columns) * sheet.frame_height;
    for (int y = 0; y < sheet.frame_height; ++y) {
      const uint8_t* row = rgb.data() + (static_cast<size_t>(y0 + y) * w + x0) * 3;
      frames.insert(frames.end(), row, row + sheet.frame_width * 3);
    }
  }
  return frames;
}

template <class T>
void append(NpyWriter& w, const std::vector<T>& v) {
  w.append(v.data(), v.size() * sizeof(T));
}

}  // namespace

DatasetTask task_spec(const TrainConfig& cfg) {
  const EnvSpec& spec = env_spec(cfg.env.name);
  nlohmann::json j = {{"env", env_spec_json(spec, atari_frame_skip(spec.name, cfg.atari.frame_skip))},
                      {"segment_length", cfg.segment_steps()}};
  if (!cfg.env.task.empty() && fs::exists(cfg.env.task)) {
    const std::string bytes = read_file_bytes(cfg.env.task);
    j["task_file_crc32c"] = hex8(crc32c(bytes.data(), bytes.size()));
  }
  return task_from_json(j, "task " + cfg.env.name);
}

uint64_t clip_hash(const Segment& s) {
  Fnv f;
  f.pod(static_cast<int64_t>(s.length));
  f.pod(s.obs_size);
  f.pod(s.act_size);
  f.pod(static_cast<uint8_t>(s.obs_in_bytes()));
  if (s.obs_in_bytes()) f.vec(s.obs_bytes);
  else f.vec(s.obs);
  f.vec(s.actions);
  f.vec(s.absorbing);
  f.vec(s.true_rewards);
  f.pod(s.state_size);
  f.vec(s.states);
  f.pod(s.env_step);
  return f.h;
}

std::string answer_uid(uint64_t left_hash, uint64_t right_hash, Choice c, const std::string& labeler, double created_at) {
  Fnv f;
  f.pod(left_hash);
  f.pod(right_hash);
  f.str(choice_name(c));
  f.str(labeler);
  f.pod(created_at);
  return hex16(f.h);
}

Segment Dataset::clip(int64_t k) const {
  if (k < 0 || k >= clip_count())
    throw RuntimeError("clip " + std::to_string(k) + " of a dataset of " + std::to_string(clip_count()));
  if (!read_clip) throw RuntimeError("a dataset's clips are not readable (no source)");
  Segment c = read_clip(k);
  c.id = -1;
  if (clip_hash(c) != clip_hashes[static_cast<size_t>(k)])
    throw RuntimeError("clip " + std::to_string(k) + " of the dataset changed since it was read (its files or store changed)");
  return c;
}

void Dataset::hold_clips(std::vector<Segment> clips) {
  clip_hashes.clear();
  CommonSize states;
  for (Segment& c : clips) {
    c.id = -1;
    clip_hashes.push_back(clip_hash(c));
    states.add(c.state_size);
  }
  state_size = states.get();
  auto held = std::make_shared<const std::vector<Segment>>(std::move(clips));
  read_clip = [held](int64_t k) { return (*held)[static_cast<size_t>(k)]; };
}

Dataset dataset_from_store(const PrefStore& store, const DatasetTask& task) {
  Scanned s = scan_store(store, task.obs_bytes, &task);
  Dataset d;
  d.task = task;
  d.clip_hashes = std::move(s.clip_hashes);
  d.state_size = s.state_size;
  d.answers = std::move(s.answers);
  d.read_clip = [&store, ids = std::move(s.clip_ids), bytes = task.obs_bytes](int64_t k) {
    return stored_clip(store, ids[static_cast<size_t>(k)], bytes);
  };
  return d;
}

void write_dataset(const Dataset& d, const std::string& dir) {
  if (fs::exists(dir)) throw UsageError("'" + dir + "' exists; give --out a new directory");
  const std::string tmp = dir + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp + "/clips");
  try {
    const int64_t C = d.clip_count(), L = d.task.segment_length, A = d.task.act_size, D = d.task.obs_size;
    const int64_t S = d.state_size, F = d.frame_size;
    const std::string env = d.task.spec["env"].value("name", "");
    // One pass over the clips, each appended to every file (clips are read one at a time).
    NpyWriter obs(tmp + "/clips/obs.npy", d.task.obs_bytes ? NpyType::kUInt8 : NpyType::kFloat32,
                  with_front(C, L, d.task.obs_shape));
    NpyWriter actions(tmp + "/clips/actions.npy", NpyType::kFloat32, {C, L, A});
    NpyWriter rewards(tmp + "/clips/true_rewards.npy", NpyType::kFloat32, {C, L});
    NpyWriter absorbing(tmp + "/clips/absorbing.npy", NpyType::kUInt8, {C, L});
    std::optional<NpyWriter> states, frames;
    if (S > 0) states.emplace(tmp + "/clips/states.npy", NpyType::kFloat32, std::vector<int64_t>{C, L, S});
    if (F > 0) frames.emplace(tmp + "/clips/frames.npy", NpyType::kUInt8, std::vector<int64_t>{C, L, F, F, 3});
    std::vector<int64_t> steps;
    for (int64_t k = 0; k < C; ++k) {
      const Segment c = d.clip(k);
      const size_t obs_values = d.task.obs_bytes ? c.obs_bytes.size() : c.obs.size();
      if (c.length != L || c.obs_size != D || c.act_size != A || obs_values != static_cast<size_t>(L * D) ||
          (states && c.state_size != S))
        throw RuntimeError("clip " + std::to_string(k) + " (" + std::to_string(c.length) + " steps x " +
                           std::to_string(c.obs_size) + " observation values, states of " + std::to_string(c.state_size) +
                           ") does not fit the dataset's task");
      if (d.task.obs_bytes) append(obs, c.obs_bytes);
      else append(obs, c.obs);
      append(actions, c.actions);
      append(rewards, c.true_rewards);
      append(absorbing, c.absorbing);
      if (states) append(*states, c.states);
      if (frames) append(*frames, clip_frames(env, c, d.frame_size, L));
      steps.push_back(c.env_step);
    }
    obs.finish();
    actions.finish();
    rewards.finish();
    absorbing.finish();
    if (states) states->finish();
    if (frames) frames->finish();
    write_file_synced(tmp + "/clips/env_steps.npy", npy_bytes(NpyType::kInt64, {C}, steps.data()));
    std::string lines;
    for (const DatasetAnswer& a : d.answers) lines += answer_json(a).dump() + "\n";
    write_file_synced(tmp + "/answers.jsonl", lines);

    std::map<std::string, int64_t> by_choice, by_labeler, by_teacher;
    for (const DatasetAnswer& a : d.answers) {
      ++by_choice[choice_name(a.choice)];
      ++by_labeler[a.labeler];
      ++by_teacher[a.teacher];
    }
    nlohmann::json meta = {{"format", kDatasetFormat},
                           {"version", kDatasetVersion},
                           {"spec", d.task.spec},
                           {"task_hash", d.task.hash},
                           {"state_size", S},
                           {"frame_size", d.frame_size},
                           {"counts", {{"clips", C}, {"answers", d.answers.size()}, {"by_choice", by_choice},
                                       {"by_labeler", by_labeler}, {"by_teacher", by_teacher}}},
                           {"files", file_manifest(tmp)},
                           {"provenance", d.provenance}};
    write_file_synced(tmp + "/dataset.json", meta.dump(2) + "\n");
    fs::rename(tmp, dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

Dataset read_dataset(const std::string& dir) {
  if (!fs::is_directory(dir)) throw UsageError("'" + dir + "' is not a directory (a preference dataset is one)");
  const std::string meta_path = dir + "/dataset.json";
  const nlohmann::json meta = read_json_object(meta_path, "not a prefrl preference dataset");
  if (meta.value("format", "") != kDatasetFormat)
    throw UsageError(meta_path + ": format '" + meta.value("format", "") + "', expected '" + kDatasetFormat + "'");
  if (meta.value("version", -1) != kDatasetVersion)
    throw UsageError(meta_path + ": format version " + meta.value("version", nlohmann::json(nullptr)).dump() +
                     "; this prefrl reads version " + std::to_string(kDatasetVersion));
  for (const char* k : {"spec", "task_hash", "files", "counts"})
    if (!meta.contains(k)) throw UsageError(meta_path + ": lacks '" + k + "'");
  check_manifest(dir, meta["files"], "dataset.json");
  Dataset d;
  d.task = task_from_json(meta["spec"], meta_path);
  if (d.task.hash != meta["task_hash"].get<std::string>())
    throw UsageError(meta_path + ": task_hash " + meta["task_hash"].dump() + " is not the hash of its spec (" +
                     d.task.hash + "): edited or corrupt");
  d.provenance = meta.value("provenance", nlohmann::json::object());
  const int64_t C = meta["counts"].value("clips", int64_t{-1});
  if (C < 0) throw UsageError(meta_path + ": counts.clips is missing");
  const int64_t S = meta.value("state_size", int64_t{0});
  if (S < 0) throw UsageError(meta_path + ": state_size " + std::to_string(S) + " is negative");
  auto clips = std::make_shared<const DirClips>(dir, d.task, C, S);
  d.state_size = S;
  d.read_clip = [clips](int64_t k) { return clips->get(k); };
  for (int64_t c = 0; c < C; ++c) {
    Segment s;
    try {
      s = clips->get(c);
    } catch (const std::exception& e) {
      throw UsageError(e.what());
    }
    for (int64_t t = 0; t < s.length; ++t)
      if (s.absorbing[t] > 1) throw UsageError(dir + "/clips/absorbing.npy: clip " + std::to_string(c) + " has flag " +
                                               std::to_string(s.absorbing[t]) + " (0 or 1 expected)");
    d.clip_hashes.push_back(clip_hash(s));
  }
  const std::vector<uint64_t>& hashes = d.clip_hashes;
  const std::string answers_path = dir + "/answers.jsonl";
  std::ifstream in(answers_path);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string where = answers_path + " line " + std::to_string(n);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw UsageError(where + ": not a JSON object");
    DatasetAnswer a = answer_from_json(j, where);
    if (a.left < 0 || a.left >= C || a.right < 0 || a.right >= C || a.left == a.right)
      throw UsageError(where + ": clips " + std::to_string(a.left) + " and " + std::to_string(a.right) +
                       " are not two of the dataset's " + std::to_string(C));
    if (a.uid != answer_uid(hashes[a.left], hashes[a.right], a.choice, a.labeler, a.created_at))
      throw UsageError(where + ": uid " + a.uid + " is not that of its clips and answer (edited or corrupt)");
    d.answers.push_back(std::move(a));
  }
  const int64_t want = meta["counts"].value("answers", int64_t{-1});
  if (n != want)
    throw UsageError(answers_path + ": " + std::to_string(n) + " answers, dataset.json counts " + std::to_string(want));
  return d;
}

void check_compatible(const Dataset& d, const DatasetTask& task, const std::string& what) {
  const nlohmann::json& a = d.task.spec.at("env");
  const nlohmann::json& b = task.spec.at("env");
  auto differ = [&](const char* part) {
    return a.value(part, nlohmann::json(nullptr)) != b.value(part, nlohmann::json(nullptr));
  };
  if (a.value("name", "") != b.value("name", ""))
    throw UsageError(what + ": its clips are of " + a.value("name", "?") + ", the run's task is " + b.value("name", "?"));
  for (const char* part : {"observation", "action"})
    if (differ(part))
      throw UsageError(what + ": " + part + " space " + a.value(part, nlohmann::json(nullptr)).dump() + " does not match the task's " +
                       b.value(part, nlohmann::json(nullptr)).dump());
  if (d.task.segment_length != task.segment_length)
    throw UsageError(what + ": clips of " + std::to_string(d.task.segment_length) + " steps; the run's clips have " +
                     std::to_string(task.segment_length));
  if (d.task.hash != task.hash)
    throw UsageError(what + ": task hash " + d.task.hash + " differs from the run's " + task.hash + " (" +
                     d.task.spec.dump() + " vs " + task.spec.dump() + ")");
}

ImportResult import_dataset(const Dataset& d, PrefStore& store, const std::string& source) {
  ImportResult r;
  PrefStore::Batch batch(store);
  const Scanned have = scan_store(store, d.task.obs_bytes, nullptr);
  std::set<std::string> uids;
  for (const DatasetAnswer& a : have.answers) uids.insert(a.uid);
  std::map<uint64_t, int64_t> stored;  // clip hash => store id
  for (size_t k = 0; k < have.clip_ids.size(); ++k) stored[have.clip_hashes[k]] = have.clip_ids[k];

  const std::vector<uint64_t>& hashes = d.clip_hashes;
  std::vector<const DatasetAnswer*> fresh;
  for (const DatasetAnswer& a : d.answers) {
    if (!uids.insert(a.uid).second) {
      ++r.duplicates;
      continue;
    }
    fresh.push_back(&a);
  }
  // Clips first (those not stored yet, read and stored a few at a time), then one query per
  // dataset query, then the answers.
  std::map<int64_t, int64_t> clip_id;  // dataset clip index => store id
  std::vector<int64_t> new_index;
  for (const DatasetAnswer* a : fresh)
    for (int64_t c : {a->left, a->right}) {
      if (clip_id.count(c)) continue;
      auto it = stored.find(hashes[c]);
      if (it != stored.end()) {
        clip_id[c] = it->second;
        ++r.clips_reused;
        continue;
      }
      clip_id[c] = -1;
      new_index.push_back(c);
    }
  constexpr size_t kClipsPerWrite = 64;
  for (size_t from = 0; from < new_index.size(); from += kClipsPerWrite) {
    std::vector<Segment> chunk;
    for (size_t k = from; k < std::min(new_index.size(), from + kClipsPerWrite); ++k) chunk.push_back(d.clip(new_index[k]));
    store.add_segments(chunk);
    for (size_t k = 0; k < chunk.size(); ++k) clip_id[new_index[from + k]] = chunk[k].id;
  }
  r.clips = static_cast<int64_t>(new_index.size());
  std::map<int64_t, size_t> query_pos;  // dataset query index => index into qs
  std::vector<Query> qs;
  for (const DatasetAnswer* a : fresh) {
    auto [it, is_new] = query_pos.emplace(a->query, qs.size());
    if (!is_new) {
      Query& q = qs[it->second];
      if (clip_id[a->left] != q.left_id || clip_id[a->right] != q.right_id)
        throw UsageError(source + ": answers to query " + std::to_string(a->query) + " are about different clips");
      ++q.answers_wanted;
      continue;
    }
    Query q;
    q.left_id = clip_id[a->left];
    q.right_id = clip_id[a->right];
    q.env_step = a->env_step;
    q.source = a->query_source;
    q.score = a->query_score;
    q.answers_wanted = 1;
    qs.push_back(q);
  }
  store.add_queries(qs);
  r.queries = static_cast<int64_t>(qs.size());
  std::vector<PrefStore::NewLabel> labels;
  for (const DatasetAnswer* a : fresh)
    labels.push_back({qs[query_pos[a->query]].id, a->choice, a->teacher, a->labeler, a->created_at});
  const std::vector<int64_t> ids = store.add_labels(labels);
  r.answers = static_cast<int64_t>(ids.size());
  if (!ids.empty()) {
    r.first_label = ids.front();
    r.last_label = ids.back();
    if (r.last_label - r.first_label + 1 != r.answers)
      throw RuntimeError(store.path() + ": imported labels were not given consecutive ids");
    nlohmann::json imports = nlohmann::json::array();
    if (const std::optional<std::string> old = store.get_meta(kImportsMetaKey)) {
      imports = nlohmann::json::parse(*old, nullptr, false);
      if (!imports.is_array()) throw RuntimeError(store.path() + ": meta '" + kImportsMetaKey + "' is not a JSON array");
    }
    imports.push_back({{"source", source}, {"at", time_text(static_cast<double>(std::time(nullptr)))},
                       {"first_label", r.first_label}, {"last_label", r.last_label}, {"answers", r.answers},
                       {"duplicates", r.duplicates}, {"clips", r.clips}, {"clips_reused", r.clips_reused},
                       {"task_hash", d.task.hash}});
    store.set_meta(kImportsMetaKey, imports.dump());
  }
  batch.commit();
  return r;
}

std::vector<ImportedRange> imported_ranges(const PrefStore& store) {
  std::vector<ImportedRange> out;
  const std::optional<std::string> text = store.get_meta(kImportsMetaKey);
  if (!text) return out;
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_array()) throw RuntimeError(store.path() + ": meta '" + kImportsMetaKey + "' is not a JSON array");
  for (const nlohmann::json& e : j) out.push_back({e.value("first_label", int64_t{0}), e.value("last_label", int64_t{-1})});
  return out;
}

int64_t imported_label_count(const PrefStore& store, int64_t max_label_id) {
  int64_t n = 0;
  for (const ImportedRange& r : imported_ranges(store)) n += std::max<int64_t>(0, std::min(r.last, max_label_id) - r.first + 1);
  return n;
}

Dataset merge_datasets(const std::vector<Dataset>& ds, const std::vector<std::string>& names) {
  if (ds.empty()) throw UsageError("prefs merge: no datasets");
  for (size_t i = 1; i < ds.size(); ++i) check_compatible(ds[i], ds[0].task, names[i]);
  struct Item {
    double at;
    size_t input, pos;
  };
  std::vector<Item> order;
  for (size_t i = 0; i < ds.size(); ++i)
    for (size_t k = 0; k < ds[i].answers.size(); ++k) order.push_back({ds[i].answers[k].created_at, i, k});
  std::stable_sort(order.begin(), order.end(), [](const Item& a, const Item& b) { return a.at < b.at; });
  Dataset out;
  out.task = ds[0].task;
  out.provenance = {{"merged_from", names}};
  CommonSize states;
  for (const Dataset& d : ds) states.add(d.state_size);
  out.state_size = states.get();
  std::map<uint64_t, int64_t> clip_index;
  std::vector<std::pair<size_t, int64_t>> from;  // out clip => (input, its clip)
  std::map<std::pair<size_t, int64_t>, int64_t> query_index;
  std::set<std::string> uids;
  auto clip = [&](size_t i, int64_t c) {
    const uint64_t h = ds[i].clip_hashes[static_cast<size_t>(c)];
    auto [it, is_new] = clip_index.emplace(h, out.clip_count());
    if (is_new) {
      out.clip_hashes.push_back(h);
      from.emplace_back(i, c);
    }
    return it->second;
  };
  for (const Item& it : order) {
    DatasetAnswer a = ds[it.input].answers[it.pos];
    if (!uids.insert(a.uid).second) continue;
    a.left = clip(it.input, a.left);
    a.right = clip(it.input, a.right);
    a.query = query_index.emplace(std::make_pair(it.input, a.query), static_cast<int64_t>(query_index.size())).first->second;
    out.answers.push_back(std::move(a));
  }
  std::vector<std::function<Segment(int64_t)>> inputs;
  for (const Dataset& d : ds) inputs.push_back(d.read_clip);
  out.read_clip = [inputs = std::move(inputs), from = std::move(from)](int64_t k) {
    const auto& [i, c] = from[static_cast<size_t>(k)];
    return inputs[i](c);
  };
  return out;
}

namespace {
// A run's config (its task registered) and the path of its store, for prefs export / import.
TrainConfig run_config(const std::string& run) {
  if (!fs::is_directory(run)) throw UsageError("'" + run + "' is not a run directory");
  if (!fs::exists(run + "/config.json")) throw UsageError(run + "/config.json: missing (not a run directory)");
  TrainConfig cfg;
  config_from_json(cfg, read_run_config(RunDir::open(run)));
  register_task_for(cfg);
  return cfg;
}
}  // namespace

std::string export_run_prefs(const std::string& run, const std::string& out_flag, std::ostream& log, int frame_size) {
  const TrainConfig cfg = run_config(run);
  const std::string db = run + "/prefs.db";
  if (!fs::exists(db)) throw UsageError(db + ": missing (the run has asked no questions)");
  const std::string out = out_flag.empty() ? run + "/prefs" : out_flag;
  if (fs::exists(out)) throw UsageError("'" + out + "' exists; give --out a new directory");
  const auto t0 = std::chrono::steady_clock::now();
  const SqlitePrefStore store(db);
  Dataset d = dataset_from_store(store, task_spec(cfg));
  d.frame_size = frame_size;
  d.provenance = {{"run", fs::absolute(run).lexically_normal().string()},
                  {"exported_at", time_text(static_cast<double>(std::time(nullptr)))},
                  {"prefrl", std::string(PREFRL_VERSION) + " (" + PREFRL_GIT_COMMIT + ")"}};
  write_dataset(d, out);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(out))
    if (e.is_regular_file()) bytes += static_cast<int64_t>(e.file_size());
  log << fmt::format("wrote {}: {} answers about {} clips of {} ({:.1f} MB, {:.2f} s)\n", out, d.answers.size(),
                     d.clip_count(), cfg.env.name, bytes / 1e6, s);
  return out;
}

ImportResult import_into_run(const std::string& dataset_dir, const std::string& run, std::ostream& log) {
  const Dataset d = read_dataset(dataset_dir);
  const TrainConfig cfg = run_config(run);
  check_compatible(d, task_spec(cfg), dataset_dir);
  const RunInfo info = load_run(run);
  if (info.status == "running")
    throw UsageError("run '" + run + "' is running; stop it (it resumes with prefrl train --resume) and import then");
  const std::unique_ptr<PrefStore> store = open_pref_store(sqlite_store_url(run + "/prefs.db"));
  const ImportResult r = import_dataset(d, *store, fs::absolute(dataset_dir).lexically_normal().string());
  log << fmt::format("imported {} answers into {} ({} clips stored, {} already there; {} answers it had already)\n",
                     r.answers, store->path(), r.clips, r.clips_reused, r.duplicates);
  return r;
}

std::string describe_dataset(const Dataset& d) {
  std::ostringstream o;
  std::map<std::string, int64_t> by_choice, by_labeler, by_teacher, by_source;
  double first = INFINITY, last = -INFINITY;
  for (const DatasetAnswer& a : d.answers) {
    ++by_choice[choice_name(a.choice)];
    ++by_labeler[a.labeler];
    ++by_teacher[a.teacher];
    ++by_source[a.query_source];
    first = std::min(first, a.created_at);
    last = std::max(last, a.created_at);
  }
  auto list = [](const std::map<std::string, int64_t>& m) {
    std::string s;
    for (const auto& [k, v] : m) s += (s.empty() ? "" : ", ") + k + " " + std::to_string(v);
    return s.empty() ? std::string("none") : s;
  };
  o << fmt::format("task: {} (hash {}), clips of {} steps\n", d.task.spec["env"].value("name", "?"), d.task.hash,
                   d.task.segment_length);
  o << fmt::format("clips: {}   answers: {}\n", d.clip_count(), d.answers.size());
  o << "  by choice:  " << list(by_choice) << "\n";
  o << "  by labeler: " << list(by_labeler) << "\n";
  o << "  by teacher: " << list(by_teacher) << "\n";
  o << "  by query source: " << list(by_source) << "\n";
  if (!d.answers.empty()) o << "  given " << time_text(first) << " to " << time_text(last) << "\n";

  // Agreement: each labeler's latest answer per unordered pair of clips, oriented by clip hash.
  const std::vector<uint64_t>& hashes = d.clip_hashes;
  std::map<std::pair<uint64_t, uint64_t>, std::map<std::string, int>> votes;  // pair => labeler => 0 left, 1 right, 2 equal
  for (const DatasetAnswer& a : d.answers) {
    if (a.choice == Choice::kSkip) continue;
    uint64_t l = hashes[a.left], r = hashes[a.right];
    int v = a.choice == Choice::kEqual ? 2 : a.choice == Choice::kLeft ? 0 : 1;
    if (l > r) {
      std::swap(l, r);
      if (v < 2) v = 1 - v;
    }
    votes[{l, r}][a.labeler] = v;
  }
  struct Pairwise {
    int64_t n = 0, agree = 0;
    int64_t count_a[3] = {0, 0, 0}, count_b[3] = {0, 0, 0};
  };
  std::map<std::pair<std::string, std::string>, Pairwise> pw;
  int64_t shared = 0;
  for (const auto& [pair, by] : votes) {
    if (by.size() < 2) continue;
    ++shared;
    for (auto i = by.begin(); i != by.end(); ++i)
      for (auto j = std::next(i); j != by.end(); ++j) {
        Pairwise& p = pw[{i->first, j->first}];
        ++p.n;
        p.agree += i->second == j->second;
        ++p.count_a[i->second];
        ++p.count_b[j->second];
      }
  }
  if (shared == 0) {
    o << "agreement: no pair of clips was answered by more than one labeler\n";
    return o.str();
  }
  int64_t n = 0, agree = 0;
  for (const auto& [k, p] : pw) {
    n += p.n;
    agree += p.agree;
  }
  o << fmt::format("agreement: {} pairs of clips answered by several labelers; labelers agree on {:.1f}% of "
                   "{} comparisons (skips left out)\n", shared, 100.0 * agree / n, n);
  for (const auto& [k, p] : pw) {
    const double po = static_cast<double>(p.agree) / p.n;
    double pe = 0;
    for (int c = 0; c < 3; ++c) pe += (static_cast<double>(p.count_a[c]) / p.n) * (static_cast<double>(p.count_b[c]) / p.n);
    const std::string kappa = pe < 1.0 ? fmt::format("{:.3f}", (po - pe) / (1.0 - pe)) : std::string("n/a");
    o << fmt::format("  {} vs {}: {} shared pairs, agree {:.1f}%, Cohen's kappa {}\n", k.first, k.second, p.n,
                     100.0 * po, kappa);
  }
  return o.str();
}

}  // namespace prefrl
