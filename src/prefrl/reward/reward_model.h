// The learned reward: an ensemble of networks r̂(s[, a]) trained from preferences with the
// Bradley–Terry model. Each member trains on its own bootstrap resample of the training
// labels; 1/e of labels are held out for validation; L2 strength adapts to keep
// val_loss / train_loss within [l2_band_low, l2_band_high]. Each member's output is
// normalised (mean 0, std `output_std` over recent states), then members are averaged.
//
// Absorbing steps (padding after an episode ended) are fed as an "absorbing" input: zero
// observation and action plus an indicator feature, so the model learns one value
// r̂_abs for "after the end". predict() returns r̂(s,a) - r̂_abs when the env can terminate,
// so the policy's value of the terminal state (0) is consistent with what was learned.
//
// Both clips of a pair go through the same weights in one forward pass, so dropout masks
// are shared per member (one mask per member per minibatch, broadcast over both clips and
// all steps) and there is no batch norm.
//
// Not thread-safe: one thread uses a RewardModel at a time. Same seed, one LibTorch thread
// => identical results (all randomness comes from prefrl::Rng streams derived from the seed).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "prefrl/core/config.h"
#include "prefrl/core/segment.h"

namespace prefrl {

namespace reward_detail {
class EnsembleNet;
}

struct RewardConfig {
  int ensemble_size = 3;              // number of members
  std::vector<int> hidden = {64, 64}; // MLP hidden widths (state inputs)
  std::string activation = "leaky_relu";
  bool use_action = true;             // input is (obs, action) rather than obs alone
  double dropout = 0.0;               // dropout on hidden layers (mask shared by both clips)
  double lr = 1e-3;                   // Adam learning rate
  int batch_pairs = 64;               // labeled pairs per minibatch
  int epochs_per_round = 10;          // passes over the training labels per training round
  int max_updates_per_round = 200;    // cap on minibatch updates per round (bounds time)
  double random_response = 0.1;       // P(teacher answered at random) in the likelihood
  double val_fraction = 0.36787944;   // share of labels held out for validation (1/e)
  bool bootstrap = true;              // each member trains on a bootstrap resample
  double l2_init = 1e-4;              // initial L2 (weight decay) strength
  bool adapt_l2 = true;               // adapt L2 to keep val/train loss in the band
  double l2_band_low = 1.1;           // raise... lower L2 when val/train below this
  double l2_band_high = 1.5;          // raise L2 when val/train above this
  double l2_factor = 1.5;             // multiplicative L2 step
  double output_std = 1.0;            // target std of each member's normalised output
  bool subtract_absorbing = true;     // predict r̂ - r̂_abs (only applies when env can terminate)
  std::vector<int> conv_channels = {16, 16};  // CNN channels (pixel inputs)
  std::vector<int> conv_strides;      // stride of each conv (empty: 2 for every conv)
  std::vector<int> conv_kernels;      // odd kernel size of each conv (empty: 3 for every conv)
  std::string pixel_encoder = "cnn";  // pixel inputs: cnn (flattened conv map) | keypoints (spatial soft-argmax) | mlp (raw pixels)
  std::string normalise_on = "labeled";  // states the output normalisation is computed over
  std::string discrete_action = "input";  // discrete actions: input (one-hot into the net) | select (one output per action)
  std::string form = "direct";        // direct: r̂ = net(o[, a]) | potential: r̂ = phi(newest frame) - phi(previous frame)
  bool fast_mlp = true;               // plain MLP nets: hand-written forward/backward and Adam (false: LibTorch autograd)
  bool standardise_inputs = false;    // flat observations: inputs scaled by the first labeled clips' mean/std
  std::string conv_padding = "same";  // same (kernel / 2) | valid (none: the paper's Atari net)
  bool batch_norm = false;            // batch norm after every conv (statistics shared by both clips of a pair)
  double conv_dropout = 0.0;          // dropout on every conv layer's output (one mask per pair)
  int max_pairs = 0;                  // labeled pairs kept: the newest this many (0: all; the paper's Atari: 3000)
  int stats_pairs = 0;                // pairs the end-of-round statistics evaluate: the newest this many (0: all)

  template <class V>
  void visit(V& v) {
    v.num("ensemble_size", ensemble_size, "number of ensemble members", 1, 32);
    v.ints("hidden", hidden, "MLP hidden layer widths", 1, 4096);
    v.text("activation", activation, "hidden activation", {"relu", "leaky_relu", "tanh"});
    v.flag("use_action", use_action, "reward depends on (observation, action), not observation alone");
    v.num("dropout", dropout, "dropout probability on hidden layers (same mask for both clips)", 0.0, 0.9);
    v.num("lr", lr, "Adam learning rate", 0.0, 1.0);
    v.num("batch_pairs", batch_pairs, "labeled pairs per minibatch", 1, 1 << 20);
    v.num("epochs_per_round", epochs_per_round, "passes over the training labels per round", 0, 100000);
    v.num("max_updates_per_round", max_updates_per_round, "cap on minibatch updates per round", 1, 10000000);
    v.num("random_response", random_response, "probability the teacher answered at random", 0.0, 0.99);
    v.num("val_fraction", val_fraction, "share of labels held out for validation", 0.0, 0.9);
    v.flag("bootstrap", bootstrap, "each member trains on a bootstrap resample of the labels");
    v.num("l2_init", l2_init, "initial L2 regularisation strength", 0.0, 10.0);
    v.flag("adapt_l2", adapt_l2, "adapt L2 so val/train loss stays in [l2_band_low, l2_band_high]");
    v.num("l2_band_low", l2_band_low, "lower bound of the val/train loss band", 0.0, 100.0);
    v.num("l2_band_high", l2_band_high, "upper bound of the val/train loss band", 0.0, 100.0);
    v.num("l2_factor", l2_factor, "multiplicative step when adapting L2", 1.0, 100.0);
    v.num("output_std", output_std, "std of each member's normalised output", 1e-6, 1e6);
    v.flag("subtract_absorbing", subtract_absorbing, "reward given to the policy is r̂ - r̂(absorbing) on terminating envs");
    v.ints("conv_channels", conv_channels, "CNN channels per conv layer (pixel observations)", 1, 1024);
    v.ints("conv_strides", conv_strides,
           "stride of each conv layer, one per conv_channels entry (empty: 2 everywhere); a stride-1 last "
           "conv keeps keypoints exactly shift-equivariant", 1, 8);
    v.ints("conv_kernels", conv_kernels,
           "odd kernel size of each conv layer, one per conv_channels entry (empty: 3 everywhere); 1 mixes "
           "channels per pixel", 1, 15);
    v.text("pixel_encoder", pixel_encoder,
           "pixel observations: cnn (conv map flattened into the head), keypoints (conv map => expected "
           "(x, y) of each channel by spatial soft-argmax) or mlp (raw pixels into the head)",
           {"cnn", "keypoints", "mlp"});
    v.text("normalise_on", normalise_on,
           "states for output normalisation: labeled (all labeled clips) or rollout (the newest rollout)",
           {"labeled", "rollout"});
    v.text("discrete_action", discrete_action,
           "with discrete actions and use_action: input (one-hot action enters the net) or select "
           "(the net has one output per action and the action picks one: r(s, a) = net(s)[a])",
           {"input", "select"});
    v.text("form", form,
           "direct (r̂ = net(observation[, action])) or potential (pixel observations stacking the two latest "
           "frames, e.g. movingdot: r̂ = phi(newest frame) - phi(previous frame), a potential difference whose "
           "sum over a clip telescopes; observation only, so use_action=false)",
           {"direct", "potential"});
    v.flag("fast_mlp", fast_mlp,
           "plain MLP reward nets (no conv trunk, no per-action outputs, relu or leaky_relu): hand-written "
           "forward/backward and Adam instead of LibTorch autograd (same results up to float rounding)");
    v.text("conv_padding", conv_padding,
           "pixel convs: same (padded by kernel / 2, odd kernels) or valid (unpadded, as the paper's Atari network)",
           {"same", "valid"});
    v.flag("batch_norm", batch_norm,
           "batch norm after every conv layer: while training, the statistics of the whole minibatch (both clips of "
           "every pair alike); when predicting, running averages (momentum 0.1)");
    v.num("conv_dropout", conv_dropout,
          "dropout probability on every conv layer's output while training; the two clips of a pair share one mask",
          0.0, 0.9);
    v.num("max_pairs", max_pairs,
          "labeled pairs the model trains on: the newest this many, older ones dropped (0: all; the paper kept the "
          "last 3000 on Atari)", 0, 100000000);
    v.num("stats_pairs", stats_pairs,
          "pairs the statistics after each round (losses, accuracies, L2 adaptation) evaluate, and the output "
          "normalisation over labeled clips is computed on: the newest this many (0: all; bounds a pixel model's cost)", 0, 100000000);
    v.flag("standardise_inputs", standardise_inputs,
           "flat observations: each observation and action input enters the net as (x - mean) / std, with mean "
           "and std of the real steps of the first labeled batch (fixed from then on, saved in checkpoints), so "
           "small-scale features (e.g. reacher's fingertip-to-target vector) are not drowned by large ones");
  }
};

// The Bradley–Terry likelihood with random-response mixing, as a mean negative
// log-likelihood: P(left) = (1 - eps) * sigmoid(R_left - R_right) + eps / 2;
// loss = -[t log P(left) + (1 - t) log(1 - P(left))].
// ret_left, ret_right: (M x P) summed predicted rewards per member and pair; target: (P).
// Returns (M): the loss of each member (mean over pairs).
torch::Tensor preference_loss(const torch::Tensor& ret_left, const torch::Tensor& ret_right,
                              const torch::Tensor& target, double random_response);
// The same negative log-likelihood per member and pair, before the mean: (M x P). Used for
// bootstrap-weighted losses.
torch::Tensor preference_nll(const torch::Tensor& ret_left, const torch::Tensor& ret_right,
                             const torch::Tensor& target, double random_response);

struct RewardTrainStats {
  // All zero when there are no training pairs (nothing is trained). Otherwise, after the
  // updates, without dropout: losses are means over members of each member's mean NLL
  // (training: bootstrap-weighted, validation: unresampled; NaN if no validation pairs);
  // accuracies use the ensemble P(left) = mean over members of sigmoid(R_left - R_right) on
  // raw returns, ties excluded (NaN if the split has no non-tie labels).
  double train_loss = 0, val_loss = 0;   // mean over members (validation: unresampled)
  double train_accuracy = 0, val_accuracy = 0;  // ensemble-mean prediction vs non-tie labels
  double l2 = 0;                          // current L2 strength
  int64_t n_train = 0, n_val = 0;         // labeled pairs in each split
  int64_t updates = 0;                    // minibatch updates this round
  double fit_loss = 0;                    // mean weighted minibatch loss during the round (training mode, dropout on)
  bool diverged = false;                  // parameters became non-finite: the round was rolled back
};

// What predict() and member_rewards() compute, for export (reward_export.h): how a step
// becomes an input row, the members' output normalisation and whether r̂(absorbing) is
// subtracted.
struct RewardEncoding {
  int64_t members = 0;               // M
  int64_t obs_size = 0;              // D
  int64_t act_size = 0;              // floats per action as given (1 for a discrete index)
  bool discrete = false;
  int64_t n_actions = 0;
  int64_t act_width = 0;             // encoded action floats: one-hot n_actions, act_size, or 0 (no action input)
  int64_t row_width = 0;             // F = D + act_width + 1 (absorbing flag last)
  std::vector<int64_t> hidden;       // observation elements entered as 0
  std::vector<float> in_mean, in_inv_std;  // (D + act_width) input standardisation; empty: none
  std::vector<float> norm_mean, norm_std;  // (M) raw-output mean and std per member
  double output_std = 1.0;           // r = (raw - mean) / std * output_std
  bool subtract_absorbing = false;   // predict() gives r̂ - r̂(absorbing input)
};

class RewardModel {
 public:
  // obs_shape: e.g. {D} or {C, H, W}; act_size: floats per action; discrete actions are
  // one-hot encoded internally with n_actions classes (act_size 1 holding the index).
  RewardModel(const RewardConfig& cfg, std::vector<int64_t> obs_shape, int64_t act_size,
              bool discrete_actions, int64_t n_actions, bool env_can_terminate, uint64_t seed);
  ~RewardModel();

  // Adds newly labeled pairs: each goes to validation with probability val_fraction (a
  // deterministic draw from the model's RNG), else to training with per-member bootstrap
  // counts. Pairs are kept for all later rounds.
  void add_pairs(const std::vector<LabeledPair>& pairs);
  int64_t num_pairs() const;
  // Bytes the stored pairs' packed tensors take (their capacity: it grows by doubling, up to
  // reward.max_pairs): memory held by design, which the health check's leak test discounts.
  int64_t buffer_bytes() const;
  // Observation elements (indices into an observation of D values) the net never sees: they
  // enter it as 0 (the score display of an Atari frame, which the paper hid from the reward
  // model). Call before adding any pair (else RuntimeError); UsageError for an index outside D.
  void hide_inputs(const std::vector<int64_t>& obs_indices);

  // One training round over all training pairs => stats (then adapts L2).
  RewardTrainStats train_round();

  // Recomputes every member's output normalisation from n sample steps (obs n x D, act n x A).
  void update_normalisation(const float* obs, const float* act, int64_t n);

  // Recomputes every member's output normalisation over the steps of all labeled clips
  // (strided down to at most max_steps; absorbing steps included when the policy's reward is
  // measured against them: subtract_absorbing on an environment that can terminate):
  // a broad, slowly changing reference distribution, unlike the current policy's states,
  // whose spread shrinks as it converges.
  void update_normalisation_on_labeled(int64_t max_steps = 20000);

  // Reward for the policy per step: ensemble mean of normalised member outputs, minus the
  // absorbing value when subtract_absorbing applies. obs (n x D), act (n x A), out (n).
  void predict(const float* obs, const float* act, int64_t n, float* out);

  // Per-member normalised predicted returns of segments (absorbing steps included as
  // absorbing inputs): (M x S).
  torch::Tensor segment_returns(const std::vector<const Segment*>& segs);

  // Disagreement for each pair: variance over members of P(left better).
  std::vector<double> disagreement(const std::vector<std::pair<const Segment*, const Segment*>>& pairs);
  // Per-member predicted return of the left clip minus the right's: (M x P).
  torch::Tensor return_gaps(const std::vector<std::pair<const Segment*, const Segment*>>& pairs);
  // Uncertainty for each pair (B-Pref's entropy): the members' mean entropy (nats) of P(left better).
  std::vector<double> pair_entropy(const std::vector<std::pair<const Segment*, const Segment*>>& pairs);

  // Ensemble accuracy on the held-out pairs (ties excluded); NaN if none.
  double validation_accuracy();

  // Per-member normalised rewards of n ordinary (non-absorbing) steps: (M x n).
  torch::Tensor member_rewards(const float* obs, const float* act, int64_t n);

  // Ensemble mean of the members' normalised outputs for the absorbing input (r̂_abs).
  double absorbing_value();

  // Raw (unnormalised) per-member returns of the pairs' clips => {left, right}, each (M x P).
  // training=true evaluates as a training minibatch does (one dropout mask per member and
  // layer, shared by all clips and steps) and advances the dropout RNG; false: no dropout.
  std::pair<torch::Tensor, torch::Tensor> pair_returns(const std::vector<LabeledPair>& pairs, bool training);

  // Per-member bootstrap counts of every stored pair, by slot: (P x M); 0 for held-out pairs.
  // Slots are the order pairs were added in until max_pairs is reached; then each new pair
  // takes the oldest one's slot.
  torch::Tensor pair_weights() const;
  // For every stored pair, by slot: 1 if held out for validation.
  std::vector<uint8_t> validation_flags() const;
  // The label ids of the held-out pairs held now.
  std::vector<int64_t> validation_label_ids() const;
  // Current L2 strength.
  double l2() const;

  const RewardConfig& config() const;
  // The encoding and normalisation of predict(), for export.
  RewardEncoding encoding() const;
  // The reward network as a TorchScript module (reward_export.cc):
  //   forward(obs, action=None) -> r (n)    predict()'s reward: the ensemble mean of the members'
  //                                         normalised outputs [- r̂(absorbing)]
  //   members(obs, action=None) -> (M x n)  member_rewards(): each member's normalised output
  // obs (n x obs shape) or (n x D) float32 as the environment gives them; action (n x A), a
  // discrete action as its index. Everything predict() applies (hidden inputs, input
  // standardisation, normalisation) is inside.
  torch::jit::Module to_torchscript() const;
  // Whether the hand-written MLP path (reward/fast_mlp.h) is in use: cfg.fast_mlp and a net it supports.
  bool uses_fast_mlp() const;
  // Writes weights, Adam state, normalisation, L2, RNG states and every stored pair's split
  // and bootstrap counts (keyed by label_id, or by position when label_id < 0); not the pairs'
  // steps. load() restores them into a model built with the same config and shapes (else
  // RuntimeError); pairs already held or added later get their saved split back.
  void save(const std::string& path) const;
  void load(const std::string& path);
  // After load(): forgets the saved splits of the labels the model was trained on, so that a
  // model taken as another run's starting point (prefrl train --reward-from) splits that run's
  // own labels afresh (its label ids mean other labels).
  void forget_saved_pairs();

 private:
  struct Impl;
  // The network (to_torchscript, in reward_export.cc).
  const reward_detail::EnsembleNet& net_for_export() const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefrl
