// One intra-op thread for every reward test, as the application runs LibTorch.
#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {
class SingleThreadTorch : public ::testing::Environment {
 public:
  void SetUp() override { torch::set_num_threads(1); }
};
[[maybe_unused]] ::testing::Environment* const kEnv = ::testing::AddGlobalTestEnvironment(new SingleThreadTorch);
}  // namespace
