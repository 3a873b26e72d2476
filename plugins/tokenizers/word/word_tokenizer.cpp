// Tokenizer `word`: text -> words and punctuation marks by ICU's word boundaries (Unicode UAX #29:
// "don't" and "3.14" stay whole, "," and "!" stand alone, CJK by ICU's dictionaries), lower-cased
// by Unicode case folding rules, whitespace dropped. The vocabulary is fitted on the training
// text: <pad> (id 0) and <unk> (id 1), then every word seen at least min_freq times, most
// frequent first (ties in byte order), up to max_size entries in all. Unknown words encode as
// <unk>; max_len > 0 truncates an encoding. Invalid UTF-8 is read with each bad sequence replaced
// by U+FFFD (ICU's rule), never an error or a crash. Saved as one file, vocab.txt: a header line,
// then one word per line in id order.
//
// Markup tokens, the dataset's special tokens (TokenizerContext::special_tokens: "|user|",
// "|end|"), take the ids after <pad> and <unk> (before the words, inside max_size). encode() finds
// them in the text before ICU sees it (the longest where two start at one place), as written (no
// case folding), one id each; decode() writes them back without spaces around them; fit() counts
// the words between them only. With markup tokens, vocab.txt is format 2: "markup N" and the N
// tokens follow the header; without them it is format 1, as before.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <unicode/brkiter.h>
#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/tokenizer.h"
#include "lmrun/util/files.h"
#include "lmrun/util/markup.h"

namespace {

using lmrun::MarkupSplit;

constexpr const char* kHeader = "# lmrun word vocabulary, format 1";
constexpr const char* kHeaderWithMarkup = "# lmrun word vocabulary, format 2";
constexpr std::int64_t kPad = 0;
constexpr std::int64_t kUnk = 1;

struct WordOptions {
  bool lowercase = true;
  std::int64_t min_freq = 1;
  std::int64_t max_size = 0;  // entries in all, specials included; 0: no limit
  std::int64_t max_len = 0;   // words per encoding; 0: no limit
};

bool all_space(const icu::UnicodeString& text) {
  for (std::int32_t i = 0; i < text.length();) {
    const UChar32 c = text.char32At(i);
    if (!u_isUWhiteSpace(c)) return false;
    i += U16_LENGTH(c);
  }
  return true;
}

// Markup tokens are one line each in vocab.txt: non-empty, distinct, without a line break.
void check_markup(const std::vector<std::string>& markup) {
  for (std::size_t i = 0; i < markup.size(); ++i) {
    if (markup[i].empty() || markup[i].find_first_of("\r\n") != std::string::npos) {
      throw lmrun::Error(
          "word: the dataset's special token '" + markup[i] + "' is empty or holds a line break",
          "a special token is a piece of text on one line, such as \"|end|\"");
    }
    if (std::find(markup.begin(), markup.begin() + i, markup[i]) != markup.begin() + i) {
      throw lmrun::Error("word: the dataset's special token '" + markup[i] + "' is listed twice");
    }
  }
}

class WordTokenizer final : public lmrun::Tokenizer {
 public:
  WordTokenizer(WordOptions options, std::vector<std::string> markup)
      : o_(options), markup_(std::move(markup)), markup_split_(markup_) {
    check_markup(markup_);
    UErrorCode status = U_ZERO_ERROR;
    breaker_.reset(icu::BreakIterator::createWordInstance(icu::Locale::getRoot(), status));
    if (U_FAILURE(status) || !breaker_) {
      throw lmrun::Error(std::string("word: ICU cannot make a word break iterator: ") +
                         u_errorName(status));
    }
  }

  // The words of `text`, in order, lower-cased when asked.
  std::vector<std::string> split(std::string_view text) const {
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(
        icu::StringPiece(text.data(), static_cast<std::int32_t>(text.size())));
    if (o_.lowercase) u.foldCase();
    std::unique_ptr<icu::BreakIterator> it(breaker_->clone());
    it->setText(u);
    std::vector<std::string> words;
    std::int32_t start = it->first();
    for (std::int32_t end = it->next(); end != icu::BreakIterator::DONE;
         start = end, end = it->next()) {
      const icu::UnicodeString piece(u, start, end - start);
      if (all_space(piece)) continue;
      std::string word;
      piece.toUTF8String(word);
      words.push_back(std::move(word));
    }
    return words;
  }

  void fit(std::string_view text) override {
    std::unordered_map<std::string, std::int64_t> counts;
    markup_split_.split(
        text,
        [&](std::string_view piece) {
          for (auto& word : split(piece)) ++counts[word];
        },
        [](std::size_t) {});
    std::vector<std::pair<std::string, std::int64_t>> kept;
    for (auto& [word, n] : counts) {
      if (n >= o_.min_freq) kept.emplace_back(word, n);
    }
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    std::vector<std::string> words = {"<pad>", "<unk>"};
    for (const auto& token : markup_) {
      if (token != "<pad>" && token != "<unk>") words.push_back(token);
    }
    for (auto& [word, n] : kept) {
      if (o_.max_size > 0 && static_cast<std::int64_t>(words.size()) >= o_.max_size) break;
      // A word that is a markup token's text has its id already.
      if (std::find(markup_.begin(), markup_.end(), word) != markup_.end()) continue;
      words.push_back(word);
    }
    set_vocabulary(std::move(words));
  }

  std::vector<std::int64_t> encode(std::string_view text) const override {
    require("encode");
    std::vector<std::int64_t> ids;
    auto room = [&] {
      return o_.max_len <= 0 || static_cast<std::int64_t>(ids.size()) < o_.max_len;
    };
    markup_split_.split(
        text,
        [&](std::string_view piece) {
          for (const auto& word : split(piece)) {
            if (!room()) return;
            const auto it = ids_.find(word);
            ids.push_back(it == ids_.end() ? kUnk : it->second);
          }
        },
        [&](std::size_t token) {
          if (room()) ids.push_back(ids_.at(markup_[token]));
        });
    return ids;
  }

  std::string decode(const std::vector<std::int64_t>& ids) const override {
    require("decode");
    std::string out;
    bool after_markup = false;
    for (std::int64_t id : ids) {
      if (id < 0 || id >= vocab_size()) {
        throw lmrun::Error("word: id " + std::to_string(id) + " is outside the vocabulary of " +
                           std::to_string(vocab_size()));
      }
      if (id == kPad) continue;
      const bool markup = is_markup_[static_cast<std::size_t>(id)];
      if (!out.empty() && !markup && !after_markup) out += " ";
      out += words_[static_cast<std::size_t>(id)];
      after_markup = markup;
    }
    return out;
  }

  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(words_.size()); }

  std::int64_t special_id(std::string_view token) const override {
    if (token == "<pad>") return kPad;
    if (token == "<unk>") return kUnk;
    if (std::find(markup_.begin(), markup_.end(), token) != markup_.end() && !words_.empty())
      return ids_.at(std::string(token));
    return -1;
  }

  void save(const std::filesystem::path& folder) const override {
    require("save");
    std::string text;
    if (markup_.empty()) {
      text = std::string(kHeader) + "\n";  // format 1, as before markup tokens
    } else {
      text = std::string(kHeaderWithMarkup) + "\nmarkup " + std::to_string(markup_.size()) + "\n";
      for (const auto& token : markup_) text += token + "\n";
    }
    for (const auto& word : words_) text += word + "\n";
    lmrun::write_file_atomic(folder / "vocab.txt", text);
  }

  void load(const std::filesystem::path& folder) override {
    const auto file = lmrun::saved_tokenizer_file(folder, "vocab.txt", "word: ");
    std::istringstream in(lmrun::read_file(file));
    std::string line;
    if (!std::getline(in, line) || (line != kHeader && line != kHeaderWithMarkup)) {
      throw lmrun::Error("word: " + file.string() + " line 1 is not '" + kHeader + "'",
                         "the saved tokenizer is damaged; fit it again");
    }
    std::vector<std::string> markup;
    if (line == kHeaderWithMarkup) {
      std::size_t count = 0;
      if (!std::getline(in, line) || line.rfind("markup ", 0) != 0 ||
          (count = std::strtoull(line.c_str() + 7, nullptr, 10)) == 0) {
        throw lmrun::Error("word: " + file.string() + " line 2 is not 'markup N' (N > 0)",
                           "the saved tokenizer is damaged; fit it again");
      }
      for (std::size_t i = 0; i < count && std::getline(in, line); ++i) markup.push_back(line);
      if (markup.size() != count) {
        throw lmrun::Error("word: " + file.string() + " ends inside its markup tokens",
                           "the saved tokenizer is damaged; fit it again");
      }
      check_markup(markup);
    }
    std::vector<std::string> words;
    while (std::getline(in, line)) words.push_back(line);
    if (words.size() < 2 || words[0] != "<pad>" || words[1] != "<unk>") {
      throw lmrun::Error("word: " + file.string() + " does not start with <pad> and <unk>",
                         "the saved tokenizer is damaged; fit it again");
    }
    // The saved markup tokens replace this tokenizer's own.
    std::vector<std::string> own = std::move(markup_);
    markup_ = std::move(markup);
    try {
      set_vocabulary(std::move(words));
    } catch (const lmrun::Error& e) {
      markup_ = std::move(own);
      throw lmrun::Error("word: " + file.string() + ": " + e.what(),
                         "the saved tokenizer is damaged; fit it again");
    }
    markup_split_ = MarkupSplit(markup_);
  }

 private:
  void set_vocabulary(std::vector<std::string> words) {
    std::unordered_map<std::string, std::int64_t> ids;
    for (std::size_t i = 0; i < words.size(); ++i) {
      if (!ids.emplace(words[i], static_cast<std::int64_t>(i)).second) {
        throw lmrun::Error("word: the vocabulary holds '" + words[i] + "' twice");
      }
    }
    std::vector<bool> is_markup(words.size(), false);
    for (const auto& token : markup_) {
      const auto it = ids.find(token);
      if (it == ids.end()) throw lmrun::Error("word: the markup token '" + token + "' has no id");
      // <pad> and <unk> decode as before; a markup token of their text shares their id.
      if (it->second > kUnk) is_markup[static_cast<std::size_t>(it->second)] = true;
    }
    words_ = std::move(words);
    ids_ = std::move(ids);
    is_markup_ = std::move(is_markup);
  }

  void require(const char* what) const {
    if (words_.empty()) {
      throw lmrun::Error(std::string("word: ") + what + "() before the vocabulary exists",
                         "call fit() on the training text or load() a saved tokenizer first");
    }
  }

  WordOptions o_;
  std::vector<std::string> markup_;              // the dataset's markup tokens
  MarkupSplit markup_split_;                     // finds them in a text
  std::unique_ptr<icu::BreakIterator> breaker_;  // cloned per call: ICU iterators hold state
  std::vector<std::string> words_;
  std::unordered_map<std::string, std::int64_t> ids_;
  std::vector<bool> is_markup_;  // id -> a markup token (decoded without spaces around it)
};

void register_word(lmrun::Registry& registry) {
  lmrun::Schema<WordOptions> schema;
  schema.add("lowercase", &WordOptions::lowercase, "fold case before splitting (Unicode rules)");
  schema.add("min_freq", &WordOptions::min_freq, "a word needs this many occurrences to enter")
      .min(1);
  schema
      .add("max_size", &WordOptions::max_size,
           "the vocabulary's size at most, <pad> and <unk> included; 0: no limit")
      .min(0);
  schema.add("max_len", &WordOptions::max_len, "words kept per text (truncation); 0: all").min(0);
  registry.add<lmrun::Tokenizer>(
      "word", "Unicode words and punctuation (ICU), a fitted vocabulary with <pad> and <unk>",
      schema, [](const WordOptions& options, const lmrun::TokenizerContext& context) {
        if (options.max_size == 1 || options.max_size == 2) {
          throw lmrun::Error("max_size = " + std::to_string(options.max_size) +
                                 " leaves no room for words beside <pad> and <unk>",
                             "set max_size >= 3, or 0 for no limit");
        }
        return std::make_shared<WordTokenizer>(options, context.special_tokens);
      });
}

}  // namespace

LMRUN_PLUGIN("word", "0.1.0", register_word)
