// Progress display for long work (training runs, sweeps): a bar redrawn in place on a
// terminal, plain lines otherwise (pipes, files, CI logs).
#pragma once
#include <string>

namespace prefrl {

// "[#########...........]" of `width` cells for fraction in [0, 1] (clamped).
std::string progress_bar(double fraction, int width = 24);
// Whether standard output is a terminal (and TERM is not "dumb").
bool stdout_is_terminal();

}  // namespace prefrl
