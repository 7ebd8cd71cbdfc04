// TensorBoard event files, checked by a reader written separately from the writer: its own
// bitwise CRC-32C (no table), its own protobuf decoding (generic wire-format walk), every
// record's CRCs, and the step, tag and value of every scalar.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "prefrl/tracking/metrics.h"
#include "prefrl/tracking/tensorboard.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;

// Bit-at-a-time CRC-32C, reflected, polynomial 0x82F63B78.
uint32_t reference_crc32c(const std::string& s) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char byte : s) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}
uint32_t reference_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

// A decoded protobuf field: number, wire type, and its payload.
struct Field {
  int number = 0, wire = 0;
  uint64_t varint = 0;
  std::string bytes;  // wire 2 payload, or the raw 4/8 bytes of wire 5/1
};

std::vector<Field> decode(const std::string& msg) {
  std::vector<Field> out;
  size_t i = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      if (i >= msg.size() || shift > 63) throw std::runtime_error("bad varint");
      const unsigned char b = msg[i++];
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < msg.size()) {
    const uint64_t key = varint();
    Field f;
    f.number = static_cast<int>(key >> 3);
    f.wire = static_cast<int>(key & 7);
    if (f.wire == 0) f.varint = varint();
    else if (f.wire == 1 || f.wire == 5) {
      const size_t n = f.wire == 1 ? 8 : 4;
      if (i + n > msg.size()) throw std::runtime_error("truncated fixed field");
      f.bytes = msg.substr(i, n);
      i += n;
    } else if (f.wire == 2) {
      const uint64_t n = varint();
      if (i + n > msg.size()) throw std::runtime_error("truncated bytes field");
      f.bytes = msg.substr(i, n);
      i += n;
    } else {
      throw std::runtime_error("unexpected wire type " + std::to_string(f.wire));
    }
    out.push_back(f);
  }
  return out;
}

struct Scalar { std::string tag; float value; int64_t step; double wall_time; };

// Reads a whole event file; fails the test on any CRC or framing error. Returns the scalars
// and sets *version to the file_version string of the first record.
std::vector<Scalar> read_events(const std::string& path, std::string* version) {
  std::ifstream f(path, std::ios::binary);
  const std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<Scalar> out;
  size_t at = 0;
  int record = 0;
  while (at < s.size()) {
    EXPECT_LE(at + 12, s.size()) << "truncated header, record " << record;
    if (at + 12 > s.size()) break;
    const uint64_t n = le(s, at, 8);
    EXPECT_EQ(le(s, at + 8, 4), reference_mask(reference_crc32c(s.substr(at, 8)))) << "length CRC, record " << record;
    EXPECT_LE(at + 12 + n + 4, s.size()) << "truncated data, record " << record;
    if (at + 12 + n + 4 > s.size()) break;
    const std::string data = s.substr(at + 12, n);
    EXPECT_EQ(le(s, at + 12 + n, 4), reference_mask(reference_crc32c(data))) << "data CRC, record " << record;
    at += 12 + n + 4;
    double wall = 0;
    int64_t step = -1;
    for (const Field& e : decode(data)) {
      if (e.number == 1 && e.wire == 1) std::memcpy(&wall, e.bytes.data(), 8);
      else if (e.number == 2 && e.wire == 0) step = static_cast<int64_t>(e.varint);
      else if (e.number == 3 && e.wire == 2) *version = e.bytes;
      else if (e.number == 5 && e.wire == 2) {
        for (const Field& v : decode(e.bytes)) {
          EXPECT_EQ(v.number, 1);
          Scalar sc{"", 0.0f, step, wall};
          for (const Field& x : decode(v.bytes)) {
            if (x.number == 1 && x.wire == 2) sc.tag = x.bytes;
            if (x.number == 2 && x.wire == 5) std::memcpy(&sc.value, x.bytes.data(), 4);
          }
          out.push_back(sc);
        }
      } else {
        ADD_FAILURE() << "unexpected Event field " << e.number << " wire " << e.wire;
      }
    }
    ++record;
  }
  return out;
}

TEST(TensorBoard, Crc32cKnownValues) {
  // CRC-32C check value (RFC 3720 / iSCSI): "123456789" => 0xE3069283.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(reference_crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(masked_crc32c("abc", 3), reference_mask(reference_crc32c("abc")));
}

// crc32c_extend: a file's CRC-32C computed chunk by chunk equals the whole's, at every split.
TEST(TensorBoard, Crc32cExtendedChunkByChunkEqualsTheWhole) {
  const std::string s = "123456789 a longer text, with more than one chunk's worth of bytes";
  EXPECT_EQ(crc32c_extend(0, "123456789", 9), 0xE3069283u);
  for (size_t cut = 0; cut <= s.size(); ++cut)
    EXPECT_EQ(crc32c_extend(crc32c_extend(0, s.data(), cut), s.data() + cut, s.size() - cut), reference_crc32c(s)) << cut;
}

TEST(TensorBoard, MetricWriterWritesEveryScalarReadableByAnIndependentReader) {
  const fs::path dir = fs::temp_directory_path() / ("prefrl_tb_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  struct Row { const char* name; double value; int64_t step; };
  const std::vector<Row> rows = {{"charts/episodic_return", 123.5, 2048}, {"losses/value_loss", 1e-9, 2048},
                                 {"charts/episodic_return", -7.25, 4096}, {"reward/true_corr", std::nan(""), 4096},
                                 {"charts/SPS", 1e30, 1LL << 40}, {"x/negative_step_is_never_used", 0.0, 0}};
  {
    MetricWriter w((dir / "metrics.jsonl").string(), dir.string());
    for (const Row& r : rows) w.log(r.name, r.value, r.step);
    w.flush();
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  std::string version;
  const std::vector<Scalar> got = read_events(files[0].string(), &version);
  EXPECT_EQ(version, "brain.Event:2");
  ASSERT_EQ(got.size(), rows.size());
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(got[i].tag, rows[i].name);
    EXPECT_EQ(got[i].step, rows[i].step);
    if (std::isnan(rows[i].value)) EXPECT_TRUE(std::isnan(got[i].value));
    else EXPECT_EQ(got[i].value, static_cast<float>(rows[i].value)) << rows[i].name;
    EXPECT_NEAR(got[i].wall_time, now, 60.0);
  }
  // The same metrics in metrics.jsonl.
  std::ifstream jl(dir / "metrics.jsonl");
  std::string line;
  size_t n = 0;
  while (std::getline(jl, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["name"], rows[n].name);
    EXPECT_EQ(j["step"], rows[n].step);
    ++n;
  }
  EXPECT_EQ(n, rows.size());
  fs::remove_all(dir);
}

TEST(TensorBoard, ACorruptedByteIsDetected) {
  const fs::path dir = fs::temp_directory_path() / ("prefrl_tb_bad_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string path;
  {
    TensorBoardWriter w(dir.string());
    w.add_scalar("a", 1.0, 1, 0.0);
    path = w.path();
  }
  std::string bytes;
  {
    std::ifstream f(path, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  // The reader accepts the file as written...
  std::string version;
  EXPECT_EQ(read_events(path, &version).size(), 1u);
  // ...and its own CRC check flags one flipped bit in the last record's data.
  bytes[bytes.size() - 6] ^= 0x01;
  size_t at = 0, bad = 0;
  while (at + 12 <= bytes.size()) {
    const uint64_t len = le(bytes, at, 8);
    const std::string data = bytes.substr(at + 12, len);
    if (le(bytes, at + 12 + len, 4) != reference_mask(reference_crc32c(data))) ++bad;
    at += 12 + len + 4;
  }
  EXPECT_EQ(bad, 1u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl
