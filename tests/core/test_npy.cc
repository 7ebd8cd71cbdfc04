// core/npy.h: .npy files NumPy reads (checked with Debian's python3-numpy), read back exactly;
// damaged or unsupported files named with what is wrong.
#include "prefrl/core/npy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

namespace prefrl {
namespace {

std::string numpy_says(const std::string& bytes) {
  const std::string path = "/tmp/prefrl_npy_test_" + std::to_string(::getpid()) + ".npy";
  std::ofstream(path, std::ios::binary) << bytes;
  FILE* p = ::popen(("/usr/bin/python3 -c \"import numpy as np; a = np.load('" + path +
                     "'); print(a.dtype, a.shape, repr(a.ravel().tolist()))\" 2>&1").c_str(), "r");
  std::string out;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  std::remove(path.c_str());
  return out;
}

TEST(Npy, NumpyReadsWhatIsWrittenAndItReadsBack) {
  const std::vector<float> f = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.5f};
  const std::string a = npy_bytes(NpyType::kFloat32, {2, 3}, f.data());
  EXPECT_EQ(a.size() % 64, f.size() * 4 % 64) << "header padded to a multiple of 64";
  EXPECT_EQ(numpy_says(a), "float32 (2, 3) [1.5, -2.0, 3.25, 0.0, 7.0, -0.5]\n");
  const NpyArray back = parse_npy(a, "a.npy");
  EXPECT_EQ(back.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(back.values<float>("a.npy"), f);
  EXPECT_THROW(back.values<int64_t>("a.npy"), std::exception);

  const std::vector<int64_t> i = {4, -9, 1LL << 40};
  const std::string b = npy_bytes(NpyType::kInt64, {3}, i.data());
  EXPECT_EQ(numpy_says(b), "int64 (3,) [4, -9, 1099511627776]\n");
  EXPECT_EQ(parse_npy(b, "b.npy").values<int64_t>("b.npy"), i);
  const std::vector<uint8_t> u = {0, 255, 17, 3};
  const std::string c = npy_bytes(NpyType::kUInt8, {2, 1, 2}, u.data());
  EXPECT_EQ(numpy_says(c), "uint8 (2, 1, 2) [0, 255, 17, 3]\n");
  EXPECT_EQ(parse_npy(c, "c.npy").values<uint8_t>("c.npy"), u);
  // A header, then the data written piece by piece: the same file.
  EXPECT_EQ(npy_header(NpyType::kUInt8, {2, 1, 2}) + std::string(reinterpret_cast<const char*>(u.data()), u.size()), c);
  const double d = 2.5;
  const std::string s = npy_bytes(NpyType::kFloat64, {}, &d);
  EXPECT_EQ(numpy_says(s), "float64 () [2.5]\n");
  EXPECT_EQ(parse_npy(s, "s.npy").values<double>("s.npy"), std::vector<double>{2.5});
  const std::string e = npy_bytes(NpyType::kFloat32, {0, 4}, nullptr);
  EXPECT_EQ(parse_npy(e, "e.npy").numel(), 0);
}

TEST(Npy, DamagedOrUnsupportedFilesAreNamed) {
  const std::vector<float> f = {1, 2, 3, 4};
  const std::string a = npy_bytes(NpyType::kFloat32, {4}, f.data());
  auto message = [](const std::string& bytes) {
    try {
      parse_npy(bytes, "clips/obs.npy");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(a.substr(0, a.size() - 3)).find("clips/obs.npy: not a .npy file prefrl reads (the data is 13 bytes"),
            std::string::npos);
  EXPECT_NE(message(a + "x").find("17 bytes"), std::string::npos);
  EXPECT_NE(message("hello").find("no .npy magic"), std::string::npos);
  std::string v2 = a;
  v2[6] = 2;
  EXPECT_NE(message(v2).find("format version 2"), std::string::npos);
  std::string big_endian = a;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  EXPECT_NE(message(big_endian).find("dtype '>f4'"), std::string::npos);
  std::string fortran = a;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_NE(message(fortran).find("Fortran order"), std::string::npos);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// NpyWriter appends rows to a file and gives exactly npy_bytes' file; NpyRows reads any rows
// back where they lie; a file written short, or read past its end, is named.
TEST(Npy, RowsWrittenPieceByPieceAndReadWhereTheyLie) {
  const std::string path = "/tmp/prefrl_npy_rows_" + std::to_string(::getpid()) + ".npy";
  std::vector<float> all;
  for (int k = 0; k < 5 * 2 * 3; ++k) all.push_back(0.5f * static_cast<float>(k) - 3.0f);
  {
    NpyWriter w(path, NpyType::kFloat32, {5, 2, 3});
    EXPECT_EQ(w.row_bytes(), 2u * 3u * 4u);
    w.append(all.data(), 2 * w.row_bytes());      // rows 0-1
    w.append(all.data() + 12, 3 * w.row_bytes());  // rows 2-4
    EXPECT_THROW(w.append(all.data(), w.row_bytes()), std::exception) << "a sixth row";
    EXPECT_THROW(w.append(all.data(), 5), std::exception) << "not a whole row";
    w.finish();
  }
  EXPECT_EQ(slurp(path), npy_bytes(NpyType::kFloat32, {5, 2, 3}, all.data()));
  const NpyRows rows(path);
  EXPECT_EQ(rows.header().shape, (std::vector<int64_t>{5, 2, 3}));
  EXPECT_EQ(rows.header().type, NpyType::kFloat32);
  std::vector<float> got(12);
  rows.read(3, 2, got.data());
  EXPECT_EQ(got, std::vector<float>(all.begin() + 18, all.end()));
  rows.read(0, 1, got.data());
  EXPECT_EQ(std::vector<float>(got.begin(), got.begin() + 6), std::vector<float>(all.begin(), all.begin() + 6));
  EXPECT_THROW(rows.read(4, 2, got.data()), std::exception) << "past the last row";
  {
    NpyWriter w(path, NpyType::kUInt8, {3, 4});
    const std::vector<uint8_t> one = {1, 2, 3, 4};
    w.append(one.data(), one.size());
    try {
      w.finish();
      ADD_FAILURE() << "finished with 1 of 3 rows";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("1 rows written, its header announces 3"), std::string::npos) << e.what();
    }
  }
  try {
    NpyRows short_file(path);
    ADD_FAILURE() << "a file holding 1 of its 3 rows was read";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": not a .npy file prefrl reads (the data is 4 bytes"), std::string::npos)
        << e.what();
  }
  std::remove(path.c_str());
  EXPECT_THROW(NpyRows missing(path), std::exception);
}

}  // namespace
}  // namespace prefrl
