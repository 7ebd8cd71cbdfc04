// Observations of uint8 spaces: the byte <=> float conversions are exact inverses, segments
// pack and unpack losslessly and compare equal either way, clips cut from a store of a uint8
// space keep bytes, and the preference store keeps them as bytes (a quarter of the floats'
// size) beside float segments of older runs.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/core/segment.h"
#include "prefrl/core/transitions.h"
#include "prefrl/prefs/pref_store.h"
#include "prefrl/prefs/segments.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;

TEST(ObsBytes, ConversionsAreExactInverses) {
  for (int b = 0; b < 256; ++b) {
    uint8_t back = 0;
    ASSERT_TRUE(obs_to_byte(byte_to_obs(static_cast<uint8_t>(b)), &back)) << b;
    EXPECT_EQ(back, b);
  }
  EXPECT_EQ(byte_to_obs(0), 0.0f);
  EXPECT_EQ(byte_to_obs(255), 1.0f);
  uint8_t b = 7;
  for (float x : {0.3f, -0.0001f, 1.0001f, std::nanf("")}) EXPECT_FALSE(obs_to_byte(x, &b)) << x;
  EXPECT_TRUE(obs_to_byte(-0.0f, &b));  // -0 == 0
}

Segment byte_segment(int L, int64_t D, uint64_t seed) {
  Rng rng(seed);
  Segment s;
  s.length = L;
  s.obs_size = D;
  s.act_size = 1;
  for (int64_t k = 0; k < L * D; ++k) s.obs.push_back(byte_to_obs(static_cast<uint8_t>(rng.integer(256))));
  for (int t = 0; t < L; ++t) {
    s.actions.push_back(static_cast<float>(rng.integer(4)));
    s.true_rewards.push_back(static_cast<float>(rng.normal()));
    s.absorbing.push_back(0);
  }
  return s;
}

TEST(ObsBytes, SegmentsPackLosslesslyAndCompareEitherWay) {
  Segment s = byte_segment(5, 12, 1);
  const Segment as_floats = s;
  ASSERT_TRUE(s.pack_obs());
  EXPECT_TRUE(s.obs.empty());
  EXPECT_EQ(s.obs_bytes.size(), 60u);
  EXPECT_EQ(s.obs_count(), 60u);
  EXPECT_TRUE(s.same_obs(as_floats));
  EXPECT_TRUE(as_floats.same_obs(s));
  std::vector<float> scratch;
  for (int t = 0; t < 5; ++t) {
    const float* row = s.obs_row(t, &scratch);
    for (int j = 0; j < 12; ++j) ASSERT_EQ(row[j], as_floats.obs[t * 12 + j]) << t << " " << j;
  }
  Segment other = as_floats;
  other.obs[7] = byte_to_obs(3) == other.obs[7] ? byte_to_obs(4) : byte_to_obs(3);
  EXPECT_FALSE(s.same_obs(other));
  s.unpack_obs();
  EXPECT_EQ(s.obs, as_floats.obs);
  EXPECT_TRUE(s.obs_bytes.empty());
  // A value that is not a byte / 255 leaves the segment as it was.
  Segment odd = as_floats;
  odd.obs[3] = 0.3f;
  EXPECT_FALSE(odd.pack_obs());
  EXPECT_EQ(odd.obs.size(), 60u);
}

TEST(ObsBytes, ClipsCutFromAStoreOfBytesKeepBytes) {
  const int N = 2, T = 6;
  const int64_t D = 4;
  TransitionStore st(N, T, D, 1, 0, 2);
  st.set_obs_bytes(true);
  st.begin_rollout(0);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < N; ++i) {
      for (int j = 0; j < D; ++j) st.obs(t)[i * D + j] = byte_to_obs(static_cast<uint8_t>(t * 16 + i * 4 + j));
      st.actions(t)[i] = 1.0f;
      st.true_rewards(t)[i] = 0.5f;
    }
  Rng rng(3);
  const std::vector<Segment> segs = cut_segments(st.trajectory(1), 3, 2, rng);
  ASSERT_EQ(segs.size(), 2u);
  for (const Segment& s : segs) {
    ASSERT_TRUE(s.obs_in_bytes());
    const int start = static_cast<int>(s.env_step / N);
    for (int t = 0; t < 3; ++t)
      for (int j = 0; j < D; ++j) EXPECT_EQ(s.obs_bytes[t * D + j], (start + t) * 16 + 4 + j);
  }
  // A value that is not a byte / 255 in a store of bytes is an error, not a silent rounding.
  st.obs(2)[1 * D] = 0.3f;
  Rng rng2(3);
  EXPECT_THROW(cut_segments(st.trajectory(1), 6, 1, rng2), RuntimeError);
}

TEST(ObsBytes, ThePreferenceStoreKeepsBytesBesideFloats) {
  const fs::path dir = fs::temp_directory_path() / ("prefrl_obs_bytes_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "prefs.db").string();
  {
    std::unique_ptr<PrefStore> db = open_pref_store(sqlite_store_url(path));
    Segment packed = byte_segment(4, 10, 2), floats = byte_segment(4, 10, 3);
    ASSERT_TRUE(packed.pack_obs());
    const Segment want_packed = packed, want_floats = floats;
    const int64_t a = db->add_segment(packed), b = db->add_segment(floats);
    const std::optional<Segment> ra = db->get_segment(a), rb = db->get_segment(b);
    ASSERT_TRUE(ra && rb);
    EXPECT_TRUE(ra->obs_in_bytes());
    EXPECT_EQ(ra->obs_bytes, want_packed.obs_bytes);
    EXPECT_FALSE(rb->obs_in_bytes());
    EXPECT_EQ(rb->obs, want_floats.obs);
    EXPECT_EQ(ra->actions, want_packed.actions);
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "SELECT length(obs) FROM segments ORDER BY id", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 40);  // 4 x 10 bytes
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 160);  // 4 x 10 floats
  sqlite3_finalize(q);
  // A blob of neither size is corruption, named.
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE segments SET obs = zeroblob(41) WHERE id = 1", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  std::unique_ptr<PrefStore> db = open_pref_store(sqlite_store_url(path));
  try {
    db->get_segment(1);
    ADD_FAILURE() << "a corrupt obs blob was read";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("segment 1 is corrupt"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace prefrl
