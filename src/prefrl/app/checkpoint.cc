// Checkpoint directories: atomic writing, verification against the manifest, fallback.
#include "prefrl/app/checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "prefrl/core/error.h"
#include "prefrl/tracking/run_dir.h"
#include "prefrl/tracking/tensorboard.h"

namespace prefrl {

namespace fs = std::filesystem;

namespace {

constexpr int kCheckpointFormat = 1;

std::string errno_text() { return std::strerror(errno); }

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw RuntimeError("cannot open '" + path + "' to flush it to disk: " + errno_text());
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw RuntimeError("cannot flush '" + path + "' to disk: " + std::strerror(err));
}

// "ckpt-<step>" => step, or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind("ckpt-", 0) != 0) return -1;
  const std::string digits = name.substr(5);
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoll(digits);
}

}  // namespace

void ArchiveReader::raw(void* p, size_t n) {
  if (n > data_.size() - pos_) fail("it ends after " + std::to_string(data_.size()) + " bytes");
  std::memcpy(p, data_.data() + pos_, n);
  pos_ += n;
}

void ArchiveReader::fail(const std::string& what) const {
  throw RuntimeError("checkpoint file '" + name_ + "' is malformed: " + what);
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw RuntimeError("cannot read '" + path + "'");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_file_synced(const std::string& path, const std::string& contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw RuntimeError("cannot create '" + path + "': " + errno_text());
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t w = ::write(fd, contents.data() + done, contents.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      ::close(fd);
      throw RuntimeError("cannot write '" + path + "': " + std::strerror(err));
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw RuntimeError("cannot flush '" + path + "' to disk: " + std::strerror(err));
  }
  if (::close(fd) != 0) throw RuntimeError("cannot close '" + path + "': " + errno_text());
}

void truncate_file(const std::string& path, int64_t size) {
  std::error_code ec;
  const auto have = fs::file_size(path, ec);
  if (ec) {
    if (size == 0) return;  // never written: nothing to cut
    throw RuntimeError("cannot resume: '" + path + "' is missing (the checkpoint expects " + std::to_string(size) +
                       " bytes of it)");
  }
  if (static_cast<int64_t>(have) < size)
    throw RuntimeError("cannot resume: '" + path + "' has " + std::to_string(have) + " bytes, fewer than the " +
                       std::to_string(size) + " the checkpoint recorded");
  if (static_cast<int64_t>(have) == size) return;
  if (::truncate(path.c_str(), size) != 0) throw RuntimeError("cannot truncate '" + path + "': " + errno_text());
}

std::vector<std::string> list_checkpoints(const std::string& checkpoints_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string name = e.path().filename().string();
    const int64_t step = step_of(name);
    if (step >= 0 && e.is_directory()) found.emplace_back(step, e.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [s, p] : found) out.push_back(p);
  return out;
}

std::string write_checkpoint(const std::string& checkpoints_dir, int64_t step, const nlohmann::json& info,
                             const std::function<void(const std::string& tmp_dir)>& write_files, int keep) {
  const std::string name = "ckpt-" + std::to_string(step);
  const std::string final_dir = checkpoints_dir + "/" + name;
  const std::string tmp = final_dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp, ec);
    if (ec) throw RuntimeError("cannot create checkpoint directory '" + tmp + "': " + ec.message());
    write_files(tmp);
    nlohmann::json files = nlohmann::json::object();
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(tmp)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (const std::string& f : names) {
      const std::string path = tmp + "/" + f;
      fsync_file(path);  // files written by LibTorch are flushed here
      const std::string bytes = read_file_bytes(path);
      files[f] = {{"bytes", bytes.size()}, {"crc32c", crc32c(bytes.data(), bytes.size())}};
    }
    const nlohmann::json manifest = {{"format", kCheckpointFormat}, {"step", step}, {"files", files}, {"info", info}};
    write_file_synced(tmp + "/manifest.json", manifest.dump(1) + "\n");
    fsync_dir(tmp);
    if (fs::exists(final_dir)) fs::remove_all(final_dir);  // the same step again (a resumed run's first)
    fs::rename(tmp, final_dir, ec);
    if (ec) throw RuntimeError("cannot rename '" + tmp + "' to '" + final_dir + "': " + ec.message());
    fsync_dir(checkpoints_dir);
    write_file_atomic(checkpoints_dir + "/latest", name + "\n");
  } catch (const std::exception& e) {
    fs::remove_all(tmp, ec);
    throw RuntimeError(std::string("checkpoint at step ") + std::to_string(step) + " not written: " + e.what());
  }
  // Keep the newest `keep` (the one just written among them).
  std::vector<std::string> all = list_checkpoints(checkpoints_dir);
  for (size_t i = 0; i + static_cast<size_t>(std::max(keep, 1)) < all.size(); ++i) {
    if (all[i] != final_dir) fs::remove_all(all[i], ec);
  }
  return final_dir;
}

std::optional<Checkpoint> verify_checkpoint(const std::string& dir, std::string* problem) {
  const std::string mpath = dir + "/manifest.json";
  nlohmann::json manifest;
  try {
    if (!fs::exists(mpath)) { *problem = "'" + mpath + "' is missing"; return std::nullopt; }
    manifest = nlohmann::json::parse(read_file_bytes(mpath));
    if (manifest.at("format").get<int>() != kCheckpointFormat) {
      *problem = "'" + mpath + "' has format " + manifest.at("format").dump() + ", expected " +
                 std::to_string(kCheckpointFormat);
      return std::nullopt;
    }
    for (const auto& [f, want] : manifest.at("files").items()) {
      const std::string path = dir + "/" + f;
      if (!fs::exists(path)) { *problem = "'" + path + "' is missing"; return std::nullopt; }
      const std::string bytes = read_file_bytes(path);
      const uint64_t want_bytes = want.at("bytes").get<uint64_t>();
      if (bytes.size() != want_bytes) {
        *problem = "'" + path + "' is truncated (" + std::to_string(bytes.size()) + " bytes, the manifest says " +
                   std::to_string(want_bytes) + ")";
        if (bytes.size() > want_bytes) *problem = "'" + path + "' has the wrong size (" + std::to_string(bytes.size()) +
                                                  " bytes, the manifest says " + std::to_string(want_bytes) + ")";
        return std::nullopt;
      }
      if (crc32c(bytes.data(), bytes.size()) != want.at("crc32c").get<uint32_t>()) {
        *problem = "'" + path + "' is corrupt (its CRC-32C does not match the manifest)";
        return std::nullopt;
      }
    }
    Checkpoint c;
    c.dir = dir;
    c.step = manifest.at("step").get<int64_t>();
    c.info = manifest.at("info");
    return c;
  } catch (const std::exception& e) {
    *problem = "'" + mpath + "' is corrupt (" + e.what() + ")";
    return std::nullopt;
  }
}

std::optional<Checkpoint> find_checkpoint(const std::string& checkpoints_dir, std::vector<std::string>* problems) {
  // The newest directory that verifies. `latest` is not trusted for the choice: a crash
  // between a checkpoint's rename and the rewrite of `latest` leaves it one behind.
  std::vector<std::string> all = list_checkpoints(checkpoints_dir);
  std::reverse(all.begin(), all.end());
  for (const auto& d : all) {
    std::string problem;
    if (auto c = verify_checkpoint(d, &problem)) return c;
    problems->push_back(problem);
  }
  return std::nullopt;
}

void set_aside_newer(const std::string& checkpoints_dir, int64_t step, std::vector<std::string>* moved) {
  for (const auto& d : list_checkpoints(checkpoints_dir)) {
    if (step_of(fs::path(d).filename().string()) <= step) continue;
    const std::string to = d + ".damaged";
    std::error_code ec;
    fs::remove_all(to, ec);
    fs::rename(d, to, ec);
    if (!ec) moved->push_back(to);
  }
}

}  // namespace prefrl
