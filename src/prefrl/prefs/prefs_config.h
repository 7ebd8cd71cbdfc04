// The prefs.* config group: clips, the label budget and schedule, query selection (see
// core/config.h for the visitor; app/train_config.h gathers the groups).
#pragma once
#include <string>

namespace prefrl {

struct PrefsConfig {
  int segment_length = 50;          // steps per clip
  double segment_seconds = 0;       // > 0: clips of this much simulated time instead (overrides segment_length)
  int total_labels = 200;           // label budget
  double initial_fraction = 0.25;   // share of labels asked about the untrained policy
  std::string schedule = "hyperbolic";  // how the remaining labels are spread over training
  double schedule_horizon = 2e6;    // T0 of the hyperbolic rate ∝ 1/(T + T0)
  std::string selection = "disagreement";  // how query pairs are chosen
  double oversample = 10.0;         // candidate pairs sampled per query (every method but uniform)
  int pool_capacity = 1000;         // recent segments kept as query candidates
  int segments_per_rollout = 32;    // segments cut from each rollout into the pool
  int query_batch = 4;              // labels are asked for once at least this many are due
  int initial_epoch_multiplier = 4; // reward training rounds after the initial labels
  double tie_tolerance = 0.0;       // scripted teachers answer "equal" within this return difference
  std::string import_from;          // a preference dataset whose answers a new run starts with
  int explore_clips = 0;            // clips per iteration from exploring episodes (0: none)
  double explore_epsilon = 0.5;     // their chance of a uniformly random action at each step
  int explore_steps = 0;            // their length in steps (0: the task's time limit)

  template <class V>
  void visit(V& v) {
    v.num("segment_length", segment_length, "steps per clip", 1, 100000);
    v.num("segment_seconds", segment_seconds,
          "if > 0, clips last this many seconds of simulated time (round(seconds x the env's fps) steps, at most "
          "its time limit) and segment_length is ignored; 0: segment_length steps",
          0.0, 1e6);
    v.num("total_labels", total_labels, "label budget", 0, 10000000);
    v.num("initial_fraction", initial_fraction, "share of labels asked about the untrained policy", 0.0, 1.0);
    v.text("schedule", schedule, "label schedule", {"hyperbolic", "constant", "all_upfront"});
    v.num("schedule_horizon", schedule_horizon, "T0 of the hyperbolic label rate 1/(T+T0)", 1.0, 1e15);
    v.text("selection", selection,
           "query selection (B-Pref's schemes): uniform; disagreement (ensemble variance of P(left better)); entropy "
           "(members' mean entropy of it); kcenter (greedy k-center on the clips' observations, from the labeled "
           "pairs); kcenter_disagreement, kcenter_entropy (k-center among the more disagreed / uncertain half)",
           {"disagreement", "uniform", "entropy", "kcenter", "kcenter_disagreement", "kcenter_entropy"});
    v.num("oversample", oversample, "candidate pairs sampled per query (the candidate pool of every method but uniform)",
          1.0, 1000.0);
    v.num("pool_capacity", pool_capacity, "recent segments kept as query candidates", 2, 10000000);
    v.num("segments_per_rollout", segments_per_rollout, "segments cut from each rollout: segments_per_rollout / num_envs from every env, or, when fewer than num_envs, one from each of that many envs drawn at random", 1, 1000000);
    v.num("query_batch", query_batch, "ask for labels once at least this many are due (fewer reward rounds)", 1, 100000);
    v.num("initial_epoch_multiplier", initial_epoch_multiplier, "reward training rounds after the initial labels", 1, 1000);
    v.num("tie_tolerance", tie_tolerance, "scripted teachers answer equal within this return difference", 0.0, 1e12);
    v.text("import_from", import_from,
           "a preference dataset (prefrl prefs export) whose answers a new run starts with (--prefs-from), counted "
           "apart from its new labels; empty: none",
           {});
    v.num("explore_clips", explore_clips,
          "clips added to the query pool each iteration from exploring episodes: fresh episodes of the current "
          "policy's most likely actions, each replaced by a uniformly random one with probability explore_epsilon "
          "(one clip per episode; they are never learned from by the agent); 0: only the agent's own clips",
          0, 100000);
    v.num("explore_epsilon", explore_epsilon, "chance of a uniformly random action at each step of an exploring episode",
          0.0, 1.0);
    v.num("explore_steps", explore_steps,
          "steps of each exploring episode, from a reset (0: the task's time limit, which it must then have)", 0,
          10000000);
  }
};

}  // namespace prefrl
