// Dataset `text_file`: one UTF-8 text file as a language-modelling token stream (nanoGPT's
// shakespeare_char data, without the preprocessing step).
//
//   [data]
//   type = "text_file"
//   path = "data/tinyshakespeare/input.txt"
//   val_fraction = 0.1
//   block_size = 64
//
// The split is token-level, as in nanoGPT: prepare() encodes the whole file into one stream of N
// tokens; train is the first floor(N * (1 - val_fraction)) tokens and val the rest. The tokenizer
// is fitted before any tokens exist, so training_text() splits the *text* the same way at a code
// point boundary: the first floor(C * (1 - val_fraction)) of the file's C code points. For a
// character tokenizer (one token per code point) the two splits are exactly the same, so nothing
// of val reaches the vocabulary; for a subword tokenizer they agree up to the token that straddles
// the boundary.
//
// Examples are windows of block_size tokens; the targets are the same window shifted by one.
// sample() draws window starts uniformly from [0, n - block_size) of a split's n tokens;
// num_examples()/slice() see the non-overlapping windows; window i starts at token i*block_size.
// Batches are CPU int64 tensors, contiguous, never views of the stream. There is no test split.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <ATen/core/Tensor.h>

#include "lmrun/dataset.h"

namespace lmrun::datasets {

struct TextFileOptions {
  std::filesystem::path path;    // required; the UTF-8 text
  double val_fraction = 0.1;     // in [0, 1): the tail of the token stream kept for validation
  std::int64_t block_size = 64;  // >= 1: tokens per window, the model's context length
};

class TextFileDataset final : public Dataset {
 public:
  static constexpr const char* kPluginVersion = "0.1.0";

  // Reads and checks the file (exists, not empty, valid UTF-8); throws lmrun::Error otherwise.
  explicit TextFileDataset(TextFileOptions options);

  Task task() const override { return Task::kLanguageModel; }
  std::string training_text() const override;
  // Throws lmrun::Error when a split in use has fewer than block_size + 1 tokens.
  void prepare(const Tokenizer& tokenizer) override;
  bool has_split(Split split) const override;
  std::int64_t num_examples(Split split) const override;
  std::int64_t sequence_length() const override { return options_.block_size; }
  // `generator`: a CPU generator. inputs, targets: (B, T) int64; mask undefined.
  Batch sample(Split split, std::int64_t batch_size, at::Generator& generator) const override;
  Batch slice(Split split, std::int64_t begin, std::int64_t end) const override;

 private:
  // The split's tokens, after checking that it exists and prepare() ran.
  const at::Tensor& stream(Split split, const char* what) const;

  TextFileOptions options_;
  std::string text_;                     // the whole file
  std::size_t training_text_bytes_ = 0;  // text_[0, this) is the training text
  at::Tensor tokens_;                    // (N) int64, the whole file; undefined before prepare()
  at::Tensor train_;                     // (N_train) view of tokens_
  at::Tensor val_;                       // (N - N_train) view of tokens_
};

}  // namespace lmrun::datasets
