// Offline diagnosis of the reward model on movingdot: does a reward learned from N oracle
// labels lead to the centre?
//
// Clips of 25 steps are collected from a mixture of epsilon-greedy movers (epsilon 1 = the
// untrained policy ... 0.1 = a nearly solved one), observed as the environment does (two
// frames: the current one and the one before the last move), labeled by the oracle, and the
// reward model (config from the movingdot preset plus --set overrides) is trained on them the
// way the trainer does (pre-training rounds, then one round per batch of labels). Then, for
// every dot position and action, the model's value of that move is read off: with
// reward.use_action, r̂(o, a) at o = (the position, no previous move); without it (the preset's
// potential form), r̂ of the observation the move leads to, o' = (next position, position).
// The deterministic MDP is solved by value iteration (discount --gamma) on those values.
// Printed: validation accuracy, the share of (position, action) pairs whose r̂ ranks the
// actions as the true reward does, the success rate of the r̂-optimal policy from every
// start, and the reward-training time.
//
// Usage: movingdot_reward [--labels N] [--seed S] [--gamma G] [--xy] [--set key=value]...
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "prefrl/app/train_config.h"
#include "prefrl/core/allocator.h"
#include "prefrl/core/rng.h"
#include "prefrl/envs/env.h"
#include "prefrl/envs/movingdot.h"
#include "prefrl/reward/reward_model.h"
#include "../tests/reward/reward_test_util.h"  // oracle_pair: the oracle's label for two clips

using namespace prefrl;

namespace {

constexpr int kS = MovingDot::kSize;
int kL = 25;  // prefs.segment_length
// --xy: the model sees the dot's coordinates (x, y, previous x, previous y: 4 floats) instead
// of pixels (a bound on what any pixel encoder can reach from the same labels; needs
// --set reward.form=direct, as the potential form rates frames).
bool g_xy = false;
int kD = 2 * kS * kS;
constexpr int kLo = MovingDot::kMinPos, kHi = MovingDot::kMaxPos, kC = MovingDot::kTargetX;
constexpr int kDx[5] = {0, 0, 0, -1, 1}, kDy[5] = {0, -1, 1, 0, 0};

int dist(int x, int y) { return std::abs(x - kC) + std::abs(y - kC); }

// An observation: the dot at (x, y) in channel 0, at its previous position (px, py) in channel 1.
void draw(int x, int y, int px, int py, float* obs) {
  if (g_xy) {
    obs[0] = (x - 15.5f) / 15.0f; obs[1] = (y - 15.5f) / 15.0f;
    obs[2] = (px - 15.5f) / 15.0f; obs[3] = (py - 15.5f) / 15.0f;
    return;
  }
  std::fill(obs, obs + kD, 0.0f);
  for (int c = 0; c < 2; ++c) {
    const int cx = c == 0 ? x : px, cy = c == 0 ? y : py;
    for (int yy = cy - 1; yy <= cy + 1; ++yy)
      for (int xx = cx - 1; xx <= cx + 1; ++xx) obs[c * kS * kS + yy * kS + xx] = 1.0f;
  }
}

// An action that moves towards the centre (random among the good ones).
int good_action(int x, int y, Rng& rng) {
  int cand[4], n = 0;
  for (int a = 1; a < 5; ++a) {
    const int nx = std::clamp(x + kDx[a], kLo, kHi), ny = std::clamp(y + kDy[a], kLo, kHi);
    if (dist(nx, ny) < dist(x, y)) cand[n++] = a;
  }
  return n == 0 ? 0 : cand[rng.integer(n)];
}

// One clip from an epsilon-greedy mover, starting mid-episode at a random position.
Segment clip(Rng& rng, double eps) {
  Segment s;
  s.length = kL; s.obs_size = kD; s.act_size = 1;
  s.obs.resize(static_cast<size_t>(kL) * kD);
  s.actions.resize(kL);
  s.true_rewards.resize(kL);
  s.absorbing.assign(kL, 0);
  int x = kLo + static_cast<int>(rng.integer(kHi - kLo + 1)), y = kLo + static_cast<int>(rng.integer(kHi - kLo + 1));
  int px = x, py = y;  // where the last move started (a clip starts as if after a no-op)
  for (int t = 0; t < kL; ++t) {
    draw(x, y, px, py, s.obs.data() + static_cast<size_t>(t) * kD);
    px = x;
    py = y;
    const int a = rng.uniform() < eps ? static_cast<int>(rng.integer(5)) : good_action(x, y, rng);
    const int before = dist(x, y);
    x = std::clamp(x + kDx[a], kLo, kHi);
    y = std::clamp(y + kDy[a], kLo, kHi);
    s.actions[t] = static_cast<float>(a);
    s.true_rewards[t] = static_cast<float>(before - dist(x, y));
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  prefrl::tune_allocator();  // src/prefrl/core/allocator.h
  torch::set_num_threads(1);
  int labels = 300;
  uint64_t seed = 1;
  double gamma = 0.95;
  std::string load_path;  // --load RUN/checkpoints/reward.pt: diagnose a trained model instead
  bool show_map = false;  // --map: print the greedy action of r̂ at every position
  TrainConfig cfg;
  apply_preset(cfg, find_preset("movingdot"));
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--labels" && i + 1 < argc) labels = std::atoi(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--gamma" && i + 1 < argc) gamma = std::atof(argv[++i]);
    else if (a == "--xy") { g_xy = true; kD = 4; }
    else if (a == "--load" && i + 1 < argc) load_path = argv[++i];
    else if (a == "--map") show_map = true;
    else if (a == "--set" && i + 1 < argc) config_assign(cfg, argv[++i]);
    else { std::fprintf(stderr, "usage: %s [--labels N] [--seed S] [--gamma G] [--set key=value]...\n", argv[0]); return 2; }
  }
  kL = cfg.prefs.segment_length;
  Rng rng(seed);
  RewardModel model(cfg.reward, g_xy ? std::vector<int64_t>{4} : std::vector<int64_t>{2, kS, kS}, 1, true, 5, false, seed);

  // Labels arrive as in training: the first quarter from the untrained policy (eps 1), then
  // in batches of prefs.query_batch from movers that get better.
  const int initial = static_cast<int>(labels * cfg.prefs.initial_fraction);
  const auto t0 = std::chrono::steady_clock::now();
  RewardTrainStats st;
  int64_t id = 0;
  auto add = [&](int n, double eps) {
    std::vector<LabeledPair> pairs;
    for (int k = 0; k < n; ++k) pairs.push_back(reward_test::oracle_pair(clip(rng, eps), clip(rng, eps), id++));
    model.add_pairs(pairs);
  };
  if (!load_path.empty()) {
    model.load(load_path);
    id = labels;
  } else {
    add(initial, 1.0);
    for (int r = 0; r < cfg.prefs.initial_epoch_multiplier; ++r) st = model.train_round();
    model.update_normalisation_on_labeled();
  }
  while (id < labels) {
    const double done = static_cast<double>(id - initial) / std::max(1, labels - initial);
    const double eps = 1.0 - 0.9 * done;  // movers improve as training goes on
    add(std::min<int>(cfg.prefs.query_batch, labels - static_cast<int>(id)), eps);
    // The trainer runs one round per PPO update; labels come every few updates.
    for (int r = 0; r < 2; ++r) st = model.train_round();
    model.update_normalisation_on_labeled();
  }
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // r̂(s, a) for every position and action => (positions x 5).
  std::vector<float> obs(static_cast<size_t>(kD) * 5), acts = {0, 1, 2, 3, 4};
  std::vector<float> rhat(static_cast<size_t>(kS) * kS * 5, 0.0f);
  int ranked = 0, pairs_total = 0;
  for (int y = kLo; y <= kHi; ++y)
    for (int x = kLo; x <= kHi; ++x) {
      for (int a = 0; a < 5; ++a) {
        float* o = obs.data() + static_cast<size_t>(a) * kD;
        if (cfg.reward.use_action) draw(x, y, x, y, o);
        else draw(std::clamp(x + kDx[a], kLo, kHi), std::clamp(y + kDy[a], kLo, kHi), x, y, o);
      }
      float* r = rhat.data() + (static_cast<size_t>(y) * kS + x) * 5;
      model.predict(obs.data(), acts.data(), 5, r);
      // Pairwise ranking agreement with the true one-step reward (ties in truth skipped).
      for (int a = 0; a < 5; ++a)
        for (int b = a + 1; b < 5; ++b) {
          auto truth = [&](int k) {
            return dist(x, y) - dist(std::clamp(x + kDx[k], kLo, kHi), std::clamp(y + kDy[k], kLo, kHi));
          };
          if (truth(a) == truth(b)) continue;
          ++pairs_total;
          if ((truth(a) > truth(b)) == (r[a] > r[b])) ++ranked;
        }
    }
  if (show_map) {
    // Greedy action of r̂ per position (rows y, columns x): . noop  ^ up  v down  < left  > right;
    // upper case where it is one the true reward ranks best.
    for (int y = kLo; y <= kHi; ++y) {
      std::string line;
      for (int x = kLo; x <= kHi; ++x) {
        const float* r = rhat.data() + (static_cast<size_t>(y) * kS + x) * 5;
        const int a = static_cast<int>(std::max_element(r, r + 5) - r);
        const int nx = std::clamp(x + kDx[a], kLo, kHi), ny = std::clamp(y + kDy[a], kLo, kHi);
        const bool good = dist(nx, ny) < dist(x, y) || (dist(x, y) == 0 && a == 0);
        line += good ? ".^v<>"[a] : "o!w{}"[a];
      }
      std::printf("%s\n", line.c_str());
    }
    std::printf("(wrong greedy actions: o noop, ! up, w down, { left, } right)\n");
  }
  // Value iteration on r̂, for several discounts; then the r̂-optimal policy from every start.
  std::string success_text;
  for (double g : {0.0, 0.5, 0.8, 0.9, gamma}) {
    std::vector<double> V(static_cast<size_t>(kS) * kS, 0.0), nv(V.size());
    auto q_value = [&](int x, int y, int a) {
      const int nx = std::clamp(x + kDx[a], kLo, kHi), ny = std::clamp(y + kDy[a], kLo, kHi);
      return rhat[(static_cast<size_t>(y) * kS + x) * 5 + a] + g * V[ny * kS + nx];
    };
    for (int it = 0; it < 500; ++it) {
      for (int y = kLo; y <= kHi; ++y)
        for (int x = kLo; x <= kHi; ++x) {
          double best = -1e30;
          for (int a = 0; a < 5; ++a) best = std::max(best, q_value(x, y, a));
          nv[y * kS + x] = best;
        }
      V.swap(nv);
    }
    int starts = 0, successes = 0;
    for (int y0 = kLo; y0 <= kHi; ++y0)
      for (int x0 = kLo; x0 <= kHi; ++x0) {
        if (dist(x0, y0) < MovingDot::kMinStartDistance) continue;
        int x = x0, y = y0;
        for (int t = 0; t < MovingDot::kMaxEpisodeSteps; ++t) {
          int best_a = 0;
          double best = -1e30;
          for (int a = 0; a < 5; ++a) {
            const double q = q_value(x, y, a);
            if (q > best) { best = q; best_a = a; }
          }
          x = std::clamp(x + kDx[best_a], kLo, kHi);
          y = std::clamp(y + kDy[best_a], kLo, kHi);
        }
        ++starts;
        successes += dist(x, y) <= MovingDot::kSuccessDistance;
      }
    char buf[64];
    std::snprintf(buf, sizeof buf, " %.2f@%.2f", static_cast<double>(successes) / starts, g);
    success_text += buf;
  }
  std::printf("labels %d seed %llu: val acc %.3f | train acc %.3f | l2 %.2g | action ranking %.3f | "
              "r̂-optimal success@gamma%s | reward training %.1f s\n",
              labels, static_cast<unsigned long long>(seed), st.val_accuracy, st.train_accuracy, st.l2,
              static_cast<double>(ranked) / pairs_total, success_text.c_str(), train_s);
  return 0;
}
