#include <gtest/gtest.h>

#include <memory>

#include "prefrl/core/config.h"
#include "prefrl/core/rng.h"
#include "prefrl/core/segment.h"

namespace prefrl {
namespace {

struct Inner {
  double lr = 0.1;
  std::vector<int> hidden = {4, 4};
  template <class V> void visit(V& v) {
    v.num("lr", lr, "learning rate", 0.0, 1.0);
    v.ints("hidden", hidden, "widths", 1, 100);
  }
};
struct Outer {
  int n = 3;
  bool flag = false;
  std::string mode = "a";
  Inner inner;
  template <class V> void visit(V& v) {
    v.num("n", n, "count", 1, 10);
    v.flag("flag", flag, "a flag");
    v.text("mode", mode, "mode", {"a", "b"});
    v.group("inner", inner);
  }
};

TEST(Config, SetsDottedKeys) {
  Outer c;
  config_assign(c, "n=7");
  config_assign(c, "flag=true");
  config_assign(c, "mode=b");
  config_assign(c, "inner.lr=0.5");
  config_assign(c, "inner.hidden=8,16");
  EXPECT_EQ(c.n, 7);
  EXPECT_TRUE(c.flag);
  EXPECT_EQ(c.mode, "b");
  EXPECT_DOUBLE_EQ(c.inner.lr, 0.5);
  EXPECT_EQ(c.inner.hidden, (std::vector<int>{8, 16}));
}

TEST(Config, ErrorsNameTheKeyAndWhatIsAllowed) {
  Outer c;
  auto msg = [&](const std::string& a) {
    try { config_assign(c, a); } catch (const UsageError& e) { return std::string(e.what()); }
    return std::string("no error");
  };
  EXPECT_NE(msg("nope=1").find("unknown config key 'nope'"), std::string::npos);
  // The nearest keys, not the whole list; else the keys of the group, or the groups.
  EXPECT_NE(msg("inner.lrr=1").find("did you mean inner.lr?"), std::string::npos) << msg("inner.lrr=1");
  EXPECT_EQ(msg("inner.lrr=1").find("inner.hidden"), std::string::npos) << msg("inner.lrr=1");
  EXPECT_NE(msg("lr=1").find("did you mean inner.lr?"), std::string::npos) << msg("lr=1");
  EXPECT_NE(msg("inner.hiddne=1").find("did you mean inner.hidden?"), std::string::npos) << msg("inner.hiddne=1");
  EXPECT_NE(msg("inner.zzzzzz=1").find("the keys of inner are: lr, hidden"), std::string::npos)
      << msg("inner.zzzzzz=1");
  EXPECT_NE(msg("qqqqqqqq=1").find("the config groups are: inner"), std::string::npos) << msg("qqqqqqqq=1");
  EXPECT_NE(msg("qqqqqqqq=1").find("prefrl config"), std::string::npos);
  EXPECT_NE(msg("n=11").find("out of range [1, 10]"), std::string::npos);
  EXPECT_NE(msg("n=2.5").find("expected an integer"), std::string::npos);
  EXPECT_NE(msg("inner.lr=abc").find("expected a number, got 'abc'"), std::string::npos);
  EXPECT_NE(msg("flag=maybe").find("expected true or false"), std::string::npos);
  EXPECT_NE(msg("mode=c").find("not one of: a, b"), std::string::npos);
  EXPECT_NE(msg("novalue").find("key=value"), std::string::npos);
  EXPECT_NE(msg("inner.lr=nan").find("NaN"), std::string::npos);
  // Nothing changed by the failed assignments.
  Outer fresh;
  EXPECT_EQ(config_to_json(c), config_to_json(fresh));
}

TEST(Config, JsonRoundTripAndUnknownKeys) {
  Outer c;
  c.n = 9; c.inner.lr = 0.25; c.mode = "b";
  nlohmann::json j = config_to_json(c);
  Outer d;
  config_from_json(d, j);
  EXPECT_EQ(config_to_json(d), j);
  nlohmann::json bad = {{"inner", {{"lr", 0.1}, {"typo", 1}}}};
  EXPECT_THROW(config_from_json(d, bad), UsageError);
  nlohmann::json wrong_type = {{"n", "three"}};
  EXPECT_THROW(config_from_json(d, wrong_type), UsageError);
}

// Each class of bad config-file input: a UsageError naming the key, nothing changed.
TEST(Config, BadFileInputOfEveryClassIsAUsageErrorAndChangesNothing) {
  auto msg = [](const std::string& text, bool json) {
    Outer c;
    try {
      config_from_json(c, parse_config_text(text, "f.toml", json));
    } catch (const UsageError& e) {
      EXPECT_EQ(config_to_json(c), config_to_json(*std::make_unique<Outer>())) << text;
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("n = \"three\"", false).find("config key 'n': expected a number, got \"three\""), std::string::npos);
  EXPECT_NE(msg("flag = 1", false).find("config key 'flag': expected true or false"), std::string::npos);
  EXPECT_NE(msg("mode = 3", false).find("config key 'mode': expected a string"), std::string::npos);
  EXPECT_NE(msg("[inner]\nhidden = 4", false).find("'inner.hidden': expected an array of integers"), std::string::npos);
  EXPECT_NE(msg("inner = 4", false).find("'inner': expected a table of keys"), std::string::npos);
  EXPECT_NE(msg("[inner]\ntypo = 1", false).find("unknown config key 'inner.typo'"), std::string::npos);
  EXPECT_NE(msg("n = 11", false).find("out of range [1, 10]"), std::string::npos);
  EXPECT_NE(msg("n = 2.5", false).find("expected an integer, got 2.5"), std::string::npos);
  EXPECT_NE(msg("[inner]\nlr = nan", false).find("NaN is not allowed"), std::string::npos);
  EXPECT_NE(msg("[inner]\nlr = inf", false).find("out of range"), std::string::npos);
  EXPECT_NE(msg("mode = \"c\"", false).find("not one of: a, b"), std::string::npos);
  EXPECT_NE(msg("d = 1979-05-27", false).find("dates are not config values"), std::string::npos);
  EXPECT_NE(msg("n = ", false).find("is not valid TOML"), std::string::npos);
  EXPECT_NE(msg("{\"n\": 3", true).find("is not valid JSON"), std::string::npos);
  EXPECT_NE(msg("[1, 2]", true).find("config must be a table of keys"), std::string::npos);
}

// Fields without bounds.
struct Wide {
  int i = 0;
  int64_t l = 0;
  std::vector<int> v;
  template <class V>
  void visit(V& vis) {
    vis.num("i", i, "unbounded int");
    vis.num("l", l, "unbounded int64");
    vis.ints("v", v, "unbounded ints");
  }
};

// Integers beyond the field's type are refused, never cast (the cast would be undefined).
TEST(Config, IntegersOutsideTheirTypeAreRefused) {
  Wide w;
  EXPECT_THROW(config_assign(w, "i=1e12"), UsageError);
  EXPECT_THROW(config_assign(w, "i=2147483648"), UsageError);
  EXPECT_NO_THROW(config_assign(w, "i=-2147483648"));
  EXPECT_THROW(config_assign(w, "l=1e19"), UsageError);
  EXPECT_THROW(config_assign(w, "l=inf"), UsageError);
  EXPECT_THROW(config_assign(w, "v=1,1e10"), UsageError);
  EXPECT_THROW(config_from_json(w, nlohmann::json{{"v", {1, 1e300}}}), UsageError);
  EXPECT_EQ(w.i, -2147483648);
  EXPECT_TRUE(w.v.empty());
}

TEST(Config, ListsEveryKeyWithDoc) {
  Outer c;
  auto entries = config_list(c);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[4].key, "inner.hidden");
  EXPECT_EQ(entries[4].doc, "widths");
}

TEST(Rng, DeterministicAndInRange) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    uint64_t x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    differs = differs || x != c.next_u64();
  }
  EXPECT_TRUE(differs);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_LT(a.integer(7), 7u);
    double u = a.uniform();
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
  // Normal moments.
  Rng r(1);
  double s = 0, ss = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) { double x = r.normal(); s += x; ss += x * x; }
  EXPECT_NEAR(s / n, 0.0, 0.02);
  EXPECT_NEAR(ss / n, 1.0, 0.02);
  // State round trip.
  Rng p(5);
  p.normal();
  Rng q(0);
  q.set_state(p.state());
  EXPECT_EQ(p.normal(), q.normal());
  EXPECT_EQ(p.next_u64(), q.next_u64());
}

TEST(Segment, ChoiceNamesRoundTrip) {
  for (Choice c : {Choice::kLeft, Choice::kRight, Choice::kEqual, Choice::kSkip}) {
    Choice back;
    ASSERT_TRUE(parse_choice(choice_name(c), &back));
    EXPECT_EQ(back, c);
  }
  Choice x;
  EXPECT_FALSE(parse_choice("LEFT", &x));
  EXPECT_EQ(choice_target(Choice::kEqual), 0.5f);
}

}  // namespace
}  // namespace prefrl
