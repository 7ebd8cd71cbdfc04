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
#include <cmath>
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

// The normalised r̂ (ensemble mean, as the policy is given it before subtract_absorbing) over
// every step of the newest 400 pairs' clips: ordinary steps' percentiles, absorbing steps'
// share and value, and the std of both together (what the normalisation scaled to output_std).
void print_norm_stats(RewardModel& model, const std::vector<LabeledPair>& pairs) {
  std::vector<double> ordinary;
  int64_t absorbing = 0;
  for (size_t k = pairs.size() - std::min<size_t>(400, pairs.size()); k < pairs.size(); ++k) {
    for (const Segment* seg : {&pairs[k].left, &pairs[k].right}) {
      std::vector<float> obs, scratch, act;
      int n = 0;
      for (int t = 0; t < seg->length; ++t) {
        if (seg->absorbing[static_cast<size_t>(t)]) { ++absorbing; continue; }
        const float* row = seg->obs_row(t, &scratch);
        obs.insert(obs.end(), row, row + seg->obs_size);
        act.insert(act.end(), seg->actions.begin() + static_cast<int64_t>(t) * seg->act_size,
                   seg->actions.begin() + static_cast<int64_t>(t + 1) * seg->act_size);
        ++n;
      }
      if (n == 0) continue;
      const torch::Tensor r = model.member_rewards(obs.data(), act.data(), n).mean(0).contiguous();
      for (int t = 0; t < n; ++t) ordinary.push_back(r[t].item<double>());
    }
  }
  if (ordinary.empty()) return;
  std::vector<double> sorted = ordinary;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double q) { return sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))]; };
  double m = 0, ss = 0;
  for (double x : ordinary) m += x;
  m /= static_cast<double>(ordinary.size());
  for (double x : ordinary) ss += (x - m) * (x - m);
  const double abs_v = model.absorbing_value();
  const double n_all = static_cast<double>(ordinary.size() + absorbing);
  const double m_all = (m * static_cast<double>(ordinary.size()) + abs_v * static_cast<double>(absorbing)) / n_all;
  double ss_all = 0;
  for (double x : ordinary) ss_all += (x - m_all) * (x - m_all);
  ss_all += static_cast<double>(absorbing) * (abs_v - m_all) * (abs_v - m_all);
  std::printf("normalised r̂ on %zu ordinary steps: mean %+.4f std %.4f | min %+.4f p1 %+.4f p5 %+.4f p25 %+.4f "
              "p50 %+.4f p75 %+.4f p95 %+.4f p99 %+.4f max %+.4f\n",
              ordinary.size(), m, std::sqrt(ss / static_cast<double>(ordinary.size())), sorted.front(), pct(0.01),
              pct(0.05), pct(0.25), pct(0.5), pct(0.75), pct(0.95), pct(0.99), sorted.back());
  std::printf("absorbing steps %lld (%.1f%%), r̂_abs %+.4f; std over all steps %.4f\n", static_cast<long long>(absorbing),
              100.0 * static_cast<double>(absorbing) / n_all, abs_v, std::sqrt(ss_all / n_all));
}

int run(int argc, char** argv) {
  std::string db, preset = "pong", dump, load;
  bool errors = false, no_ties = false, norm_stats = false;
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
    else if (a == "--load" && i + 1 < argc) load = argv[++i];
    else if (a == "--norm-stats") norm_stats = true;
    else {
      std::fprintf(stderr, "usage: reward_offline --db PREFS_DB [--preset P] [--rounds R] [--labels N] [--threads T] "
                           "[--seed S] [--set k=v]... [--load REWARD_PT] [--norm-stats] [--errors] [--no-ties] "
                           "[--dump DIR [--label ID]]\n");
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
  if (!load.empty()) {  // a run's reward model (checkpoints/.../reward.pt) instead of a fresh one
    model.load(load);
    rounds = 0;
  }
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
  if (errors || norm_stats) model.update_normalisation_on_labeled();
  if (norm_stats) print_norm_stats(model, pairs);
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
