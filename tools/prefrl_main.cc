// The prefrl command: see `prefrl --help` and src/prefrl/app/cli.cc.
#include "prefrl/app/cli.h"
#include "prefrl/core/allocator.h"

int main(int argc, char** argv) {
  prefrl::tune_allocator();  // keep freed training buffers in the heap (src/prefrl/core/allocator.h)
  return prefrl::cli_main(argc, argv);
}
