// Preference datasets (prefrl prefs export | import | merge | show, train --prefs-from): the
// round trip export -> import into a fresh run -> export is byte-identical (a state task, a
// MuJoCo task with render states, pixels); numpy reads a dataset without prefrl; imports never
// store an answer twice; a dataset of another task, clip length or format version, or a
// damaged one, is refused naming the file and the mismatch, with nothing written; agreement
// between labelers is computed as by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "prefrl/app/artifacts.h"
#include "prefrl/app/dataset.h"
#include "prefrl/core/error.h"
#include "prefrl/prefs/sqlite_pref_store.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace prefrl {
namespace {

using testing::read_file;
using testing::run_prefrl;
using testing::temp_path;

using testing::kQuiet;

using testing::json_of;

// dataset.json without its provenance (where and when it was written): the content.
nlohmann::json content_of(const std::string& dir) {
  nlohmann::json j = json_of(dir + "/dataset.json");
  j.erase("provenance");
  return j;
}

int64_t labels_in(const std::string& db) {
  if (!fs::exists(db)) return 0;
  return SqlitePrefStore(db).count_labels();
}

// A directory holding only a run's config: a run that has not started.
std::string fresh_run_like(const std::string& run, const std::string& name) {
  const std::string fresh = temp_path(name);
  fs::create_directories(fresh);
  fs::copy_file(run + "/config.json", fresh + "/config.json");
  return fresh;
}

struct DatasetTask {
  const char* name;
  std::string train;
  bool states;  // clips keep render states (MuJoCo)
  std::string export_flags = "";  // e.g. --frames 32
};

class DatasetRoundTrip : public ::testing::TestWithParam<DatasetTask> {};

TEST_P(DatasetRoundTrip, ExportImportExportIsIdenticalAndNumpyReadsIt) {
  const DatasetTask& t = GetParam();
  const std::string run = temp_path(std::string("ds_") + t.name), a = run + "_a", b = run + "_b";
  for (const std::string& d : {a, b}) fs::remove_all(d);
  auto r = run_prefrl(t.train + kQuiet + " --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_prefrl("prefs export " + run + " --out " + a + " " + t.export_flags);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json meta = json_of(a + "/dataset.json");
  EXPECT_EQ(meta["format"], "prefrl-preferences");
  EXPECT_EQ(meta["counts"]["answers"].get<int64_t>(), labels_in(run + "/prefs.db"));
  EXPECT_EQ(fs::exists(a + "/clips/states.npy"), t.states);
  EXPECT_EQ(fs::exists(a + "/clips/frames.npy"), !t.export_flags.empty());

  const std::string fresh = fresh_run_like(run, std::string("ds_fresh_") + t.name);
  r = run_prefrl("prefs import " + a + " --into " + fresh);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(labels_in(fresh + "/prefs.db"), meta["counts"]["answers"].get<int64_t>());
  r = run_prefrl("prefs export " + fresh + " --out " + b + " " + t.export_flags);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(content_of(a), content_of(b));
  for (const auto& [name, entry] : meta["files"].items()) EXPECT_EQ(read_file(a + "/" + name), read_file(b + "/" + name)) << name;

  // Importing again stores nothing: every answer is there already.
  r = run_prefrl("prefs import " + a + " --into " + fresh);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("imported 0 answers"), std::string::npos) << r.out;
  EXPECT_EQ(labels_in(fresh + "/prefs.db"), meta["counts"]["answers"].get<int64_t>());
  SqlitePrefStore store(fresh + "/prefs.db");
  EXPECT_EQ(store.counts().pairs_asked_twice, SqlitePrefStore(run + "/prefs.db").counts().pairs_asked_twice);
  EXPECT_EQ(store.counts().queries, SqlitePrefStore(run + "/prefs.db").counts().queries);
  EXPECT_TRUE(store.verify().empty());

  // numpy and json alone read it: shapes and counts as dataset.json says, answers' clips in range.
  const std::string py = R"(
import json, sys, numpy as np
d = sys.argv[1]
meta = json.load(open(d + "/dataset.json"))
obs = np.load(d + "/clips/obs.npy")
acts = np.load(d + "/clips/actions.npy")
answers = [json.loads(l) for l in open(d + "/answers.jsonl")]
C, L = meta["counts"]["clips"], meta["spec"]["segment_length"]
assert obs.shape[:2] == (C, L), obs.shape
assert tuple(obs.shape[2:]) == tuple(meta["spec"]["env"]["observation"]["shape"]), obs.shape
assert acts.shape[:2] == (C, L) and np.load(d + "/clips/true_rewards.npy").shape == (C, L)
assert len(answers) == meta["counts"]["answers"]
assert all(0 <= a["left"] < C and 0 <= a["right"] < C for a in answers)
assert all(a["choice"] in ("left", "right", "equal", "skip") for a in answers)
if meta["frame_size"]:
    frames = np.load(d + "/clips/frames.npy")
    F = meta["frame_size"]
    assert frames.shape == (C, L, F, F, 3) and frames.dtype == np.uint8, frames.shape
    assert frames.std() > 0, "blank frames"
print("ok", obs.dtype, C, len(answers))
)";
  std::ofstream(run + "_read.py") << py;
  const auto out = testing::run_command("/usr/bin/python3 " + run + "_read.py " + a);
  EXPECT_EQ(out.exit_code, 0) << out.out;
  EXPECT_NE(out.out.find(std::string("ok ") + (std::string(t.name) == "movingdot" ? "uint8" : "float32")),
            std::string::npos) << out.out;
  for (const std::string& d : {run, a, b, fresh, run + "_read.py"}) fs::remove_all(d);
}

INSTANTIATE_TEST_SUITE_P(
    Tasks, DatasetRoundTrip,
    ::testing::Values(DatasetTask{"pendulum", "train --env pendulum --steps 8192 --labels 40 --seed 3 --set prefs.segment_length=25", false,
                                  "--frames 32"},
                      DatasetTask{"hopper", "train --env hopper --steps 4096 --labels 20 --seed 2", true},
                      DatasetTask{"movingdot", "train --env movingdot --steps 4096 --labels 20 --seed 1", false}),
    [](const ::testing::TestParamInfo<DatasetTask>& i) { return std::string(i.param.name); });

// Bad input: one line naming the file and the mismatch, exit 2, the target unchanged.
TEST(Dataset, MismatchedAndDamagedDatasetsAreRefusedAndNothingIsWritten) {
  const std::string run = temp_path("ds_bad"), ds = run + "_ds", other = run + "_other", bad = run + "_damaged";
  for (const std::string& d : {ds, bad}) fs::remove_all(d);
  auto r = run_prefrl("train --env pendulum --steps 4096 --labels 20 --seed 5 --set prefs.segment_length=25" + kQuiet +
                      " --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(run_prefrl("prefs export " + run + " --out " + ds).exit_code, 0);
  // Another task; the same task with clips of another length.
  r = run_prefrl("train --env cartpole --steps 2048 --labels 10 --seed 1" + kQuiet + " --run-dir " + other);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const int64_t other_labels = labels_in(other + "/prefs.db");
  r = run_prefrl("prefs import " + ds + " --into " + other);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("its clips are of pendulum, the run's task is cartpole"), std::string::npos) << r.out;
  EXPECT_EQ(labels_in(other + "/prefs.db"), other_labels);
  const std::string longer = temp_path("ds_longer");
  fs::create_directories(longer);
  nlohmann::json cfg = json_of(run + "/config.json");
  cfg["prefs"]["segment_length"] = 50;
  std::ofstream(longer + "/config.json") << cfg.dump();
  r = run_prefrl("prefs import " + ds + " --into " + longer);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("clips of 25 steps; the run's clips have 50"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(longer + "/prefs.db"));
  // --prefs-from with a mismatched dataset: refused before the run directory is made.
  r = run_prefrl("train --env cartpole --steps 2048 --labels 10 --prefs-from " + ds + kQuiet + " --run-dir " + other + "_pf");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_FALSE(fs::exists(other + "_pf"));
  // A run that is running is not imported into.
  const std::string live = fresh_run_like(run, "ds_live");
  testing::mark_running_by_this_process(live);
  r = run_prefrl("prefs import " + ds + " --into " + live);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("is running"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(live + "/prefs.db"));

  const std::string target = fresh_run_like(run, "ds_target");
  auto damaged = [&](const std::function<void()>& damage, const std::string& expect) {
    fs::remove_all(bad);
    fs::copy(ds, bad, fs::copy_options::recursive);
    damage();
    const auto e = run_prefrl("prefs import " + bad + " --into " + target);
    EXPECT_EQ(e.exit_code, 2) << e.out;
    EXPECT_NE(e.out.find(expect), std::string::npos) << e.out;
    EXPECT_FALSE(fs::exists(target + "/prefs.db")) << expect;
    const auto s = run_prefrl("prefs show " + bad);
    EXPECT_EQ(s.exit_code, 2) << s.out;
  };
  damaged([&] {
    std::fstream f(bad + "/answers.jsonl", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(30);
    f.put('\x5a');
  }, "answers.jsonl: CRC-32C");
  damaged([&] { fs::resize_file(bad + "/clips/obs.npy", fs::file_size(bad + "/clips/obs.npy") / 2); }, "obs.npy");
  damaged([&] {
    nlohmann::json m = json_of(bad + "/dataset.json");
    m["version"] = 7;
    std::ofstream(bad + "/dataset.json") << m.dump();
  }, "format version 7");
  damaged([&] { fs::remove(bad + "/dataset.json"); }, "dataset.json: missing");
  // An answer edited by hand, the manifest made to match: its uid gives it away.
  damaged([&] {
    std::string lines = read_file(bad + "/answers.jsonl");
    const size_t at = lines.find("\"labeler\":\"oracle\"");
    lines.replace(at, 18, "\"labeler\":\"mallet\"");
    std::ofstream(bad + "/answers.jsonl") << lines;
    nlohmann::json m = json_of(bad + "/dataset.json");
    m["files"] = file_manifest(bad);
    m["files"].erase("dataset.json");
    std::ofstream(bad + "/dataset.json") << m.dump();
  }, "is not that of its clips and answer");
  // Clips are read where they lie, when they are needed: one changed after the dataset was read
  // (and checked) is noticed when it is read.
  fs::remove_all(bad);
  fs::copy(ds, bad, fs::copy_options::recursive);
  const Dataset held = read_dataset(bad);
  ASSERT_GT(held.clip_count(), 1);
  const int64_t last = held.clip_count() - 1;
  EXPECT_EQ(clip_hash(held.clip(last)), held.clip_hashes[last]);
  {
    std::fstream f(bad + "/clips/obs.npy", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char c = static_cast<char>(f.get());
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(c ^ 0x01));
  }
  EXPECT_NO_THROW(held.clip(0));
  try {
    held.clip(last);
    ADD_FAILURE() << "a changed clip was read as it was";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("changed since it was read"), std::string::npos) << e.what();
  }
  for (const std::string& d : {run, ds, other, longer, live, target, bad}) fs::remove_all(d);
}

// --prefs-from: the run starts with the dataset's answers, learns from them, and counts them
// apart from its own (summary, metrics, the label budget).
TEST(Dataset, PrefsFromStartsARunWithEarlierAnswersCountedApart) {
  const std::string run = temp_path("ds_src"), ds = run + "_ds", reuse = run + "_reuse";
  fs::remove_all(ds);
  auto r = run_prefrl("train --env pendulum --steps 4096 --labels 30 --seed 6 --set prefs.segment_length=25" + kQuiet +
                      " --run-dir " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(run_prefrl("prefs export " + run + " --out " + ds).exit_code, 0);
  const int64_t given = json_of(ds + "/dataset.json")["counts"]["answers"].get<int64_t>();
  ASSERT_EQ(given, 30);
  r = run_prefrl("train --env pendulum --steps 4096 --labels 10 --seed 7 --set prefs.segment_length=25 --prefs-from " + ds +
                 kQuiet + " --run-dir " + reuse);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json summary = json_of(reuse + "/summary.json");
  EXPECT_EQ(summary["labels"], 10);
  EXPECT_EQ(summary["labels_imported"], given);
  EXPECT_EQ(labels_in(reuse + "/prefs.db"), given + 10);
  EXPECT_EQ(json_of(reuse + "/config.json")["prefs"]["import_from"], fs::absolute(ds).lexically_normal().string());
  double last_labels = -1, last_imported = -1;
  std::ifstream m(reuse + "/metrics.jsonl");
  for (std::string line; std::getline(m, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j["name"] == "prefs/labels") last_labels = j["value"].get<double>();
    if (j["name"] == "prefs/labels_imported") last_imported = j["value"].get<double>();
  }
  EXPECT_EQ(last_labels, 10);
  EXPECT_EQ(last_imported, given);
  // The source run's own metrics have no imported count.
  EXPECT_EQ(read_file(run + "/metrics.jsonl").find("labels_imported"), std::string::npos);
  // Every answer of the dataset reached the reward model: all labels are used.
  for (const Label& l : SqlitePrefStore(reuse + "/prefs.db").labels()) EXPECT_TRUE(l.used) << l.id;
  for (const std::string& d : {run, ds, reuse}) fs::remove_all(d);
}

// Agreement by hand: alice and bob answer the same 4 pairs (one shown the other way round) and
// agree on 3; merging their datasets keeps every answer once.
TEST(Dataset, AgreementBetweenLabelersAndMergeAsComputedByHand) {
  Dataset d;
  d.task.spec = {{"env", {{"name", "toy"}}}, {"segment_length", 1}};
  d.task.hash = "00000000";
  d.task.segment_length = 1;
  std::vector<Segment> clips;
  for (int c = 0; c < 8; ++c) {
    Segment s;
    s.length = 1;
    s.obs_size = 1;
    s.act_size = 1;
    s.obs = {static_cast<float>(c)};
    s.actions = {0};
    s.true_rewards = {0};
    s.absorbing = {0};
    clips.push_back(s);
  }
  d.hold_clips(clips);
  const std::vector<uint64_t> h = d.clip_hashes;
  auto answer = [&](int64_t q, int64_t l, int64_t r, Choice c, const std::string& who, double at) {
    DatasetAnswer a;
    a.query = q;
    a.left = l;
    a.right = r;
    a.choice = c;
    a.teacher = "human";
    a.labeler = who;
    a.created_at = at;
    a.query_source = "uniform";
    a.uid = answer_uid(h[l], h[r], c, who, at);
    return a;
  };
  Dataset alice = d, bob = d;
  alice.answers = {answer(0, 0, 1, Choice::kLeft, "alice", 1), answer(1, 2, 3, Choice::kRight, "alice", 2),
                   answer(2, 4, 5, Choice::kEqual, "alice", 3), answer(3, 6, 7, Choice::kLeft, "alice", 4)};
  // bob: agrees on (0,1) and (2,3), sees (4,5) as (5,4) and answers equal (agrees), disagrees on (6,7).
  bob.answers = {answer(0, 0, 1, Choice::kLeft, "bob", 5), answer(1, 2, 3, Choice::kRight, "bob", 6),
                 answer(2, 5, 4, Choice::kEqual, "bob", 7), answer(3, 6, 7, Choice::kRight, "bob", 8)};
  const Dataset m = merge_datasets({alice, bob, alice}, {"alice", "bob", "alice again"});
  EXPECT_EQ(m.answers.size(), 8u);  // alice's second copy adds nothing
  EXPECT_EQ(m.clip_count(), 8);
  const std::string text = describe_dataset(m);
  EXPECT_NE(text.find("4 pairs of clips answered by several labelers"), std::string::npos) << text;
  EXPECT_NE(text.find("agree on 75.0% of 4 comparisons"), std::string::npos) << text;
  // Cohen's kappa by hand, categories in each pair's orientation by clip hash: p_o = 3/4; the
  // two marginals and p_e computed from the same oriented answers.
  int ca[3] = {0, 0, 0}, cb[3] = {0, 0, 0};
  auto oriented = [&](const DatasetAnswer& a) {
    int v = a.choice == Choice::kEqual ? 2 : a.choice == Choice::kLeft ? 0 : 1;
    if (h[a.left] > h[a.right] && v < 2) v = 1 - v;
    return v;
  };
  for (const DatasetAnswer& a : alice.answers) ++ca[oriented(a)];
  for (const DatasetAnswer& a : bob.answers) ++cb[oriented(a)];
  double pe = 0;
  for (int k = 0; k < 3; ++k) pe += ca[k] / 4.0 * cb[k] / 4.0;
  const double kappa = (0.75 - pe) / (1 - pe);
  char want[64];
  std::snprintf(want, sizeof want, "alice vs bob: 4 shared pairs, agree 75.0%%, Cohen's kappa %.3f", kappa);
  EXPECT_NE(text.find(want), std::string::npos) << text << "\nwant: " << want;
  // A dataset of another task does not merge.
  Dataset other = d;
  other.task.spec["env"]["name"] = "other";
  EXPECT_THROW(merge_datasets({alice, other}, {"alice", "other"}), UsageError);
}

}  // namespace
}  // namespace prefrl
