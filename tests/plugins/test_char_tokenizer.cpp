// The `char` tokenizer through the real plugin loader: round trips (ASCII, multi-byte, astral),
// id order, special tokens, a dataset's markup tokens, unknown characters, save/load and its
// damaged-file errors, speed.
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lmrun/tokenizer.h"
#include "lmrun/version.h"
#include "support/test_support.h"

namespace {

using lmrun::test::error_from;

using lmrun::Tokenizer;
using testing::HasSubstr;
using testing::Not;

// ---------------------------------------------------------------------------------------------
// Helpers

// Every declared default, as the host fills them, then the test's overrides.
lmrun::Params params_for(lmrun::Kind kind, const std::string& name,
                         const std::map<std::string, lmrun::Value>& overrides = {}) {
  return lmrun::test::plugin_params(kind, name, overrides);
}

std::shared_ptr<Tokenizer> make_char(const std::map<std::string, lmrun::Value>& overrides = {}) {
  return lmrun::test::plugin_registry().create<Tokenizer>(
      "char", params_for(lmrun::Kind::kTokenizer, "char", overrides), {});
}

// A char tokenizer given a dataset's markup tokens, as the host passes Dataset::special_tokens().
std::shared_ptr<Tokenizer> make_char_with(
    std::vector<std::string> markup, const std::map<std::string, lmrun::Value>& overrides = {}) {
  return lmrun::test::plugin_registry().create<Tokenizer>(
      "char", params_for(lmrun::Kind::kTokenizer, "char", overrides),
      lmrun::TokenizerContext{std::move(markup)});
}

lmrun::Value specials(std::vector<std::string> tokens) { return lmrun::Value(std::move(tokens)); }

std::vector<std::int64_t> iota_ids(std::int64_t begin, std::int64_t end) {
  std::vector<std::int64_t> ids;
  for (std::int64_t i = begin; i < end; ++i) ids.push_back(i);
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Registration

TEST(CharTokenizer, DeclaresSpecialTokensAndVocab) {
  const lmrun::Registration* registration =
      lmrun::test::plugin_registry().find(lmrun::Kind::kTokenizer, "char");
  ASSERT_NE(registration, nullptr);
  ASSERT_EQ(registration->params.size(), 2u);
  const lmrun::ParamSpec& special = registration->params[0];
  EXPECT_EQ(special.name, "special_tokens");
  EXPECT_EQ(special.type, lmrun::ParamType::kStringList);
  EXPECT_THAT(special.choices, testing::ElementsAre("<pad>", "<bos>", "<eos>", "<unk>"));
  ASSERT_TRUE(special.default_value.has_value());
  EXPECT_TRUE(std::get<std::vector<std::string>>(*special.default_value).empty());
  const lmrun::ParamSpec& vocab = registration->params[1];
  EXPECT_EQ(vocab.name, "vocab");
  EXPECT_EQ(vocab.type, lmrun::ParamType::kPath);
  EXPECT_FALSE(vocab.required());
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding

TEST(CharTokenizer, RoundTripsAscii) {
  auto tokenizer = make_char();
  tokenizer->fit("hello world");
  EXPECT_EQ(tokenizer->vocab_size(), 8);  // " dehlorw"
  const std::vector<std::int64_t> ids = tokenizer->encode("hello world");
  EXPECT_EQ(ids, (std::vector<std::int64_t>{3, 2, 4, 4, 5, 0, 7, 5, 6, 4, 1}));
  EXPECT_EQ(tokenizer->decode(ids), "hello world");
  EXPECT_TRUE(tokenizer->encode("").empty());
  EXPECT_EQ(tokenizer->decode({}), "");
}

TEST(CharTokenizer, RoundTripsMultiByteUtf8OneIdPerCodePoint) {
  // "héllo wörld 日本 🙂": 2-, 3- and 4-byte characters.
  const std::string text = "h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82";
  auto tokenizer = make_char();
  tokenizer->fit(text);
  const std::vector<std::int64_t> ids = tokenizer->encode(text);
  EXPECT_EQ(ids.size(), 16u);  // code points, not bytes
  EXPECT_EQ(tokenizer->decode(ids), text);
  // ' ', d, h, l, o, r, w, é, ö, 日, 本, 🙂: the 2-, 3- and 4-byte characters sort last.
  EXPECT_EQ(tokenizer->vocab_size(), 12);
  EXPECT_EQ(tokenizer->decode({9}), "\xE6\x97\xA5");
  EXPECT_EQ(tokenizer->decode({11}), "\xF0\x9F\x99\x82");
}

TEST(CharTokenizer, IdsFollowCodePointOrderWhateverTheTextOrder) {
  auto a = make_char();
  auto b = make_char();
  a->fit("cab\xC3\xA9 ba");
  b->fit(
      "\xC3\xA9"
      "abc a  b");
  ASSERT_EQ(a->vocab_size(), b->vocab_size());
  const std::string probe = "abc \xC3\xA9";
  EXPECT_EQ(a->encode(probe), b->encode(probe));
  EXPECT_EQ(a->encode(probe), (std::vector<std::int64_t>{1, 2, 3, 0, 4}));
  EXPECT_EQ(a->decode(iota_ids(0, a->vocab_size())), " abc\xC3\xA9");  // increasing code points
}

TEST(CharTokenizer, RefittingReplacesTheVocabulary) {
  auto tokenizer = make_char();
  tokenizer->fit("abc");
  tokenizer->fit("xy");
  EXPECT_EQ(tokenizer->vocab_size(), 2);
  EXPECT_EQ(tokenizer->encode("yx"), (std::vector<std::int64_t>{1, 0}));
}

TEST(CharTokenizer, SpecialTokensTakeTheFirstIdsInTheOrderListed) {
  auto tokenizer = make_char({{"special_tokens", specials({"<pad>", "<bos>", "<eos>", "<unk>"})}});
  tokenizer->fit("ba");
  EXPECT_EQ(tokenizer->vocab_size(), 6);
  EXPECT_EQ(tokenizer->special_id("<pad>"), 0);
  EXPECT_EQ(tokenizer->special_id("<bos>"), 1);
  EXPECT_EQ(tokenizer->special_id("<eos>"), 2);
  EXPECT_EQ(tokenizer->special_id("<unk>"), 3);
  EXPECT_EQ(tokenizer->special_id("<mask>"), -1);
  EXPECT_EQ(tokenizer->encode("ab"), (std::vector<std::int64_t>{4, 5}));
  EXPECT_EQ(tokenizer->decode({1, 4, 5, 2}), "<bos>ab<eos>");

  auto reordered = make_char({{"special_tokens", specials({"<eos>", "<pad>"})}});
  reordered->fit("ba");
  EXPECT_EQ(reordered->special_id("<eos>"), 0);
  EXPECT_EQ(reordered->special_id("<pad>"), 1);
  EXPECT_EQ(reordered->special_id("<unk>"), -1);
}

TEST(CharTokenizer, WithoutSpecialTokensEverySpecialIdIsMinusOne) {
  auto tokenizer = make_char();
  tokenizer->fit("<unk>");
  for (const char* token : {"<pad>", "<bos>", "<eos>", "<unk>"}) {
    EXPECT_EQ(tokenizer->special_id(token), -1) << token;
  }
}

TEST(CharTokenizer, RejectsUnknownOrRepeatedSpecialTokens) {
  lmrun::Error unknown = error_from([] { make_char({{"special_tokens", specials({"<mask>"})}}); });
  EXPECT_THAT(unknown.what(), HasSubstr("tokenizer 'char'"));
  EXPECT_THAT(unknown.what(), HasSubstr("<mask>"));
  lmrun::Error twice = error_from([] {
    make_char({{"special_tokens", specials({"<unk>", "<unk>"})}});
  });
  EXPECT_THAT(twice.what(), HasSubstr("twice"));
}

TEST(CharTokenizer, UnknownCharacterWithUnkMapsToUnk) {
  auto tokenizer = make_char({{"special_tokens", specials({"<unk>"})}});
  tokenizer->fit("ab");
  EXPECT_EQ(tokenizer->encode("a\xC3\xA9"
                              "b\xF0\x9F\x99\x82"),
            (std::vector<std::int64_t>{1, 0, 2, 0}));
}

TEST(CharTokenizer, UnknownCharacterWithoutUnkIsAnErrorNamingItAndItsOffset) {
  auto tokenizer = make_char();
  tokenizer->fit("abc");
  lmrun::Error e = error_from([&] { tokenizer->encode("ab\xC3\xA9"); });
  EXPECT_THAT(e.what(), HasSubstr("U+00E9"));
  EXPECT_THAT(e.what(), HasSubstr("'\xC3\xA9'"));
  EXPECT_THAT(e.what(), HasSubstr("byte offset 2"));
  EXPECT_THAT(e.hint(), HasSubstr("\"<unk>\""));

  lmrun::Error newline = error_from([&] { tokenizer->encode("a\nb"); });
  EXPECT_THAT(newline.what(), HasSubstr("U+000A at byte offset 1"));  // controls are not printed
}

TEST(CharTokenizer, InvalidUtf8IsAnErrorWithItsByteOffset) {
  auto tokenizer = make_char();
  lmrun::Error stray = error_from([&] {
    tokenizer->fit(
        "abc\xFF"
        "def");
  });
  EXPECT_THAT(stray.what(), HasSubstr("byte offset 3"));
  EXPECT_THAT(stray.what(), HasSubstr("0xFF"));
  lmrun::Error cut =
      error_from([&] { tokenizer->fit("ab\xE6\x97"); });  // 3-byte sequence cut short
  EXPECT_THAT(cut.what(), HasSubstr("byte offset 2"));
  lmrun::Error overlong = error_from([&] { tokenizer->fit("a\xC0\xAF"); });  // overlong '/'
  EXPECT_THAT(overlong.what(), HasSubstr("byte offset 1"));
  lmrun::Error surrogate = error_from([&] { tokenizer->fit("\xED\xA0\x80"); });  // U+D800
  EXPECT_THAT(surrogate.what(), HasSubstr("byte offset 0"));

  tokenizer->fit("abc");
  lmrun::Error encode = error_from([&] { tokenizer->encode("ab\x80"); });
  EXPECT_THAT(encode.what(), HasSubstr("byte offset 2"));
}

TEST(CharTokenizer, DecodingAnOutOfRangeIdIsAnError) {
  auto tokenizer = make_char();
  tokenizer->fit("abc");
  lmrun::Error high = error_from([&] { tokenizer->decode({0, 3}); });
  EXPECT_THAT(high.what(), HasSubstr("id 3 at position 1"));
  EXPECT_THAT(high.what(), HasSubstr("0 to 2"));
  lmrun::Error negative = error_from([&] { tokenizer->decode({-1}); });
  EXPECT_THAT(negative.what(), HasSubstr("id -1"));
}

TEST(CharTokenizer, UsingItBeforeFitIsAnError) {
  auto tokenizer = make_char();
  lmrun::Error e = error_from([&] { tokenizer->encode("a"); });
  EXPECT_THAT(e.what(), HasSubstr("before the tokenizer has a vocabulary"));
  EXPECT_THAT(e.hint(), HasSubstr("fit()"));
  EXPECT_THAT(error_from([&] { tokenizer->fit(""); }).what(), HasSubstr("empty"));
}

// ---------------------------------------------------------------------------------------------
// The `vocab` parameter

TEST(CharTokenizer, VocabFileGivesTheVocabularyAndFitKeepsIt) {
  lmrun::test::TempDir dir;
  lmrun::test::write_file(dir / "alphabet.txt", "zyx\xC3\xA9zz");
  auto tokenizer = make_char({{"vocab", std::string((dir / "alphabet.txt").string())},
                              {"special_tokens", specials({"<unk>"})}});
  EXPECT_EQ(tokenizer->vocab_size(), 5);
  EXPECT_EQ(tokenizer->encode("xyz\xC3\xA9"), (std::vector<std::int64_t>{1, 2, 3, 4}));
  tokenizer->fit("something else entirely");
  EXPECT_EQ(tokenizer->vocab_size(), 5);
  EXPECT_EQ(tokenizer->encode("xq"), (std::vector<std::int64_t>{1, 0}));
}

TEST(CharTokenizer, MissingOrEmptyVocabFileIsAnErrorNamingIt) {
  lmrun::test::TempDir dir;
  const std::string missing = (dir / "nope.txt").string();
  lmrun::Error e = error_from([&] { make_char({{"vocab", missing}}); });
  EXPECT_THAT(e.what(), HasSubstr(missing));
  EXPECT_FALSE(e.hint().empty());

  lmrun::test::write_file(dir / "empty.txt", "");
  const std::string empty = (dir / "empty.txt").string();
  EXPECT_THAT(error_from([&] { make_char({{"vocab", empty}}); }).what(), HasSubstr(empty));
}

// ---------------------------------------------------------------------------------------------
// save and load

TEST(CharTokenizer, SaveAndLoadRoundTrip) {
  const std::string text = "To be, or not to be: \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82\n\t~";
  auto original = make_char({{"special_tokens", specials({"<eos>", "<unk>"})}});
  original->fit(text);
  lmrun::test::TempDir dir;
  original->save(dir.path());

  auto restored = make_char();  // no special tokens of its own: the saved ones win
  restored->load(dir.path());
  EXPECT_EQ(restored->vocab_size(), original->vocab_size());
  EXPECT_EQ(restored->special_id("<eos>"), 0);
  EXPECT_EQ(restored->special_id("<unk>"), 1);
  EXPECT_EQ(restored->encode(text), original->encode(text));
  const auto all = iota_ids(0, original->vocab_size());
  EXPECT_EQ(restored->decode(all), original->decode(all));
}

TEST(CharTokenizer, SaveWritesOneVersionedFileAndNoTemporary) {
  auto tokenizer = make_char();
  tokenizer->fit("ab");
  lmrun::test::TempDir dir;
  tokenizer->save(dir.path());
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    names.push_back(entry.path().filename().string());
  }
  ASSERT_THAT(names, testing::ElementsAre("char_tokenizer.txt"));
  const std::string saved = lmrun::test::read_file(dir / "char_tokenizer.txt");
  EXPECT_THAT(saved, HasSubstr("format_version 1\n"));
  EXPECT_THAT(saved, HasSubstr(std::string("lmrun_version ") + lmrun::kVersion + "\n"));
  EXPECT_THAT(saved, HasSubstr("characters 2\n0061 a\n0062 b\nend\n"));
}

TEST(CharTokenizer, LoadingFromAFolderWithoutTheFileNamesTheFile) {
  lmrun::test::TempDir dir;
  auto tokenizer = make_char();
  lmrun::Error e = error_from([&] { tokenizer->load(dir.path()); });
  EXPECT_THAT(e.what(), HasSubstr((dir / "char_tokenizer.txt").string()));
  EXPECT_FALSE(e.hint().empty());
}

TEST(CharTokenizer, LoadingADamagedFileNamesTheFileAndTheLine) {
  auto tokenizer = make_char();
  tokenizer->fit("abc");
  lmrun::test::TempDir dir;
  tokenizer->save(dir.path());
  const auto file = dir / "char_tokenizer.txt";
  const std::string good = lmrun::test::read_file(file);

  auto expect_damaged = [&](const std::string& content, const std::string& detail) {
    lmrun::test::write_file(file, content);
    auto fresh = make_char();
    lmrun::Error e = error_from([&] { fresh->load(dir.path()); });
    EXPECT_THAT(e.what(), HasSubstr(file.string())) << detail;
    EXPECT_THAT(e.what(), HasSubstr(detail));
  };
  expect_damaged(good.substr(0, good.find("end\n")), "end of the file");  // truncated
  std::string garbled = good;
  garbled.replace(garbled.find("0062 b"), 6, "zz62 b");
  expect_damaged(garbled, "line 8");
  std::string unsorted = good;
  unsorted.replace(unsorted.find("0062 b"), 6, "0061 a");
  expect_damaged(unsorted, "increasing");
  std::string mismatch = good;
  mismatch.replace(mismatch.find("0062 b"), 6, "0062 c");
  expect_damaged(mismatch, "line 8");
  expect_damaged("{\"not\": \"ours\"}\n", "not a char tokenizer file");
  expect_damaged(good + "extra\n", "after \"end\"");
}

TEST(CharTokenizer, LoadingANewerFormatSaysSo) {
  auto tokenizer = make_char();
  tokenizer->fit("abc");
  lmrun::test::TempDir dir;
  tokenizer->save(dir.path());
  const auto file = dir / "char_tokenizer.txt";
  std::string text = lmrun::test::read_file(file);
  text.replace(text.find("format_version 1"), 16, "format_version 7");
  lmrun::test::write_file(file, text);
  lmrun::Error e = error_from([&] { make_char()->load(dir.path()); });
  EXPECT_THAT(e.what(), HasSubstr(file.string()));
  EXPECT_THAT(e.what(), HasSubstr("format version 7, newer"));
  EXPECT_THAT(e.hint(), HasSubstr("upgrade"));
}

// ---------------------------------------------------------------------------------------------
// A dataset's markup tokens (TokenizerContext::special_tokens)

const std::vector<std::string> kChatMarkup = {"|system|", "|user|", "|assistant|", "|start|",
                                              "|end|"};
const std::string kChatText =
    "|system||start|You are JULIET.|end||user||start|Romeo, | dear|end|"
    "|assistant||start|O Romeo, Romeo!|end|";

TEST(CharTokenizer, MarkupTokensAreOneIdEachAndRoundTrip) {
  auto tokenizer = make_char_with(kChatMarkup, {{"special_tokens", specials({"<unk>"})}});
  tokenizer->fit(kChatText);
  // <unk> 0, then the markup tokens 1..5 in the order given, then the characters.
  EXPECT_EQ(tokenizer->special_id("<unk>"), 0);
  for (std::size_t i = 0; i < kChatMarkup.size(); ++i) {
    EXPECT_EQ(tokenizer->special_id(kChatMarkup[i]), static_cast<std::int64_t>(i) + 1);
    EXPECT_EQ(tokenizer->encode(kChatMarkup[i]),
              (std::vector<std::int64_t>{static_cast<std::int64_t>(i) + 1}));
    EXPECT_EQ(tokenizer->decode({static_cast<std::int64_t>(i) + 1}), kChatMarkup[i]);
  }
  const std::vector<std::int64_t> ids = tokenizer->encode(kChatText);
  EXPECT_EQ(tokenizer->decode(ids), kChatText);
  // 9 markup tokens, the rest one id per character: "|" between them stays a character.
  const std::string plain = "You are JULIET.Romeo, | dearO Romeo, Romeo!";
  EXPECT_EQ(ids.size(), 9 + plain.size());
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tokenizer->special_id("|end|")), 3);
  // fit() learns the text between the tokens: 'y' occurs only inside "|system|".
  EXPECT_EQ(tokenizer->encode("y"), (std::vector<std::int64_t>{0}));  // <unk>
  // vocab_size counts them: <unk>, 5 markup tokens, the distinct characters of `plain`.
  std::set<char> characters(plain.begin(), plain.end());
  EXPECT_EQ(tokenizer->vocab_size(), 1 + 5 + static_cast<std::int64_t>(characters.size()));
}

TEST(CharTokenizer, TheLongestMarkupTokenWinsWhereTwoStartTogether) {
  auto tokenizer = make_char_with({"|e|", "|e|x"});
  tokenizer->fit("ab");
  EXPECT_EQ(tokenizer->encode("a|e|xb|e|"), (std::vector<std::int64_t>{2, 1, 3, 0}));
  EXPECT_EQ(tokenizer->decode({2, 1, 3, 0}), "a|e|xb|e|");
}

TEST(CharTokenizer, AMarkupTokenThatIsAnOwnSpecialTokenSharesItsId) {
  auto tokenizer = make_char_with({"<eos>", "|end|"}, {{"special_tokens", specials({"<eos>"})}});
  tokenizer->fit("ab");
  EXPECT_EQ(tokenizer->vocab_size(), 4);  // <eos>, |end|, a, b
  EXPECT_EQ(tokenizer->special_id("<eos>"), 0);
  EXPECT_EQ(tokenizer->special_id("|end|"), 1);
  EXPECT_EQ(tokenizer->encode("a<eos>|end|"), (std::vector<std::int64_t>{2, 0, 1}));
}

TEST(CharTokenizer, SaveAndLoadKeepTheMarkupTokens) {
  auto original = make_char_with(kChatMarkup);
  original->fit(kChatText);
  lmrun::test::TempDir dir;
  original->save(dir.path());
  const std::string saved = lmrun::test::read_file(dir / "char_tokenizer.txt");
  EXPECT_THAT(saved, HasSubstr("format_version 2\n"));
  EXPECT_THAT(saved, HasSubstr("markup_tokens 5\n|system|\n|user|\n"));

  auto restored = make_char();  // knows no markup of its own: the saved tokens win
  restored->load(dir.path());
  EXPECT_EQ(restored->vocab_size(), original->vocab_size());
  EXPECT_EQ(restored->special_id("|end|"), original->special_id("|end|"));
  EXPECT_EQ(restored->encode(kChatText), original->encode(kChatText));
  const auto all = iota_ids(0, original->vocab_size());
  EXPECT_EQ(restored->decode(all), original->decode(all));

  // A damaged markup section names the file and the problem.
  std::string twice = saved;
  twice.replace(twice.find("|user|\n"), 7, "|system|\n");
  lmrun::test::write_file(dir / "char_tokenizer.txt", twice);
  lmrun::Error e = error_from([&] { make_char()->load(dir.path()); });
  EXPECT_THAT(e.what(), HasSubstr((dir / "char_tokenizer.txt").string()));
  EXPECT_THAT(e.what(), HasSubstr("twice"));
}

TEST(CharTokenizer, WithoutMarkupTokensNothingChanges) {
  // The same ids, vocabulary and saved bytes as a tokenizer made before markup tokens existed.
  auto plain = make_char({{"special_tokens", specials({"<unk>"})}});
  auto empty = make_char_with({}, {{"special_tokens", specials({"<unk>"})}});
  plain->fit(kChatText);
  empty->fit(kChatText);
  EXPECT_EQ(empty->vocab_size(), plain->vocab_size());
  EXPECT_EQ(empty->encode(kChatText), plain->encode(kChatText));
  EXPECT_EQ(empty->special_id("|end|"), -1);
  EXPECT_EQ(empty->decode(empty->encode(kChatText)), kChatText);
  lmrun::test::TempDir dir;
  empty->save(dir.path());
  const std::string saved = lmrun::test::read_file(dir / "char_tokenizer.txt");
  EXPECT_THAT(saved, HasSubstr("format_version 1\n"));
  EXPECT_THAT(saved, Not(HasSubstr("markup_tokens")));
}

TEST(CharTokenizer, RejectsEmptyRepeatedOrMultiLineMarkupTokens) {
  EXPECT_THAT(error_from([] { make_char_with({"|a|", ""}); }).what(), HasSubstr("empty"));
  EXPECT_THAT(error_from([] { make_char_with({"|a|", "|a|"}); }).what(), HasSubstr("twice"));
  EXPECT_THAT(error_from([] { make_char_with({"|a\n|"}); }).what(), HasSubstr("line break"));
}

// ---------------------------------------------------------------------------------------------
// tinyshakespeare: the vocabulary nanoGPT reports, and encoding fast enough not to matter

TEST(CharTokenizer, EncodesTinyShakespeareQuickly) {
  const std::string text =
      lmrun::test::read_file(lmrun::test::source_dir() / "data/tinyshakespeare/input.txt");
  ASSERT_EQ(text.size(), 1115394u);
  auto tokenizer = make_char();
  tokenizer->fit(text);
  EXPECT_EQ(tokenizer->vocab_size(), 65);
  EXPECT_EQ(tokenizer->decode(iota_ids(0, 13)), "\n !$&',-.3:;?");

  // CPU time of this thread, best of three: the build machine is shared, wall time is noise.
  auto cpu_ms = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
  };
  double best_ms = 1e9;
  std::vector<std::int64_t> ids;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const double start = cpu_ms();
    ids = tokenizer->encode(text);
    best_ms = std::min(best_ms, cpu_ms() - start);
  }
  EXPECT_EQ(ids.size(), text.size());
  EXPECT_LT(best_ms, 100.0);
  RecordProperty("encode_ms", std::to_string(best_ms));
  EXPECT_EQ(tokenizer->decode(ids), text);
}

}  // namespace
