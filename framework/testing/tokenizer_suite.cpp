// The tokenizer suite: tokenizer.h's contracts on every tokenizer registration under test
// (conformance.h). No LibTorch here.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lmrun/testing/conformance.h"
#include "lmrun/tokenizer.h"
#include "support.h"

namespace lmrun::testing {
namespace {

// Texts every tokenizer must take: ASCII prose and symbols, 2-, 3- and 4-byte UTF-8, tabs,
// newlines, runs of spaces, spaces at both ends, and nothing at all.
const std::vector<std::string>& samples() {
  static const std::vector<std::string> texts = {
      "The quick brown fox jumps over the lazy dog.",
      "ROMEO: But soft, what light through yonder window breaks?",
      "numbers 0123456789 and symbols (a+b)*c = d; e/f? #1 @home 100% ~x_y|z",
      "caf\u00e9 na\u00efve \u00fcber \u00c6sir \u00f8re \u00e5r \u03b1\u03b2\u03b3",
      "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3002 \u4e2d\u6587 \ud55c\uad6d\uc5b4",
      "emoji \U0001F642\U0001F680 and music \U0001D11E",
      "tabs\tand\nnewlines\n\nand a blank line",
      "multiple   spaces    here",
      "  leading and trailing spaces  ",
      "",
  };
  return texts;
}

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("OPTIONS corpus: cannot read " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// What the tokenizers are fitted on: the samples, often enough for merge-based training to see
// every pair repeated, then the corpus option's text.
const std::string& fit_text(const SuiteOptions& options) {
  static std::string text;
  if (text.empty()) {
    for (int i = 0; i < 20; ++i) {
      for (const std::string& sample : samples()) text += sample + "\n";
    }
    if (!options.corpus.empty()) text += read_text(options.corpus);
  }
  return text;
}

std::string ids_text(const std::vector<std::int64_t>& ids) {
  std::string out = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  return out + "]";
}

class TokenizerConformance : public ::testing::TestWithParam<Subject> {
 protected:
  std::shared_ptr<Tokenizer> make() const { return GetParam().create<Tokenizer>({}); }
  std::shared_ptr<Tokenizer> fitted() const {
    auto tokenizer = make();
    tokenizer->fit(fit_text(GetParam().options));
    return tokenizer;
  }
};

TEST_P(TokenizerConformance, RoundTrip) {
  auto tokenizer = fitted();
  const std::int64_t vocab = tokenizer->vocab_size();
  ASSERT_GT(vocab, 0) << "vocab_size() after fit";
  for (const std::string& text : samples()) {
    SCOPED_TRACE("text \"" + text + "\"");
    const std::vector<std::int64_t> ids = tokenizer->encode(text);
    for (std::int64_t id : ids) {
      ASSERT_TRUE(id >= 0 && id < vocab)
          << "encode gave id " << id << ", outside [0, " << vocab << ")";
    }
    const std::string decoded = tokenizer->decode(ids);
    if (GetParam().options.exact_round_trip) {
      EXPECT_EQ(decoded, text) << "decode(encode(text)) is not the text (ids " << ids_text(ids)
                               << "); a tokenizer that normalises text passes OPTIONS "
                                  "exact_round_trip=false";
    } else {
      EXPECT_EQ(tokenizer->encode(decoded), ids)
          << "encode(decode(ids)) is not ids: decoding \"" << decoded << "\" loses tokens";
    }
  }
}

TEST_P(TokenizerConformance, SaveLoad) {
  auto original = fitted();
  TempFolder folder;
  original->save(folder.path());
  auto loaded = make();
  loaded->load(folder.path());
  EXPECT_EQ(loaded->vocab_size(), original->vocab_size());
  for (const char* special : {"<pad>", "<bos>", "<eos>", "<unk>"}) {
    EXPECT_EQ(loaded->special_id(special), original->special_id(special)) << special;
  }
  for (const std::string& text : samples()) {
    SCOPED_TRACE("text \"" + text + "\"");
    const std::vector<std::int64_t> ids = original->encode(text);
    EXPECT_EQ(loaded->encode(text), ids);
    EXPECT_EQ(loaded->decode(ids), original->decode(ids));
  }
  // The vocabulary itself, id by id (its first 4096): the same text, or an error on both sides.
  const std::int64_t checked = std::min<std::int64_t>(original->vocab_size(), 4096);
  for (std::int64_t id = 0; id < checked; ++id) {
    auto text_of = [id](const Tokenizer& t) -> std::string {
      try {
        return "text " + t.decode({id});
      } catch (const std::exception&) {
        return "an error";
      }
    };
    ASSERT_EQ(text_of(*loaded), text_of(*original)) << "decode({" << id << "})";
  }
}

TEST_P(TokenizerConformance, FitIsDeterministic) {
  auto first = fitted();
  auto second = fitted();
  ASSERT_EQ(first->vocab_size(), second->vocab_size());
  for (const std::string& text : samples()) {
    EXPECT_EQ(first->encode(text), second->encode(text)) << "text \"" << text << "\"";
  }
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TokenizerConformance);
INSTANTIATE_TEST_SUITE_P(Plugin, TokenizerConformance,
                         ::testing::ValuesIn(subjects_of(Kind::kTokenizer)),
                         [](const auto& info) { return test_name(info.param); });

}  // namespace
}  // namespace lmrun::testing
