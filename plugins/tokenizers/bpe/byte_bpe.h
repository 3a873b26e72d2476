// Byte-level BPE as GPT-2 defines it, without file formats: a vocabulary of byte strings, ranked
// merges, GPT-2's pre-tokenisation regex (PCRE2, Unicode-aware), special tokens, and training.
//
//   ByteBpe bpe = ByteBpe::from_tokens(tokens, merges, specials);   // GPT-2's files, decoded
//   std::vector<std::int64_t> ids = bpe.encode("Hello world", SpecialPolicy::kRefused);
//   std::string text = bpe.decode(ids);
//   ByteBpe trained = ByteBpe::train(corpus, {4096, 2, {"<|endoftext|>"}});
//
// Encoding, as GPT-2's encoder.py: the text is cut into pre-tokens by the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (\s being Unicode's White_Space, as in Python's `regex` module that GPT-2 used); each pre-token's
// bytes start as one token per byte, and the adjacent pair of lowest merge rank is merged until
// no pair has a rank. Bytes that are not UTF-8 match no part of the regex: each such byte is a
// pre-token of its own, so any byte string encodes, and decode(encode(x)) == x for every x.
//
// Special tokens are matched in the text before pre-tokenisation, by the caller's policy: as
// their ids (kAllowed), as an error naming the offset (kRefused), or as ordinary text (kText).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lmrun::tokenizers {

enum class SpecialPolicy { kAllowed, kRefused, kText };

struct BpeTraining {
  std::int64_t vocab_size = 4096;  // specials + 256 bytes + merges
  std::int64_t min_frequency = 2;  // a pair seen fewer times is not merged
  std::vector<std::string> special_tokens;
};

// GPT-2's printable stand-ins for bytes: byte b <-> one code point, so that a token's bytes can be
// written as text (a space is "Ġ", U+0120). `byte_to_unicode()[b]` is UTF-8.
const std::vector<std::string>& byte_to_unicode();
// The bytes a GPT-2 token string stands for; false when a character is not one of the stand-ins.
bool unicode_to_bytes(std::string_view token, std::string& bytes);

class PreTokenizer;

class ByteBpe {
 public:
  // `tokens[id]` the raw bytes of token `id` (ids are the positions); `merges` in rank order as
  // (left id, right id); specials as (text, id), each id one of `tokens`. Throws lmrun::Error
  // when a byte has no token or a merge's result is not in the vocabulary.
  static ByteBpe from_tokens(std::vector<std::string> tokens,
                             const std::vector<std::pair<std::int64_t, std::int64_t>>& merges,
                             std::vector<std::pair<std::string, std::int64_t>> specials);

  // Learns merges from `text` (pre-tokenised as for encoding; special tokens in the text are
  // left out). Ids: the specials first, then the 256 bytes in GPT-2's order, then one token per
  // merge. Deterministic: the most frequent pair wins, ties to the lower (left, right) ids.
  static ByteBpe train(std::string_view text, const BpeTraining& options);

  ByteBpe(ByteBpe&&) noexcept;
  ByteBpe& operator=(ByteBpe&&) noexcept;
  ~ByteBpe();

  // `offset`: where `text` starts in what the caller encodes, for the byte an error names.
  std::vector<std::int64_t> encode(std::string_view text, SpecialPolicy policy,
                                   std::size_t offset = 0) const;
  // Throws lmrun::Error on an id outside the vocabulary.
  std::string decode(const std::vector<std::int64_t>& ids) const;

  std::int64_t vocab_size() const { return static_cast<std::int64_t>(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }
  // (left, right) ids in rank order.
  const std::vector<std::pair<std::int64_t, std::int64_t>>& merges() const { return merges_; }
  const std::vector<std::pair<std::string, std::int64_t>>& specials() const { return specials_; }
  // -1 when `text` is not a special token.
  std::int64_t special_id(std::string_view text) const;

 private:
  ByteBpe();
  void index();
  void merge_word(std::vector<std::int32_t>& symbols) const;
  void encode_ordinary(std::string_view text, std::vector<std::int64_t>& out,
                       std::unordered_map<std::string, std::vector<std::int32_t>>& cache) const;

  std::vector<std::string> tokens_;
  std::vector<std::pair<std::int64_t, std::int64_t>> merges_;
  std::vector<std::pair<std::string, std::int64_t>> specials_;
  std::vector<bool> is_special_;
  std::int32_t byte_id_[256] = {};
  // (left << 32 | right) -> (rank, merged id)
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> ranks_;
  std::unique_ptr<PreTokenizer> pre_;
};

}  // namespace lmrun::tokenizers
