// Figures without a value are said to be undefined, and why, in words: correlations over clips
// that all tie (a solved cartpole), too few clips or non-finite returns; summary.json's
// "undefined" object carries the reason to `runs show`, `runs compare` and the report.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefrl/app/evaluate.h"
#include "prefrl/tracking/runs.h"

namespace prefrl {
namespace {

TEST(UndefinedFigures, CorrelationsSayWhyTheyHaveNoValue) {
  const std::vector<double> varied = {1, 2, 4}, tied = {500, 500, 500};
  EXPECT_EQ(undefined_correlation(varied, {3, 1, 2}), "");
  EXPECT_EQ(undefined_correlation(varied, tied), "every clip's true return is the same");
  EXPECT_EQ(undefined_correlation(tied, varied), "every clip's predicted return is the same");
  EXPECT_EQ(undefined_correlation({1}, {2}), "fewer than 2 clips");
  EXPECT_EQ(undefined_correlation({1, std::nan("")}, {2, 3}), "a return is not finite");
  EXPECT_TRUE(std::isnan(pearson(varied, tied)));  // what the words explain
  EXPECT_EQ(correlation_text(0.5712, ""), "+0.57");
  EXPECT_EQ(correlation_text(-0.5, "", 3), "-0.500");
  EXPECT_EQ(correlation_text(std::nan(""), "every clip's true return is the same"),
            "undefined (every clip's true return is the same)");
}

TEST(UndefinedFigures, SummariesCarryTheReason) {
  const nlohmann::json s = {{"final_true_corr", nullptr},
                            {"heldout_true_corr", 0.8125},
                            {"undefined", {{"final_true_corr", "every clip's true return is the same"}}}};
  EXPECT_EQ(summary_figure(s, "final_true_corr", 3), "undefined (every clip's true return is the same)");
  EXPECT_EQ(summary_figure(s, "final_true_corr", 3, false), "undefined");
  EXPECT_EQ(summary_figure(s, "heldout_true_corr", 3), "0.812");
  EXPECT_EQ(summary_figure(s, "val_accuracy", 3), "—");  // missing: an older run's summary
  EXPECT_EQ(summary_figure(nlohmann::json{{"final_true_corr", nullptr}}, "final_true_corr", 3), "—");
}

}  // namespace
}  // namespace prefrl
