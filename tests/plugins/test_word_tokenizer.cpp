// The `word` tokenizer through the real loader: ICU word boundaries on tricky text (contractions,
// numbers, punctuation runs, accents, Greek final sigma, CJK, emoji, invalid UTF-8), the
// vocabulary rules (specials, min_freq, max_size, order), truncation, a dataset's markup tokens,
// and load errors.
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lmrun/tokenizer.h"
#include "support/test_support.h"

namespace {

using lmrun::Tokenizer;
using lmrun::test::error_of;
using ::testing::HasSubstr;

// `markup`: the dataset's special tokens (TokenizerContext::special_tokens).
std::shared_ptr<Tokenizer> make(const std::map<std::string, lmrun::Value>& params = {},
                                std::vector<std::string> markup = {}) {
  return lmrun::test::plugin_registry().create<Tokenizer>(
      "word", lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "word", params),
      lmrun::TokenizerContext{std::move(markup)});
}

// The words of `text` as the tokenizer splits it (fitted on the text itself, so none is unknown).
std::vector<std::string> words(const std::string& text, bool lowercase = true) {
  auto t = make({{"lowercase", lowercase}});
  t->fit(text);
  std::vector<std::string> out;
  for (std::int64_t id : t->encode(text)) out.push_back(t->decode({id}));
  return out;
}

using Words = std::vector<std::string>;

TEST(WordTokenizer, SplitsOnUnicodeWordBoundaries) {
  EXPECT_EQ(words("Don't stop\u2014it's 3.14 times BETTER!!"),
            (Words{"don't", "stop", "\u2014", "it's", "3.14", "times", "better", "!", "!"}));
  EXPECT_EQ(words("  tabs\tand\nnewlines  "), (Words{"tabs", "and", "newlines"}));
  EXPECT_EQ(words("Hello, World", false), (Words{"Hello", ",", "World"}));
  // Case folding by Unicode rules: accents kept, Greek capital sigma folds to sigma everywhere.
  EXPECT_EQ(
      words("\u00dcN\u00cfC\u00d6D\u00c9 Caf\u00e9 \u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3"),
      (Words{"\u00fcn\u00efc\u00f6d\u00e9", "caf\u00e9",
             "\u03c3\u03af\u03c3\u03c5\u03c6\u03bf\u03c3"}));
  // Chinese has no spaces: ICU's dictionary finds the words.
  EXPECT_EQ(words("\u6211\u7231\u5317\u4eac"), (Words{"\u6211", "\u7231", "\u5317\u4eac"}));
  EXPECT_EQ(words("I \u2764\ufe0f NY"), (Words{"i", "\u2764\ufe0f", "ny"}));
}

TEST(WordTokenizer, InvalidUtf8BecomesReplacementCharactersNeverACrash) {
  EXPECT_EQ(words("caf\xff ok \xc3"), (Words{"caf", "\ufffd", "ok", "\ufffd"}));
}

TEST(WordTokenizer, VocabularyRulesSpecialsFrequencyOrderAndLimits) {
  auto t = make({{"min_freq", std::int64_t{2}}});
  t->fit("b a a c b a d d");  // a 3, b 2, d 2, c 1 (below min_freq)
  EXPECT_EQ(t->vocab_size(), 5);
  EXPECT_EQ(t->special_id("<pad>"), 0);
  EXPECT_EQ(t->special_id("<unk>"), 1);
  EXPECT_EQ(t->special_id("<bos>"), -1);
  EXPECT_EQ(t->encode("a b d c zebra"), (std::vector<std::int64_t>{2, 3, 4, 1, 1}));
  EXPECT_EQ(t->decode({2, 0, 1, 3}), "a <unk> b");  // padding is dropped

  auto small = make({{"max_size", std::int64_t{3}}});
  small->fit("b a a c b a");
  EXPECT_EQ(small->vocab_size(), 3);
  EXPECT_EQ(small->encode("a b"), (std::vector<std::int64_t>{2, 1}));

  auto truncating = make({{"max_len", std::int64_t{2}}});
  truncating->fit("one two three");
  EXPECT_EQ(truncating->encode("one two three").size(), 2u);

  EXPECT_THAT(error_of([] {
                make({{"max_size", std::int64_t{2}}});
              }),
              HasSubstr("leaves no room for words"));
  EXPECT_THAT(error_of([] { make()->encode("x"); }), HasSubstr("before the vocabulary exists"));
  EXPECT_THAT(error_of([&] { t->decode({5}); }), HasSubstr("id 5 is outside the vocabulary"));
}

const std::vector<std::string> kChatMarkup = {"|system|", "|user|", "|assistant|", "|start|",
                                              "|end|"};
const std::string kChat =
    "|system||start|You are JULIET.|end||user||start|Romeo, Romeo!|end|"
    "|assistant||start|Here, love.|end|";

TEST(WordTokenizer, MarkupTokensAreOneIdEachAsWrittenAndRoundTrip) {
  auto t = make({}, kChatMarkup);
  t->fit(kChat + "\n" + kChat);
  // <pad>, <unk>, the markup tokens 2..6, then the words by frequency.
  for (std::size_t i = 0; i < kChatMarkup.size(); ++i) {
    const auto id = static_cast<std::int64_t>(i) + 2;
    EXPECT_EQ(t->special_id(kChatMarkup[i]), id);
    EXPECT_EQ(t->encode(kChatMarkup[i]), (std::vector<std::int64_t>{id}));
  }
  const std::vector<std::int64_t> ids = t->encode(kChat);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), t->special_id("|end|")), 3);
  // No "system" word: it occurs only inside its marker. Words are folded, markers are not.
  EXPECT_EQ(t->encode("system"), (std::vector<std::int64_t>{1}));
  EXPECT_EQ(t->decode(ids),
            "|system||start|you are juliet .|end||user||start|romeo , romeo !|end|"
            "|assistant||start|here , love .|end|");
  EXPECT_EQ(t->decode(t->encode(t->decode(ids))), t->decode(ids));
  // <pad> and <unk>, 5 markers, 9 words: you are juliet . romeo , ! here love.
  EXPECT_EQ(t->vocab_size(), 2 + 5 + 9);
}

TEST(WordTokenizer, SaveAndLoadKeepTheMarkupTokensAndWithoutThemNothingChanges) {
  lmrun::test::TempDir dir;
  auto t = make({}, kChatMarkup);
  t->fit(kChat);
  t->save(dir.path());
  const std::string saved = lmrun::test::read_file(dir / "vocab.txt");
  EXPECT_EQ(saved.rfind("# lmrun word vocabulary, format 2\nmarkup 5\n|system|\n", 0), 0u);
  auto loaded = make();  // no markup of its own: the saved tokens win
  loaded->load(dir.path());
  EXPECT_EQ(loaded->vocab_size(), t->vocab_size());
  EXPECT_EQ(loaded->special_id("|end|"), t->special_id("|end|"));
  EXPECT_EQ(loaded->encode(kChat), t->encode(kChat));
  EXPECT_EQ(loaded->decode(loaded->encode(kChat)), t->decode(t->encode(kChat)));

  auto plain = make(), empty = make({}, {});
  plain->fit(kChat);
  empty->fit(kChat);
  EXPECT_EQ(empty->encode(kChat), plain->encode(kChat));
  EXPECT_EQ(empty->special_id("|end|"), -1);
  lmrun::test::TempDir a, b;
  plain->save(a.path());
  empty->save(b.path());
  EXPECT_EQ(lmrun::test::read_file(b / "vocab.txt"), lmrun::test::read_file(a / "vocab.txt"));
  EXPECT_EQ(lmrun::test::read_file(b / "vocab.txt").rfind("# lmrun word vocabulary, format 1\n", 0),
            0u);
  EXPECT_THAT(error_of([] { make({}, {"|a|", "|a|"}); }), HasSubstr("listed twice"));
}

// Save and load round trip in the conformance suite (conformance.word); here, their errors.
TEST(WordTokenizer, LoadingADamagedOrMissingVocabularyNamesTheProblem) {
  lmrun::test::TempDir dir;
  auto t = make();
  t->fit("the cat sat on the mat. The end!");
  t->save(dir.path());
  auto loaded = make();
  lmrun::test::write_file(dir / "vocab.txt", "<pad>\n<unk>\n");
  EXPECT_THAT(error_of([&] { loaded->load(dir.path()); }), HasSubstr("line 1 is not"));
  lmrun::test::TempDir empty;
  EXPECT_THAT(error_of([&] { loaded->load(empty.path()); }), HasSubstr("does not exist"));
}

}  // namespace
