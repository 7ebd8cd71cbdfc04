// nn/: the feature-major kernels on hand-computed values (small integers, so every sum is
// exact whichever way the CPU rounds), and the one Adam against torch::optim::Adam, a
// hand-computed first step and, for the baseline-ISA variant, the scalar float loop it must
// equal bit for bit.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/nn/adam.h"
#include "prefrl/nn/kernels.h"
#include "prefrl/nn/mlp.h"

namespace prefrl::nn {
namespace {

// (rows x cols) row-major block with element (r, c) = f(r, c).
template <class F>
std::vector<float> block(int64_t rows, int64_t cols, F f) {
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[r * cols + c] = static_cast<float>(f(r, c));
  return v;
}

TEST(Kernels, Round8) {
  EXPECT_EQ(round8(0), 0);
  EXPECT_EQ(round8(1), 8);
  EXPECT_EQ(round8(8), 8);
  EXPECT_EQ(round8(33), 40);
}

TEST(Kernels, MatmulHandComputed) {
  const std::vector<float> W = {1, 2, 3, 4, 5, 6};  // (2 x 3)
  const std::vector<float> bias = {0.5f, -1.0f};
  const auto x = block(3, 8, [](int64_t k, int64_t n) { return k + 1 + n; });  // (3 x 8)
  std::vector<float> y(16);
  matmul(W.data(), 3, 1, bias.data(), x.data(), y.data(), 2, 3, 8);
  for (int n = 0; n < 8; ++n) {
    EXPECT_EQ(y[n], 14.5f + 6 * n) << n;      // 0.5 + 1(1+n) + 2(2+n) + 3(3+n)
    EXPECT_EQ(y[8 + n], 31.0f + 15 * n) << n;  // -1 + 4(1+n) + 5(2+n) + 6(3+n)
  }
  // W^T (3 x 2) through the strides, no bias: y(i, n) = W(0, i) * 1 + W(1, i) * n.
  const auto z = block(2, 8, [](int64_t k, int64_t n) { return k == 0 ? 1 : n; });
  std::vector<float> yt(24);
  matmul(W.data(), 1, 3, nullptr, z.data(), yt.data(), 3, 2, 8);
  for (int i = 0; i < 3; ++i)
    for (int n = 0; n < 8; ++n) EXPECT_EQ(yt[i * 8 + n], (i + 1) + (4 + i) * n) << i << "," << n;
}

TEST(Kernels, MatmulEveryBlockingMatchesNaive) {
  // Row counts and column widths that reach the 4-row and 1-row blocks, the 24- and 8-column tiles.
  for (int64_t O : {1, 3, 4, 5, 9}) {
    for (int64_t K : {1, 2, 7}) {
      for (int64_t Bp : {8, 24, 40, 56}) {
        const auto a = block(O, K, [](int64_t i, int64_t k) { return (i * 3 + k * 5) % 7 - 3; });
        const auto x = block(K, Bp, [](int64_t k, int64_t n) { return (k + 2 * n) % 5 - 2; });
        const auto bias = block(1, O, [](int64_t, int64_t i) { return i - 1; });
        std::vector<float> y(static_cast<size_t>(O * Bp));
        matmul(a.data(), K, 1, bias.data(), x.data(), y.data(), O, K, Bp);
        for (int64_t i = 0; i < O; ++i)
          for (int64_t n = 0; n < Bp; ++n) {
            float want = bias[i];
            for (int64_t k = 0; k < K; ++k) want += a[i * K + k] * x[k * Bp + n];
            ASSERT_EQ(y[i * Bp + n], want) << O << " " << K << " " << Bp << " at " << i << "," << n;
          }
      }
    }
  }
}

TEST(Kernels, MatmulActivateIsLeakyReluTimesMask) {
  const std::vector<float> W = {1, -1, -2, 1};  // (2 x 2)
  const std::vector<float> mask = {2.0f, 0.5f};
  const auto x = block(2, 8, [](int64_t k, int64_t n) { return k == 0 ? n : 3; });
  std::vector<float> y(16);
  matmul_activate(W.data(), 2, 1, nullptr, x.data(), y.data(), mask.data(), 0.25f, 2, 2, 8);
  for (int n = 0; n < 8; ++n) {
    const float c0 = n - 3.0f, c1 = -2.0f * n + 3.0f;  // pre-activations
    EXPECT_EQ(y[n], (c0 > 0 ? c0 : 0.25f * c0) * 2.0f) << n;
    EXPECT_EQ(y[8 + n], (c1 > 0 ? c1 : 0.25f * c1) * 0.5f) << n;
  }
  // Slope 0 (relu) without a mask: a negative pre-activation becomes -0 (c * 0).
  matmul_activate(W.data(), 2, 1, nullptr, x.data(), y.data(), nullptr, 0.0f, 2, 2, 8);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_TRUE(std::signbit(y[0]));
  EXPECT_EQ(y[5], 2.0f);
}

TEST(Kernels, MatmulBackwardMasksThenGatesByTheOutput) {
  const std::vector<float> W = {1, 2, 3, 4};  // A (2 x 2)
  const std::vector<float> mask = {0.5f, 2.0f};
  const auto d = block(2, 8, [](int64_t k, int64_t n) { return k == 0 ? 1 : n; });
  const auto h = block(2, 8, [](int64_t i, int64_t n) { return (n + i) % 2 == 0 ? 1.0 : -1.0; });
  std::vector<float> y(16);
  matmul_backward(W.data(), 2, 1, d.data(), y.data(), mask.data(), h.data(), 0.125f, 2, 2, 8);
  for (int i = 0; i < 2; ++i)
    for (int n = 0; n < 8; ++n) {
      const float c = (W[i * 2] * 1 + W[i * 2 + 1] * n) * mask[i];
      EXPECT_EQ(y[i * 8 + n], h[i * 8 + n] > 0 ? c : c * 0.125f) << i << "," << n;
    }
}

TEST(Kernels, MatmulNtStoresOrAccumulatesInEitherLayout) {
  const int64_t O = 3, K = 5, Bp = 16;
  const auto d = block(O, Bp, [](int64_t o, int64_t n) { return (o + n) % 3 - 1; });
  const auto x = block(K, Bp, [](int64_t k, int64_t n) { return (k * n) % 4 - 1; });
  auto want = [&](int64_t o, int64_t k) {
    float s = 0;
    for (int64_t n = 0; n < Bp; ++n) s += d[o * Bp + n] * x[k * Bp + n];
    return s;
  };
  std::vector<float> out(O * K, 100.0f);
  matmul_nt(d.data(), x.data(), out.data(), K, 1, O, K, Bp, Output::kStore);  // (O x K)
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k) EXPECT_EQ(out[o * K + k], want(o, k)) << o << "," << k;
  std::vector<float> out_t(K * O, 1.0f);
  matmul_nt(d.data(), x.data(), out_t.data(), 1, O, O, K, Bp, Output::kAccumulate);  // (K x O), += onto 1
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k) EXPECT_EQ(out_t[k * O + o], 1.0f + want(o, k)) << o << "," << k;
  // One hand-checked value: d row 0 = (-1, 0, 1, -1, 0, 1, ...), x row 1 = (n % 4 - 1).
  float s = 0;
  for (int n = 0; n < Bp; ++n) s += static_cast<float>(n % 3 - 1) * static_cast<float>(n % 4 - 1);
  EXPECT_EQ(out[1], s);
}

TEST(Kernels, RowSums) {
  const auto d = block(2, 16, [](int64_t o, int64_t n) { return o == 0 ? n : 1; });
  std::vector<float> out = {7, 7};
  row_sums(d.data(), out.data(), 2, 16, Output::kStore);
  EXPECT_EQ(out[0], 120.0f);  // 0 + 1 + ... + 15
  EXPECT_EQ(out[1], 16.0f);
  row_sums(d.data(), out.data(), 2, 16, Output::kAccumulate);
  EXPECT_EQ(out[0], 240.0f);
  EXPECT_EQ(out[1], 32.0f);
}

TEST(Kernels, ElementwiseActivations) {
  std::vector<float> p(64);
  for (int i = 0; i < 64; ++i) p[i] = -10.0f + 20.0f * i / 63.0f;
  const std::vector<float> x = p;
  tanh_inplace(p.data(), 64);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(p[i], std::tanh(x[i]), 4e-7) << x[i];
  std::vector<float> zero(8, 0.0f);
  tanh_inplace(zero.data(), 8);
  EXPECT_EQ(zero[0], 0.0f);

  std::vector<float> r = {-2, -0.5f, 0, 0.5f, 2, -1, 3, -3};
  relu_inplace(r.data(), 8);
  EXPECT_EQ(r, (std::vector<float>{0, 0, 0, 0.5f, 2, 0, 3, 0}));
  EXPECT_FALSE(std::signbit(r[0]));  // +0, unlike matmul_activate's slope 0

  const std::vector<float> h = {0, 0.5f, -0.5f, 1, 0, 0, 0.25f, -1};
  std::vector<float> d = {1, 2, 4, 8, 1, 1, 16, 3};
  tanh_backward(h.data(), d.data(), 8);
  EXPECT_EQ(d, (std::vector<float>{1, 1.5f, 3, 0, 1, 1, 15, 0}));
  std::vector<float> g = {1, 2, 4, 8, 1, 1, 16, 3};
  relu_backward(h.data(), g.data(), 8);
  EXPECT_EQ(g, (std::vector<float>{0, 2, 0, 8, 0, 0, 16, 0}));
}

TEST(Kernels, Transposes) {
  const auto x = block(3, 2, [](int64_t b, int64_t j) { return 10 * b + j; });  // (3 x 2) rows
  std::vector<float> xt(2 * 8, -1.0f);
  transpose_in(x.data(), 3, 2, 8, xt.data());
  EXPECT_EQ(xt, (std::vector<float>{0, 10, 20, 0, 0, 0, 0, 0, 1, 11, 21, 0, 0, 0, 0, 0}));
  std::vector<float> y(6);
  transpose_out(xt.data(), 3, 2, 8, y.data());
  EXPECT_EQ(y, x);
  std::vector<float> cols(2 * 8, -1.0f);
  transpose_cols(x.data(), 3, 2, 8, cols.data() + 4);  // columns 4..6, the rest untouched
  EXPECT_EQ(cols, (std::vector<float>{-1, -1, -1, -1, 0, 10, 20, -1, -1, -1, -1, -1, 1, 11, 21, -1}));
}

TEST(Adam, GradNormAndClipFactor) {
  const std::vector<float> g = {3, 4};
  EXPECT_DOUBLE_EQ(grad_norm(g.data(), 2), 5.0);
  const std::vector<float> g5 = {1, 2, 2, 4, 10};  // one block of four and a tail
  EXPECT_DOUBLE_EQ(grad_norm(g5.data(), 5), std::sqrt(125.0));
  EXPECT_EQ(clip_factor(5.0, 0.5), static_cast<float>(0.5 / (5.0 + 1e-6)));
  EXPECT_EQ(clip_factor(0.1, 0.5), 1.0f);
  EXPECT_EQ(clip_factor(100.0, 0.0), 1.0f);
}

TEST(Adam, GradClipMatchesTorchClipGradNorm) {
  torch::manual_seed(1);
  auto p = torch::randn({50}).requires_grad_(true);
  auto g = torch::randn({50}) * 3;
  p.mutable_grad() = g.clone();
  const double torch_norm = torch::nn::utils::clip_grad_norm_({p}, 0.5);
  const double norm = grad_norm(g.data_ptr<float>(), 50);
  EXPECT_NEAR(norm, torch_norm, 1e-5 * torch_norm);
  auto clipped = g * clip_factor(norm, 0.5);
  EXPECT_LT((clipped - p.grad()).abs().max().item<double>(), 1e-6);
}

TEST(Adam, FirstStepHandComputed) {
  // m = 0.1 * 0.5 = 0.05, v = 0.001 * 0.25; m_hat = 0.5, sqrt(v_hat) = 0.5:
  // w = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.9 (to float precision), and -2 - 0.1 * (-1) / 1 = -1.9.
  for (int variant = 0; variant < 3; ++variant) {
    FlatAdam adam(2, 0.9, 0.999, 1e-8);
    torch::Tensor p = torch::tensor({1.0f, -2.0f}).requires_grad_(true);
    std::vector<float> g = {0.5f, -1.0f};
    if (variant == 0) {
      adam.step(p.data_ptr<float>(), g.data(), 0.1);
    } else if (variant == 1) {
      adam.step_l2(p.data_ptr<float>(), g.data(), 0.1, 0.0, 2);
    } else {
      p.mutable_grad() = torch::tensor(g);
      adam.step_tensor(p, 0.1, 0.0, 2);
    }
    EXPECT_EQ(adam.steps(), 1) << variant;
    EXPECT_NEAR(p[0].item<float>(), 0.9f, 1e-6) << variant;
    EXPECT_NEAR(p[1].item<float>(), -1.9f, 1e-6) << variant;
    EXPECT_NEAR(adam.exp_avg()[0].item<float>(), 0.05f, 1e-8) << variant;
    EXPECT_NEAR(adam.exp_avg_sq()[1].item<float>(), 0.001f, 1e-9) << variant;
  }
}

TEST(Adam, StepMatchesTorchAdam) {
  const int64_t P = 303;  // not a multiple of 4: the scalar tail runs too
  torch::manual_seed(0);
  auto p_torch = torch::randn({P}).requires_grad_(true);
  auto p_flat = p_torch.detach().clone();
  torch::optim::Adam opt({p_torch}, torch::optim::AdamOptions(1e-2).eps(1e-5));
  FlatAdam adam(P);
  for (int step = 0; step < 20; ++step) {
    auto g = torch::randn({P}) * (step % 3 + 1);
    p_torch.mutable_grad() = g.clone() * 0.5;
    opt.step();
    adam.step(p_flat.data_ptr<float>(), g.data_ptr<float>(), 1e-2, 0.5f);  // grad_scale: as clipping by 0.5
  }
  EXPECT_LT((p_torch.detach() - p_flat).abs().max().item<double>(), 1e-6);
  EXPECT_EQ(adam.steps(), 20);
}

TEST(Adam, StepL2MatchesTorchAdamWithWeightDecay) {
  const int64_t P = 101, n_l2 = 60;
  torch::manual_seed(2);
  auto decayed = torch::randn({n_l2}).requires_grad_(true);
  auto free = torch::randn({P - n_l2}).requires_grad_(true);
  auto p_flat = torch::cat({decayed.detach(), free.detach()});
  torch::optim::Adam opt_decayed({decayed}, torch::optim::AdamOptions(1e-2).eps(1e-8).weight_decay(0.05));
  torch::optim::Adam opt_free({free}, torch::optim::AdamOptions(1e-2).eps(1e-8));
  FlatAdam adam(P, 0.9, 0.999, 1e-8);
  for (int step = 0; step < 15; ++step) {
    auto g = torch::randn({P});
    decayed.mutable_grad() = g.narrow(0, 0, n_l2).clone();
    free.mutable_grad() = g.narrow(0, n_l2, P - n_l2).clone();
    opt_decayed.step();
    opt_free.step();
    const auto g_before = g.clone();
    adam.step_l2(p_flat.data_ptr<float>(), g.data_ptr<float>(), 1e-2, 0.05, n_l2);
    // The gradient now includes the L2 term on the prefix, and only there.
    EXPECT_TRUE(torch::equal(g.narrow(0, n_l2, P - n_l2), g_before.narrow(0, n_l2, P - n_l2)));
    EXPECT_FALSE(torch::equal(g.narrow(0, 0, n_l2), g_before.narrow(0, 0, n_l2)));
  }
  EXPECT_LT((torch::cat({decayed.detach(), free.detach()}) - p_flat).abs().max().item<double>(), 1e-6);
}

// step_l2 is built for baseline x86-64: it must equal, bit for bit, the float loop with every
// operation rounded on its own (this test file is built without SIMD clones, so no FMA here).
TEST(Adam, StepL2IsTheUnfusedScalarLoopBitForBit) {
  const int64_t P = 37;
  torch::manual_seed(3);
  torch::Tensor p0 = torch::randn({P}), g_all = torch::randn({6, P});
  std::vector<float> p(p0.data_ptr<float>(), p0.data_ptr<float>() + P), q = p;
  std::vector<float> m(P, 0.0f), v(P, 0.0f);
  FlatAdam adam(P, 0.9, 0.999, 1e-8);
  for (int t = 1; t <= 6; ++t) {
    std::vector<float> g(g_all[t - 1].data_ptr<float>(), g_all[t - 1].data_ptr<float>() + P), h = g;
    adam.step_l2(p.data(), g.data(), 3e-3, 1e-2, 20);
    const float l2f = 1e-2f;
    for (int64_t i = 0; i < 20; ++i) h[i] += l2f * q[i];
    const double bc1 = 1.0 - std::pow(0.9, t), bc2 = 1.0 - std::pow(0.999, t);
    const float b1 = 0.9f, omb1 = static_cast<float>(1.0 - 0.9), b2 = 0.999f, omb2 = static_cast<float>(1.0 - 0.999);
    const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2)), eps = 1e-8f, step = static_cast<float>(-3e-3 / bc1);
    for (int64_t i = 0; i < P; ++i) {
      m[i] = m[i] * b1 + omb1 * h[i];
      v[i] = v[i] * b2 + omb2 * h[i] * h[i];
      const float denom = std::sqrt(v[i]) / sqrt_bc2 + eps;
      q[i] = q[i] + step * (m[i] / denom);
    }
    ASSERT_EQ(std::memcmp(p.data(), q.data(), sizeof(float) * P), 0) << "step " << t;
    ASSERT_EQ(std::memcmp(adam.exp_avg().data_ptr<float>(), m.data(), sizeof(float) * P), 0) << "step " << t;
    ASSERT_EQ(std::memcmp(adam.exp_avg_sq().data_ptr<float>(), v.data(), sizeof(float) * P), 0) << "step " << t;
  }
}

TEST(Adam, StepTensorAgreesWithStepL2AndClearsTheGrad) {
  const int64_t P = 50, n_l2 = 30;
  torch::manual_seed(4);
  torch::Tensor a = torch::randn({P}).requires_grad_(true);
  torch::Tensor b = a.detach().clone();
  FlatAdam ta(P, 0.9, 0.999, 1e-8), tb(P, 0.9, 0.999, 1e-8);
  ta.step_tensor(a, 1e-2, 0.1, n_l2);  // no grad yet: nothing happens
  EXPECT_EQ(ta.steps(), 0);
  for (int step = 0; step < 10; ++step) {
    torch::Tensor g = torch::randn({P});
    a.mutable_grad() = g.clone();
    ta.step_tensor(a, 1e-2, 0.1, n_l2);
    EXPECT_EQ(a.grad().abs().max().item<float>(), 0.0f);
    tb.step_l2(b.data_ptr<float>(), g.data_ptr<float>(), 1e-2, 0.1, n_l2);
  }
  EXPECT_EQ(ta.steps(), 10);
  EXPECT_LT((a.detach() - b).abs().max().item<double>(), 1e-6);
  EXPECT_LT((ta.exp_avg() - tb.exp_avg()).abs().max().item<double>(), 1e-7);
}

TEST(Adam, SetStateRestoresAndChecksTheSize) {
  FlatAdam a(4), b(4);
  std::vector<float> p = {1, 2, 3, 4}, g = {0.1f, -0.2f, 0.3f, -0.4f};
  a.step(p.data(), g.data(), 1e-3);
  EXPECT_TRUE(torch::equal(a.exp_avg(), torch::tensor(g) * static_cast<float>(1.0 - 0.9)));
  b.set_state(a.steps(), a.exp_avg(), a.exp_avg_sq());
  EXPECT_EQ(b.steps(), 1);
  std::vector<float> q = p;  // both continue from the same state and parameters
  a.step(p.data(), g.data(), 1e-3);
  b.step(q.data(), g.data(), 1e-3);
  EXPECT_EQ(p, q);
  EXPECT_TRUE(torch::equal(a.exp_avg_sq(), b.exp_avg_sq()));
  EXPECT_THROW(b.set_state(1, torch::zeros({3}), torch::zeros({4})), std::exception);
}

// The hand-written MLP against LibTorch autograd: outputs, parameter gradients (stored and
// accumulated) and the input's gradient, on a batch that is not a multiple of 8.
TEST(Mlp, MatchesAutogradForwardAndBackward) {
  const MlpShape shape = mlp_shape(5, {7, 6}, 3, /*offset=*/4);
  ASSERT_EQ(shape.num_params(), 5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3);
  ASSERT_EQ(shape.end, 4 + shape.num_params());
  std::vector<float> params(static_cast<size_t>(shape.end + 2), 9.0f);
  Rng rng(5);
  init_mlp(shape, rng, params.data());
  for (int64_t i = shape.begin; i < shape.end; ++i) EXPECT_LE(std::abs(params[i]), 1.0 / std::sqrt(5.0) + 1e-6);
  EXPECT_EQ(params[0], 9.0f);  // outside the slice: untouched
  const int n = 13, Bp = 16;
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({n, 5}), g = torch::randn({n, 3});
  std::vector<float> xt(5 * Bp), gt(3 * Bp);
  transpose_in(x.data_ptr<float>(), n, 5, Bp, xt.data());
  transpose_in(g.data_ptr<float>(), n, 3, Bp, gt.data());
  Mlp mlp(shape, 40);
  const float* out = mlp.forward(params.data(), xt.data(), Bp);
  std::vector<float> y(n * 3);
  transpose_out(out, n, 3, Bp, y.data());

  // The same network in autograd.
  std::vector<torch::Tensor> w, b;
  for (const DenseSlot& d : shape.layers) {
    w.push_back(torch::from_blob(params.data() + d.w, {d.out, d.in}).clone().requires_grad_(true));
    b.push_back(torch::from_blob(params.data() + d.b, {d.out}).clone().requires_grad_(true));
  }
  torch::Tensor xg = x.clone().requires_grad_(true), h = xg;
  for (size_t l = 0; l < w.size(); ++l) {
    h = torch::nn::functional::linear(h, w[l], b[l]);
    if (l + 1 < w.size()) h = torch::relu(h);
  }
  const torch::Tensor want = h.detach().contiguous();
  for (int i = 0; i < n * 3; ++i) EXPECT_NEAR(y[i], want.data_ptr<float>()[i], 1e-5);
  (h * g).sum().backward();

  std::vector<float> grad(params.size(), 0.5f), dx(5 * Bp, 7.0f);
  mlp.backward(params.data(), gt.data(), grad.data(), /*accumulate=*/false, dx.data());
  for (size_t l = 0; l < w.size(); ++l) {
    const DenseSlot& d = shape.layers[l];
    const torch::Tensor gw = w[l].grad().contiguous(), gb = b[l].grad().contiguous();
    for (int64_t i = 0; i < gw.numel(); ++i) EXPECT_NEAR(grad[d.w + i], gw.data_ptr<float>()[i], 1e-4) << l;
    for (int64_t i = 0; i < gb.numel(); ++i) EXPECT_NEAR(grad[d.b + i], gb.data_ptr<float>()[i], 1e-4) << l;
  }
  EXPECT_EQ(grad[0], 0.5f);
  std::vector<float> dxr(n * 5);
  transpose_out(dx.data(), n, 5, Bp, dxr.data());
  const torch::Tensor gx = xg.grad().contiguous();
  for (int i = 0; i < n * 5; ++i) EXPECT_NEAR(dxr[i], gx.data_ptr<float>()[i], 1e-5);
  // Accumulating adds the same gradients again; without dx the input's is not computed.
  std::vector<float> twice = grad;
  mlp.backward(params.data(), gt.data(), twice.data(), /*accumulate=*/true, nullptr);
  for (int64_t i = shape.begin; i < shape.end; ++i) EXPECT_NEAR(twice[i], 2 * grad[i], 1e-5);
  EXPECT_THROW(mlp.forward(params.data(), xt.data(), 12), RuntimeError);
  EXPECT_THROW(mlp.forward(params.data(), xt.data(), 48), RuntimeError);
}

}  // namespace
}  // namespace prefrl::nn
