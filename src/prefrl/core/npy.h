// NumPy's .npy format, version 1.0 (numpy.lib.format): a magic string, a header dict
// {'descr': '<f4', 'fortran_order': False, 'shape': (n, d), } padded with spaces to a multiple
// of 64 bytes and ended by '\n', then the array's bytes in C order, little-endian. numpy.load
// reads what npy_bytes writes; parse_npy reads exactly that subset back (C order; the dtypes
// below), and names the file and what is wrong with anything else.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace prefrl {

enum class NpyType : uint8_t { kFloat32, kFloat64, kInt64, kUInt8 };

struct NpyArray {
  NpyType type = NpyType::kFloat32;
  std::vector<int64_t> shape;  // empty: a scalar
  std::string data;            // numel * element size bytes, C order, little-endian
  int64_t numel() const;
  // The elements as T (which must be the array's type: else RuntimeError naming `what`).
  template <class T>
  std::vector<T> values(const std::string& what) const;
};

size_t npy_element_size(NpyType t);
const char* npy_descr(NpyType t);  // '<f4', '<f8', '<i8', '|u1'

// The header of an array's .npy file (the magic string, version and header dict): what precedes
// its numel * element size bytes, for writing a large array piece by piece.
std::string npy_header(NpyType type, const std::vector<int64_t>& shape);
// The .npy file of an array.
std::string npy_bytes(NpyType type, const std::vector<int64_t>& shape, const void* data);
// Parses a .npy file's bytes; `name` (the file) is named in every error (RuntimeError).
NpyArray parse_npy(const std::string& bytes, const std::string& name);

}  // namespace prefrl
