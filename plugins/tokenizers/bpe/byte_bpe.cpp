// Byte-level BPE: GPT-2's pre-tokeniser through PCRE2 (JIT-compiled), merges by rank over ids,
// and training by pair counts updated incrementally.
#include "byte_bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>
#include <queue>
#include <set>
#include <tuple>

#include "lmrun/error.h"
#include "lmrun/util/utf8.h"

namespace lmrun::tokenizers {

namespace {

constexpr const char* kWho = "tokenizer 'bpe': ";

// Unicode's White_Space, which is what \s means in Python's `regex` module for GPT-2's pattern.
#define LMRUN_WS                                                                               \
  "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{" \
  "202F}"                                                                                      \
  "\\x{205F}\\x{3000}"
constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" LMRUN_WS "\\p{L}\\p{N}]+|[" LMRUN_WS
    "]+(?![^" LMRUN_WS "])|[" LMRUN_WS "]+";
#undef LMRUN_WS

// GPT-2's byte order: the printable bytes first (as themselves), then the rest.
std::vector<int> gpt2_byte_order() {
  std::vector<int> order;
  for (int b = '!'; b <= '~'; ++b) order.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) order.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) order.push_back(b);
  for (int b = 0; b < 256; ++b) {
    if (std::find(order.begin(), order.end(), b) == order.end()) order.push_back(b);
  }
  return order;
}

std::uint64_t pair_key(std::int64_t left, std::int64_t right) {
  return (static_cast<std::uint64_t>(left) << 32) | static_cast<std::uint32_t>(right);
}

// Every (left, right) of `s`, left to right without overlaps, becomes `merged`.
void merge_pair(std::vector<std::int32_t>& s, std::int32_t left, std::int32_t right,
                std::int32_t merged) {
  std::size_t out = 0;
  for (std::size_t i = 0; i < s.size(); ++out) {
    if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
      s[out] = merged;
      i += 2;
    } else {
      s[out] = s[i++];
    }
  }
  s.resize(out);
}

}  // namespace

const std::vector<std::string>& byte_to_unicode() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> out(256);
    const std::vector<int> order = gpt2_byte_order();
    int extra = 0;
    for (std::size_t i = 0; i < order.size(); ++i) {
      const int b = order[i];
      const bool printable = i < 188;  // the first 188 of the order stand for themselves
      out[static_cast<std::size_t>(b)] =
          utf8::encode(static_cast<char32_t>(printable ? b : 256 + extra++));
    }
    return out;
  }();
  return table;
}

bool unicode_to_bytes(std::string_view token, std::string& bytes) {
  static const std::unordered_map<char32_t, unsigned char> inverse = [] {
    std::unordered_map<char32_t, unsigned char> out;
    for (int b = 0; b < 256; ++b) {
      const std::string& s = byte_to_unicode()[static_cast<std::size_t>(b)];
      std::size_t pos = 0;
      out[utf8::decode(s, pos)] = static_cast<unsigned char>(b);
    }
    return out;
  }();
  bytes.clear();
  std::size_t pos = 0;
  while (pos < token.size()) {
    const auto it = inverse.find(utf8::decode(token, pos));
    if (it == inverse.end()) return false;
    bytes.push_back(static_cast<char>(it->second));
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The pre-tokeniser: one compiled pattern, shared; match data per call (thread-safe).

class PreTokenizer {
 public:
  PreTokenizer() {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      throw Error(std::string(kWho) + "PCRE2 refused GPT-2's pattern at " + std::to_string(offset) +
                  ": " + reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if no JIT
  }
  ~PreTokenizer() { pcre2_code_free(code_); }
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Calls piece(begin, end, matched) for consecutive pieces covering `text`: regex matches, and
  // single bytes that are not UTF-8 (matched = false).
  template <class Piece>
  void split(std::string_view text, Piece&& piece) const {
    const std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> owned(
        pcre2_match_data_create_from_pattern(code_, nullptr), pcre2_match_data_free);
    pcre2_match_data* data = owned.get();
    if (data == nullptr) throw std::bad_alloc();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t pos = 0;
    while (pos < text.size()) {
      // The pattern matches every character, and nothing empty: a match starts later only past
      // bytes that are not UTF-8.
      const int rc = pcre2_match(code_, subject, text.size(), pos, 0, data, nullptr);
      std::size_t begin = text.size(), end = text.size();
      if (rc > 0) {
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
        begin = ovector[0];
        end = ovector[1];
      } else if (rc != PCRE2_ERROR_NOMATCH) {
        throw Error(std::string(kWho) + "PCRE2 match failed with code " + std::to_string(rc));
      }
      for (; pos < begin; ++pos) piece(pos, pos + 1, false);
      if (end > begin) {
        piece(begin, end, true);
      } else if (begin < text.size()) {
        piece(begin, begin + 1, false);
      }
      pos = std::max(end, begin + 1);
    }
  }

 private:
  pcre2_code* code_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Construction

ByteBpe::ByteBpe() : pre_(std::make_unique<PreTokenizer>()) {}
ByteBpe::ByteBpe(ByteBpe&&) noexcept = default;
ByteBpe& ByteBpe::operator=(ByteBpe&&) noexcept = default;
ByteBpe::~ByteBpe() = default;

ByteBpe ByteBpe::from_tokens(std::vector<std::string> tokens,
                             const std::vector<std::pair<std::int64_t, std::int64_t>>& merges,
                             std::vector<std::pair<std::string, std::int64_t>> specials) {
  ByteBpe bpe;
  bpe.tokens_ = std::move(tokens);
  bpe.merges_ = merges;
  bpe.specials_ = std::move(specials);
  bpe.index();
  return bpe;
}

void ByteBpe::index() {
  const auto n = static_cast<std::int64_t>(tokens_.size());
  if (n >= INT32_MAX) throw Error(std::string(kWho) + "more than 2^31 tokens");
  is_special_.assign(tokens_.size(), false);
  for (const auto& [text, id] : specials_) {
    if (id < 0 || id >= n) {
      throw Error(std::string(kWho) + "special token '" + text + "' has id " + std::to_string(id) +
                  ", outside the vocabulary of " + std::to_string(n));
    }
    if (text.empty()) throw Error(std::string(kWho) + "a special token is empty");
    is_special_[static_cast<std::size_t>(id)] = true;
  }
  std::unordered_map<std::string_view, std::int32_t> by_bytes;
  by_bytes.reserve(tokens_.size());
  for (std::int64_t id = 0; id < n; ++id) {
    if (!is_special_[static_cast<std::size_t>(id)])
      by_bytes.emplace(tokens_[static_cast<std::size_t>(id)], static_cast<std::int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = by_bytes.find(std::string(1, static_cast<char>(b)));
    if (it == by_bytes.end()) {
      throw Error(std::string(kWho) + "the vocabulary has no token for the byte " +
                      std::to_string(b) + " ('" + byte_to_unicode()[static_cast<std::size_t>(b)] +
                      "')",
                  "a byte-level BPE vocabulary holds all 256 bytes as tokens");
    }
    byte_id_[b] = it->second;
  }
  ranks_.clear();
  ranks_.reserve(merges_.size() * 2);
  for (std::size_t rank = 0; rank < merges_.size(); ++rank) {
    const auto [left, right] = merges_[rank];
    if (left < 0 || left >= n || right < 0 || right >= n) {
      throw Error(std::string(kWho) + "merge " + std::to_string(rank) +
                  " names a token outside the vocabulary");
    }
    const std::string merged =
        tokens_[static_cast<std::size_t>(left)] + tokens_[static_cast<std::size_t>(right)];
    const auto it = by_bytes.find(merged);
    if (it == by_bytes.end()) {
      std::string shown;
      for (unsigned char c : merged) shown += byte_to_unicode()[c];
      throw Error(std::string(kWho) + "merge " + std::to_string(rank) + " makes '" + shown +
                      "', which is not in the vocabulary",
                  "the vocabulary and merges files do not belong together");
    }
    // A pair listed twice keeps its first (lower) rank, as GPT-2's dictionary does.
    ranks_.emplace(pair_key(left, right),
                   std::make_pair(static_cast<std::int32_t>(rank), it->second));
  }
}

std::int64_t ByteBpe::special_id(std::string_view text) const {
  for (const auto& [special, id] : specials_) {
    if (special == text) return id;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Encoding

void ByteBpe::merge_word(std::vector<std::int32_t>& s) const {
  if (s.size() < 2) return;
  if (s.size() <= 48) {
    // GPT-2's own loop: the lowest-ranked adjacent pair, merged wherever it occurs, until none.
    while (s.size() >= 2) {
      std::int32_t best = INT32_MAX, merged = -1, left = -1, right = -1;
      for (std::size_t i = 0; i + 1 < s.size(); ++i) {
        const auto it = ranks_.find(pair_key(s[i], s[i + 1]));
        if (it != ranks_.end() && it->second.first < best) {
          best = it->second.first;
          merged = it->second.second;
          left = s[i];
          right = s[i + 1];
        }
      }
      if (merged < 0) return;
      merge_pair(s, left, right, merged);
    }
    return;
  }
  // Long words: the same merges in the same order through a heap of (rank, position) over a
  // linked list, O(n log n). A merge's result only takes part in later ranks, so taking pairs by
  // rank, and equal ranks left to right, is GPT-2's order.
  const auto n = static_cast<std::int32_t>(s.size());
  std::vector<std::int32_t> prev(s.size()), next(s.size());
  for (std::int32_t i = 0; i < n; ++i) {
    prev[static_cast<std::size_t>(i)] = i - 1;
    next[static_cast<std::size_t>(i)] = i + 1 < n ? i + 1 : -1;
  }
  using Entry = std::tuple<std::int32_t, std::int32_t, std::int32_t, std::int32_t>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;  // rank, pos, l, r
  auto push = [&](std::int32_t pos) {
    if (pos < 0) return;  // the word's first symbol has no left neighbour (prev[0] = -1)
    const std::int32_t after = next[static_cast<std::size_t>(pos)];
    if (after < 0) return;
    const auto it =
        ranks_.find(pair_key(s[static_cast<std::size_t>(pos)], s[static_cast<std::size_t>(after)]));
    if (it != ranks_.end())
      heap.emplace(it->second.first, pos, s[static_cast<std::size_t>(pos)],
                   s[static_cast<std::size_t>(after)]);
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> gone(s.size(), false);
  while (!heap.empty()) {
    const auto [rank, pos, left, right] = heap.top();
    heap.pop();
    const auto p = static_cast<std::size_t>(pos);
    const std::int32_t after = next[p];
    if (gone[p] || after < 0 || s[p] != left || s[static_cast<std::size_t>(after)] != right)
      continue;  // stale: a neighbour merged since
    s[p] = ranks_.find(pair_key(left, right))->second.second;
    const auto a = static_cast<std::size_t>(after);
    gone[a] = true;
    next[p] = next[a];
    if (next[a] >= 0) prev[static_cast<std::size_t>(next[a])] = pos;
    push(prev[p]);
    push(pos);
  }
  std::size_t out = 0;
  for (std::int32_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)])
    s[out++] = s[static_cast<std::size_t>(i)];
  s.resize(out);
}

void ByteBpe::encode_ordinary(
    std::string_view text, std::vector<std::int64_t>& out,
    std::unordered_map<std::string, std::vector<std::int32_t>>& cache) const {
  std::vector<std::int32_t> symbols;
  std::string key;
  pre_->split(text, [&](std::size_t begin, std::size_t end, bool matched) {
    if (!matched || end - begin == 1) {
      out.push_back(byte_id_[static_cast<unsigned char>(text[begin])]);
      return;
    }
    key.assign(text.data() + begin, end - begin);
    auto it = cache.find(key);
    if (it == cache.end()) {
      symbols.clear();
      for (std::size_t i = begin; i < end; ++i)
        symbols.push_back(byte_id_[static_cast<unsigned char>(text[i])]);
      merge_word(symbols);
      it = cache.emplace(key, symbols).first;
    }
    out.insert(out.end(), it->second.begin(), it->second.end());
  });
}

std::vector<std::int64_t> ByteBpe::encode(std::string_view text, SpecialPolicy policy,
                                          std::size_t offset) const {
  std::vector<std::int64_t> out;
  out.reserve(text.size() / 3);
  std::unordered_map<std::string, std::vector<std::int32_t>> cache;
  std::size_t pos = 0;
  while (pos < text.size()) {
    // The earliest special token from here (the longest where two start at one place).
    std::size_t at = std::string_view::npos;
    const std::pair<std::string, std::int64_t>* found = nullptr;
    if (policy != SpecialPolicy::kText) {
      for (const auto& special : specials_) {
        const std::size_t where = text.find(special.first, pos);
        if (where < at || (where == at && where != std::string_view::npos &&
                           special.first.size() > found->first.size())) {
          at = where;
          found = &special;
        }
      }
    }
    if (found != nullptr && policy == SpecialPolicy::kRefused) {
      throw Error(std::string(kWho) + "the text holds the special token " + found->first +
                      " at byte " + std::to_string(offset + at),
                  "set tokenizer.special = \"allowed\" to encode it as its id, or \"text\" to "
                  "encode it as ordinary text");
    }
    const std::size_t end = found ? at : text.size();
    encode_ordinary(text.substr(pos, end - pos), out, cache);
    if (found == nullptr) break;
    out.push_back(found->second);
    pos = at + found->first.size();
  }
  return out;
}

std::string ByteBpe::decode(const std::vector<std::int64_t>& ids) const {
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int64_t id = ids[i];
    if (id < 0 || id >= vocab_size()) {
      throw Error(std::string(kWho) + "id " + std::to_string(id) + " at position " +
                  std::to_string(i) + " is outside the vocabulary of " +
                  std::to_string(vocab_size()));
    }
    out += tokens_[static_cast<std::size_t>(id)];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Training

ByteBpe ByteBpe::train(std::string_view text, const BpeTraining& options) {
  const auto specials_count = static_cast<std::int64_t>(options.special_tokens.size());
  if (options.vocab_size < specials_count + 256) {
    throw Error(std::string(kWho) + "vocab_size " + std::to_string(options.vocab_size) +
                    " leaves no room for the 256 bytes and " + std::to_string(specials_count) +
                    " special tokens",
                "set vocab_size to at least " + std::to_string(specials_count + 256));
  }
  ByteBpe bpe;
  for (const auto& special : options.special_tokens) {
    if (bpe.special_id(special) >= 0)
      throw Error(std::string(kWho) + "special token '" + special + "' is listed twice");
    bpe.specials_.emplace_back(special, static_cast<std::int64_t>(bpe.tokens_.size()));
    bpe.tokens_.push_back(special);
  }
  for (int b : gpt2_byte_order()) bpe.tokens_.emplace_back(1, static_cast<char>(b));
  bpe.index();

  // Distinct pre-tokens and their counts; special tokens in the text are cut out.
  std::unordered_map<std::string_view, std::int64_t> counts;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t at = text.size(), length = 0;
    for (const auto& special : options.special_tokens) {
      const std::size_t where = text.find(special, pos);
      if (where < at) {
        at = where;
        length = special.size();
      }
    }
    const std::string_view segment = text.substr(pos, at - pos);
    bpe.pre_->split(segment, [&](std::size_t begin, std::size_t end, bool matched) {
      if (matched && end - begin > 1) ++counts[segment.substr(begin, end - begin)];
    });
    pos = at + length;
  }
  // Words in a fixed order (by their bytes), so that nothing depends on hash order.
  std::vector<std::pair<std::string_view, std::int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<std::int32_t>> words(sorted.size());
  std::vector<std::int64_t> weight(sorted.size());
  for (std::size_t w = 0; w < sorted.size(); ++w) {
    for (unsigned char c : sorted[w].first) words[w].push_back(bpe.byte_id_[c]);
    weight[w] = sorted[w].second;
  }

  std::unordered_map<std::uint64_t, std::int64_t> pair_count;
  std::unordered_map<std::uint64_t, std::set<std::size_t>> where;
  auto add_pairs = [&](std::size_t w, std::int64_t sign) {
    const auto& s = words[w];
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      const std::uint64_t key = pair_key(s[i], s[i + 1]);
      pair_count[key] += sign * weight[w];
      if (sign > 0) where[key].insert(w);
    }
  };
  for (std::size_t w = 0; w < words.size(); ++w) add_pairs(w, +1);
  // Max-heap of (count, -left, -right): the most frequent pair, ties to the lower ids. Entries
  // whose count has changed since are skipped when they surface.
  using Entry = std::tuple<std::int64_t, std::int64_t, std::int64_t>;
  std::priority_queue<Entry> heap;
  auto push = [&](std::uint64_t key) {
    const std::int64_t c = pair_count[key];
    if (c > 0)
      heap.emplace(c, -static_cast<std::int64_t>(key >> 32),
                   -static_cast<std::int64_t>(key & 0xffffffffu));
  };
  for (const auto& entry : pair_count) push(entry.first);

  std::unordered_map<std::string, std::int32_t> existing;
  for (std::size_t id = 0; id < bpe.tokens_.size(); ++id) {
    if (!bpe.is_special_[id]) existing.emplace(bpe.tokens_[id], static_cast<std::int32_t>(id));
  }
  while (static_cast<std::int64_t>(bpe.tokens_.size()) < options.vocab_size && !heap.empty()) {
    const auto [count, minus_left, minus_right] = heap.top();
    heap.pop();
    const auto left = static_cast<std::int32_t>(-minus_left);
    const auto right = static_cast<std::int32_t>(-minus_right);
    const std::uint64_t key = pair_key(left, right);
    if (pair_count[key] != count) continue;  // stale
    if (count < options.min_frequency) break;
    const std::string merged =
        bpe.tokens_[static_cast<std::size_t>(left)] + bpe.tokens_[static_cast<std::size_t>(right)];
    auto [it, fresh] = existing.emplace(merged, static_cast<std::int32_t>(bpe.tokens_.size()));
    if (fresh) bpe.tokens_.push_back(merged);
    const std::int32_t id = it->second;
    bpe.merges_.emplace_back(left, right);
    std::set<std::uint64_t> touched;
    for (std::size_t w : std::set<std::size_t>(where[key])) {
      auto& s = words[w];
      bool has = false;
      for (std::size_t i = 0; i + 1 < s.size() && !has; ++i)
        has = s[i] == left && s[i + 1] == right;
      if (!has) continue;
      for (std::size_t i = 0; i + 1 < s.size(); ++i) touched.insert(pair_key(s[i], s[i + 1]));
      add_pairs(w, -1);
      merge_pair(s, left, right, id);
      add_pairs(w, +1);
      for (std::size_t i = 0; i + 1 < s.size(); ++i) touched.insert(pair_key(s[i], s[i + 1]));
    }
    for (std::uint64_t t : touched) push(t);
  }
  bpe.index();
  return bpe;
}

}  // namespace lmrun::tokenizers
