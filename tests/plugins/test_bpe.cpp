// The `bpe` tokenizer through the real plugin loader: GPT-2's vocabulary encoding byte-exactly
// (conformance cases generated with JavaScript reference encoders, scripts/gpt2_conformance.mjs),
// special-token policies, a dataset's markup tokens, any byte string round-tripping, training
// determinism, tokenizer.json round trips and the errors for files that do not fit.
#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lmrun/tokenizer.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using lmrun::Tokenizer;
using lmrun::test::error_of;
using lmrun::test::TempDir;
using lmrun::test::write_file;
using testing::HasSubstr;
using Ids = std::vector<std::int64_t>;

// `markup`: the dataset's special tokens (TokenizerContext::special_tokens).
std::shared_ptr<Tokenizer> make(const std::map<std::string, lmrun::Value>& overrides = {},
                                std::vector<std::string> markup = {}) {
  return lmrun::test::plugin_registry().create<Tokenizer>(
      "bpe", lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "bpe", overrides),
      lmrun::TokenizerContext{std::move(markup)});
}

std::string data_file(const std::string& name) {
  return (lmrun::test::source_dir() / "data" / "gpt2" / name).string();
}

std::shared_ptr<Tokenizer> gpt2(const std::string& special = "refused") {
  return make({{"vocab", data_file("encoder.json")},
               {"merges", data_file("vocab.bpe")},
               {"special", special}});
}

std::string read(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Bpe, Gpt2EncodesAsGpt2) {
  auto t = gpt2();
  EXPECT_EQ(t->vocab_size(), 50257);
  EXPECT_EQ(t->encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(t->encode(" Hello"), (Ids{18435}));
  EXPECT_EQ(t->special_id("<|endoftext|>"), 50256);
  EXPECT_EQ(t->decode({15496, 995}), "Hello world");
  EXPECT_TRUE(t->encode("").empty());
}

TEST(Bpe, Gpt2ConformanceCasesFromReferenceEncoders) {
  const nlohmann::json cases = nlohmann::json::parse(
      read(lmrun::test::source_dir() / "tests" / "fixtures" / "data" / "gpt2_conformance.json"));
  auto t = gpt2("text");  // the reference encoders were run with special tokens as text
  std::size_t checked = 0;
  for (const auto& c : cases.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    const Ids expected = c.at("ids").get<Ids>();
    EXPECT_EQ(t->encode(text), expected) << "text: " << c.at("text").dump();
    EXPECT_EQ(t->decode(expected), text);
    ++checked;
  }
  EXPECT_GE(checked, 100u);
}

TEST(Bpe, Gpt2OnAllOfTinyshakespeareAsJsTiktoken) {
  // js-tiktoken 1.0.21 (gpt2 ranks) on data/tinyshakespeare/input.txt: 338,025 ids whose sum
  // weighted by (position % 1000 + 1) is 703,527,866,670 (computed with node, see the README).
  const std::string text =
      read(lmrun::test::source_dir() / "data" / "tinyshakespeare" / "input.txt");
  const Ids ids = gpt2()->encode(text);
  ASSERT_EQ(ids.size(), 338025u);
  EXPECT_EQ((Ids{ids.begin(), ids.begin() + 5}), (Ids{5962, 22307, 25, 198, 8421}));
  std::int64_t weighted = 0;
  for (std::size_t k = 0; k < ids.size(); ++k)
    weighted += ids[k] * static_cast<std::int64_t>(k % 1000 + 1);
  EXPECT_EQ(weighted, 703527866670);
}

TEST(Bpe, SpecialTokensByPolicy) {
  const std::string text = "a<|endoftext|>b";
  EXPECT_EQ(gpt2("allowed")->encode(text), (Ids{64, 50256, 65}));
  // As text: "<|endoftext|>" is its characters' tokens, never 50256.
  const Ids as_text = gpt2("text")->encode(text);
  EXPECT_GT(as_text.size(), 3u);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 50256), 0);
  EXPECT_EQ(gpt2("text")->decode(as_text), text);
  EXPECT_THAT(error_of([&] { gpt2("refused")->encode(text); }),
              HasSubstr("the text holds the special token <|endoftext|> at byte 1"));
  EXPECT_EQ(gpt2("allowed")->decode({50256}), "<|endoftext|>");
}

TEST(Bpe, AnyBytesRoundTripAndBadIdsAreErrors) {
  auto t = gpt2();
  // Invalid UTF-8 (a lone continuation byte, a truncated sequence, 0xFF) and a NUL: each
  // non-UTF-8 byte is a token of its own, so decoding gives back the same bytes.
  const std::string bytes = std::string("ok \x80\xff caf\xc3 \xe2\x82", 13) + std::string(1, '\0');
  EXPECT_EQ(t->decode(t->encode(bytes)), bytes);
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(t->decode(t->encode(all + all)), all + all);
  EXPECT_THAT(error_of([&] {
                t->decode({1, 50257});
              }),
              HasSubstr("id 50257 at position 1 is outside the vocabulary of 50257"));
  EXPECT_THAT(error_of([&] { t->decode({-1}); }), HasSubstr("id -1 at position 0"));
}

TEST(Bpe, LongWordsTakeTheHeapPathToTheSameMerges) {
  // Words past 48 bytes merge through a heap instead of GPT-2's list loop. A word of 49 bytes
  // and the same word cut in two by a space (each part short) must give the same tokens for the
  // parts the space does not touch: here, a long run of one repeated syllable. (The conformance
  // cases hold long words checked against the reference encoders.)
  auto t = gpt2();
  std::string word;
  for (int i = 0; i < 40; ++i) word += "ab";  // 80 bytes: "abab...": the heap path
  const Ids ids = t->encode(word);
  EXPECT_EQ(t->decode(ids), word);
  EXPECT_LE(ids.size(), word.size() / 2);  // merges happened along the whole word
  // "ab" is a GPT-2 token and merges before any pair across two syllables ("ba"), so every
  // token of the run decodes to a whole number of "ab"s.
  for (auto id : ids) EXPECT_EQ(t->decode({id}).size() % 2, 0u) << t->decode({id});
}

TEST(Bpe, TrainingIsDeterministicAndRespectsItsLimits) {
  std::string corpus;
  for (int i = 0; i < 50; ++i)
    corpus += "the cat sat on the mat. the dog sat on the log. <|endoftext|> low lower lowest\n";
  auto train = [&](std::int64_t vocab_size, std::int64_t min_frequency) {
    auto t = make({{"vocab_size", vocab_size},
                   {"min_frequency", min_frequency},
                   {"special", std::string("allowed")}});
    t->fit(corpus);
    return t;
  };
  auto a = train(1000, 2), b = train(1000, 2);
  EXPECT_EQ(a->special_id("<|endoftext|>"), 0);  // specials first, then the 256 bytes
  EXPECT_EQ(a->encode(corpus), b->encode(corpus));
  EXPECT_EQ(a->decode(a->encode(corpus)), corpus);
  // Every pair in the corpus is seen 50 times, so training merges until each pre-token is one
  // token and then stops short of vocab_size: 20 tokens a line ("the", " cat", ..., "\n").
  EXPECT_LT(a->vocab_size(), 1000);
  EXPECT_EQ(a->encode(corpus).size(), 50u * 20u);
  EXPECT_EQ(a->encode(" lowest").size(), 1u);
  // The special token never takes part in a merge and encodes to its id.
  EXPECT_EQ(a->encode("<|endoftext|>"), (Ids{0}));
  // vocab_size stops training; the first merges are the same (the most frequent pairs).
  auto small = train(270, 2);
  EXPECT_EQ(small->vocab_size(), 270);
  EXPECT_EQ(small->decode(small->encode(corpus)), corpus);
  EXPECT_GT(small->encode(corpus).size(), a->encode(corpus).size());
  // min_frequency: no pair is seen 10,000 times, so nothing is merged.
  EXPECT_EQ(train(1000, 10000)->vocab_size(), 257);
  EXPECT_THAT(error_of([&] {
                make({{"vocab_size", std::int64_t{200}}});
              }),
              HasSubstr("vocab_size: 200 is out of range: expected >= 257"));
}

TEST(Bpe, TokenizerJsonRoundTrips) {
  TempDir dir;
  auto original = gpt2("allowed");
  fs::create_directories(dir / "saved");
  original->save(dir / "saved");
  const std::string json = read(dir / "saved" / "tokenizer.json");
  EXPECT_THAT(json, HasSubstr("\"type\": \"BPE\""));
  EXPECT_THAT(json, HasSubstr("\"Ġt\": 256"));  // GPT-2's token 256 is " t"
  EXPECT_THAT(json, HasSubstr("\"Ġ t\""));      // its first merge
  auto loaded = make({{"special", std::string("allowed")}});
  loaded->load(dir / "saved");
  const std::string text = "Tokenizers: 東京 🇫🇷 it's   3.14159 <|endoftext|>\n\n";
  EXPECT_EQ(loaded->encode(text), original->encode(text));
  EXPECT_EQ(loaded->vocab_size(), 50257);
  // The same file named by `file`, and Hugging Face's newer merge form (pairs as arrays).
  EXPECT_EQ(make({{"file", (dir / "saved" / "tokenizer.json").string()},
                  {"special", std::string("allowed")}})
                ->encode(text),
            original->encode(text));
  nlohmann::json doc = nlohmann::json::parse(json);
  for (auto& merge : doc["model"]["merges"]) {
    const std::string m = merge.get<std::string>();
    merge = nlohmann::json::array({m.substr(0, m.find(' ')), m.substr(m.find(' ') + 1)});
  }
  write_file(dir / "arrays.json", doc.dump());
  EXPECT_EQ(make({{"file", (dir / "arrays.json").string()}, {"special", std::string("allowed")}})
                ->encode(text),
            original->encode(text));
  // A trained tokenizer's save and load: the conformance suite (conformance.bpe.trained).
}

// A chat corpus's markup, as the `conversations` dataset renders it.
const std::vector<std::string> kChatMarkup = {"|system|", "|user|", "|assistant|", "|start|",
                                              "|end|"};

std::string chat_corpus() {
  std::string corpus;
  for (int i = 0; i < 40; ++i) {
    corpus += "|system||start|You are JULIET.|end||user||start|Good morrow, lady " +
              std::to_string(i) + ".|end||assistant||start|Good morrow, end|less night.|end|\n";
  }
  return corpus;
}

TEST(Bpe, TrainedMarkupTokensAreOneIdEachWhateverThePolicy) {
  const std::string corpus = chat_corpus();
  auto t = make({{"vocab_size", std::int64_t{400}}}, kChatMarkup);  // special = "refused"
  t->fit(corpus);
  // <|endoftext|> 0, the markup tokens 1..5, then the 256 bytes.
  EXPECT_EQ(t->special_id("<|endoftext|>"), 0);
  for (std::size_t i = 0; i < kChatMarkup.size(); ++i) {
    const auto id = static_cast<std::int64_t>(i) + 1;
    EXPECT_EQ(t->special_id(kChatMarkup[i]), id);
    EXPECT_EQ(t->encode(kChatMarkup[i]), (Ids{id}));
    EXPECT_EQ(t->decode({id}), kChatMarkup[i]);
  }
  const Ids ids = t->encode(corpus);
  EXPECT_EQ(t->decode(ids), corpus);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), t->special_id("|end|")), 3 * 40);
  // No merge spans a markup token, and "end|" inside the text is ordinary text.
  for (std::int64_t id = 6; id < t->vocab_size(); ++id) {
    EXPECT_EQ(t->decode({id}).find("|start|"), std::string::npos) << t->decode({id});
  }
  // The tokenizer's own special token keeps its policy.
  EXPECT_THAT(error_of([&] { t->encode("|end|<|endoftext|>"); }),
              HasSubstr("special token <|endoftext|> at byte 5"));
}

TEST(Bpe, MarkupTokensAreAppendedToAGivenVocabulary) {
  auto t = make({{"vocab", data_file("encoder.json")}, {"merges", data_file("vocab.bpe")}},
                {"|user|", "|end|"});
  EXPECT_EQ(t->vocab_size(), 50259);
  EXPECT_EQ(t->special_id("|user|"), 50257);
  EXPECT_EQ(t->special_id("|end|"), 50258);
  const std::string text = "|user|Hello world|end|";
  EXPECT_EQ(t->encode(text), (Ids{50257, 15496, 995, 50258}));
  EXPECT_EQ(t->decode(t->encode(text)), text);
  // Without them: GPT-2 exactly, "|user|" being ordinary text.
  EXPECT_EQ(gpt2()->vocab_size(), 50257);
  EXPECT_EQ(gpt2()->special_id("|user|"), -1);
  EXPECT_EQ(gpt2()->decode(gpt2()->encode(text)), text);
  EXPECT_GT(gpt2()->encode(text).size(), 4u);
}

TEST(Bpe, SaveAndLoadKeepTheMarkupTokens) {
  const std::string corpus = chat_corpus();
  auto original = make({{"vocab_size", std::int64_t{400}}}, kChatMarkup);
  original->fit(corpus);
  TempDir dir;
  fs::create_directories(dir / "saved");
  original->save(dir / "saved");
  // Hugging Face's form: added tokens that are not special, matched in any input.
  const nlohmann::json doc = nlohmann::json::parse(read(dir / "saved" / "tokenizer.json"));
  ASSERT_EQ(doc["added_tokens"].size(), 6u);
  EXPECT_EQ(doc["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(doc["added_tokens"][0]["special"], true);
  EXPECT_EQ(doc["added_tokens"][5]["content"], "|end|");
  EXPECT_EQ(doc["added_tokens"][5]["special"], false);

  auto loaded = make();  // no markup of its own: the saved tokens are kept
  loaded->load(dir / "saved");
  EXPECT_EQ(loaded->vocab_size(), original->vocab_size());
  EXPECT_EQ(loaded->special_id("|end|"), 5);
  EXPECT_EQ(loaded->encode(corpus), original->encode(corpus));
  EXPECT_EQ(loaded->decode(loaded->encode(corpus)), corpus);
}

TEST(Bpe, WithoutMarkupTokensNothingChanges) {
  const std::string corpus = chat_corpus();
  auto plain = make({{"vocab_size", std::int64_t{400}}});
  auto empty = make({{"vocab_size", std::int64_t{400}}}, {});
  plain->fit(corpus);
  empty->fit(corpus);
  EXPECT_EQ(empty->vocab_size(), plain->vocab_size());
  EXPECT_EQ(empty->encode(corpus), plain->encode(corpus));
  EXPECT_EQ(empty->special_id("|end|"), -1);
  TempDir dir;
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  plain->save(dir / "a");
  empty->save(dir / "b");
  EXPECT_EQ(read(dir / "a" / "tokenizer.json"), read(dir / "b" / "tokenizer.json"));
  EXPECT_THAT(error_of([&] { make({}, {"|a|", "|a|"}); }), HasSubstr("listed twice"));
  EXPECT_THAT(error_of([&] { make({}, {""}); }), HasSubstr("is empty"));
}

TEST(Bpe, FilesThatDoNotFitAreErrorsNamingThem) {
  TempDir dir;
  EXPECT_THAT(error_of([&] {
                make({{"vocab", data_file("encoder.json")}});
              }),
              HasSubstr("`vocab` and `merges` come together"));
  write_file(dir / "bad.bpe", "#version: 0.2\nĠ t\nthis line has three\n");
  EXPECT_THAT(
      error_of([&] {
        make({{"vocab", data_file("encoder.json")}, {"merges", (dir / "bad.bpe").string()}});
      }),
      HasSubstr("bad.bpe:3: expected 'left right'"));
  write_file(dir / "missing.bpe", "Ġ zzzzqq\n");
  EXPECT_THAT(
      error_of([&] {
        make({{"vocab", data_file("encoder.json")}, {"merges", (dir / "missing.bpe").string()}});
      }),
      HasSubstr("names a token the vocabulary lacks"));
  write_file(dir / "norm.json",
             R"({"normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel"},
                 "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  EXPECT_THAT(error_of([&] {
                make({{"file", (dir / "norm.json").string()}});
              }),
              HasSubstr("it has a normalizer"));
  write_file(dir / "wordpiece.json", R"({"model": {"type": "WordPiece"}})");
  EXPECT_THAT(error_of([&] {
                make({{"file", (dir / "wordpiece.json").string()}});
              }),
              HasSubstr("its model is not a BPE model"));
  write_file(dir / "broken.json", "{\"model\": ");
  EXPECT_THAT(error_of([&] {
                make({{"file", (dir / "broken.json").string()}});
              }),
              HasSubstr("is not valid JSON"));
  EXPECT_THAT(error_of([&] { make()->encode("x"); }),
              HasSubstr("encode before the tokenizer has a vocabulary"));
  EXPECT_THAT(error_of([&] { make()->load(dir.path()); }), HasSubstr("no saved tokenizer"));
}

}  // namespace
