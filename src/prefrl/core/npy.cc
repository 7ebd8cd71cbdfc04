#include "prefrl/core/npy.h"

#include <cstring>
#include <stdexcept>

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

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

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

NpyArray parse_npy(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) bad(name, "no .npy magic string");
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major != 1) bad(name, "format version " + std::to_string(major) + ".x; prefrl writes and reads 1.0");
  const size_t hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  if (bytes.size() < 10 + hlen) bad(name, "the header runs past the end of the file");
  const std::string header = bytes.substr(10, hlen);
  NpyArray a;
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
  const size_t want = static_cast<size_t>(a.numel()) * npy_element_size(a.type);
  const size_t have = bytes.size() - 10 - hlen;
  if (have != want)
    bad(name, "the data is " + std::to_string(have) + " bytes, its shape and dtype say " + std::to_string(want) +
                  (have < want ? " (truncated?)" : ""));
  a.data = bytes.substr(10 + hlen);
  return a;
}

}  // namespace prefrl
