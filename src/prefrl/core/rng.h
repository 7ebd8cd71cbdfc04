// Deterministic random numbers, identical on every platform and standard library.
// Each component owns an Rng seeded from the run seed with a distinct stream id, so adding
// a component never shifts another component's random numbers.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace prefrl {

// SplitMix64 finaliser: a good 64-bit mixer, used to derive seeds.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Derives an independent seed for a named stream of a run.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  return splitmix64(splitmix64(seed) ^ splitmix64(stream * 0x632BE59BD9B4E019ULL + 1));
}

// xoshiro256** generator with hand-written distributions (no std:: distributions, whose
// output differs between standard libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { this->seed(seed); }

  void seed(uint64_t seed) {
    uint64_t x = seed;
    for (auto& w : s_) { x = splitmix64(x); w = x; }
    has_spare_ = false;
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0]; s_[3] ^= s_[1]; s_[1] ^= s_[2]; s_[0] ^= s_[3];
    s_[2] ^= t; s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 bits of precision.
  double uniform() { return (next_u64() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n); n > 0. Lemire's method without bias.
  uint64_t integer(uint64_t n) {
    uint64_t x = next_u64();
    __uint128_t m = static_cast<__uint128_t>(x) * n;
    uint64_t l = static_cast<uint64_t>(m);
    if (l < n) {
      uint64_t t = -n % n;
      while (l < t) {
        x = next_u64();
        m = static_cast<__uint128_t>(x) * n;
        l = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }
  // Standard normal (Marsaglia polar method).
  double normal() {
    if (has_spare_) { has_spare_ = false; return spare_; }
    double u, v, s;
    do {
      u = uniform() * 2.0 - 1.0;
      v = uniform() * 2.0 - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double m = std::sqrt(-2.0 * std::log(s) / s);
    spare_ = v * m; has_spare_ = true;
    return u * m;
  }
  bool bernoulli(double p) { return uniform() < p; }

  // Fisher–Yates shuffle.
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[integer(i)]);
  }

  // Full state, for checkpoints.
  std::vector<uint64_t> state() const {
    return {s_[0], s_[1], s_[2], s_[3], has_spare_ ? 1ULL : 0ULL, bits(spare_)};
  }
  void set_state(const std::vector<uint64_t>& st) {
    for (int i = 0; i < 4; ++i) s_[i] = st.at(i);
    has_spare_ = st.at(4) != 0;
    uint64_t b = st.at(5);
    __builtin_memcpy(&spare_, &b, sizeof b);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t bits(double d) { uint64_t b; __builtin_memcpy(&b, &d, sizeof b); return b; }
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace prefrl
