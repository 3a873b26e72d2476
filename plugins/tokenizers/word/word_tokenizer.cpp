// Tokenizer `word`: text -> words and punctuation marks by ICU's word boundaries (Unicode UAX #29:
// "don't" and "3.14" stay whole, "," and "!" stand alone, CJK by ICU's dictionaries), lower-cased
// by Unicode case folding rules, whitespace dropped. The vocabulary is fitted on the training
// text: <pad> (id 0) and <unk> (id 1), then every word seen at least min_freq times, most
// frequent first (ties in byte order), up to max_size entries in all. Unknown words encode as
// <unk>; max_len > 0 truncates an encoding. Invalid UTF-8 is read with each bad sequence replaced
// by U+FFFD (ICU's rule), never an error or a crash. Saved as one file, vocab.txt: a header line,
// then one word per line in id order.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <unicode/brkiter.h>
#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include "lmrun/util/files.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/tokenizer.h"

namespace {

constexpr const char* kHeader = "# lmrun word vocabulary, format 1";
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

class WordTokenizer final : public lmrun::Tokenizer {
 public:
  explicit WordTokenizer(WordOptions options) : o_(options) {
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
    for (auto& word : split(text)) ++counts[word];
    std::vector<std::pair<std::string, std::int64_t>> kept;
    for (auto& [word, n] : counts) {
      if (n >= o_.min_freq) kept.emplace_back(word, n);
    }
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    std::vector<std::string> words = {"<pad>", "<unk>"};
    for (auto& [word, n] : kept) {
      if (o_.max_size > 0 && static_cast<std::int64_t>(words.size()) >= o_.max_size) break;
      words.push_back(word);
    }
    set_vocabulary(std::move(words));
  }

  std::vector<std::int64_t> encode(std::string_view text) const override {
    require("encode");
    std::vector<std::int64_t> ids;
    for (const auto& word : split(text)) {
      if (o_.max_len > 0 && static_cast<std::int64_t>(ids.size()) >= o_.max_len) break;
      const auto it = ids_.find(word);
      ids.push_back(it == ids_.end() ? kUnk : it->second);
    }
    return ids;
  }

  std::string decode(const std::vector<std::int64_t>& ids) const override {
    require("decode");
    std::string out;
    for (std::int64_t id : ids) {
      if (id < 0 || id >= vocab_size()) {
        throw lmrun::Error("word: id " + std::to_string(id) + " is outside the vocabulary of " +
                           std::to_string(vocab_size()));
      }
      if (id == kPad) continue;
      out += (out.empty() ? "" : " ") + words_[static_cast<std::size_t>(id)];
    }
    return out;
  }

  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(words_.size()); }

  std::int64_t special_id(std::string_view token) const override {
    if (token == "<pad>") return kPad;
    if (token == "<unk>") return kUnk;
    return -1;
  }

  void save(const std::filesystem::path& folder) const override {
    require("save");
    std::string text = std::string(kHeader) + "\n";
    for (const auto& word : words_) text += word + "\n";
    lmrun::write_file_atomic(folder / "vocab.txt", text);
  }

  void load(const std::filesystem::path& folder) override {
    const auto file = lmrun::saved_tokenizer_file(folder, "vocab.txt", "word: ");
    std::ifstream in(file, std::ios::binary);
    if (!in) throw lmrun::Error("word: cannot read " + file.string());
    std::string line;
    if (!std::getline(in, line) || line != kHeader) {
      throw lmrun::Error("word: " + file.string() + " line 1 is not '" + kHeader + "'",
                         "the saved tokenizer is damaged; fit it again");
    }
    std::vector<std::string> words;
    while (std::getline(in, line)) words.push_back(line);
    if (words.size() < 2 || words[0] != "<pad>" || words[1] != "<unk>") {
      throw lmrun::Error("word: " + file.string() + " does not start with <pad> and <unk>",
                         "the saved tokenizer is damaged; fit it again");
    }
    set_vocabulary(std::move(words));
  }

 private:
  void set_vocabulary(std::vector<std::string> words) {
    words_ = std::move(words);
    ids_.clear();
    for (std::size_t i = 0; i < words_.size(); ++i) {
      if (!ids_.emplace(words_[i], static_cast<std::int64_t>(i)).second) {
        throw lmrun::Error("word: the vocabulary holds '" + words_[i] + "' twice");
      }
    }
  }

  void require(const char* what) const {
    if (words_.empty()) {
      throw lmrun::Error(std::string("word: ") + what + "() before the vocabulary exists",
                         "call fit() on the training text or load() a saved tokenizer first");
    }
  }

  WordOptions o_;
  std::unique_ptr<icu::BreakIterator> breaker_;  // cloned per call: ICU iterators hold state
  std::vector<std::string> words_;
  std::unordered_map<std::string, std::int64_t> ids_;
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
      schema, [](const WordOptions& options, const lmrun::TokenizerContext&) {
        if (options.max_size == 1 || options.max_size == 2) {
          throw lmrun::Error("max_size = " + std::to_string(options.max_size) +
                                 " leaves no room for words beside <pad> and <unk>",
                             "set max_size >= 3, or 0 for no limit");
        }
        return std::make_shared<WordTokenizer>(options);
      });
}

}  // namespace

LMRUN_PLUGIN("word", "0.1.0", register_word)
