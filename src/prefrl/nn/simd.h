// Internal to nn/: the 8-float vector type and helpers the kernels are written with, and the
// attribute that builds a function twice (AVX2+FMA and baseline x86-64, picked at load time).
//
// Floating-point note: GCC contracts a * b + c into one FMA inside the AVX2+FMA clone (it
// compiles with -ffp-contract=fast), never in the baseline one, which has no FMA instruction.
// A function with PREFRL_SIMD_CLONES therefore rounds differently from the same source without
// it; nn/ keeps both where callers depend on either (see nn/adam.h).
#pragma once
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PREFRL_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PREFRL_SIMD_CLONES
#endif
#define PREFRL_INLINE inline __attribute__((always_inline))
// The 32-byte vector helpers are always inlined, so the ABI note about passing them by value is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace prefrl::nn::simd {

typedef float v8 __attribute__((vector_size(32)));  // 8 floats: one AVX register or two SSE ones
typedef float v4 __attribute__((vector_size(16)));  // 4 floats: one SSE register

PREFRL_INLINE v8 load8(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
PREFRL_INLINE void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
// A broadcast written as a scalar-vector operation, expanded inside each SIMD clone (a helper
// function building {x, x, ...} gets lowered for the baseline target before inlining: slow).
#define PREFRL_SPLAT(x) (::prefrl::nn::simd::v8{} + (x))
// Sum of the 8 lanes, pairwise: ((0+1)+(2+3))+((4+5)+(6+7)).
PREFRL_INLINE float hsum(v8 v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

}  // namespace prefrl::nn::simd
