// Pre-trained word vectors in text form, for models that initialise an embedding from them:
// GloVe ("word v1 ... vD" per line, no header) and word2vec/fastText text (a first line "N D").
//
//   std::unordered_set<std::string> words = {"the", "king", ...};   // the vocabulary's
//   lmrun::WordVectors vectors = lmrun::read_word_vectors("glove.6B.50d.txt", words);
//   vectors.dim;                  // 50
//   vectors.found.at("king");     // its 50 floats
//
// The rules, for the files as they are found in the wild:
// - Words are bytes. A word that is not UTF-8 (cp1252 quotes in some GloVe copies) is kept as its
//   bytes: it matches no token of a UTF-8 vocabulary and is counted in non_utf8_words.
// - The last line may lack its newline; "\r\n" line ends are accepted; blank lines are skipped.
// - The dimension is the first vector line's field count minus one (or the header's D; a file
//   with a header must hold the N vectors it announces, or it was cut short). A line
//   with more fields has a word with spaces in it (glove.840B has some): the last D fields are
//   the vector, the rest the word. Fewer fields is an error naming the file and line, as is a
//   field that is not a number in a vector that is kept (other vectors' numbers are not parsed).
// - A word listed twice keeps its first vector (the more frequent one, in frequency-ordered files).
// Only the vectors of `wanted` words are kept, so a 400,000-word file costs the vocabulary's
// memory, not its own.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lmrun/error.h"
#include "lmrun/util/files.h"
#include "lmrun/util/utf8.h"

namespace lmrun {

struct WordVectors {
  std::int64_t dim = 0;
  std::unordered_map<std::string, std::vector<float>> found;  // wanted words the file has
  std::int64_t lines = 0;                                     // vectors in the file
  std::int64_t non_utf8_words = 0;                            // of them, words that are not UTF-8
};

namespace detail {

inline std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (start < line.size()) {
    std::size_t end = line.find(' ', start);
    if (end == std::string_view::npos) end = line.size();
    if (end > start) fields.push_back(line.substr(start, end - start));
    start = end + 1;
  }
  return fields;
}

inline bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace detail

inline WordVectors read_word_vectors(const std::filesystem::path& file,
                                     const std::unordered_set<std::string>& wanted) {
  const std::string problem = regular_file_problem(file);  // a FIFO would block the read
  std::ifstream in;
  if (problem.empty()) in.open(file, std::ios::binary);
  if (!problem.empty() || !in) {
    throw Error(
        "cannot read word vectors " + file.string() + (problem.empty() ? "" : ": it " + problem),
        "check the path (it is relative to the folder lmrun runs in)");
  }
  WordVectors out;
  std::string line;
  std::int64_t number = 0;
  std::int64_t promised = -1;  // the word2vec header's N
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto fields = detail::split_spaces(line);
    if (fields.empty()) continue;
    auto where = [&] { return file.string() + ":" + std::to_string(number) + ": "; };
    if (out.dim == 0 && out.lines == 0 && fields.size() == 2 && detail::all_digits(fields[0]) &&
        detail::all_digits(fields[1])) {
      // word2vec/fastText header "N D"
      const auto n =
          std::from_chars(fields[0].data(), fields[0].data() + fields[0].size(), promised);
      const auto d =
          std::from_chars(fields[1].data(), fields[1].data() + fields[1].size(), out.dim);
      if (n.ec != std::errc() || d.ec != std::errc())
        throw Error(where() + "the header's numbers are out of range");
      if (out.dim <= 0) throw Error(where() + "the header gives dimension 0");
      continue;
    }
    if (out.dim == 0) out.dim = static_cast<std::int64_t>(fields.size()) - 1;
    const auto dim = static_cast<std::size_t>(out.dim);
    if (out.dim <= 0 || fields.size() < dim + 1) {
      throw Error(
          where() + "expected a word and " + std::to_string(out.dim) + " numbers, found " +
              std::to_string(fields.size()) + " fields",
          "word vectors are GloVe text: one word and its numbers per line, space-separated");
    }
    // A word with spaces: everything before the last `dim` fields.
    const std::size_t word_fields = fields.size() - dim;
    const std::string_view first = fields.front(), last_word = fields[word_fields - 1];
    const std::string word(
        first.data(), static_cast<std::size_t>(last_word.data() + last_word.size() - first.data()));
    ++out.lines;
    if (utf8::find_invalid(word) != std::string_view::npos) ++out.non_utf8_words;
    if (!wanted.count(word) || out.found.count(word)) continue;
    std::vector<float> vector(dim);
    for (std::size_t i = 0; i < dim; ++i) {
      const std::string_view field = fields[word_fields + i];
      const auto result = std::from_chars(field.data(), field.data() + field.size(), vector[i]);
      if (result.ec != std::errc() || result.ptr != field.data() + field.size() ||
          !std::isfinite(vector[i])) {
        throw Error(where() + "'" + std::string(field) + "' in the vector of '" + word +
                    "' is not a finite number");
      }
    }
    out.found.emplace(word, std::move(vector));
  }
  if (out.lines == 0) throw Error("word vectors " + file.string() + " hold no vectors");
  if (promised >= 0 && out.lines != promised) {
    throw Error("word vectors " + file.string() + ": the header promises " +
                    std::to_string(promised) + " vectors and the file holds " +
                    std::to_string(out.lines),
                "the file is truncated or was edited: download or convert it again");
  }
  return out;
}

}  // namespace lmrun
