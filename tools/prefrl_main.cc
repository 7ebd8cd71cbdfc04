// The prefrl command: see `prefrl --help` and src/prefrl/app/cli.cc.
#include <malloc.h>

#include "prefrl/app/cli.h"

int main(int argc, char** argv) {
  // Keep freed multi-MB training buffers in the heap instead of returning them to the OS:
  // otherwise every reward-model update page-faults its temporaries in afresh (measured:
  // a 3-member train round 260-330 ms with glibc defaults, ~50 ms with these).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  return prefrl::cli_main(argc, argv);
}
