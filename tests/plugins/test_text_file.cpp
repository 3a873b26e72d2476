// The `text_file` dataset through the real plugin loader, with the `char` tokenizer: exact split
// sizes, no train/val overlap, windows that are slices of the stream, determinism, errors.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/equal.h>

#include "lmrun/dataset.h"
#include "lmrun/tokenizer.h"
#include "support/test_support.h"

namespace {

using lmrun::test::error_from;

using lmrun::Batch;
using lmrun::Dataset;
using lmrun::Split;
using testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// Helpers

// Every declared default, as the host fills them, then the test's overrides.
lmrun::Params params_for(lmrun::Kind kind, const std::string& name,
                         const std::map<std::string, lmrun::Value>& overrides = {}) {
  return lmrun::test::plugin_params(kind, name, overrides);
}

std::shared_ptr<Dataset> make_dataset(const std::filesystem::path& path, double val_fraction,
                                      std::int64_t block_size) {
  return lmrun::test::plugin_registry().create<Dataset>(
      "text_file",
      params_for(
          lmrun::Kind::kDataset, "text_file",
          {{"path", path.string()}, {"val_fraction", val_fraction}, {"block_size", block_size}}),
      lmrun::DatasetContext{1337});
}

std::shared_ptr<lmrun::Tokenizer> make_char() {
  return lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
      "char", params_for(lmrun::Kind::kTokenizer, "char"), {});
}

// `n` characters drawn by an LCG from an alphabet; with `multibyte`, 2-, 3- and 4-byte ones too.
std::string synthetic_text(std::size_t n, bool multibyte = false) {
  std::vector<std::string> alphabet;
  for (char c = 'a'; c <= 'z'; ++c) alphabet.emplace_back(1, c);
  alphabet.insert(alphabet.end(), {" ", "\n", ".", "A", "B"});
  if (multibyte) alphabet.insert(alphabet.end(), {"\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x99\x82"});
  std::uint32_t state = 12345;
  std::string text;
  for (std::size_t i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    text += alphabet[(state >> 16) % alphabet.size()];
  }
  return text;
}

std::vector<std::int64_t> values_of(const at::Tensor& t) {
  at::Tensor flat = t.contiguous().view({-1});
  return std::vector<std::int64_t>(flat.data_ptr<std::int64_t>(),
                                   flat.data_ptr<std::int64_t>() + flat.numel());
}

at::Generator generator(std::uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// A file, a dataset over it and the char tokenizer fitted on its training text, prepared.
struct Fixture {
  lmrun::test::TempDir dir;
  std::string text;
  std::shared_ptr<Dataset> data;
  std::shared_ptr<lmrun::Tokenizer> tokenizer;
  std::vector<std::int64_t> stream;  // the whole file's ids

  Fixture(std::string content, double val_fraction, std::int64_t block_size)
      : text(std::move(content)) {
    lmrun::test::write_file(dir / "corpus.txt", text);
    data = make_dataset(dir / "corpus.txt", val_fraction, block_size);
    tokenizer = make_char();
    tokenizer->fit(text);  // the whole text, so that any val character encodes in the tests
    data->prepare(*tokenizer);
    stream = tokenizer->encode(text);
  }
};

// Every row of `batch` is stream[s, s+T) with targets stream[s+1, s+T+1] for some s in
// [first, last]: a contiguous window of the split, shifted by one.
void expect_windows_of(const Batch& batch, const std::vector<std::int64_t>& stream,
                       std::int64_t first, std::int64_t last) {
  const std::int64_t B = batch.inputs.size(0);
  const std::int64_t T = batch.inputs.size(1);
  const std::vector<std::int64_t> inputs = values_of(batch.inputs);
  const std::vector<std::int64_t> targets = values_of(batch.targets);
  for (std::int64_t b = 0; b < B; ++b) {
    bool found = false;
    for (std::int64_t s = first; s <= last && !found; ++s) {
      found =
          std::equal(stream.begin() + s, stream.begin() + s + T, inputs.begin() + b * T) &&
          std::equal(stream.begin() + s + 1, stream.begin() + s + T + 1, targets.begin() + b * T);
    }
    EXPECT_TRUE(found) << "row " << b << " is not a window starting in [" << first << ", " << last
                       << "]";
  }
}

// ---------------------------------------------------------------------------------------------
// Registration

TEST(TextFile, DeclaresTheExperimentFileContract) {
  const lmrun::Registration* registration =
      lmrun::test::plugin_registry().find(lmrun::Kind::kDataset, "text_file");
  ASSERT_NE(registration, nullptr);
  ASSERT_EQ(registration->params.size(), 3u);
  const auto& path = registration->params[0];
  EXPECT_EQ(path.name, "path");
  EXPECT_EQ(path.type, lmrun::ParamType::kPath);
  EXPECT_TRUE(path.required());
  const auto& val = registration->params[1];
  EXPECT_EQ(val.name, "val_fraction");
  EXPECT_EQ(std::get<double>(*val.default_value), 0.1);
  EXPECT_EQ(val.constraint(), "in [0, 1)");
  const auto& block = registration->params[2];
  EXPECT_EQ(block.name, "block_size");
  EXPECT_EQ(std::get<std::int64_t>(*block.default_value), 64);
  EXPECT_EQ(block.constraint(), ">= 1");
}

// ---------------------------------------------------------------------------------------------
// Splits

TEST(TextFile, SplitsTheTokenStreamLikeNanoGpt) {
  Fixture f(synthetic_text(1000), 0.1, 8);  // train: int(1000 * 0.9) = 900 tokens, val: 100
  EXPECT_EQ(f.data->task(), lmrun::Task::kLanguageModel);
  EXPECT_EQ(f.data->sequence_length(), 8);
  EXPECT_TRUE(f.data->has_split(Split::kTrain));
  EXPECT_TRUE(f.data->has_split(Split::kVal));
  EXPECT_FALSE(f.data->has_split(Split::kTest));
  EXPECT_EQ(f.data->training_text(), f.text.substr(0, 900));
  EXPECT_EQ(f.data->num_examples(Split::kTrain), (900 - 1) / 8);
  EXPECT_EQ(f.data->num_examples(Split::kVal), (100 - 1) / 8);
  // The val split starts at token 900 exactly.
  Batch first_val = f.data->slice(Split::kVal, 0, 1);
  EXPECT_EQ(values_of(first_val.inputs),
            std::vector<std::int64_t>(f.stream.begin() + 900, f.stream.begin() + 908));

  Fixture g(synthetic_text(1001), 0.25, 5);  // int(1001 * 0.75) = 750, val: 251
  EXPECT_EQ(g.data->training_text(), g.text.substr(0, 750));
  EXPECT_EQ(g.data->num_examples(Split::kTrain), (750 - 1) / 5);
  EXPECT_EQ(g.data->num_examples(Split::kVal), (251 - 1) / 5);
}

TEST(TextFile, TrainingTextEndsOnACodePointBoundary) {
  const std::string text = synthetic_text(997, /*multibyte=*/true);
  Fixture f(text, 0.3, 4);
  const std::int64_t n = static_cast<std::int64_t>(f.stream.size());
  ASSERT_EQ(n, 997);
  const std::int64_t n_train = static_cast<std::int64_t>(997 * 0.7);  // 697
  const std::string train_text = f.data->training_text();
  ASSERT_EQ(text.compare(0, train_text.size(), train_text), 0);  // a prefix
  EXPECT_EQ(f.tokenizer->encode(train_text),
            std::vector<std::int64_t>(f.stream.begin(), f.stream.begin() + n_train));
  // Everything after it is the val split, which the val windows tile.
  const std::string val_text = text.substr(train_text.size());
  EXPECT_EQ(f.tokenizer->encode(val_text).size(), static_cast<std::size_t>(n - n_train));
  const std::int64_t windows = f.data->num_examples(Split::kVal);
  const std::string tiled =
      f.tokenizer->decode(values_of(f.data->slice(Split::kVal, 0, windows).inputs));
  EXPECT_EQ(val_text.compare(0, tiled.size(), tiled), 0);
}

TEST(TextFile, TrainAndValWindowsNeverCrossTheBoundary) {
  Fixture f(synthetic_text(600), 0.2, 16);  // train [0, 480), val [480, 600)
  auto gen = generator(7);
  for (int round = 0; round < 20; ++round) {
    expect_windows_of(f.data->sample(Split::kTrain, 32, gen), f.stream, 0, 480 - 16 - 1);
    expect_windows_of(f.data->sample(Split::kVal, 32, gen), f.stream, 480, 600 - 16 - 1);
  }
}

TEST(TextFile, ZeroValFractionTrainsOnEverything) {
  Fixture f(synthetic_text(100), 0.0, 9);
  EXPECT_FALSE(f.data->has_split(Split::kVal));
  EXPECT_EQ(f.data->training_text(), f.text);
  EXPECT_EQ(f.data->num_examples(Split::kTrain), 99 / 9);
  auto gen = generator(1);
  lmrun::Error e = error_from([&] { f.data->sample(Split::kVal, 2, gen); });
  EXPECT_THAT(e.what(), HasSubstr("no val split"));
}

// ---------------------------------------------------------------------------------------------
// Batches

TEST(TextFile, SampleGivesShiftedContiguousInt64Windows) {
  Fixture f(synthetic_text(500), 0.1, 12);
  auto gen = generator(1337);
  Batch batch = f.data->sample(Split::kTrain, 6, gen);
  EXPECT_EQ(batch.inputs.sizes(), (std::vector<std::int64_t>{6, 12}));
  EXPECT_EQ(batch.targets.sizes(), (std::vector<std::int64_t>{6, 12}));
  EXPECT_EQ(batch.inputs.scalar_type(), at::kLong);
  EXPECT_EQ(batch.targets.scalar_type(), at::kLong);
  EXPECT_TRUE(batch.inputs.is_contiguous());
  EXPECT_TRUE(batch.targets.is_contiguous());
  EXPECT_FALSE(batch.mask.defined());
  EXPECT_TRUE(at::equal(batch.inputs.narrow(1, 1, 11), batch.targets.narrow(1, 0, 11)));
  expect_windows_of(batch, f.stream, 0, 450 - 12 - 1);
}

TEST(TextFile, SampleIsDeterministicInTheGenerator) {
  Fixture f(synthetic_text(2000), 0.1, 16);
  auto a = generator(42);
  auto b = generator(42);
  auto c = generator(43);
  const Batch first = f.data->sample(Split::kTrain, 16, a);
  EXPECT_TRUE(at::equal(first.inputs, f.data->sample(Split::kTrain, 16, b).inputs));
  EXPECT_FALSE(at::equal(first.inputs, f.data->sample(Split::kTrain, 16, c).inputs));
  // The generator advances: the next draw differs from the first.
  EXPECT_FALSE(at::equal(first.inputs, f.data->sample(Split::kTrain, 16, a).inputs));
}

TEST(TextFile, SampleCoversEveryStartIncludingTheLast) {
  Fixture f(synthetic_text(40), 0.0, 36);  // starts in [0, 4)
  auto gen = generator(3);
  std::vector<bool> seen(4, false);
  for (int round = 0; round < 50; ++round) {
    const Batch batch = f.data->sample(Split::kTrain, 4, gen);
    const std::vector<std::int64_t> inputs = values_of(batch.inputs);
    for (std::int64_t b = 0; b < 4; ++b) {
      for (std::int64_t s = 0; s < 4; ++s) {
        if (std::equal(f.stream.begin() + s, f.stream.begin() + s + 36, inputs.begin() + b * 36)) {
          seen[static_cast<std::size_t>(s)] = true;
        }
      }
    }
  }
  EXPECT_THAT(seen, testing::Each(true));
}

TEST(TextFile, SliceReturnsTheNonOverlappingWindowsInOrder) {
  Fixture f(synthetic_text(1000), 0.1, 10);
  const std::int64_t T = 10;
  Batch batch = f.data->slice(Split::kTrain, 3, 7);
  ASSERT_EQ(batch.inputs.sizes(), (std::vector<std::int64_t>{4, T}));
  EXPECT_TRUE(batch.inputs.is_contiguous());
  const std::vector<std::int64_t> inputs = values_of(batch.inputs);
  const std::vector<std::int64_t> targets = values_of(batch.targets);
  for (std::int64_t i = 0; i < 4; ++i) {
    const auto start = f.stream.begin() + (3 + i) * T;
    EXPECT_TRUE(std::equal(start, start + T, inputs.begin() + i * T)) << "window " << 3 + i;
    EXPECT_TRUE(std::equal(start + 1, start + T + 1, targets.begin() + i * T))
        << "window " << 3 + i;
  }
  // The last window's target is the split's last token or before it.
  const std::int64_t count = f.data->num_examples(Split::kTrain);
  EXPECT_EQ(count, 89);
  Batch last = f.data->slice(Split::kTrain, count - 1, count);
  EXPECT_EQ(values_of(last.targets).back(), f.stream[static_cast<std::size_t>(count * T)]);
  EXPECT_EQ(f.data->slice(Split::kTrain, 5, 5).inputs.size(0), 0);
  // A batch is a copy: writing into it leaves the dataset alone.
  batch.inputs.fill_(0);
  EXPECT_EQ(values_of(f.data->slice(Split::kTrain, 3, 4).inputs),
            std::vector<std::int64_t>(f.stream.begin() + 30, f.stream.begin() + 40));
  lmrun::Error e = error_from([&] { f.data->slice(Split::kTrain, 0, count + 1); });
  EXPECT_THAT(e.what(), HasSubstr("outside [0, 89)"));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(TextFile, MissingFileIsAnErrorWithThePathAndAHint) {
  lmrun::test::TempDir dir;
  const auto path = dir / "no_such_corpus.txt";
  lmrun::Error e = error_from([&] { make_dataset(path, 0.1, 64); });
  EXPECT_THAT(e.what(), HasSubstr("dataset 'text_file'"));
  EXPECT_THAT(e.what(), HasSubstr(path.string()));
  EXPECT_THAT(e.hint(), HasSubstr("path"));
}

TEST(TextFile, EmptyFileIsAnErrorNamingIt) {
  lmrun::test::TempDir dir;
  lmrun::test::write_file(dir / "empty.txt", "");
  lmrun::Error e = error_from([&] { make_dataset(dir / "empty.txt", 0.1, 64); });
  EXPECT_THAT(e.what(), HasSubstr((dir / "empty.txt").string()));
  EXPECT_THAT(e.what(), HasSubstr("empty"));
}

TEST(TextFile, InvalidUtf8IsAnErrorWithItsByteOffset) {
  lmrun::test::TempDir dir;
  lmrun::test::write_file(dir / "latin1.txt", "caf\xE9 au lait");
  lmrun::Error e = error_from([&] { make_dataset(dir / "latin1.txt", 0.1, 4); });
  EXPECT_THAT(e.what(), HasSubstr("byte offset 3"));
  EXPECT_THAT(e.what(), HasSubstr((dir / "latin1.txt").string()));
}

TEST(TextFile, TooSmallASplitIsAnErrorSayingWhatToDo) {
  lmrun::test::TempDir dir;
  lmrun::test::write_file(dir / "tiny.txt", "hello world");
  auto data = make_dataset(dir / "tiny.txt", 0.1, 64);
  auto tokenizer = make_char();
  tokenizer->fit("hello world");  // the whole text: 'd' is only in the val split
  lmrun::Error train = error_from([&] { data->prepare(*tokenizer); });
  EXPECT_THAT(train.what(), HasSubstr((dir / "tiny.txt").string()));
  EXPECT_THAT(train.what(), HasSubstr("train split"));
  EXPECT_THAT(train.what(), HasSubstr("block_size + 1 = 65"));
  EXPECT_THAT(train.hint(), HasSubstr("smaller block_size"));

  // 200 tokens, val_fraction 0.05: 10 val tokens cannot hold one window of 16.
  const std::string text = synthetic_text(200);
  lmrun::test::write_file(dir / "short_val.txt", text);
  auto short_val = make_dataset(dir / "short_val.txt", 0.05, 16);
  auto whole = make_char();
  whole->fit(text);
  lmrun::Error val = error_from([&] { short_val->prepare(*whole); });
  EXPECT_THAT(val.what(), HasSubstr("val split"));
  EXPECT_THAT(val.what(), HasSubstr("has 10 tokens"));
}

TEST(TextFile, UsingSplitsBeforePrepareIsAnError) {
  lmrun::test::TempDir dir;
  lmrun::test::write_file(dir / "corpus.txt", synthetic_text(100));
  auto data = make_dataset(dir / "corpus.txt", 0.1, 4);
  auto gen = generator(0);
  EXPECT_THAT(error_from([&] { data->sample(Split::kTrain, 2, gen); }).what(),
              HasSubstr("before prepare()"));
  EXPECT_THAT(error_from([&] { data->num_examples(Split::kTest); }).what(),
              HasSubstr("no test split"));
}

TEST(TextFile, EncodingErrorsNameTheFile) {
  lmrun::test::TempDir dir;
  lmrun::test::write_file(dir / "corpus.txt",
                          "abcdefgh"
                          "XYZ");
  auto data = make_dataset(dir / "corpus.txt", 0.1, 2);
  auto tokenizer = make_char();
  tokenizer->fit(data->training_text());  // "abcdefghX": Y and Z are unknown
  lmrun::Error e = error_from([&] { data->prepare(*tokenizer); });
  EXPECT_THAT(e.what(), HasSubstr((dir / "corpus.txt").string()));
  EXPECT_THAT(e.what(), HasSubstr("U+0059 'Y' at byte offset 9"));
}

// ---------------------------------------------------------------------------------------------
// tinyshakespeare, as experiments/gpt_tiny.toml reads it

TEST(TextFile, TinyShakespeareMatchesNanoGptsSplit) {
  const auto path = lmrun::test::source_dir() / "data/tinyshakespeare/input.txt";
  auto data = make_dataset(path, 0.1, 64);
  auto tokenizer = make_char();
  tokenizer->fit(data->training_text());
  EXPECT_EQ(tokenizer->vocab_size(), 65);
  data->prepare(*tokenizer);
  EXPECT_EQ(data->training_text().size(), 1003854u);  // ASCII: bytes are characters
  EXPECT_EQ(data->num_examples(Split::kTrain), (1003854 - 1) / 64);
  EXPECT_EQ(data->num_examples(Split::kVal), (111540 - 1) / 64);
  auto gen = generator(1337);
  Batch batch = data->sample(Split::kTrain, 12, gen);
  EXPECT_EQ(batch.inputs.sizes(), (std::vector<std::int64_t>{12, 64}));
  EXPECT_EQ(tokenizer->decode(values_of(data->slice(Split::kTrain, 0, 1).inputs)),
            data->training_text().substr(0, 64));
}

}  // namespace
