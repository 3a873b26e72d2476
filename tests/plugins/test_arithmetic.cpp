// The `arithmetic` dataset through the real loader: distinct problems in disjoint, seeded 80/10/10
// splits, targets kept on the answer only (the loss mask), reversed answers, and its errors.
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "lmrun/dataset.h"
#include "lmrun/util/files.h"
#include "lmrun/metric.h"
#include "lmrun/tokenizer.h"
#include "support/test_support.h"

namespace {

using lmrun::Dataset;
using lmrun::Split;
using lmrun::test::error_of;
using ::testing::HasSubstr;

struct Prepared {
  std::shared_ptr<Dataset> data;
  std::shared_ptr<lmrun::Tokenizer> tokenizer;
};

Prepared prepared(const std::map<std::string, lmrun::Value>& params, std::uint64_t seed = 7) {
  Prepared p;
  p.data = lmrun::test::plugin_registry().create<Dataset>(
      "arithmetic", lmrun::test::plugin_params(lmrun::Kind::kDataset, "arithmetic", params),
      lmrun::DatasetContext{seed});
  p.tokenizer = lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
      "char", lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "char", {}), {});
  p.tokenizer->fit(p.data->training_text());
  p.data->prepare(*p.tokenizer);
  return p;
}

// Each example of a batch as its text: the inputs decoded, padding cut.
std::vector<std::string> problems_of(const Prepared& p, const lmrun::Batch& b) {
  std::vector<std::string> out;
  for (std::int64_t r = 0; r < b.inputs.size(0); ++r) {
    std::vector<std::int64_t> ids(b.inputs[r].data_ptr<std::int64_t>(),
                                  b.inputs[r].data_ptr<std::int64_t>() + b.inputs.size(1));
    std::string text = p.tokenizer->decode(ids);
    text = text.substr(0, text.find('\n'));  // padding is "\n" without a <pad>
    out.push_back(text);
  }
  return out;
}

std::vector<std::string> problems(const Prepared& p, Split split) {
  return problems_of(p, p.data->slice(split, 0, p.data->num_examples(split)));
}

// The digits of the longer operand of "a+b=c".
std::size_t operand_digits(const std::string& problem) {
  const std::size_t op = problem.find_first_of("+-*", 1), eq = problem.find('=');
  return std::max(op, eq - op - 1);
}

TEST(Arithmetic, DistinctProblemsInDisjointSeededSplits) {
  auto p = prepared({{"problems", std::int64_t{2000}}});
  EXPECT_EQ(p.data->num_examples(Split::kTrain), 1600);
  EXPECT_EQ(p.data->num_examples(Split::kVal), 200);
  EXPECT_EQ(p.data->num_examples(Split::kTest), 200);
  EXPECT_EQ(p.tokenizer->vocab_size(), 15);  // the digits, + - *, = and "\n": a fixed alphabet
  std::set<std::string> all;
  for (Split s : {Split::kTrain, Split::kVal, Split::kTest}) {
    for (const auto& problem : problems(p, s)) {
      EXPECT_TRUE(all.insert(problem.substr(0, problem.find('=') + 1)).second)
          << problem << " is in two splits";
    }
  }
  EXPECT_EQ(all.size(), 2000u);
  // Every split has the same mix: the 100 problems of two one-digit operands, all drawn early
  // (there are so few), are spread over the splits, not dealt to test first.
  auto short_ones = [&](Split s) {
    std::size_t count = 0;
    for (const auto& problem : problems(p, s))
      count += problem.find_first_of("+") == 1 && problem.find('=') == 3;
    return static_cast<double>(count) / static_cast<double>(p.data->num_examples(s));
  };
  // 100 of 2,000 overall: 5%. Dealt in draw order, test (dealt first) held about 10%.
  for (Split s : {Split::kTrain, Split::kVal, Split::kTest}) {
    EXPECT_GT(short_ones(s), 0.03) << lmrun::split_name(s);
    EXPECT_LT(short_ones(s), 0.07) << lmrun::split_name(s);
  }
  // The same seed, the same splits; another seed, others.
  EXPECT_EQ(problems(prepared({{"problems", std::int64_t{2000}}}), Split::kVal),
            problems(p, Split::kVal));
  EXPECT_NE(problems(prepared({{"problems", std::int64_t{2000}}}, 8), Split::kVal),
            problems(p, Split::kVal));
}

TEST(Arithmetic, TargetsAreTheAnswerOnlyAndAnswersAreRight) {
  for (bool reversed : {false, true}) {
    SCOPED_TRACE(reversed ? "reversed" : "plain");
    auto p = prepared({{"problems", std::int64_t{300}},
                       {"operators", std::vector<std::string>{"+", "-", "*"}},
                       {"reverse_answer", reversed}});
    const lmrun::Batch b = p.data->slice(Split::kTrain, 0, 240);
    ASSERT_EQ(b.targets.sizes(), b.inputs.sizes());
    for (std::int64_t r = 0; r < b.inputs.size(0); ++r) {
      std::vector<std::int64_t> in(b.inputs[r].data_ptr<std::int64_t>(),
                                   b.inputs[r].data_ptr<std::int64_t>() + b.inputs.size(1));
      const std::string text = p.tokenizer->decode(in);
      const std::size_t eq = text.find('=');
      ASSERT_NE(eq, std::string::npos) << text;
      // Targets: kIgnoreTarget up to and including "=" (its target is the answer's first char).
      std::string answer;
      for (std::int64_t k = 0; k < b.targets.size(1); ++k) {
        const std::int64_t t = b.targets[r][k].item<std::int64_t>();
        if (static_cast<std::size_t>(k) < eq) {
          EXPECT_EQ(t, lmrun::kIgnoreTarget) << text << " at " << k;
        } else if (t != lmrun::kIgnoreTarget) {
          answer += p.tokenizer->decode({t});
        }
      }
      ASSERT_FALSE(answer.empty());
      ASSERT_EQ(answer.back(), '\n') << "the closing newline is a target: the model learns to stop";
      answer.pop_back();
      const std::size_t op = text.find_first_of("+-*", 1);
      const long long a = std::stoll(text.substr(0, op)),
                      c = std::stoll(text.substr(op + 1, eq - op - 1));
      const long long expected = text[op] == '+' ? a + c : text[op] == '-' ? a - c : a * c;
      std::string want = std::to_string(expected);
      if (reversed) std::reverse(want.begin() + (expected < 0 ? 1 : 0), want.end());
      EXPECT_EQ(answer, want) << text;
    }
  }
}

TEST(Arithmetic, GroupsAreTheTestSplitByOperandLengthThenHeldOutLengths) {
  const auto with = prepared({{"problems", std::int64_t{2000}},
                              {"held_out_digits", std::vector<std::int64_t>{4, 5}},
                              {"held_out_problems", std::int64_t{100}}});
  std::vector<std::string> names;
  for (const auto& group : with.data->groups()) names.push_back(group.name);
  EXPECT_EQ(names, (std::vector<std::string>{"test, 1 digit", "test, 2 digits", "test, 3 digits",
                                             "held out, 4 digits", "held out, 5 digits"}));
  std::multiset<std::string> test_parts;
  std::set<std::string> held_out;
  const auto groups = with.data->groups();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    SCOPED_TRACE(groups[g].name);
    const std::size_t digits = g + 1;
    const auto group = problems_of(with, with.data->group_slice(g, 0, groups[g].size));
    ASSERT_EQ(static_cast<std::int64_t>(group.size()), groups[g].size);
    for (const auto& problem : group) {
      EXPECT_EQ(operand_digits(problem), digits) << problem;
      if (digits <= 3) {
        test_parts.insert(problem);
      } else {
        EXPECT_TRUE(held_out.insert(problem).second) << problem << " is held out twice";
      }
    }
    if (digits > 3) {
      EXPECT_EQ(groups[g].size, 100);
    }
  }
  // The test groups are exactly the test split; the held-out problems are in no split.
  const auto test = problems(with, Split::kTest);
  EXPECT_EQ(test_parts, std::multiset<std::string>(test.begin(), test.end()));
  // Asking for held-out sets leaves the splits as they were, and training at its own width.
  const auto without = prepared({{"problems", std::int64_t{2000}}});
  for (Split s : {Split::kTrain, Split::kVal, Split::kTest})
    EXPECT_EQ(problems(with, s), problems(without, s)) << lmrun::split_name(s);
  EXPECT_EQ(without.data->groups().size(), 3u);    // the test split by length only
  EXPECT_EQ(without.data->sequence_length(), 12);  // "999+999=9991\n" less one
  EXPECT_EQ(with.data->sequence_length(), 18);     // "99999+99999=999991\n" less one
  EXPECT_EQ(with.data->slice(Split::kTrain, 0, 100).inputs.size(1), 12);
  EXPECT_THAT(error_of([&] { with.data->group_slice(5, 0, 1); }), HasSubstr("no example group 5"));
}

TEST(Arithmetic, SaveWritesEveryProblemOnceASet) {
  const auto p = prepared({{"problems", std::int64_t{500}},
                           {"held_out_digits", std::vector<std::int64_t>{4}},
                           {"held_out_problems", std::int64_t{50}}});
  lmrun::test::TempDir dir;
  p.data->save(dir.path());
  const std::map<std::string, std::size_t> expected = {
      {"train.txt", 400}, {"val.txt", 50}, {"test.txt", 50}, {"held_out_4_digits.txt", 50}};
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    const std::string name = entry.path().filename().string();
    ASSERT_TRUE(expected.count(name)) << name;
    const std::string text = lmrun::read_file(entry.path());
    EXPECT_EQ(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')),
              expected.at(name))
        << name;
  }
  EXPECT_EQ(files, expected.size());
  // The same problems the split serves, in its order.
  const std::string val = lmrun::read_file(dir / "val.txt");
  EXPECT_EQ(val.substr(0, val.find('\n')), problems(p, Split::kVal).front());
}

TEST(Arithmetic, ImpossibleSettingsAreErrors) {
  EXPECT_THAT(
      error_of([] {
        prepared({{"digits", std::int64_t{3}}, {"held_out_digits", std::vector<std::int64_t>{3}}});
      }),
      HasSubstr("held_out_digits 3 is not in 4..9"));
  EXPECT_THAT(error_of([] {
                prepared({{"digits", std::int64_t{1}}, {"problems", std::int64_t{80}}});
              }),
              HasSubstr("80 distinct problems asked of 100 possible"));
  EXPECT_THAT(error_of([] {
                prepared({{"digits", std::int64_t{2}}, {"min_digits", std::int64_t{3}}});
              }),
              HasSubstr("min_digits 3 is more than digits 2"));
  // A tokenizer that is not one token per character cannot mark the answer's positions.
  auto data = lmrun::test::plugin_registry().create<Dataset>(
      "arithmetic",
      lmrun::test::plugin_params(lmrun::Kind::kDataset, "arithmetic",
                                 {{"problems", std::int64_t{100}}}),
      lmrun::DatasetContext{1});
  auto bpe = lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
      "bpe",
      lmrun::test::plugin_params(
          lmrun::Kind::kTokenizer, "bpe",
          {{"vocab_size", std::int64_t{300}}, {"min_frequency", std::int64_t{1}}}),
      {});
  bpe->fit("12+34=46\n12+34=46\n123+456=579\n");
  const lmrun::Error e = lmrun::test::error_from([&] { data->prepare(*bpe); });
  EXPECT_THAT(e.what(), HasSubstr("the tokenizer gives 9 tokens for the 10 characters"));
  EXPECT_THAT(e.hint(), HasSubstr("use the char tokenizer"));
}

}  // namespace
