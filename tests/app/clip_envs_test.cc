// clip_envs: which envs of a rollout the new clips come from.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "prefrl/app/queries.h"
#include "prefrl/core/rng.h"

namespace prefrl {
namespace {

TEST(ClipEnvs, AtLeastOneClipPerEnvSpreadsThemEvenlyWithoutDraws) {
  Rng rng(1), untouched(1);
  EXPECT_EQ(clip_envs(3, 7, rng), (std::vector<int>{0, 0, 1, 1, 2, 2}));  // 7 / 3 = 2 each
  EXPECT_EQ(clip_envs(4, 4, rng), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(rng.next_u64(), untouched.next_u64());
}

TEST(ClipEnvs, FewerClipsThanEnvsComeFromDistinctEnvsDrawnUniformly) {
  Rng rng(2);
  std::vector<int> hits(16, 0);
  for (int t = 0; t < 4000; ++t) {
    const std::vector<int> e = clip_envs(16, 2, rng);
    ASSERT_EQ(e.size(), 2u);
    ASSERT_LT(e[0], e[1]);  // distinct, in env order
    ASSERT_GE(e[0], 0);
    ASSERT_LT(e[1], 16);
    for (int i : e) ++hits[i];
  }
  // 8000 clips over 16 envs: 500 each expected, sd about 21.
  for (int i = 0; i < 16; ++i) {
    EXPECT_GT(hits[i], 400) << "env " << i;
    EXPECT_LT(hits[i], 600) << "env " << i;
  }
  Rng a(3), b(3);
  EXPECT_EQ(clip_envs(16, 5, a), clip_envs(16, 5, b));
  const std::vector<int> most = clip_envs(16, 15, a);
  EXPECT_EQ(std::set<int>(most.begin(), most.end()).size(), 15u);
}

}  // namespace
}  // namespace prefrl
