// The SDK's header-only pieces: Schema binding, value formatting, constraints, and the registry's
// typed add/create doors, the host's typo suggestions, and the word-vector reader on the real
// GloVe sample with its quirks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "lmrun/scheduler.h"
#include "lmrun/schema.h"
#include "lmrun/util/suggest.h"
#include "lmrun/util/word_vectors.h"
#include "registry/plugin_registry.h"
#include "support/test_support.h"

using namespace lmrun;
using testing::HasSubstr;

namespace {

struct Options {
  std::int64_t n_layer = 4;
  int small = 3;
  double dropout = 0.1;
  bool bias = true;
  std::string norm = "layernorm";
  std::filesystem::path vocab;
  std::vector<std::int64_t> sizes = {1, 2};
  std::vector<double> weights;
  std::vector<std::string> tokens = {"<pad>"};
  std::array<double, 2> betas = {0.9, 0.99};
};

Schema<Options> schema() {
  Schema<Options> s;
  s.add("n_layer", &Options::n_layer, "blocks").min(1);
  s.add("small", &Options::small, "an int field").range(0, 10);
  s.add("dropout", &Options::dropout, "p").range(0, 1, true);
  s.add("bias", &Options::bias, "bias");
  s.add("norm", &Options::norm, "norm").choices({"layernorm", "rmsnorm"});
  s.add("vocab", &Options::vocab, "file").required();
  s.add("sizes", &Options::sizes, "ints");
  s.add("weights", &Options::weights, "floats").min(0, true);
  s.add("tokens", &Options::tokens, "strings");
  s.add("betas", &Options::betas, "pair");
  return s;
}

}  // namespace

TEST(Error, WithContextPrefixesOnceAndKeepsTheHint) {
  const lmrun::Error error("dataset 'tsv': no rows", "check the file");
  const lmrun::Error named = error.with_context("dataset 'tsv'");
  EXPECT_STREQ(named.what(), "dataset 'tsv': no rows");  // it already names itself
  const lmrun::Error wider = named.with_context("fold 2");
  EXPECT_STREQ(wider.what(), "fold 2: dataset 'tsv': no rows");
  EXPECT_EQ(wider.hint(), "check the file");
  EXPECT_STREQ(lmrun::Error("dataset 'tsvx': no").with_context("dataset 'tsv'").what(),
               "dataset 'tsv': dataset 'tsvx': no");
}

TEST(Schema, DefaultsComeFromTheOptionsStruct) {
  const auto specs = schema().specs();
  ASSERT_EQ(specs.size(), 10u);
  EXPECT_EQ(specs[0].type, ParamType::kInt);
  EXPECT_EQ(std::get<std::int64_t>(*specs[0].default_value), 4);
  EXPECT_EQ(specs[1].type, ParamType::kInt);
  EXPECT_EQ(specs[2].type, ParamType::kFloat);
  EXPECT_EQ(specs[3].type, ParamType::kBool);
  EXPECT_EQ(specs[4].choices, (std::vector<std::string>{"layernorm", "rmsnorm"}));
  EXPECT_EQ(specs[5].type, ParamType::kPath);
  EXPECT_TRUE(specs[5].required());
  EXPECT_EQ(specs[6].type, ParamType::kIntList);
  EXPECT_EQ(specs[7].type, ParamType::kFloatList);
  EXPECT_EQ(specs[8].type, ParamType::kStringList);
  EXPECT_EQ(specs[9].type, ParamType::kFloatList);
  EXPECT_EQ(specs[9].size, 2u);
}

TEST(Schema, ParseFillsTheStructAndToParamsReversesIt) {
  Params params;
  params.set("n_layer", std::int64_t{8});
  params.set("small", std::int64_t{7});
  params.set("vocab", std::string("/tmp/vocab.txt"));
  params.set("betas", std::vector<double>{0.8, 0.95});
  params.set("tokens", std::vector<std::string>{"<bos>", "<eos>"});
  const Options o = schema().parse(params);
  EXPECT_EQ(o.n_layer, 8);
  EXPECT_EQ(o.small, 7);
  EXPECT_DOUBLE_EQ(o.dropout, 0.1);  // absent: default kept
  EXPECT_EQ(o.vocab, "/tmp/vocab.txt");
  EXPECT_DOUBLE_EQ(o.betas[0], 0.8);
  EXPECT_DOUBLE_EQ(o.betas[1], 0.95);
  EXPECT_EQ(o.tokens, (std::vector<std::string>{"<bos>", "<eos>"}));

  const Params back = schema().to_params(o);
  EXPECT_EQ(back.get<std::int64_t>("n_layer"), 8);
  EXPECT_EQ(back.get<std::vector<double>>("betas"), (std::vector<double>{0.8, 0.95}));
}

TEST(Schema, ParseErrors) {
  try {
    schema().parse(Params{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("required parameter 'vocab' is not set"));
  }
  Params params;
  params.set("vocab", std::string("v"));
  params.set("n_layer", std::string("four"));
  try {
    schema().parse(params);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("parameter 'n_layer' is not a int"));
  }
}

TEST(Params, FormatValueWritesTomlThatReadsBack) {
  EXPECT_EQ(format_value(Value(true)), "true");
  EXPECT_EQ(format_value(Value(std::int64_t{-3})), "-3");
  EXPECT_EQ(format_value(Value(1e-3)), "0.001");
  EXPECT_EQ(format_value(Value(2.0)), "2.0");
  EXPECT_EQ(format_value(Value(1e-8)), "1e-8");
  EXPECT_EQ(format_value(Value(3e-4)), "0.0003");
  EXPECT_EQ(format_value(Value(5203200.0)), "5203200.0");
  EXPECT_EQ(format_value(Value(2.5e20)), "2.5e+20");
  EXPECT_EQ(format_value(Value(-1.5e-7)), "-1.5e-7");
  EXPECT_EQ(format_value(Value(0.1 + 0.2)), "0.30000000000000004");
  EXPECT_EQ(format_value(Value(std::numeric_limits<double>::infinity())), "inf");
  EXPECT_EQ(format_value(Value(std::string("a \"q\"\n"))), "\"a \\\"q\\\"\\n\"");
  EXPECT_EQ(format_value(Value(std::string("bell\a"))), "\"bell\\u0007\"");  // valid TOML and JSON
  EXPECT_EQ(format_value(Value(std::vector<double>{0.9, 0.99})), "[0.9, 0.99]");
  EXPECT_EQ(format_value(Value(std::vector<std::string>{})), "[]");
}

TEST(Params, Constraints) {
  const auto specs = schema().specs();
  EXPECT_EQ(specs[0].constraint(), ">= 1");
  EXPECT_EQ(specs[1].constraint(), "in [0, 10]");
  EXPECT_EQ(specs[2].constraint(), "in [0, 1)");
  EXPECT_EQ(specs[4].constraint(), "one of: layernorm, rmsnorm");
  EXPECT_EQ(specs[7].constraint(), "> 0");
  EXPECT_EQ(specs[9].constraint(), "2 elements");
  EXPECT_EQ(specs[3].constraint(), "");
}

TEST(Params, GetChecksNameAndType) {
  Params params;
  params.set("x", 1.5);
  EXPECT_DOUBLE_EQ(params.get<double>("x"), 1.5);
  EXPECT_THROW(params.get<std::int64_t>("x"), Error);
  EXPECT_THROW(params.at("y"), Error);
}

// -------------------------------------------------------------------------------------------------

namespace {

struct StepOptions {
  double gamma = 0.5;
};

class Step : public Scheduler {
 public:
  explicit Step(double gamma, double base) : gamma_(gamma), base_(base) {}
  double lr(std::int64_t step) override {
    return base_ * std::pow(gamma_, static_cast<double>(step / 10));
  }

 private:
  double gamma_, base_;
};

}  // namespace

TEST(Registry, TypedAddAndCreate) {
  host::PluginRegistry registry;
  Schema<StepOptions> s;
  s.add("gamma", &StepOptions::gamma, "decay").range(0, 1);
  registry.add<Scheduler>("step", "step decay", s,
                          [](const StepOptions& o, const SchedulerContext& c) {
                            if (o.gamma == 0) throw Error("gamma 0 would zero the learning rate");
                            return std::make_shared<Step>(o.gamma, c.base_lr);
                          });
  const auto* entry = registry.find_entry(Kind::kScheduler, "step");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->origin.describe(), "built-in");
  EXPECT_EQ(registry.names(Kind::kScheduler), std::vector<std::string>{"step"});
  EXPECT_TRUE(registry.names(Kind::kModel).empty());

  Params params;
  params.set("gamma", 0.1);
  auto scheduler = registry.create<Scheduler>("step", params, {2.0, 100});
  EXPECT_DOUBLE_EQ(scheduler->lr(25), 2.0 * 0.1 * 0.1);

  params.set("gamma", 0.0);
  try {
    registry.create<Scheduler>("step", params, {2.0, 100});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "scheduler 'step': gamma 0 would zero the learning rate");
  }
  try {
    registry.create<Scheduler>("nope", params, {2.0, 100});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "no scheduler 'nope' is registered");
  }
}

TEST(Registry, DuplicatesInOneFileThrowAcrossFilesConflict) {
  host::PluginRegistry main;
  Schema<StepOptions> s;
  auto make = [](const StepOptions& o, const SchedulerContext& c) {
    return std::make_shared<Step>(o.gamma, c.base_lr);
  };
  main.set_origin({"first", "1.0", "/p/first.so"});
  main.add<Scheduler>("step", "", s, make);
  EXPECT_THROW(main.add<Scheduler>("step", "", s, make), Error);

  host::PluginRegistry staging;
  staging.set_origin({"second", "2.0", "/p/second.so"});
  staging.add<Scheduler>("other", "", s, make);
  staging.add<Scheduler>("step", "", s, make);
  main.merge(std::move(staging));
  // The new name gets in; the taken one stays with its first holder, and is a conflict.
  EXPECT_NE(main.find(Kind::kScheduler, "other"), nullptr);
  EXPECT_EQ(main.find_entry(Kind::kScheduler, "step")->origin.plugin_name, "first");
  const host::Conflict* conflict = main.conflict(Kind::kScheduler, "step");
  ASSERT_NE(conflict, nullptr);
  EXPECT_EQ(main.conflict_message(*conflict),
            "scheduler 'step' is registered twice: by first 1.0 (/p/first.so) and by second 2.0 "
            "(/p/second.so)");
}

TEST(Registry, KindNames) {
  for (Kind kind : kAllKinds) EXPECT_EQ(parse_kind(kind_name(kind)), kind);
  EXPECT_FALSE(parse_kind("modle").has_value());
}

TEST(Suggest, NearestIsAPlausibleTypo) {
  const std::vector<std::string> keys = {"n_layer", "n_head", "n_embd", "dropout", "lr", "seed"};
  EXPECT_EQ(lmrun::nearest("n_layers", keys), "n_layer");
  EXPECT_EQ(lmrun::nearest("n_emb", keys), "n_embd");
  EXPECT_EQ(lmrun::nearest("droput", keys), "dropout");
  EXPECT_EQ(lmrun::nearest("N_HEAD", keys), "n_head");
  EXPECT_EQ(lmrun::nearest("batch_size", keys), "");
  EXPECT_EQ(lmrun::nearest("xy", keys), "");
  EXPECT_EQ(lmrun::did_you_mean("sede", keys), " (did you mean seed?)");
  EXPECT_EQ(lmrun::edit_distance("ab", "ba"), 1u);
}

namespace {

std::filesystem::path glove() {
  return lmrun::test::source_dir() / "data" / "glove_6b_50d_top2446" / "glove.6B.50d.top2446.txt";
}

}  // namespace

TEST(WordVectors, ReadsTheGloveSampleWithItsQuirks) {
  // "handed" is the last line, which has no newline; "\x92s" is one of the cp1252 words.
  const WordVectors v = read_word_vectors(glove(), {"the", "king", "handed", "\x92s", "zzzz"});
  EXPECT_EQ(v.dim, 50);
  EXPECT_EQ(v.lines, 2446);
  EXPECT_EQ(v.non_utf8_words, 5);
  ASSERT_EQ(v.found.size(), 4u);  // every wanted word but the made-up one
  EXPECT_FLOAT_EQ(v.found.at("the")[0], 0.418f);
  EXPECT_FLOAT_EQ(v.found.at("the")[1], 0.24968f);
  EXPECT_FLOAT_EQ(v.found.at("the")[49], -0.78581f);
  EXPECT_EQ(v.found.at("handed").size(), 50u);
  EXPECT_EQ(v.found.count("zzzz"), 0u);
}

TEST(WordVectors, HeadersCrlfSpacesDuplicatesAndErrors) {
  lmrun::test::TempDir dir;
  lmrun::test::write_file(dir / "v.txt",
                          "4 2\r\nhello 1 2\r\n\r\nhello 9 9\r\n. . . 3 4\nworld 5 6");
  const WordVectors v = read_word_vectors(dir / "v.txt", {"hello", ". . .", "world"});
  EXPECT_EQ(v.dim, 2);  // from the "N D" header, which is not a vector
  EXPECT_EQ(v.lines, 4);
  EXPECT_EQ(v.found.at("hello"), (std::vector<float>{1, 2}));  // the first of a duplicate
  EXPECT_EQ(v.found.at(". . ."), (std::vector<float>{3, 4}));  // a word with spaces
  EXPECT_EQ(v.found.at("world"), (std::vector<float>{5, 6}));

  // A header's N is a promise: fewer vectors mean a file cut short.
  lmrun::test::write_file(dir / "cut.txt", "5 2\na 1 2\nb 3 4\n");
  EXPECT_THAT(lmrun::test::error_of([&] { read_word_vectors(dir / "cut.txt", {"b"}); }),
              HasSubstr("the header promises 5 vectors and the file holds 2"));
  lmrun::test::write_file(dir / "short.txt", "a 1 2 3\nb 1 2\n");
  EXPECT_THAT(lmrun::test::error_of([&] { read_word_vectors(dir / "short.txt", {"b"}); }),
              HasSubstr("short.txt:2: expected a word and 3 numbers, found 3 fields"));
  lmrun::test::write_file(dir / "nan.txt", "a 1 2\nb 1 x2\n");
  EXPECT_THAT(lmrun::test::error_of([&] { read_word_vectors(dir / "nan.txt", {"b"}); }),
              HasSubstr("nan.txt:2: 'x2' in the vector of 'b' is not a finite number"));
  // NaN, infinities and floats that overflow to them poison an embedding: refused by line.
  for (const char* bad : {"nan", "inf", "-inf", "1e39"}) {
    lmrun::test::write_file(dir / "bad.txt", std::string("a 1 2\nb 1 ") + bad + "\n");
    EXPECT_THAT(lmrun::test::error_of([&] { read_word_vectors(dir / "bad.txt", {"b"}); }),
                HasSubstr("bad.txt:2: '" + std::string(bad) +
                          "' in the vector of 'b' is not a finite number"));
  }
  lmrun::test::write_file(dir / "empty.txt", "\n\n");
  EXPECT_THAT(lmrun::test::error_of([&] { read_word_vectors(dir / "empty.txt", {}); }),
              HasSubstr("hold no vectors"));
  EXPECT_THAT(lmrun::test::error_of([&] { read_word_vectors(dir / "none.txt", {}); }),
              HasSubstr("cannot read word vectors"));
}
