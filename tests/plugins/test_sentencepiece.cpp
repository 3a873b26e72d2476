// The `sentencepiece` tokenizer through the real plugin loader, in a process that has LibTorch's
// protobuf loaded (the clash its bridge exists for): unigram and BPE models trained on
// tinyshakespeare in memory, lossless round trips, SentencePiece's own normalising settings,
// training determinism, .model files, a dataset's markup tokens, and the errors.
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lmrun/tokenizer.h"
#include "lmrun/util/files.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using lmrun::Tokenizer;
using lmrun::test::error_of;
using lmrun::test::TempDir;
using testing::HasSubstr;
using Ids = std::vector<std::int64_t>;

// `markup`: the dataset's special tokens (TokenizerContext::special_tokens).
std::shared_ptr<Tokenizer> make(const std::map<std::string, lmrun::Value>& overrides = {},
                                std::vector<std::string> markup = {}) {
  return lmrun::test::plugin_registry().create<Tokenizer>(
      "sentencepiece",
      lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "sentencepiece", overrides),
      lmrun::TokenizerContext{std::move(markup)});
}

const std::string& shakespeare() {
  static const std::string text =
      lmrun::read_file(lmrun::test::source_dir() / "data" / "tinyshakespeare" / "input.txt")
          .substr(0, 200000);
  return text;
}

std::shared_ptr<Tokenizer> trained(const std::map<std::string, lmrun::Value>& overrides) {
  auto t = make(overrides);
  t->fit(shakespeare());
  return t;
}

// Newlines, tabs, runs of spaces, a ligature NFKC would rewrite, and characters the training text
// never had (CJK, an emoji): all must come back byte for byte.
const std::string kTricky = "ROMEO:\nBut  soft, what\tlight ﬁ 😀 日本語!\n\n  End ";

TEST(SentencePiece, RunsBesideLibTorchsProtobuf) {
  // The reason for the bridge: without it every call dies on protobuf's version check.
  EXPECT_THAT(lmrun::read_file("/proc/self/maps"), HasSubstr("libprotobuf.so"));
  EXPECT_EQ(trained({{"vocab_size", std::int64_t{400}}})->vocab_size(), 400);
}

TEST(SentencePiece, TrainsUnigramAndBpeModelsThatRoundTripExactly) {
  const std::string line = "ROMEO: But soft, what light through yonder window breaks?";
  for (const char* type : {"unigram", "bpe"}) {
    SCOPED_TRACE(type);
    auto t = trained({{"vocab_size", std::int64_t{800}}, {"model_type", std::string(type)}});
    EXPECT_EQ(t->vocab_size(), 800);
    const std::string text = shakespeare().substr(0, 20000);
    const Ids ids = t->encode(text);
    EXPECT_LT(ids.size() * 3, text.size() * 2);  // pieces hold 1.5 characters or more
    EXPECT_EQ(t->decode(ids), text);
    EXPECT_EQ(t->decode(t->encode(line)), line);
    EXPECT_EQ(t->decode(t->encode(kTricky)), kTricky);
    for (std::int64_t id : t->encode(kTricky)) EXPECT_NE(id, t->special_id("<unk>"));
    EXPECT_EQ(t->special_id("<unk>"), 0);
    EXPECT_EQ(t->special_id("<bos>"), 1);
    EXPECT_EQ(t->special_id("<eos>"), 2);
    EXPECT_EQ(t->special_id("<pad>"), -1);
    EXPECT_TRUE(t->encode("").empty());
  }
  EXPECT_EQ(trained({{"vocab_size", std::int64_t{400}}, {"pad", true}})->special_id("<pad>"), 3);
}

TEST(SentencePiece, SentencePiecesOwnDefaultsNormaliseAndLoseUnknownCharacters) {
  auto t = trained({{"vocab_size", std::int64_t{400}},
                    {"normalization", std::string("nmt_nfkc")},
                    {"byte_fallback", false},
                    {"remove_extra_whitespaces", true}});
  EXPECT_EQ(t->decode(t->encode("  soft,\n what  ﬁ")), "soft, what fi");  // NFKC, spaces
  const Ids ids = t->encode("日");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), t->special_id("<unk>"));
}

TEST(SentencePiece, TrainingIsDeterministic) {
  TempDir dir;
  for (const char* run : {"a", "b"}) {
    fs::create_directories(dir / run);
    trained({{"vocab_size", std::int64_t{500}}})->save(dir / run);
  }
  EXPECT_EQ(lmrun::read_file(dir / "a" / "sentencepiece.model"),
            lmrun::read_file(dir / "b" / "sentencepiece.model"));
}

// save() then load(): the conformance suite (conformance.sentencepiece). Here: what save writes
// is a SentencePiece .model file that the `model` parameter takes as it is.
TEST(SentencePiece, SavedModelFileLoadsAsAGivenModel) {
  TempDir dir;
  auto original = trained({{"vocab_size", std::int64_t{400}}, {"model_type", std::string("bpe")}});
  fs::create_directories(dir / "saved");
  original->save(dir / "saved");
  EXPECT_EQ(fs::directory_iterator(dir / "saved")->path().filename(), "sentencepiece.model");
  auto from_file = make({{"model", (dir / "saved" / "sentencepiece.model").string()}});
  from_file->fit("a given model is kept: this text trains nothing");
  EXPECT_EQ(from_file->encode(kTricky), original->encode(kTricky));
}

const std::vector<std::string> kChatMarkup = {"|system|", "|user|", "|assistant|", "|start|",
                                              "|end|"};

// tinyshakespeare's speeches as chat turns: "|user||start|...|end||assistant||start|...|end|".
std::string chat_text() {
  std::string out;
  std::size_t pos = 0;
  for (int turn = 0; pos < shakespeare().size() && turn < 400; ++turn) {
    const std::size_t end = std::min(shakespeare().find("\n\n", pos), shakespeare().size());
    out += std::string(turn % 2 ? "|assistant|" : "|user|") + "|start|" +
           shakespeare().substr(pos, end - pos) + "|end|";
    if (turn % 2) out += "\n";
    pos = end + 2;
  }
  return out;
}

TEST(SentencePiece, MarkupTokensAreUserDefinedSymbolsOneIdEach) {
  for (const char* type : {"unigram", "bpe"}) {
    SCOPED_TRACE(type);
    auto t =
        make({{"vocab_size", std::int64_t{500}}, {"model_type", std::string(type)}}, kChatMarkup);
    const std::string text = chat_text();
    t->fit(text);
    EXPECT_EQ(t->vocab_size(), 500);  // the markers are among the pieces
    for (const auto& token : kChatMarkup) {
      const std::int64_t id = t->special_id(token);
      EXPECT_GE(id, 0) << token;
      EXPECT_EQ(t->encode(token), (Ids{id})) << token;
      EXPECT_EQ(t->decode({id}), token);
    }
    const Ids ids = t->encode(text);
    EXPECT_EQ(t->decode(ids), text);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), t->special_id("|end|")), 400);
    // Pieces encoded apart join as the whole text does (no dummy prefix).
    Ids apart = t->encode("|user|");
    for (const auto& piece : {"|start|", "Good morrow.", "|end|"}) {
      const Ids more = t->encode(piece);
      apart.insert(apart.end(), more.begin(), more.end());
    }
    EXPECT_EQ(apart, t->encode("|user||start|Good morrow.|end|"));
  }
}

TEST(SentencePiece, SaveAndLoadKeepTheMarkupTokensAndAGivenModelMustHoldThem) {
  TempDir dir;
  auto original = make({{"vocab_size", std::int64_t{500}}}, kChatMarkup);
  original->fit(chat_text());
  fs::create_directories(dir / "saved");
  original->save(dir / "saved");
  EXPECT_EQ(lmrun::read_file(dir / "saved" / "markup_tokens.txt"),
            "|system|\n|user|\n|assistant|\n|start|\n|end|\n");
  auto loaded = make();  // no markup of its own: the saved list is kept
  loaded->load(dir / "saved");
  EXPECT_EQ(loaded->special_id("|end|"), original->special_id("|end|"));
  EXPECT_EQ(loaded->encode(chat_text()), original->encode(chat_text()));
  // A given model lacking a marker is refused, naming it.
  auto plain = trained({{"vocab_size", std::int64_t{400}}});
  fs::create_directories(dir / "plain");
  plain->save(dir / "plain");
  EXPECT_FALSE(fs::exists(dir / "plain" / "markup_tokens.txt"));  // as before markup tokens
  EXPECT_EQ(plain->special_id("|end|"), -1);
  EXPECT_THAT(error_of([&] {
                make({{"model", (dir / "plain" / "sentencepiece.model").string()}}, {"|end|"});
              }),
              HasSubstr("has no piece for the dataset's special token '|end|'"));
  EXPECT_THAT(error_of([&] { make({}, {"a,b"}); }), HasSubstr("holds a comma"));
}

TEST(SentencePiece, ErrorsNameTheProblem) {
  TempDir dir;
  lmrun::test::write_file(dir / "bad.model", "not a protobuf");
  EXPECT_THAT(error_of([&] {
                make({{"model", (dir / "bad.model").string()}});
              }),
              HasSubstr("bad.model is not a SentencePiece model"));
  EXPECT_THAT(error_of([&] {
                make({{"model", (dir / "missing.model").string()}});
              }),
              HasSubstr("cannot read " + (dir / "missing.model").string()));
  EXPECT_THAT(error_of([&] { make()->encode("x"); }),
              HasSubstr("encode before the tokenizer has a model"));
  EXPECT_THAT(error_of([&] { make()->load(dir / "none"); }), HasSubstr("no saved tokenizer"));
  // 256 byte pieces and the text's characters do not fit in 100.
  const lmrun::Error too_small = lmrun::test::error_from([&] {
    trained({{"vocab_size", std::int64_t{100}}});
  });
  EXPECT_THAT(too_small.what(), HasSubstr("training failed"));
  EXPECT_THAT(too_small.hint(), HasSubstr("raise vocab_size"));
  const lmrun::Error too_large = lmrun::test::error_from([&] {
    make({{"vocab_size", std::int64_t{5000}}})->fit("tiny text\n");
  });
  EXPECT_THAT(too_large.hint(), HasSubstr("lower vocab_size"));
  auto t = trained({{"vocab_size", std::int64_t{400}}});
  EXPECT_THAT(error_of([&] {
                t->decode({5, 400});
              }),
              HasSubstr("id 400 at position 1 is outside the vocabulary of 400"));
}

}  // namespace
