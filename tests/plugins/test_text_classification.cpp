// The `text_classification` dataset through the real loader, with the `word` tokenizer: TSV with a
// header (SST-2's layout), headerless TSV (the UCI sets, U+0085 inside a sentence), CSV quoting,
// label ids, the stratified seeded split (proportions, disjointness, determinism), padded batches
// whose mask marks real tokens, the errors, and the shipped SST-2 files.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "lmrun/dataset.h"
#include "lmrun/tokenizer.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using lmrun::Batch;
using lmrun::Dataset;
using lmrun::Split;
using lmrun::test::error_of;
using lmrun::test::TempDir;
using lmrun::test::write_file;
using ::testing::HasSubstr;

struct Prepared {
  std::shared_ptr<Dataset> data;
  std::shared_ptr<lmrun::Tokenizer> tokenizer;
};

std::shared_ptr<Dataset> make(const std::map<std::string, lmrun::Value>& params,
                              std::uint64_t seed = 7) {
  return lmrun::test::plugin_registry().create<Dataset>(
      "text_classification",
      lmrun::test::plugin_params(lmrun::Kind::kDataset, "text_classification", params),
      lmrun::DatasetContext{seed});
}

Prepared prepared(const std::map<std::string, lmrun::Value>& params, std::uint64_t seed = 7) {
  Prepared p;
  p.data = make(params, seed);
  p.tokenizer = lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
      "word", lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "word", {}), {});
  p.tokenizer->fit(p.data->training_text());
  p.data->prepare(*p.tokenizer);
  return p;
}

std::string path(const fs::path& p) { return p.string(); }

// Each example of a split decoded back to text, followed by "/<class id>", in order.
std::vector<std::string> decoded_rows(const Dataset& data, const lmrun::Tokenizer& tokenizer,
                                      Split split) {
  std::vector<std::string> out;
  const Batch b = data.slice(split, 0, data.num_examples(split));
  for (std::int64_t i = 0; i < b.inputs.size(0); ++i) {
    std::vector<std::int64_t> ids(b.inputs[i].data_ptr<std::int64_t>(),
                                  b.inputs[i].data_ptr<std::int64_t>() + b.inputs.size(1));
    out.push_back(tokenizer.decode(ids) + "/" + std::to_string(b.targets[i].item<std::int64_t>()));
  }
  return out;
}

TEST(TextClassification, TsvWithAHeaderAndPaddedBatchesWithAMask) {
  TempDir dir;
  write_file(dir / "train.tsv",
             "sentence\tlabel\nit 's a charming journey . \t1\nbleak \t0\n"
             "a long and very dull film , sadly \t0\n");
  auto p = prepared({{"train", path(dir / "train.tsv")}});
  EXPECT_EQ(p.data->task(), lmrun::Task::kClassification);
  EXPECT_EQ(p.data->num_examples(Split::kTrain), 3);
  EXPECT_FALSE(p.data->has_split(Split::kVal));
  EXPECT_EQ(p.data->class_names(), (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(p.data->sequence_length(), 256);  // max_len: what a model must read at most
  const Batch b = p.data->slice(Split::kTrain, 0, 3);
  // Padded to the longest text; ICU splits PTB's "'s" into ' and s.
  EXPECT_EQ(b.inputs.sizes(), (std::vector<std::int64_t>{3, 8}));
  EXPECT_TRUE(at::equal(b.targets, at::tensor({1, 0, 0}, at::kLong)));
  EXPECT_TRUE(at::equal(b.mask.sum(1), at::tensor({7, 1, 8}, at::kLong)));
  // Padded positions hold <pad>, real ones never do.
  EXPECT_TRUE(at::equal(b.inputs.eq(0), b.mask.logical_not()));
  const std::vector<std::int64_t> first(b.inputs[0].data_ptr<std::int64_t>(),
                                        b.inputs[0].data_ptr<std::int64_t>() + 8);
  EXPECT_EQ(p.tokenizer->decode(first), "it ' s a charming journey .");  // padding dropped
}

TEST(TextClassification, HeaderlessLinesSplitOnTheLastTabAndOnlyAtLf) {
  TempDir dir;
  // The UCI files: no header, a U+0085 (NEL) inside a sentence, a tab-free label column.
  write_file(dir / "imdb.txt",
             "A very, very slow-moving film.  \t0\nIt was\xc2\x85 great\t1\nLoved it.\t1\n");
  auto p = prepared({{"train", path(dir / "imdb.txt")}});
  EXPECT_EQ(p.data->num_examples(Split::kTrain), 3);
  EXPECT_THAT(p.data->training_text(), HasSubstr("It was\xc2\x85 great\n"));
  EXPECT_THAT(p.data->training_text(), HasSubstr("A very, very slow-moving film.\n"));
}

TEST(TextClassification, CsvQuotingAndNamedColumnsInAnyOrder) {
  TempDir dir;
  write_file(dir / "reviews.csv",
             "label,review,stars\r\npos,\"Great, \"\"really\"\" great\",5\r\n"
             "neg,\"two\nlines\",1\r\npos,fine,4\r\n");
  auto p = prepared({{"train", path(dir / "reviews.csv")}, {"text_column", std::string("review")}});
  EXPECT_EQ(p.data->num_examples(Split::kTrain), 3);
  EXPECT_EQ(p.data->class_names(), (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(p.data->training_text(), "Great, \"really\" great\ntwo\nlines\nfine\n");
  EXPECT_TRUE(
      at::equal(p.data->slice(Split::kTrain, 0, 3).targets, at::tensor({1, 0, 1}, at::kLong)));
}

TEST(TextClassification, TheStratifiedSplitKeepsProportionsIsDisjointAndSeeded) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 100; ++i)
    text += "text number w" + std::to_string(i) + "\t" + (i % 5 < 3 ? "a" : "b") + "\n";
  write_file(dir / "all.tsv", text);
  const std::map<std::string, lmrun::Value> params = {
      {"train", path(dir / "all.tsv")}, {"val_fraction", 0.2}, {"test_fraction", 0.1}};
  auto count = [](const Prepared& p, Split s) {
    std::map<std::int64_t, int> by_class;
    const Batch b = p.data->slice(s, 0, p.data->num_examples(s));
    for (std::int64_t i = 0; i < b.targets.size(0); ++i)
      ++by_class[b.targets[i].item<std::int64_t>()];
    return by_class;
  };
  Prepared p;
  p.data = make(params);
  // A vocabulary of the whole file, so that every split's texts decode back whole.
  p.tokenizer = lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
      "word", lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "word", {}), {});
  p.tokenizer->fit(text);
  p.data->prepare(*p.tokenizer);
  // 60 of class a and 40 of b: test 6 + 4, val 12 + 8, train 42 + 28.
  EXPECT_EQ(count(p, Split::kTest), (std::map<std::int64_t, int>{{0, 6}, {1, 4}}));
  EXPECT_EQ(count(p, Split::kVal), (std::map<std::int64_t, int>{{0, 12}, {1, 8}}));
  EXPECT_EQ(count(p, Split::kTrain), (std::map<std::int64_t, int>{{0, 42}, {1, 28}}));
  // Disjoint and complete: every text in exactly one split.
  std::multiset<std::string> seen;
  for (Split s : {Split::kTrain, Split::kVal, Split::kTest}) {
    for (const auto& text : decoded_rows(*p.data, *p.tokenizer, s)) seen.insert(text);
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 100u);
  // The same seed splits the same way; another seed does not.
  auto test_text = [](const std::shared_ptr<Dataset>& d) { return d->training_text(); };
  EXPECT_EQ(test_text(make(params, 7)), test_text(make(params, 7)));
  EXPECT_NE(test_text(make(params, 7)), test_text(make(params, 8)));
}

TEST(TextClassification, CrossValidationFoldsAreDisjointStratifiedAndCoverTrain) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 103; ++i)
    text += "text w" + std::to_string(i) + "\t" + (i % 5 < 3 ? "a" : "b") + "\n";
  write_file(dir / "all.tsv", text);
  auto texts_of = [&](std::int64_t fold, Split split) {
    // test_fraction 0.1 stays out of every fold: 10 of the 103 rows.
    auto d = make({{"train", path(dir / "all.tsv")},
                   {"test_fraction", 0.1},
                   {"folds", std::int64_t{5}},
                   {"fold", fold}});
    auto tokenizer = lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
        "word", lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "word", {}), {});
    tokenizer->fit(text);
    d->prepare(*tokenizer);
    return decoded_rows(*d, *tokenizer, split);
  };
  const auto test = texts_of(0, Split::kTest);
  ASSERT_EQ(test.size(), 10u);
  std::multiset<std::string> vals;
  for (std::int64_t k = 0; k < 5; ++k) {
    SCOPED_TRACE("fold " + std::to_string(k));
    const auto val = texts_of(k, Split::kVal), train = texts_of(k, Split::kTrain);
    EXPECT_EQ(texts_of(k, Split::kTest), test);  // the same test split for every fold
    // 93 rows dealt to 5 folds: 18 or 19 each, and train is the other four.
    EXPECT_TRUE(val.size() == 18 || val.size() == 19) << val.size();
    EXPECT_EQ(val.size() + train.size(), 93u);
    std::set<std::string> in_train(train.begin(), train.end());
    int a = 0;
    for (const auto& v : val) {
      EXPECT_EQ(in_train.count(v), 0u) << v;  // no val text in its own train
      a += v.back() == '0';
    }
    // Stratified: class a is 56 of the 93 (60%), so 10 or 11 of each fold, give or take one.
    EXPECT_GE(a, 10);
    EXPECT_LE(a, 12);
    vals.insert(val.begin(), val.end());
  }
  // The folds' vals are disjoint and together are all of train.
  EXPECT_EQ(vals.size(), 93u);
  EXPECT_EQ(std::set<std::string>(vals.begin(), vals.end()).size(), 93u);

  EXPECT_THAT(error_of([&] {
                make({{"train", path(dir / "all.tsv")},
                      {"folds", std::int64_t{5}},
                      {"fold", std::int64_t{5}}});
              }),
              HasSubstr("fold = 5 is not one of the 5 folds (0..4)"));
  EXPECT_THAT(
      error_of([&] {
        make({{"train", path(dir / "all.tsv")}, {"folds", std::int64_t{5}}, {"val_fraction", 0.1}});
      }),
      HasSubstr("each fold is the val split in turn"));
  EXPECT_THAT(error_of([&] {
                make({{"train", path(dir / "all.tsv")}, {"folds", std::int64_t{1}}});
              }),
              HasSubstr("folds = 1 holds nothing out"));
  // More folds than rows would leave a fold (a run's val split) empty.
  write_file(dir / "three.tsv", "good\tpos\nbad\tneg\nfine\tpos\n");
  EXPECT_THAT(error_of([&] {
                make({{"train", path(dir / "three.tsv")}, {"folds", std::int64_t{5}}});
              }),
              HasSubstr("folds = 5 needs at least 5 rows outside the test split"));
}

TEST(TextClassification, ErrorsNameTheFileTheLineAndTheFix) {
  TempDir dir;
  write_file(dir / "train.tsv", "sentence\tlabel\ngood\t1\nbad\t0\n");
  write_file(dir / "dev.tsv", "sentence\tlabel\nok\t1\nmeh\tneutral\n");
  EXPECT_THAT(error_of([&] {
                make({{"train", path(dir / "train.tsv")}, {"val", path(dir / "dev.tsv")}});
              }),
              HasSubstr("dev.tsv:3: label 'neutral' does not occur in the train split"));
  write_file(dir / "one.tsv", "a\t1\nb\t1\n");
  EXPECT_THAT(error_of([&] {
                make({{"train", path(dir / "one.tsv")}});
              }),
              HasSubstr("1 distinct label(s); a classifier needs two"));
  write_file(dir / "nolabel.tsv", "just text\nmore\t1\n");
  EXPECT_THAT(error_of([&] {
                make({{"train", path(dir / "nolabel.tsv")}});
              }),
              HasSubstr("nolabel.tsv:1: no label"));
  EXPECT_THAT(error_of([&] {
                make({{"train", path(dir / "missing.tsv")}});
              }),
              HasSubstr("missing.tsv does not exist"));
  write_file(dir / "open.csv", "\"never closed,1\n");
  EXPECT_THAT(error_of([&] {
                make({{"train", path(dir / "open.csv")}});
              }),
              HasSubstr("open.csv:1: a quoted field is never closed"));
  EXPECT_THAT(
      error_of([&] {
        make({{"train", path(dir / "train.tsv")}, {"val_fraction", 0.6}, {"test_fraction", 0.5}});
      }),
      HasSubstr("val_fraction + test_fraction must be in [0, 1)"));
}

TEST(TextClassification, TheShippedSst2Files) {
  const fs::path sst2 = lmrun::test::source_dir() / "data" / "sst2";
  auto d = make({{"train", path(sst2 / "train.tsv")},
                 {"val", path(sst2 / "dev.tsv")},
                 {"test", path(sst2 / "test.tsv")}});
  EXPECT_EQ(d->num_examples(Split::kTrain), 60614);  // SOURCE.md's row counts
  EXPECT_EQ(d->num_examples(Split::kVal), 6735);
  EXPECT_EQ(d->num_examples(Split::kTest), 872);
  EXPECT_EQ(d->num_classes(), 2);
}

}  // namespace
