// The byte-level BPE core (byte_bpe.cpp, compiled in) with the standard library's bounds checks on
// (_GLIBCXX_ASSERTIONS, tests/CMakeLists.txt): an index outside a vector aborts the test instead
// of reading a neighbour's memory. Words past 48 symbols merge through a heap over a linked list;
// its first symbol has no left neighbour (issue 21: a read of next[-1] there).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "byte_bpe.h"

namespace {

using lmrun::tokenizers::BpeTraining;
using lmrun::tokenizers::ByteBpe;
using lmrun::tokenizers::SpecialPolicy;

// Merges learned from short words of the syllables the long words below repeat.
ByteBpe trained() {
  std::string corpus;
  for (int i = 0; i < 50; ++i) corpus += "ab abc abcd ba cab dab caf\xc3\xa9 ";
  return ByteBpe::train(corpus, BpeTraining{300, 2, {}});
}

TEST(ByteBpe, WordsOf49To300SymbolsRoundTrip) {
  const ByteBpe bpe = trained();
  ASSERT_GT(bpe.merges().size(), 3u);
  const std::vector<std::string> syllables = {"ab", "abc", "ba", "d", "caf\xc3\xa9", "x"};
  for (std::size_t length = 49; length <= 300; ++length) {
    for (std::size_t start = 0; start < syllables.size(); ++start) {
      // A word of `length` bytes (each byte is a symbol before merging): syllables in turn.
      std::string word;
      for (std::size_t i = start; word.size() < length; ++i)
        word += syllables[i % syllables.size()];
      word.resize(length);
      const std::vector<std::int64_t> ids = bpe.encode(word, SpecialPolicy::kText);
      ASSERT_EQ(bpe.decode(ids), word) << "length " << length;
      ASSERT_LT(ids.size(), word.size()) << "no merge in a word of " << length << " bytes";
    }
  }
}

}  // namespace
