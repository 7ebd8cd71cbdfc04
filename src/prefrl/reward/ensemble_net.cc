#include "prefrl/reward/ensemble_net.h"

#include <cmath>
#include <utility>

#include "prefrl/core/error.h"

namespace prefrl::reward_detail {

namespace {
constexpr int64_t kKernel = 3;   // default conv kernel size
constexpr int64_t kStride = 2;   // conv stride
constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kAdamEps = 1e-8;
// Initial keypoint log-temperature: softmax(e^2 * map). With PyTorch's default init a 3x3
// pattern moves one cell's value by ~0.5, so e^2 ~ 7.4 makes such a cell stand out from the
// background from the first update on (at temperature 1 the map is nearly uniform and the
// keypoints barely move with the image until the weights have grown).
constexpr double kKeypointLogTemp = 2.0;

constexpr double kBnEps = 1e-5;  // batch norm's epsilon (PyTorch's default)

// Spatial size after one conv with padding p: floor((n + 2p - k) / s) + 1.
int64_t conv_out(int64_t n, int64_t k, int64_t stride, int64_t pad) { return (n + 2 * pad - k) / stride + 1; }
}  // namespace

int EnsembleNet::add_block(std::vector<int64_t> shape, int64_t* cursor) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  blocks_.push_back({*cursor, numel, std::move(shape)});
  *cursor += numel;
  return static_cast<int>(blocks_.size()) - 1;
}

EnsembleNet::EnsembleNet(NetShape shape, Rng& init_rng)
    : shape_(std::move(shape)), adam_(0, kBeta1, kBeta2, kAdamEps) {
  const int64_t M = shape_.members;
  if (M < 1) throw UsageError("reward ensemble_size must be >= 1, got " + std::to_string(M));
  const bool conv = !shape_.image.empty() && !shape_.conv_channels.empty();
  const bool keypoints = conv && shape_.pixel_encoder == "keypoints";
  if (conv && shape_.pixel_encoder != "cnn" && !keypoints) {
    throw UsageError("reward pixel_encoder '" + shape_.pixel_encoder + "' is not one of: cnn, keypoints, mlp");
  }
  const int64_t S = shape_.select_width;
  if (S < 0 || shape_.select_offset < 0 || shape_.select_offset + S > shape_.row_width) {
    throw UsageError("reward net: selection block [" + std::to_string(shape_.select_offset) + ", " +
                     std::to_string(shape_.select_offset + S) + ") lies outside a row of " +
                     std::to_string(shape_.row_width) + " floats");
  }
  if (shape_.potential) {
    if (!conv) throw UsageError("reward form 'potential' needs pixel observations and a conv trunk (pixel_encoder cnn or keypoints)");
    if (shape_.image[0] % 2 != 0) {
      throw UsageError("reward form 'potential' needs images that stack two frames (an even channel count), got " +
                       std::to_string(shape_.image[0]) + " channels");
    }
    if (S > 0) throw UsageError("reward form 'potential' cannot select per-action outputs (discrete_action select)");
  }
  int64_t head_in = shape_.row_width - S;
  std::vector<int64_t> conv_in;  // input channels of each conv
  std::vector<int64_t> fan_in;   // per block, for initialisation
  int64_t cursor = 0;

  // Weights first (so L2 is one prefix), in forward order.
  if (conv) {
    int64_t c = shape_.image[0], h = shape_.image[1], w = shape_.image[2];
    const int64_t image_floats = c * h * w;
    if (shape_.potential) c /= 2;  // phi sees one frame
    auto check_per_conv = [&](const std::vector<int>& v, const char* key, int64_t dflt) {
      if (v.empty() || v.size() == shape_.conv_channels.size()) return;
      throw UsageError("reward " + std::string(key) + " has " + std::to_string(v.size()) +
                       " entries but conv_channels has " + std::to_string(shape_.conv_channels.size()) +
                       "; give one per conv (or none for " + std::to_string(dflt) + " everywhere)");
    };
    check_per_conv(shape_.conv_strides, "conv_strides", kStride);
    check_per_conv(shape_.conv_kernels, "conv_kernels", kKernel);
    for (int k : shape_.conv_kernels) {
      if (k % 2 == 0 && shape_.same_padding) {
        throw UsageError("reward conv_kernels entry " + std::to_string(k) +
                         " is even; kernels must be odd (1, 3, 5, ...) for 'same' padding");
      }
    }
    for (size_t li = 0; li < shape_.conv_channels.size(); ++li) {
      const int out_c = shape_.conv_channels[li];
      const int64_t stride = shape_.conv_strides.empty() ? kStride : shape_.conv_strides[li];
      const int64_t k = shape_.conv_kernels.empty() ? kKernel : shape_.conv_kernels[li];
      strides_.push_back(stride);
      kernels_.push_back(k);
      conv_in.push_back(c);
      conv_w_.push_back(add_block({M * out_c, c, k, k}, &cursor));
      fan_in.push_back(c * k * k);
      const int64_t pad = shape_.same_padding ? k / 2 : 0;
      h = conv_out(h, k, stride, pad);
      w = conv_out(w, k, stride, pad);
      if (h < 1 || w < 1) {
        throw UsageError("reward conv_channels: " + std::to_string(shape_.conv_channels.size()) +
                         " convs (strides as in conv_strides, default 2) shrink the " + std::to_string(shape_.image[1]) + "x" +
                         std::to_string(shape_.image[2]) + " image to nothing; use fewer layers");
      }
      conv_out_hw_.push_back(h * w);
      conv_outs_.push_back({out_c, h, w});
      c = out_c;
    }
    conv_features_ = keypoints ? 2 * c : c * h * w;
    if (keypoints) {
      // Cell centres, x along the width and y along the height, each spanning [-1, 1].
      const torch::Tensor xs = w == 1 ? torch::zeros({w}) : torch::linspace(-1.0, 1.0, w);
      const torch::Tensor ys = h == 1 ? torch::zeros({h}) : torch::linspace(-1.0, 1.0, h);
      kp_grid_ = torch::stack({xs.unsqueeze(0).expand({h, w}).reshape({h * w}),
                               ys.unsqueeze(1).expand({h, w}).reshape({h * w})}, 1).contiguous();  // (h*w x 2)
    }
    if (S > 0 && shape_.select_offset < image_floats) throw UsageError("reward net: selection block overlaps the image");
    head_in = conv_features_ + (shape_.row_width - S - image_floats);
  }
  std::vector<int64_t> widths = {head_in};
  for (int hdim : shape_.hidden) widths.push_back(hdim);
  widths.push_back(S > 0 ? S : 1);
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    fc_w_.push_back(add_block({M, widths[i], widths[i + 1]}, &cursor));
    fan_in.push_back(widths[i]);
  }
  n_weights_ = cursor;
  // Then biases.
  for (size_t i = 0; i < conv_w_.size(); ++i) {
    conv_b_.push_back(add_block({M * shape_.conv_channels[i]}, &cursor));
    fan_in.push_back(conv_in[i] * kernels_[i] * kernels_[i]);
  }
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    fc_b_.push_back(add_block({M, 1, widths[i + 1]}, &cursor));
    fan_in.push_back(widths[i]);
  }
  // Batch norm's scales (initially 1) and shifts (0), not L2-regularised; a keypoint trunk's
  // last conv stays linear and unnormalised.
  if (shape_.batch_norm && conv) {
    for (size_t i = 0; i < conv_w_.size(); ++i) {
      if (keypoints && i + 1 == conv_w_.size()) break;
      const int64_t mc = M * shape_.conv_channels[i];
      bn_w_.push_back(add_block({mc}, &cursor));
      fan_in.push_back(-1);  // not drawn: 1
      bn_b_.push_back(add_block({mc}, &cursor));
      fan_in.push_back(-2);  // not drawn: 0
      bn_mean_.push_back(torch::zeros({mc}, torch::kFloat32));
      bn_var_.push_back(torch::ones({mc}, torch::kFloat32));
    }
  }
  if (keypoints) {
    kp_temp_ = add_block({M * shape_.conv_channels.back()}, &cursor);
    fan_in.push_back(0);  // not drawn: set to kKeypointLogTemp below
  }

  // Initialise from our own Rng: independent of global torch state, identical everywhere.
  std::vector<float> init(static_cast<size_t>(cursor));
  for (size_t b = 0; b < blocks_.size(); ++b) {
    if (static_cast<int>(b) == kp_temp_) {
      std::fill_n(init.begin() + blocks_[b].offset, blocks_[b].numel, static_cast<float>(kKeypointLogTemp));
      continue;
    }
    if (fan_in[b] < 0) {  // batch norm: scale 1, shift 0
      std::fill_n(init.begin() + blocks_[b].offset, blocks_[b].numel, fan_in[b] == -1 ? 1.0f : 0.0f);
      continue;
    }
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in[b]));
    for (int64_t k = 0; k < blocks_[b].numel; ++k) {
      init[blocks_[b].offset + k] = static_cast<float>(init_rng.uniform(-bound, bound));
    }
  }
  flat_ = torch::from_blob(init.data(), {cursor}, torch::kFloat32).clone();
  flat_.set_requires_grad(true);
  adam_ = nn::FlatAdam(cursor, kBeta1, kBeta2, kAdamEps);
}

torch::Tensor EnsembleNet::view(int i) const {
  const Block& b = blocks_[i];
  return flat_.narrow(0, b.offset, b.numel).view(b.shape);
}

torch::Tensor EnsembleNet::activate(const torch::Tensor& x) const {
  if (shape_.activation == "relu") return torch::relu(x);
  if (shape_.activation == "tanh") return torch::tanh(x);
  return torch::leaky_relu(x, 0.01);
}

int64_t EnsembleNet::activation_floats_per_row() const {
  const int64_t M = shape_.members;
  int64_t n = shape_.row_width;
  for (size_t i = 0; i < conv_out_hw_.size(); ++i) n += M * shape_.conv_channels[i] * conv_out_hw_[i] * 2;
  if (kp_temp_ >= 0) n += M * shape_.conv_channels.back() * conv_out_hw_.back() * 2;  // scaled map, softmax
  int64_t head = conv_features_ + shape_.row_width;
  for (int h : shape_.hidden) head += h;
  n += M * (head + std::max<int64_t>(1, shape_.select_width)) * 2;
  return shape_.potential ? 2 * n : n;  // phi runs on both frames
}

torch::Tensor EnsembleNet::head_columns(const torch::Tensor& rows) const {
  const int64_t S = shape_.select_width, off = shape_.select_offset, F = shape_.row_width;
  if (S == 0) return rows;
  if (off + S == F) return rows.narrow(1, 0, off);
  return torch::cat({rows.narrow(1, 0, off), rows.narrow(1, off + S, F - off - S)}, 1);
}

torch::Tensor EnsembleNet::forward(const torch::Tensor& rows, const std::vector<torch::Tensor>& masks) const {
  ForwardMode mode;
  mode.fc_masks = masks;
  return run(rows, mode, false);
}

torch::Tensor EnsembleNet::forward(const torch::Tensor& rows, const ForwardMode& mode) {
  return run(rows, mode, mode.batch_stats && mode.update_running);
}

std::vector<EnsembleNet::ConvOut> EnsembleNet::conv_outputs() const { return conv_outs_; }

std::vector<torch::Tensor> EnsembleNet::running_stats() const {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < bn_mean_.size(); ++i) {
    out.push_back(bn_mean_[i]);
    out.push_back(bn_var_[i]);
  }
  return out;
}

void EnsembleNet::set_running_stats(const std::vector<torch::Tensor>& stats) {
  if (stats.size() != 2 * bn_mean_.size())
    throw RuntimeError("reward net: " + std::to_string(stats.size()) + " batch-norm statistics given, expected " +
                       std::to_string(2 * bn_mean_.size()));
  for (size_t i = 0; i < bn_mean_.size(); ++i) {
    if (stats[2 * i].numel() != bn_mean_[i].numel() || stats[2 * i + 1].numel() != bn_var_[i].numel())
      throw RuntimeError("reward net: batch-norm statistics of layer " + std::to_string(i) + " have the wrong size");
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < bn_mean_.size(); ++i) {
    bn_mean_[i].copy_(stats[2 * i].to(torch::kFloat32).reshape({-1}));
    bn_var_[i].copy_(stats[2 * i + 1].to(torch::kFloat32).reshape({-1}));
  }
}

torch::Tensor EnsembleNet::run(const torch::Tensor& rows, const ForwardMode& mode, bool update_running) const {
  const std::vector<torch::Tensor>& masks = mode.fc_masks;
  const int64_t M = shape_.members;
  const int64_t N = rows.size(0);
  const int64_t S = shape_.select_width;
  torch::Tensor h;  // (M x N x features) input of the head
  if (!conv_w_.empty()) {
    const int64_t C = shape_.image[0], H = shape_.image[1], W = shape_.image[2];
    const int64_t image_floats = C * H * W;
    torch::Tensor y = rows.narrow(1, 0, image_floats).reshape({N, C, H, W});  // (N x C x H x W)
    int64_t R = N;  // rows through the trunk and head: 2N with the potential form
    if (shape_.potential) {
      // (N x 2 x C/2 x H x W) => newest frames of every row, then previous frames: (2N x C/2 x H x W).
      const torch::Tensor frames = y.view({N, 2, C / 2, H, W});
      y = torch::cat({frames.select(1, 0), frames.select(1, 1)}, 0);
      R = 2 * N;
    }
    const size_t n_conv = conv_w_.size();
    for (size_t i = 0; i < n_conv; ++i) {
      // The first conv sees the shared image (all members' filters at once, groups 1); later
      // convs keep members apart with groups = M. => (N x M*C_i x H_i x W_i)
      const int64_t groups = i == 0 ? 1 : M;
      y = torch::conv2d(y, view(conv_w_[i]), view(conv_b_[i]), strides_[i],
                        shape_.same_padding ? kernels_[i] / 2 : 0, 1, groups);
      if (i < bn_w_.size()) {
        // Per member and channel; running statistics are touched only when asked to.
        const bool upd = mode.batch_stats && update_running;
        torch::Tensor rm = upd ? bn_mean_[i] : (mode.batch_stats ? torch::Tensor() : bn_mean_[i]);
        torch::Tensor rv = upd ? bn_var_[i] : (mode.batch_stats ? torch::Tensor() : bn_var_[i]);
        y = torch::batch_norm(y, view(bn_w_[i]), view(bn_b_[i]), rm, rv, mode.batch_stats, shape_.bn_momentum, kBnEps,
                              false);
      }
      if (kp_temp_ < 0 || i + 1 < n_conv) y = activate(y);  // keypoint logits stay linear
      if (i < mode.conv_masks.size() && mode.conv_masks[i].defined()) {
        const torch::Tensor& mk = mode.conv_masks[i];  // (G x M*C x h x w)
        const int64_t G = mk.size(0);
        if (G < 1 || y.size(0) % G != 0)
          throw UsageError("reward net: conv dropout for " + std::to_string(G) + " groups of " +
                           std::to_string(y.size(0)) + " rows");
        y = (y.view({G, y.size(0) / G, y.size(1), y.size(2), y.size(3)}) * mk.unsqueeze(1)).view(y.sizes());
      }
    }
    if (kp_temp_ >= 0) {
      const int64_t MC = y.size(1), hw = y.size(2) * y.size(3);
      const torch::Tensor logits = y.reshape({R, MC, hw}) * view(kp_temp_).exp().view({1, MC, 1});
      y = torch::matmul(torch::softmax(logits, 2), kp_grid_);  // (R x M*C x 2) expected (x, y)
    }
    torch::Tensor features = y.reshape({R, M, conv_features_}).permute({1, 0, 2});  // (M x R x Fc)
    torch::Tensor extra = head_columns(rows).narrow(1, image_floats, shape_.row_width - S - image_floats);  // (N x E)
    if (R != N) extra = torch::cat({extra, extra}, 0);  // (R x E)
    h = torch::cat({features, extra.unsqueeze(0).expand({M, R, extra.size(1)})}, 2);  // (M x R x Fc+E)
  } else {
    const torch::Tensor x = head_columns(rows);  // (N x F-S)
    h = x.unsqueeze(0).expand({M, N, x.size(1)});  // (M x N x F-S), no copy
  }
  const size_t n_layers = fc_w_.size();
  for (size_t i = 0; i < n_layers; ++i) {
    h = torch::baddbmm(view(fc_b_[i]), h, view(fc_w_[i]));  // (M x N x out_i)
    if (i + 1 < n_layers) {
      h = activate(h);
      if (!masks.empty()) h = h * masks[i];  // (M x 1 x out_i) broadcast over every row
    }
  }
  if (S > 0) return (h * rows.narrow(1, shape_.select_offset, S).unsqueeze(0)).sum(2);  // (M x N)
  if (shape_.potential) {
    const torch::Tensor phi = h.squeeze(2);  // (M x 2N): newest frames, then previous frames
    return phi.narrow(1, 0, N) - phi.narrow(1, N, N);  // (M x N)
  }
  return h.squeeze(2);  // (M x N)
}

EnsembleNet::EvalTensors EnsembleNet::eval_tensors() const {
  torch::NoGradGuard no_grad;
  EvalTensors t;
  auto copy = [&](int block) { return view(block).detach().clone(); };
  for (size_t i = 0; i < conv_w_.size(); ++i) {
    t.conv_w.push_back(copy(conv_w_[i]));
    t.conv_b.push_back(copy(conv_b_[i]));
    t.strides.push_back(strides_[i]);
    t.kernels.push_back(kernels_[i]);
    t.groups.push_back(i == 0 ? 1 : shape_.members);
  }
  for (size_t i = 0; i < bn_w_.size(); ++i) {
    t.bn_w.push_back(copy(bn_w_[i]));
    t.bn_b.push_back(copy(bn_b_[i]));
    t.bn_mean.push_back(bn_mean_[i].clone());
    t.bn_var.push_back(bn_var_[i].clone());
  }
  t.bn_eps = kBnEps;
  if (kp_temp_ >= 0) {
    t.kp_temp = copy(kp_temp_);
    t.kp_grid = kp_grid_.clone();
  }
  t.conv_features = conv_features_;
  for (size_t i = 0; i < fc_w_.size(); ++i) {
    t.fc_w.push_back(copy(fc_w_[i]));
    t.fc_b.push_back(copy(fc_b_[i]));
  }
  return t;
}

void EnsembleNet::adam_step(double lr, double l2) { adam_.step_tensor(flat_, lr, l2, n_weights_); }

}  // namespace prefrl::reward_detail
