// The hand-written MLP (mlp.h): layer l computes H_l = relu(W_l H_{l-1} + b_l) (the last one
// without the relu), and backward
//   dW_l = D_l H_{l-1}^T,  db_l = D_l 1,  D_{l-1} = (W_l^T D_l) * relu'(H_{l-1}),  dx = W_0^T D_0.
#include "prefrl/nn/mlp.h"

#include <cmath>

#include "prefrl/core/error.h"
#include "prefrl/nn/kernels.h"

namespace prefrl::nn {

MlpShape mlp_shape(int in, const std::vector<int>& hidden, int out, int64_t offset) {
  if (in <= 0 || out <= 0) throw UsageError("mlp: input and output widths must be positive");
  MlpShape s;
  s.begin = offset;
  int prev = in;
  std::vector<int> widths = hidden;
  widths.push_back(out);
  for (int w : widths) {
    if (w <= 0) throw UsageError("mlp: a hidden width " + std::to_string(w) + " is not positive");
    DenseSlot d;
    d.in = prev;
    d.out = w;
    d.w = offset;
    offset += static_cast<int64_t>(w) * prev;
    d.b = offset;
    offset += w;
    s.layers.push_back(d);
    prev = w;
  }
  s.end = offset;
  return s;
}

void init_mlp(const MlpShape& shape, Rng& rng, float* params) {
  for (const DenseSlot& d : shape.layers) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(d.in));
    for (int64_t i = 0; i < static_cast<int64_t>(d.out) * d.in; ++i)
      params[d.w + i] = static_cast<float>(rng.uniform(-bound, bound));
    for (int i = 0; i < d.out; ++i) params[d.b + i] = static_cast<float>(rng.uniform(-bound, bound));
  }
}

Mlp::Mlp(MlpShape shape, int64_t max_cols) : s_(std::move(shape)), cap_(round8(std::max<int64_t>(max_cols, 8))) {
  for (const DenseSlot& d : s_.layers) {
    h_.emplace_back(static_cast<size_t>(d.out) * cap_, 0.0f);
    delta_.emplace_back(static_cast<size_t>(d.out) * cap_, 0.0f);
  }
}

const float* Mlp::forward(const float* params, const float* x, int64_t Bp) {
  if (Bp > cap_ || Bp % 8 != 0)
    throw RuntimeError("mlp: " + std::to_string(Bp) + " columns (a multiple of 8, at most " + std::to_string(cap_) +
                       " expected)");
  x_ = x;
  bp_ = Bp;
  const float* in = x;
  for (size_t l = 0; l < s_.layers.size(); ++l) {
    const DenseSlot& d = s_.layers[l];
    float* y = h_[l].data();
    if (l + 1 < s_.layers.size())
      matmul_activate(params + d.w, d.in, 1, params + d.b, in, y, nullptr, 0.0f, d.out, d.in, Bp);
    else
      matmul(params + d.w, d.in, 1, params + d.b, in, y, d.out, d.in, Bp);
    in = y;
  }
  return h_.back().data();
}

void Mlp::backward(const float* params, const float* d, float* grad, bool accumulate, float* dx) {
  if (!x_) throw RuntimeError("mlp: backward without a forward");
  const Output mode = accumulate ? Output::kAccumulate : Output::kStore;
  const float* D = d;
  for (size_t l = s_.layers.size(); l-- > 0;) {
    const DenseSlot& s = s_.layers[l];
    const float* below = l > 0 ? h_[l - 1].data() : x_;
    matmul_nt(D, below, grad + s.w, s.in, 1, s.out, s.in, bp_, mode);
    row_sums(D, grad + s.b, s.out, bp_, mode);
    if (l > 0) {
      // D_{l-1} = (W_l^T D_l) * relu'(H_{l-1}); W_l^T(i, k) = W_l(k, i) = w[k * in + i].
      float* Db = delta_[l - 1].data();
      matmul_backward(params + s.w, 1, s.in, D, Db, nullptr, below, 0.0f, s.in, s.out, bp_);
      D = Db;
    } else if (dx) {
      matmul(params + s.w, 1, s.in, nullptr, D, dx, s.in, s.out, bp_);
    }
  }
}

}  // namespace prefrl::nn
