// The process's allocator settings for LibTorch-heavy programs (the prefrl command, benches).
#pragma once

#include <cstdlib>
#include <malloc.h>

namespace prefrl {

// glibc returns large blocks to the OS: every allocation above the mmap threshold (at most
// 32 MB) is its own mmap, and the heap top is trimmed as soon as it frees. A training step then
// page-faults its multi-MB temporaries in afresh each time: the kernel zeroes every page again
// (half the time of a pixel reward-model update was system time). Keeping freed memory in the
// heap costs nothing in results (same arithmetic) and holds the process at its high-water mark.
// Measured (bench/atari_phases, pong, 2 threads): A2C update of 80 samples 66.8 -> 37.0 ms, a
// 16-pair reward minibatch (3 members) 1218 -> 588 ms; 1 thread: 1525 -> 914 ms.
// Set PREFRL_SYSTEM_MALLOC=1 to keep glibc's defaults (to compare).
inline void tune_allocator() {
  if (const char* keep = std::getenv("PREFRL_SYSTEM_MALLOC"); keep != nullptr && keep[0] == '1')
    return;
  mallopt(M_MMAP_MAX, 0);                   // every block from the heap, none mmap'd apart
  mallopt(M_TRIM_THRESHOLD, 1 << 30);       // never give the heap top back below 1 GB free
  mallopt(M_TOP_PAD, 256 << 20);            // grow the heap in 256 MB steps
}

}  // namespace prefrl
