// Tokenizer plugins: text <-> token ids.
//
//   auto tokenizer = registry.create<lmrun::Tokenizer>("char", params, {});
//   tokenizer->fit(dataset->training_text());      // or load(run_dir / "tokenizer")
//   std::vector<std::int64_t> ids = tokenizer->encode("ROMEO:");
//   std::string text = tokenizer->decode(ids);
//
// Lifecycle: created, then either fit() once on training text or load() from a saved folder, then
// used from any number of threads through the const methods. No LibTorch here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "lmrun/error.h"
#include "lmrun/registry.h"
#include "lmrun/util/files.h"

namespace lmrun {

struct TokenizerContext {
  // Special tokens the dataset needs (Dataset::special_tokens()), besides those of the
  // tokenizer's own parameters: each is one id, encode() never splits it, and decode() gives it
  // back as written; special_id(token) finds it. A saved tokenizer keeps them. May be empty.
  std::vector<std::string> special_tokens;
};

class LMRUN_API Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Learns the vocabulary from the training split's text. A tokenizer with a given vocabulary
  // (a vocabulary file in its params) ignores the text.
  virtual void fit(std::string_view text) = 0;

  virtual std::vector<std::int64_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<std::int64_t>& ids) const = 0;

  // Number of ids, special tokens included; every id encode() returns is below it.
  virtual std::int64_t vocab_size() const = 0;

  // Id of a special token ("<pad>", "<bos>", "<eos>", "<unk>"), or -1 when it has none.
  virtual std::int64_t special_id(std::string_view /*token*/) const { return -1; }

  // Writes everything load() needs into `folder` (created by the caller, empty).
  virtual void save(const std::filesystem::path& folder) const = 0;
  // Restores a saved tokenizer; throws lmrun::Error naming the file on a missing or corrupt one.
  virtual void load(const std::filesystem::path& folder) = 0;
};

// The file `name` in a saved tokenizer's `folder`, for load(): throws the one error every
// tokenizer gives when it is not there, prefixed with `who` ("tokenizer 'bpe': ").
inline std::filesystem::path saved_tokenizer_file(const std::filesystem::path& folder,
                                                  const std::string& name, const std::string& who) {
  const std::filesystem::path file = folder / name;
  const std::string problem = regular_file_problem(file);  // a FIFO would block the reader
  if (problem == "does not exist") {
    throw Error(who + "no saved tokenizer: " + file.string() + " does not exist",
                "load() takes the folder that save() wrote (a run's tokenizer/ folder)");
  }
  if (!problem.empty()) {
    throw Error(who + "saved tokenizer " + file.string() + " " + problem,
                "put back the file that save() wrote");
  }
  return file;
}

template <>
struct KindTraits<Tokenizer> {
  static constexpr Kind kKind = Kind::kTokenizer;
  using Context = TokenizerContext;
};

}  // namespace lmrun
