// Checkpoints of a training run (format: docs/run_dir.md, "Checkpoints").
//
//   checkpoints/ckpt-<step>/    one complete checkpoint, taken at an iteration boundary:
//       policy.pt  reward.pt  trainer.bin   the state (written by the trainer)
//       manifest.json                        format, step, each file's size and CRC-32C, and
//                                            the trainer's small state as JSON ("info")
//   checkpoints/latest          the name of the newest checkpoint directory (for people and
//                               tools; loading takes the newest directory that verifies)
//
// A checkpoint is written into ckpt-<step>.tmp/, every file fsync'd, the manifest written
// last, the directory renamed to ckpt-<step>/ and the parent fsync'd; only then is `latest`
// rewritten (atomically) and checkpoints beyond the newest `keep` removed. A crash at any
// moment leaves the previous checkpoint whole. Loading verifies every file against the
// manifest; a damaged checkpoint is reported by name and the next older one is used.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefrl {

// A flat binary stream of numbers and arrays (little-endian, as this machine writes it),
// for the trainer's state. The reader throws RuntimeError naming `name` when the stream
// ends early or a length is implausible.
class ArchiveWriter {
 public:
  void u64(uint64_t x) { raw(&x, sizeof x); }
  void i64(int64_t x) { raw(&x, sizeof x); }
  void f64(double x) { raw(&x, sizeof x); }
  template <class T>
  void vec(const std::vector<T>& v) {
    u64(v.size());
    if (!v.empty()) raw(v.data(), v.size() * sizeof(T));
  }
  void raw(const void* p, size_t n) { data_.append(static_cast<const char*>(p), n); }
  const std::string& data() const { return data_; }

 private:
  std::string data_;
};

class ArchiveReader {
 public:
  ArchiveReader(std::string data, std::string name) : data_(std::move(data)), name_(std::move(name)) {}
  uint64_t u64() { uint64_t x; raw(&x, sizeof x); return x; }
  int64_t i64() { int64_t x; raw(&x, sizeof x); return x; }
  double f64() { double x; raw(&x, sizeof x); return x; }
  template <class T>
  std::vector<T> vec() {
    const uint64_t n = u64();
    if (n > (data_.size() - pos_) / sizeof(T)) fail("an array of " + std::to_string(n) + " elements runs past the end");
    std::vector<T> v(n);
    if (n) raw(v.data(), n * sizeof(T));
    return v;
  }
  void raw(void* p, size_t n);
  bool at_end() const { return pos_ == data_.size(); }
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string data_, name_;
  size_t pos_ = 0;
};

// A checkpoint found on disk and verified.
struct Checkpoint {
  std::string dir;       // e.g. RUN/checkpoints/ckpt-40960
  int64_t step = 0;      // environment steps at the checkpoint
  nlohmann::json info;   // the trainer's "info" from the manifest
  std::string file(const std::string& name) const { return dir + "/" + name; }
};

// Writes checkpoint `step` under `checkpoints_dir`: write_files(tmp_dir) writes the state
// files into tmp_dir (throwing on failure); then the manifest (with `info`), the rename and
// `latest`, and the pruning to `keep` checkpoints. Any failure (a full disk, a file-size
// limit) removes the partial directory and throws RuntimeError naming the file and the
// reason; the previous checkpoints are untouched. => the checkpoint's directory.
std::string write_checkpoint(const std::string& checkpoints_dir, int64_t step, const nlohmann::json& info,
                             const std::function<void(const std::string& tmp_dir)>& write_files, int keep);

// Verifies one checkpoint directory against its manifest => the checkpoint, or nullopt with
// *problem saying which file is missing, truncated or corrupt.
std::optional<Checkpoint> verify_checkpoint(const std::string& dir, std::string* problem);

// The newest good checkpoint under checkpoints_dir: every ckpt-<step>/ by decreasing step
// until one verifies (`latest` may lag behind by one). Each damaged one adds a line to
// *problems. nullopt if there is none.
std::optional<Checkpoint> find_checkpoint(const std::string& checkpoints_dir, std::vector<std::string>* problems);

// Renames every checkpoint directory beyond `step` (the damaged ones a resume skipped) to
// ckpt-<step>.damaged, kept for inspection and never loaded; *moved receives their new paths.
// (Their positions in metrics.jsonl would not match the file the resumed run rewrites.)
void set_aside_newer(const std::string& checkpoints_dir, int64_t step, std::vector<std::string>* moved);

// All checkpoint directories (ckpt-<step>, not .tmp) by increasing step.
std::vector<std::string> list_checkpoints(const std::string& checkpoints_dir);

// Reads a whole file; throws RuntimeError naming it.
std::string read_file_bytes(const std::string& path);
// Writes a whole file and fsyncs it; throws RuntimeError naming it and the reason (errno).
void write_file_synced(const std::string& path, const std::string& contents);
// Truncates (or checks) a file to `size` bytes; throws RuntimeError if it is shorter.
void truncate_file(const std::string& path, int64_t size);

}  // namespace prefrl
