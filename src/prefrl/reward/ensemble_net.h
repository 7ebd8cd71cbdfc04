// The reward ensemble's networks, internal to reward/. Every member's parameters live in
// ONE flat tensor, laid out as all weights first, then all biases, so that
//   - a layer of the whole ensemble is one batched matmul (MLP: W (M x in x out) with
//     torch::baddbmm) or one (grouped) convolution (CNN trunk), and
//   - Adam and L2 are one nn::FlatAdam on that tensor (L2 touches the weight prefix only,
//     never biases).
//
// Input rows (N x F) are the encoded steps built by RewardModel:
//   MLP:  [obs (D), action encoding (A'), absorbing flag (1)]            F = D + A' + 1
//   CNN:  [image (C*H*W), action encoding (A'), absorbing flag (1)]      same layout
// The CNN trunk (3x3 convs, stride 2, unless NetShape::conv_kernels / conv_strides say otherwise;
// 'same' padding kernel / 2; cfg activation) maps the image part to
// features; those plus the action encoding and absorbing flag feed the MLP head (hidden
// widths cfg.hidden; empty => one linear layer). Output: one scalar per member and row =>
// (M x N). Two ways to turn the last feature map into features (NetShape::pixel_encoder):
//   cnn:       flatten it (C*h*w features). The head then holds separate weights for every
//              cell of the map, i.e. a lookup table over positions: it learns only positions
//              it has seen labels about and can fit a few hundred labels by memorising
//              where each clip's objects were.
//   keypoints: spatial soft-argmax (Levine et al. 2016, "End-to-end training of deep
//              visuomotor policies"): the last conv is left linear, each channel's map
//              becomes a distribution over cells, softmax(exp(tau_c) * map), and the
//              features are its expected (x, y) in [-1, 1] (2*C features). Positions are
//              continuous, shared by every cell, so what is learned at one position carries
//              over to its neighbours. tau_c is a learned per-channel log-temperature
//              (initially kKeypointLogTemp, not L2-regularised).
// NetShape::potential (images that stack the two latest frames, newest first, C/2 channels
// each): the trunk and head are a potential phi of ONE frame, and the output is
// phi(newest frame) - phi(previous frame) (potential-based reward, Ng, Harada & Russell 1999).
// A clip's predicted return then telescopes to phi(last frame) - phi(first frame's
// predecessor): the class of "progress towards a goal" rewards, in which standing still is
// worth exactly 0, no action can be preferred regardless of the state, and no cycle gains
// (all before RewardModel's per-member output normalisation, which shifts every step by the
// same constant and so changes no preference between equal-length clips).
// Extras (absorbing flag) enter phi for both frames alike, so an absorbing step is worth 0.
//
// Dropout multipliers come from the caller (one (M x 1 x H) mask per hidden layer, shared by
// every row of the minibatch, i.e. by both clips of every pair and all their steps).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "prefrl/core/rng.h"
#include "prefrl/nn/adam.h"

namespace prefrl::reward_detail {

struct NetShape {
  int64_t members = 1;                  // M
  std::vector<int64_t> image;           // {C, H, W} for a conv trunk; empty for a plain MLP
  std::vector<int> conv_channels;       // output channels of each conv (only with image)
  std::vector<int> conv_strides;        // stride of each conv; empty => 2 for every conv
  std::vector<int> conv_kernels;        // (odd) kernel size of each conv; empty => 3 for every conv
  int64_t row_width = 0;                // F: floats per input row
  std::vector<int> hidden;              // widths of the head's hidden layers
  std::string activation = "leaky_relu";
  std::string pixel_encoder = "cnn";    // cnn (flatten) | keypoints (spatial soft-argmax); with image only
  // S > 0: the head has S outputs and floats [select_offset, select_offset + S) of a row (a
  // one-hot action) pick one of them instead of entering the head: r(s, a) = head(s)[a].
  int64_t select_offset = 0;
  int64_t select_width = 0;
  bool potential = false;               // phi(frame 0) - phi(frame 1); with image, no selection
  bool same_padding = true;             // convs padded by kernel / 2 (false: no padding, 'valid')
  // Batch norm after every conv (before its activation; per member and channel, with a learned
  // scale and shift): the statistics of the rows in the pass while training (forward with
  // batch_stats), running averages (momentum bn_momentum, PyTorch's convention) otherwise.
  bool batch_norm = false;
  double bn_momentum = 0.1;
};

// What differs between a training pass and an evaluation pass (forward below).
struct ForwardMode {
  // Dropout multipliers of the head: empty (none) or one (M x 1 x hidden[i]) per hidden layer,
  // shared by every row.
  std::vector<torch::Tensor> fc_masks;
  // Dropout multipliers of the conv trunk: empty (none) or one (G x M*C_i x H_i x W_i) per conv
  // layer, after its activation: the rows form G groups of N / G consecutive rows, and every row
  // of a group gets the group's mask (a labeled pair's two clips are one group).
  std::vector<torch::Tensor> conv_masks;
  bool batch_stats = false;     // batch norm: the pass's own statistics (training), else the running ones
  bool update_running = false;  // with batch_stats: fold them into the running statistics
};

class EnsembleNet {
 public:
  // Builds the layout and initialises every member from `init_rng`: weights and biases
  // ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's Linear/Conv default bound).
  EnsembleNet(NetShape shape, Rng& init_rng);

  // Raw outputs of every member: rows (N x F) => (M x N). `masks` is empty (no dropout) or
  // holds one (M x 1 x hidden[i]) multiplier per hidden layer. Differentiable w.r.t. params.
  torch::Tensor forward(const torch::Tensor& rows, const std::vector<torch::Tensor>& masks) const;
  // The same with conv dropout and batch-norm mode as `mode` says (update_running changes the
  // running statistics, hence non-const).
  torch::Tensor forward(const torch::Tensor& rows, const ForwardMode& mode);

  // Output size (channels, height, width) of conv layer i.
  struct ConvOut { int64_t c, h, w; };
  std::vector<ConvOut> conv_outputs() const;
  // Batch norm's running statistics: per conv layer, mean then variance (M*C_i each); empty
  // without batch norm. Saved with the parameters; set_running_stats checks the sizes.
  std::vector<torch::Tensor> running_stats() const;
  void set_running_stats(const std::vector<torch::Tensor>& stats);

  // One Adam step (PyTorch's formula, betas 0.9/0.999, eps 1e-8) from params().grad(), with
  // L2 added to the weights' gradient as coupled weight decay (g += l2 * w); clears the grad.
  // LibTorch ops (nn::FlatAdam::step_tensor).
  void adam_step(double lr, double l2);

  // Floats of activations per input row in a forward pass (to size inference chunks).
  int64_t activation_floats_per_row() const;

  const NetShape& shape() const { return shape_; }
  torch::Tensor& params() { return flat_; }
  const torch::Tensor& params() const { return flat_; }
  // The Adam state (P floats of moments and the step count), shared with the fast path.
  nn::FlatAdam& adam() { return adam_; }
  const nn::FlatAdam& adam() const { return adam_; }
  int64_t num_params() const { return flat_.numel(); }

  // The head's linear layers in forward order, as offsets into params() of the weight block
  // (M x in x out) and bias block (M x 1 x out), and the layer widths (for fast_mlp.cc).
  struct HeadLayer { int64_t w, b, in, out; };
  std::vector<HeadLayer> head_layers() const {
    std::vector<HeadLayer> out;
    for (size_t i = 0; i < fc_w_.size(); ++i) {
      const Block& w = blocks_[fc_w_[i]];
      out.push_back({w.offset, blocks_[fc_b_[i]].offset, w.shape[1], w.shape[2]});
    }
    return out;
  }
  // The first num_weights() floats of params() are weights (L2 applies), the rest biases etc.
  int64_t num_weights() const { return n_weights_; }

  // Every tensor an evaluation pass (no dropout, batch norm on running statistics) reads, as
  // copies, for export (reward_export.cc): per conv layer its weight, bias, stride, kernel
  // (padding kernel / 2 when same_padding) and groups (1, then members), batch norm's scale,
  // shift and running statistics; the keypoint log-temperatures and cell grid; per head layer
  // its weight (M x in x out) and bias (M x 1 x out).
  struct EvalTensors {
    std::vector<torch::Tensor> conv_w, conv_b, bn_w, bn_b, bn_mean, bn_var;
    std::vector<int64_t> strides, kernels, groups;
    double bn_eps = 0;
    torch::Tensor kp_temp, kp_grid;  // undefined without keypoints
    int64_t conv_features = 0;       // per-member features of the trunk
    std::vector<torch::Tensor> fc_w, fc_b;
  };
  EvalTensors eval_tensors() const;

 private:
  struct Block { int64_t offset, numel; std::vector<int64_t> shape; };
  // Adds a block of `numel` floats to the layout and returns its index.
  int add_block(std::vector<int64_t> shape, int64_t* cursor);
  // A view of block i into flat_ (part of the autograd graph when grad mode is on).
  torch::Tensor view(int i) const;
  // The columns of rows (N x F) that enter the head: all but the selection block.
  torch::Tensor head_columns(const torch::Tensor& rows) const;
  // The configured activation applied to x.
  torch::Tensor activate(const torch::Tensor& x) const;

  NetShape shape_;
  std::vector<int> conv_w_, conv_b_;      // block indices of conv weights / biases
  std::vector<int> fc_w_, fc_b_;          // block indices of head weights / biases
  int kp_temp_ = -1;                      // block of keypoint log-temperatures (M*C_last), or -1
  torch::Tensor kp_grid_;                 // (h*w x 2) cell coordinates (x, y) in [-1, 1] of the last map
  std::vector<Block> blocks_;
  int64_t n_weights_ = 0;                 // the first n_weights_ floats of flat_ are weights
  int64_t conv_features_ = 0;             // per-member flattened conv features
  std::vector<int64_t> strides_;          // stride of each conv
  std::vector<int64_t> kernels_;          // kernel size of each conv (padding kernel / 2)
  std::vector<int64_t> conv_out_hw_;      // spatial size (H*W) after each conv
  std::vector<ConvOut> conv_outs_;        // per conv: channels per member, height, width
  std::vector<int> bn_w_, bn_b_;          // batch norm: block indices of scales / shifts (M*C_i)
  std::vector<torch::Tensor> bn_mean_, bn_var_;  // batch norm running statistics (M*C_i)
  // The shared trunk and head of both forward()s.
  torch::Tensor run(const torch::Tensor& rows, const ForwardMode& mode, bool update_running) const;
  torch::Tensor flat_;    // (P) every parameter of every member; requires grad
  nn::FlatAdam adam_;     // (P) moments and step count of flat_'s Adam
};

}  // namespace prefrl::reward_detail
