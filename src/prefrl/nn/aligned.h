// Buffers for the kernels (nn/kernels.h), aligned to a cache line: 64 bytes, so that no 8-float
// vector load straddles two lines whatever the heap handed out (malloc aligns to 16 only, and
// a buffer at 16 mod 32 made the reward ensemble's passes 15-20% slower in one binary than in
// another, by where its allocations happened to land).
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace prefrl::nn {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};

// A float vector whose data starts on a cache line.
using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

}  // namespace prefrl::nn
