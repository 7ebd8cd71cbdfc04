// How well, and how fast, a reward model learns a run's stored labels offline: every labeled pair
// of a prefs.db (oldest first), a preset's reward model (with --set overrides), trained round
// after round as the trainer trains it, with the round's losses and accuracies printed — to
// compare reward settings on the same labels in minutes instead of a whole training run.
//
// Usage: reward_offline --db RUN/prefs.db [--preset pong] [--rounds R] [--labels N] [--threads T]
//                       [--seed S] [--set key=value]... [--no-ties] [--errors] [--dump DIR [--label ID]]
// --no-ties drops the pairs answered "equal". --errors lists the misranked non-tie pairs among the newest 400 after training (where each
// clip's true rewards fall). --dump DIR writes the first non-tie pair's clips as the reward model sees them (the newest
// frame of each stacked observation, hidden inputs black) to DIR/{left,right}_TT.pgm, with
// each step's true reward in DIR/pair.txt.
// Prints per round: updates, the training-mode minibatch loss, train/validation loss (NLL,
// dropout off) and accuracy (ties excluded), seconds.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "prefrl/app/train_config.h"
#include "prefrl/core/allocator.h"
#include "prefrl/envs/env.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/reward/reward_model.h"

namespace prefrl {
namespace {

// The newest frame of every step of a clip of byte observations (C x H x W, stacked frames, the
// newest last), hidden inputs black, as binary PGMs DIR/NAME_TT.pgm.
void dump_clip(const Segment& seg, const Space& obs, const std::set<int64_t>& hidden, const std::string& dir,
               const std::string& name) {
  const int64_t C = obs.shape[0], H = obs.shape[1], W = obs.shape[2], plane = H * W;
  for (int t = 0; t < seg.length; ++t) {
    const uint8_t* b = seg.obs_bytes.data() + static_cast<size_t>(t) * seg.obs_size;
    char path[512];
    std::snprintf(path, sizeof path, "%s/%s_%02d.pgm", dir.c_str(), name.c_str(), t);
    std::ofstream out(path, std::ios::binary);
    out << "P5\n" << W << " " << H << "\n255\n";
    for (int64_t i = 0; i < plane; ++i) {
      const int64_t k = i;  // channel 0: the newest frame (FrameStack)
      out.put(static_cast<char>(hidden.count(k) ? 0 : b[k]));
    }
  }
}

int run(int argc, char** argv) {
  std::string db, preset = "pong", dump;
  bool errors = false, no_ties = false;
  int64_t dump_label = -1;
  int rounds = 20, threads = 1;
  int64_t max_labels = -1;
  uint64_t seed = 1;
  std::vector<std::string> sets;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--db" && i + 1 < argc) db = argv[++i];
    else if (a == "--preset" && i + 1 < argc) preset = argv[++i];
    else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--labels" && i + 1 < argc) max_labels = std::atoll(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--set" && i + 1 < argc) sets.push_back(argv[++i]);
    else if (a == "--dump" && i + 1 < argc) dump = argv[++i];
    else if (a == "--errors") errors = true;
    else if (a == "--no-ties") no_ties = true;
    else if (a == "--label" && i + 1 < argc) dump_label = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: reward_offline --db PREFS_DB [--preset P] [--rounds R] [--labels N] [--threads T] "
                           "[--seed S] [--set k=v]...\n");
      return 2;
    }
  }
  if (db.empty()) { std::fprintf(stderr, "reward_offline: --db is required\n"); return 2; }
  torch::set_num_threads(threads);
  TrainConfig cfg;
  apply_preset(cfg, find_preset(preset));
  for (const auto& s : sets) config_assign(cfg, s);
  const EnvSpec spec = make_vec_env(cfg.env.name, 1, 1)->spec();

  std::unique_ptr<PrefStore> store = open_pref_store("sqlite:" + db);
  std::vector<LabeledPair> pairs = store->labeled_pairs();
  if (max_labels >= 0 && static_cast<int64_t>(pairs.size()) > max_labels) pairs.resize(max_labels);
  if (no_ties) std::erase_if(pairs, [](const LabeledPair& p) { return p.target == 0.5f; });
  int64_t ties = 0;
  for (const LabeledPair& p : pairs) ties += p.target == 0.5f;
  const std::set<int64_t> hidden(spec.reward_hidden.begin(), spec.reward_hidden.end());
  if (!dump.empty()) {
    for (const LabeledPair& p : pairs) {
      if (!p.left.obs_in_bytes() || spec.observation.shape.size() != 3) continue;
      if (dump_label >= 0 ? p.label_id != dump_label : p.target == 0.5f) continue;
      dump_clip(p.left, spec.observation, hidden, dump, "left");
      dump_clip(p.right, spec.observation, hidden, dump, "right");
      std::ofstream txt(dump + "/pair.txt");
      txt << "label " << p.label_id << " target " << p.target << "\nt left_reward right_reward\n";
      for (int t = 0; t < p.left.length; ++t) txt << t << " " << p.left.true_rewards[t] << " " << p.right.true_rewards[t] << "\n";
      break;
    }
  }
  RewardModel model(cfg.reward, spec.observation.shape, spec.action.discrete ? 1 : spec.action.numel(),
                    spec.action.discrete, spec.action.discrete ? spec.action.n : 0, spec.can_terminate, seed);
  if (!spec.reward_hidden.empty()) model.hide_inputs(spec.reward_hidden);
  model.add_pairs(pairs);
  std::printf("reward_offline: %s, %zu labels (%lld ties), preset %s, %d members, %d threads\n", db.c_str(),
              pairs.size(), static_cast<long long>(ties), preset.c_str(), cfg.reward.ensemble_size, threads);
  std::printf("%5s %7s %8s %8s %8s %8s %8s %7s\n", "round", "updates", "fit", "train", "val", "tr_acc", "val_acc", "s");
  for (int r = 1; r <= rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const RewardTrainStats st = model.train_round();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%5d %7lld %8.4f %8.4f %8.4f %8.3f %8.3f %7.1f\n", r, static_cast<long long>(st.updates), st.fit_loss,
                st.train_loss, st.val_loss, st.train_accuracy, st.val_accuracy, s);
    std::fflush(stdout);
  }
  if (errors) model.update_normalisation_on_labeled();
  if (errors) {  // the misranked non-tie pairs among the newest 400: where their rewards fall
    std::vector<LabeledPair> probe(pairs.end() - std::min<size_t>(400, pairs.size()), pairs.end());
    const auto [left, right] = model.pair_returns(probe, false);
    const torch::Tensor dl = (left - right).mean(0);  // (P) ensemble mean
    int wrong = 0, informative = 0;
    auto events = [](const Segment& s) {
      std::string e;
      for (int t = 0; t < s.length; ++t)
        if (s.true_rewards[t] != 0) e += std::to_string(t) + ":" + (s.true_rewards[t] > 0 ? "+" : "-") + " ";
      return e.empty() ? std::string("none") : e;
    };
    for (size_t k = 0; k < probe.size(); ++k) {
      if (probe[k].target == 0.5f) continue;
      ++informative;
      const double d = dl[static_cast<int64_t>(k)].item<double>();
      if ((d > 0) == (probe[k].target > 0.5f)) continue;
      ++wrong;
      std::printf("  wrong: label %lld target %.0f  dR %+.3f  left [%s]  right [%s]\n",
                  static_cast<long long>(probe[k].label_id), probe[k].target, d, events(probe[k].left).c_str(),
                  events(probe[k].right).c_str());
      if (wrong <= 4) {  // the first ones step by step (normalised member-mean r̂), and their frames
        for (const Segment* seg : {&probe[k].left, &probe[k].right}) {
          std::vector<float> obs, scratch, act(static_cast<size_t>(seg->length), 0.0f);
          for (int t = 0; t < seg->length; ++t) {
            const float* row = seg->obs_row(t, &scratch);
            obs.insert(obs.end(), row, row + seg->obs_size);
            act[static_cast<size_t>(t)] = seg->actions[static_cast<size_t>(t) * seg->act_size];
          }
          const torch::Tensor r = model.member_rewards(obs.data(), act.data(), seg->length).mean(0);
          std::printf("    %s r̂:", seg == &probe[k].left ? "left " : "right");
          for (int t = 0; t < seg->length; ++t) std::printf(" %+.2f", r[t].item<double>());
          std::printf("\n");
          if (!dump.empty() && seg->obs_in_bytes() && spec.observation.shape.size() == 3)
            dump_clip(*seg, spec.observation, hidden, dump,
                      "wrong" + std::to_string(wrong) + (seg == &probe[k].left ? "_left" : "_right"));
        }
      }
    }
    std::printf("misranked %d of %d non-tie pairs among the newest %zu\n", wrong, informative, probe.size());
  }
  return 0;
}

}  // namespace
}  // namespace prefrl

int main(int argc, char** argv) {
  prefrl::tune_allocator();  // src/prefrl/core/allocator.h
  return prefrl::run(argc, argv);
}
