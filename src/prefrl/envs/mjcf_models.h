// The MJCF models of the MuJoCo environments and the built-in tasks' task files, embedded in the
// binary at build time from src/prefrl/envs/mjcf/ (cmake/embed_mjcf.cmake): nothing is read
// from disk at run time.
#pragma once
#include <cstddef>

namespace prefrl {

struct MjcfModel {
  const char* name;  // file name without ".xml", e.g. "hopper"
  const char* xml;   // the whole file
};

extern const MjcfModel kMjcfModels[];
extern const size_t kMjcfModelCount;

// The built-in MuJoCo tasks' task files (src/prefrl/envs/mjcf/*.toml, docs/tasks.md), embedded
// likewise: their `model` names one of kMjcfModels by its file name.
struct BuiltinTaskFile {
  const char* name;  // file name without ".toml", e.g. "hopper"
  const char* toml;  // the whole file
};

extern const BuiltinTaskFile kBuiltinTaskFiles[];
extern const size_t kBuiltinTaskFileCount;

}  // namespace prefrl
