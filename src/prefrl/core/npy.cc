#include "prefrl/core/npy.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prefrl/core/error.h"

namespace prefrl {

namespace {

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes

template <class T>
constexpr NpyType type_of();
template <>
constexpr NpyType type_of<float>() { return NpyType::kFloat32; }
template <>
constexpr NpyType type_of<double>() { return NpyType::kFloat64; }
template <>
constexpr NpyType type_of<int64_t>() { return NpyType::kInt64; }
template <>
constexpr NpyType type_of<uint8_t>() { return NpyType::kUInt8; }

[[noreturn]] void bad(const std::string& name, const std::string& why) {
  throw RuntimeError(name + ": not a .npy file prefrl reads (" + why + ")");
}

// The value of `key` in the header dict text (up to the next top-level ',' or '}').
std::string header_value(const std::string& header, const std::string& key, const std::string& name) {
  const std::string k = "'" + key + "'";
  const size_t at = header.find(k);
  if (at == std::string::npos) bad(name, "the header has no " + k);
  size_t p = header.find(':', at + k.size());
  if (p == std::string::npos) bad(name, "the header's " + k + " has no value");
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  if (p < header.size() && header[p] == '(') {
    const size_t end = header.find(')', p);
    if (end == std::string::npos) bad(name, "the shape tuple is not closed");
    return header.substr(p, end - p + 1);
  }
  size_t end = p;
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  std::string v = header.substr(p, end - p);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

int64_t NpyArray::numel() const { return shape_numel(shape); }

template <class T>
std::vector<T> NpyArray::values(const std::string& what) const {
  if (type != type_of<T>())
    throw RuntimeError(what + ": holds " + npy_descr(type) + " values, expected " + npy_descr(type_of<T>()));
  std::vector<T> out(static_cast<size_t>(numel()));
  if (!out.empty()) std::memcpy(out.data(), data.data(), out.size() * sizeof(T));
  return out;
}
template std::vector<float> NpyArray::values<float>(const std::string&) const;
template std::vector<double> NpyArray::values<double>(const std::string&) const;
template std::vector<int64_t> NpyArray::values<int64_t>(const std::string&) const;
template std::vector<uint8_t> NpyArray::values<uint8_t>(const std::string&) const;

size_t npy_element_size(NpyType t) {
  switch (t) {
    case NpyType::kFloat32: return 4;
    case NpyType::kFloat64: return 8;
    case NpyType::kInt64: return 8;
    case NpyType::kUInt8: return 1;
  }
  return 1;
}

const char* npy_descr(NpyType t) {
  switch (t) {
    case NpyType::kFloat32: return "<f4";
    case NpyType::kFloat64: return "<f8";
    case NpyType::kInt64: return "<i8";
    case NpyType::kUInt8: return "|u1";
  }
  return "?";
}

std::string npy_header(NpyType type, const std::vector<int64_t>& shape) {
  // numpy's tuple: () for a scalar, (n,) for one dimension, (a, b, c) otherwise.
  std::string dims;
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dims += (i ? ", " : "") + std::to_string(shape[i]);
    n *= shape[i];
  }
  if (shape.size() == 1) dims += ",";
  std::string header = std::string("{'descr': '") + npy_descr(type) + "', 'fortran_order': False, 'shape': (" + dims +
                       "), }";
  const size_t unpadded = 6 + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  const uint16_t len = static_cast<uint16_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>(len >> 8);
  out += header;
  (void)n;
  return out;
}

std::string npy_bytes(NpyType type, const std::vector<int64_t>& shape, const void* data) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::string out = npy_header(type, shape);
  out.append(static_cast<const char*>(data), static_cast<size_t>(n) * npy_element_size(type));
  return out;
}

int64_t NpyHeader::numel() const { return shape_numel(shape); }

NpyHeader parse_npy_header(const std::string& bytes, uint64_t file_size, const std::string& name) {
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) bad(name, "no .npy magic string");
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major != 1) bad(name, "format version " + std::to_string(major) + ".x; prefrl writes and reads 1.0");
  const size_t hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  if (bytes.size() < 10 + hlen) bad(name, "the header runs past the end of the file");
  const std::string header = bytes.substr(10, hlen);
  NpyHeader a;
  a.data_offset = 10 + hlen;
  const std::string descr = header_value(header, "descr", name);
  bool known = false;
  for (NpyType t : {NpyType::kFloat32, NpyType::kFloat64, NpyType::kInt64, NpyType::kUInt8}) {
    if (descr == std::string("'") + npy_descr(t) + "'") {
      a.type = t;
      known = true;
    }
  }
  if (!known) bad(name, "dtype " + descr + "; expected one of '<f4', '<f8', '<i8', '|u1'");
  if (header_value(header, "fortran_order", name) != "False") bad(name, "Fortran order");
  std::string shape = header_value(header, "shape", name);
  if (shape.size() < 2 || shape.front() != '(' || shape.back() != ')') bad(name, "shape " + shape);
  shape = shape.substr(1, shape.size() - 2);
  size_t p = 0;
  while (p < shape.size()) {
    while (p < shape.size() && (shape[p] == ' ' || shape[p] == ',')) ++p;
    if (p >= shape.size()) break;
    size_t used = 0;
    int64_t d = -1;
    try {
      d = std::stoll(shape.substr(p), &used);
    } catch (const std::exception&) {
      bad(name, "shape (" + shape + ")");
    }
    if (d < 0 || used == 0) bad(name, "shape (" + shape + ")");
    a.shape.push_back(d);
    p += used;
  }
  const uint64_t want = static_cast<uint64_t>(a.numel()) * npy_element_size(a.type);
  const uint64_t have = file_size - a.data_offset;
  if (have != want)
    bad(name, "the data is " + std::to_string(have) + " bytes, its shape and dtype say " + std::to_string(want) +
                  (have < want ? " (truncated?)" : ""));
  return a;
}

NpyArray parse_npy(const std::string& bytes, const std::string& name) {
  const NpyHeader h = parse_npy_header(bytes, bytes.size(), name);
  NpyArray a;
  a.type = h.type;
  a.shape = h.shape;
  a.data = bytes.substr(h.data_offset);
  return a;
}

namespace {
size_t row_size(NpyType type, const std::vector<int64_t>& shape) {
  size_t n = npy_element_size(type);
  for (size_t i = 1; i < shape.size(); ++i) n *= static_cast<size_t>(shape[i]);
  return n;
}
}  // namespace

NpyWriter::NpyWriter(const std::string& path, NpyType type, const std::vector<int64_t>& shape)
    : path_(path), row_bytes_(row_size(type, shape)), rows_(shape.empty() ? 1 : shape[0]) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw RuntimeError("cannot create '" + path + "': " + std::strerror(errno));
  const std::string header = npy_header(type, shape);
  write_all(header.data(), header.size());
}

NpyWriter::~NpyWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void NpyWriter::write_all(const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw RuntimeError("cannot write '" + path_ + "': " + std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void NpyWriter::append(const void* data, size_t bytes) {
  if (fd_ < 0) throw RuntimeError(path_ + ": written after it was finished");
  if (row_bytes_ > 0 ? bytes % row_bytes_ != 0 : bytes != 0)
    throw RuntimeError(path_ + ": " + std::to_string(bytes) + " bytes are not whole rows of " + std::to_string(row_bytes_));
  const int64_t rows = row_bytes_ > 0 ? static_cast<int64_t>(bytes / row_bytes_) : 0;
  if (written_ + rows > rows_)
    throw RuntimeError(path_ + ": more than the " + std::to_string(rows_) + " rows its header announces");
  write_all(data, bytes);
  written_ += rows;
}

void NpyWriter::finish() {
  if (fd_ < 0) return;
  if (row_bytes_ > 0 && written_ != rows_)
    throw RuntimeError(path_ + ": " + std::to_string(written_) + " rows written, its header announces " + std::to_string(rows_));
  const int fd = fd_;
  fd_ = -1;
  const bool synced = ::fsync(fd) == 0;
  if (::close(fd) != 0 || !synced) throw RuntimeError("cannot flush '" + path_ + "' to disk");
}

NpyRows::NpyRows(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw RuntimeError("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  std::string prefix(10 + 65535, '\0');  // the longest header version 1.0 allows
  ssize_t n = -1;
  if (::fstat(fd, &st) == 0) n = ::pread(fd, prefix.data(), prefix.size(), 0);
  ::close(fd);
  if (n < 0) throw RuntimeError("cannot read '" + path + "': " + std::strerror(errno));
  prefix.resize(static_cast<size_t>(n));
  header_ = parse_npy_header(prefix, static_cast<uint64_t>(st.st_size), path);
  row_bytes_ = row_size(header_.type, header_.shape);
}

void NpyRows::read(int64_t first, int64_t count, void* out) const {
  const int64_t rows = header_.shape.empty() ? 1 : header_.shape[0];
  if (first < 0 || count < 0 || first + count > rows)
    throw RuntimeError(path_ + ": rows " + std::to_string(first) + ".." + std::to_string(first + count) + " of " +
                       std::to_string(rows));
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw RuntimeError("cannot open '" + path_ + "': " + std::strerror(errno));
  char* p = static_cast<char*>(out);
  size_t left = static_cast<size_t>(count) * row_bytes_;
  off_t at = static_cast<off_t>(header_.data_offset + static_cast<size_t>(first) * row_bytes_);
  while (left > 0) {
    const ssize_t n = ::pread(fd, p, left, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw RuntimeError("cannot read '" + path_ + "'" + (n == 0 ? std::string(": shorter than its header says") : ": " + std::string(std::strerror(errno))));
    }
    p += n;
    left -= static_cast<size_t>(n);
    at += n;
  }
  ::close(fd);
}

}  // namespace prefrl
