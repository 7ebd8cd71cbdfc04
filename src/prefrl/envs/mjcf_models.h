// The MJCF models of the MuJoCo environments, embedded in the binary at build time from
// src/prefrl/envs/mjcf/*.xml (cmake/embed_mjcf.cmake): nothing is read from disk at run time.
#pragma once
#include <cstddef>

namespace prefrl {

struct MjcfModel {
  const char* name;  // file name without ".xml", e.g. "hopper"
  const char* xml;   // the whole file
};

extern const MjcfModel kMjcfModels[];
extern const size_t kMjcfModelCount;

}  // namespace prefrl
