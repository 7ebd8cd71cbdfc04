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

// A .npy file's header: the array's type and shape, and where its data begins.
struct NpyHeader {
  NpyType type = NpyType::kFloat32;
  std::vector<int64_t> shape;
  size_t data_offset = 0;
  int64_t numel() const;
};
// Parses the header at the start of `prefix` (the file's first bytes, at least its header) and
// checks the file's size (`file_size`) against the shape and dtype (RuntimeError naming `name`).
NpyHeader parse_npy_header(const std::string& prefix, uint64_t file_size, const std::string& name);

// Writes a .npy file piece by piece: the header, then the array's rows (its first dimension) in
// order; finish() checks that every row came, then flushes and syncs the file. RuntimeError
// naming the file on any failure; a writer destroyed unfinished leaves an incomplete file.
class NpyWriter {
 public:
  NpyWriter(const std::string& path, NpyType type, const std::vector<int64_t>& shape);
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;
  size_t row_bytes() const { return row_bytes_; }
  // `bytes` must be a whole number of rows.
  void append(const void* data, size_t bytes);
  void finish();

 private:
  void write_all(const void* data, size_t bytes);
  std::string path_;
  int fd_ = -1;
  size_t row_bytes_ = 0;
  int64_t rows_ = 0, written_ = 0;
};

// Rows of a .npy file read where they lie (pread), without loading the file: any number of
// readers may share one, which opens the file only while it reads.
class NpyRows {
 public:
  explicit NpyRows(const std::string& path);  // RuntimeError: missing, or not a .npy file prefrl reads
  const NpyHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  size_t row_bytes() const { return row_bytes_; }
  void read(int64_t first, int64_t count, void* out) const;

 private:
  std::string path_;
  NpyHeader header_;
  size_t row_bytes_ = 0;
};

}  // namespace prefrl
