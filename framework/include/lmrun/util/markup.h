// A dataset's markup tokens (TokenizerContext::special_tokens: "|user|", "|end|") found in a text,
// so that a tokenizer encodes each as one id and only the text between them as ordinary text.
//
//   MarkupSplit markup({"|user|", "|end|"});
//   markup.split(text, [&](std::string_view ordinary) { ... },
//                [&](std::size_t token) { ids.push_back(id_of[token]); });
//
// Where two tokens start at one place the longer wins ("|end|" inside "|end|x|"). One pass over
// the text: a byte that starts no token costs one table lookup. Header-only; the char, bpe,
// sentencepiece and word tokenizers use it.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmrun {

class MarkupSplit {
 public:
  MarkupSplit() = default;
  // `tokens`: non-empty and distinct (the caller checks).
  explicit MarkupSplit(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
    for (std::size_t i = 0; i < tokens_.size(); ++i) longest_first_.push_back(i);
    std::stable_sort(
        longest_first_.begin(), longest_first_.end(),
        [&](std::size_t a, std::size_t b) { return tokens_[a].size() > tokens_[b].size(); });
    for (const auto& token : tokens_) starts_[static_cast<unsigned char>(token.front())] = true;
  }

  bool empty() const { return tokens_.empty(); }
  const std::vector<std::string>& tokens() const { return tokens_; }

  // Index of the token that starts at text[pos] (the longest), or npos.
  std::size_t match(std::string_view text, std::size_t pos) const {
    if (!starts_[static_cast<unsigned char>(text[pos])]) return npos;
    for (std::size_t i : longest_first_) {
      if (text.compare(pos, tokens_[i].size(), tokens_[i]) == 0) return i;
    }
    return npos;
  }

  // Calls on_text(piece) for each non-empty run of ordinary text and on_token(index) for each
  // token, in text order.
  template <class OnText, class OnToken>
  void split(std::string_view text, OnText on_text, OnToken on_token) const {
    std::size_t begin = 0;
    for (std::size_t pos = 0; pos < text.size();) {
      const std::size_t token = tokens_.empty() ? npos : match(text, pos);
      if (token == npos) {
        ++pos;
        continue;
      }
      if (pos > begin) on_text(text.substr(begin, pos - begin));
      on_token(token);
      pos += tokens_[token].size();
      begin = pos;
    }
    if (text.size() > begin) on_text(text.substr(begin));
  }

  // The text with every token taken out, the pieces between them joined by `glue`: what a
  // tokenizer fits its vocabulary on.
  std::string ordinary_text(std::string_view text, std::string_view glue) const {
    if (tokens_.empty()) return std::string(text);
    std::string out;
    out.reserve(text.size());
    bool cut = false;
    split(
        text,
        [&](std::string_view piece) {
          if (cut && !out.empty()) out += glue;
          out += piece;
          cut = false;
        },
        [&](std::size_t) { cut = true; });
    return out;
  }

  static constexpr std::size_t npos = std::string_view::npos;

 private:
  std::vector<std::string> tokens_;
  std::vector<std::size_t> longest_first_;  // indices into tokens_, longest first
  std::array<bool, 256> starts_{};          // bytes that start some token
};

}  // namespace lmrun
