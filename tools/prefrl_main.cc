// The prefrl command: see `prefrl --help` and src/prefrl/app/cli.cc.
#include "prefrl/app/cli.h"

int main(int argc, char** argv) { return prefrl::cli_main(argc, argv); }
