// The `prefrl` command line: train, eval, presets, config, env list, env replay.
#pragma once

namespace prefrl {

// Runs the command; returns the process exit code (0 ok, 1 failure, 2 usage error).
int cli_main(int argc, char** argv);

}  // namespace prefrl
