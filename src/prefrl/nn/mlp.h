// A hand-written multilayer perceptron over a slice of a flat parameter vector, built from the
// feature-major kernels (nn/kernels.h): ReLU hidden layers and a linear output layer. forward
// keeps what backward needs; backward gives the parameter gradients and, when asked, the
// gradient with respect to the input (SAC's actor loss differentiates Q by its action input).
//
// Activations are (features x Bp), Bp a multiple of 8; a gradient's padded columns must be 0 so
// that they add nothing to the parameter gradients.
#pragma once
#include <cstdint>
#include <vector>

#include "prefrl/core/rng.h"

namespace prefrl::nn {

// A dense layer's place in the flat vector: weight (out x in) row-major, as torch::nn::Linear's,
// at w; bias (out) at b.
struct DenseSlot {
  int64_t w = 0, b = 0;
  int in = 0, out = 0;
};

struct MlpShape {
  std::vector<DenseSlot> layers;
  int64_t begin = 0, end = 0;  // the parameters it spans: [begin, end)
  int in() const { return layers.front().in; }
  int out() const { return layers.back().out; }
  int64_t num_params() const { return end - begin; }
};

// in -> hidden... -> out, laid out from `offset` on (each layer's weight, then its bias).
MlpShape mlp_shape(int in, const std::vector<int>& hidden, int out, int64_t offset = 0);

// torch::nn::Linear's default initialisation, from rng: weights and biases U(-1/sqrt(in), 1/sqrt(in)).
void init_mlp(const MlpShape& shape, Rng& rng, float* params);

class Mlp {
 public:
  // Room for batches of up to max_cols columns.
  Mlp(MlpShape shape, int64_t max_cols);
  const MlpShape& shape() const { return s_; }

  // The output (out x Bp) for x (in x Bp) under params (the whole flat vector); kept, with x's
  // address, until the next forward. x must stay unchanged until backward.
  const float* forward(const float* params, const float* x, int64_t Bp);
  // From d (out x Bp) = d loss / d output of the last forward: grad (the whole flat vector's,
  // this shape's slice written) += (accumulate) or = the parameter gradients; dx (in x Bp), when
  // not null, = d loss / d x.
  void backward(const float* params, const float* d, float* grad, bool accumulate, float* dx);

 private:
  MlpShape s_;
  int64_t cap_;
  const float* x_ = nullptr;
  int64_t bp_ = 0;
  std::vector<std::vector<float>> h_;      // each layer's output (out x cap)
  std::vector<std::vector<float>> delta_;  // d loss / d pre-activation of each hidden layer
};

}  // namespace prefrl::nn
