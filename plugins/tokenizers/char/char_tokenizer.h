// Tokenizer `char`: one token per Unicode code point (the tokenizer of char-rnn and nanoGPT's
// shakespeare_char).
//
//   [tokenizer]
//   type = "char"
//   special_tokens = ["<unk>"]          # optional; ids 0..n-1 in the order listed
//   vocab = "data/my_alphabet.txt"      # optional; otherwise fitted on the training text
//
// Ids: the special tokens first, in the order listed, then the distinct code points of the
// vocabulary in increasing code point order, so the same text always gives the same ids.
// Text is strict UTF-8; invalid bytes are an error naming their byte offset. A character outside
// the vocabulary encodes to <unk> when the tokenizer has one and is an error otherwise.
// decode() turns a special token's id into its literal text ("<eos>").
//
// Markup tokens: the dataset's special tokens (TokenizerContext::special_tokens, "|user|",
// "|end|") take the ids after the tokenizer's own special tokens, before the characters. encode()
// finds them in the text (the longest where two start at one place) and gives each one id;
// decode() writes them back; fit() learns the characters of the text between them only. A
// markup token equal to one of the tokenizer's own special tokens shares its id (and is then
// found in the text too). Without markup tokens everything is as it was, the saved file included.
//
// save(folder) writes one versioned text file, char_tokenizer.txt (see kFileName below).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lmrun/tokenizer.h"
#include "lmrun/util/markup.h"

namespace lmrun::tokenizers {

struct CharOptions {
  // Subset of kSpecialTokens; their ids are 0..n-1 in this order.
  std::vector<std::string> special_tokens;
  // A UTF-8 file whose distinct characters (newlines included) are the vocabulary. Empty: fit()
  // learns the vocabulary from the training text.
  std::filesystem::path vocab;
};

class CharTokenizer final : public Tokenizer {
 public:
  static constexpr const char* kPluginVersion = "0.1.0";
  static constexpr const char* kFileName = "char_tokenizer.txt";
  // 2 adds the markup tokens; a tokenizer without them still writes 1.
  static constexpr int kFormatVersion = 2;
  static const std::vector<std::string> kSpecialTokens;  // <pad>, <bos>, <eos>, <unk>

  // Throws lmrun::Error on a bad special token list, a markup token that is empty, repeated or
  // holds a line break, or an unreadable `vocab` file.
  explicit CharTokenizer(const CharOptions& options, std::vector<std::string> markup = {});

  void fit(std::string_view text) override;
  std::vector<std::int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int64_t>& ids) const override;
  std::int64_t vocab_size() const override;
  std::int64_t special_id(std::string_view token) const override;
  void save(const std::filesystem::path& folder) const override;
  // The saved special tokens, markup tokens and characters replace this tokenizer's own.
  void load(const std::filesystem::path& folder) override;

 private:
  // Installs a vocabulary: `characters` sorted and distinct.
  void build(std::vector<std::string> specials, std::vector<std::string> markup,
             std::vector<char32_t> characters);
  // Appends the ids of the characters text[begin, end) (no markup there) to `ids`; errors give
  // byte offsets in `text`.
  void encode_characters(std::string_view text, std::size_t begin, std::size_t end,
                         std::vector<std::int64_t>& ids) const;
  void require_vocabulary(const char* what) const;
  std::int64_t id_of(char32_t cp) const;
  // The <unk> id, or an lmrun::Error naming the character and its byte offset in the text.
  std::int64_t unknown(std::size_t offset, char32_t cp) const;

  bool from_vocab_file_ = false;  // fit() keeps the vocabulary
  bool ready_ = false;            // a vocabulary is installed
  std::vector<std::string> specials_;
  std::vector<std::string> markup_;       // the dataset's markup tokens, as given
  MarkupSplit markup_split_;              // finds them in a text
  std::vector<std::int64_t> markup_ids_;  // id of markup_[i]
  std::int64_t n_added_ = 0;              // markup tokens with ids of their own
  std::vector<char32_t> characters_;   // sorted; id of characters_[i] is first_character_id() + i
  std::vector<std::int32_t> bmp_ids_;  // 65536 entries: id of each BMP code point, -1 if absent
  std::unordered_map<char32_t, std::int32_t> astral_ids_;  // code points >= U+10000
  std::vector<std::string> pieces_;                        // id -> its UTF-8 text
  std::int64_t unk_id_ = -1;

  std::int64_t first_character_id() const {
    return static_cast<std::int64_t>(specials_.size()) + n_added_;
  }
};

}  // namespace lmrun::tokenizers
