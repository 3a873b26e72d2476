// The `text_file` dataset: a whole file read into memory, encoded once into one int64 stream, and
// batched by gathering windows out of that stream with index_select (no loop over the batch rows).
#include "text_file.h"

#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ATen/ops/arange.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/randint.h>

#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/util/files.h"
#include "lmrun/util/utf8.h"

namespace lmrun::datasets {

namespace {

constexpr const char* kWho = "dataset 'text_file': ";

bool is_continuation(char byte) { return (static_cast<unsigned char>(byte) & 0xC0) == 0x80; }

// Byte offset where code point number `index` starts (text.size() for index == count). The text
// is valid UTF-8, so every byte that is not a continuation byte starts a code point.
std::size_t code_point_offset(const std::string& text, std::size_t index) {
  std::size_t seen = 0;
  for (std::size_t pos = 0; pos < text.size(); ++pos) {
    if (!is_continuation(text[pos]) && seen++ == index) return pos;
  }
  return text.size();
}

// nanoGPT's int(n * 0.9) with 0.9 = 1 - val_fraction: the size of the training part of n items.
std::int64_t training_part(std::int64_t n, double val_fraction) {
  return static_cast<std::int64_t>(std::floor(static_cast<double>(n) * (1.0 - val_fraction)));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reading and splitting

TextFileDataset::TextFileDataset(TextFileOptions options) : options_(std::move(options)) {
  // The host range-checks these already; a plugin built into another program may not have one.
  if (!(options_.val_fraction >= 0 && options_.val_fraction < 1)) {
    throw Error("val_fraction must be in [0, 1), got " + std::to_string(options_.val_fraction));
  }
  if (options_.block_size < 1) {
    throw Error("block_size must be >= 1, got " + std::to_string(options_.block_size));
  }
  const std::filesystem::path& path = options_.path;
  const std::string problem = regular_file_problem(path);  // a FIFO would block the read
  if (!problem.empty()) {
    throw Error(
        "data file " + path.string() + " " + problem,
        "check `path` in [data]: lmrun resolves a relative path against the working directory, "
        "so run it from the repository root (which ships data/tinyshakespeare/input.txt)");
  }
  text_ = read_file(path, "check the file's permissions");
  if (text_.empty()) {
    throw Error(
        "data file " + path.string() + " is empty",
        "point `path` at a UTF-8 text file with at least block_size + 1 characters per split");
  }
  const std::size_t bad = utf8::find_invalid(text_);
  if (bad != std::string_view::npos) {
    throw Error("data file " + path.string() + " is not valid UTF-8 at byte offset " +
                    std::to_string(bad) + ": " + utf8::why_invalid(text_, bad),
                "convert the file to UTF-8 first (e.g. iconv -t UTF-8)");
  }
  std::int64_t code_points = 0;
  for (char byte : text_) code_points += is_continuation(byte) ? 0 : 1;
  const std::int64_t train_code_points = training_part(code_points, options_.val_fraction);
  training_text_bytes_ = code_point_offset(text_, static_cast<std::size_t>(train_code_points));
}

std::string TextFileDataset::training_text() const { return text_.substr(0, training_text_bytes_); }

void TextFileDataset::prepare(const Tokenizer& tokenizer) {
  std::vector<std::int64_t> ids;
  try {
    ids = tokenizer.encode(text_);
  } catch (const Error& e) {
    throw e.with_context(std::string(kWho) + "encoding " + options_.path.string());
  }
  const auto n = static_cast<std::int64_t>(ids.size());
  // The tensor adopts the vector's buffer: a megabyte corpus is 8 MB of ids, not worth a copy.
  auto owner = std::make_unique<std::vector<std::int64_t>>(std::move(ids));
  at::Tensor tokens = at::from_blob(
      owner->data(), {n}, [buffer = owner.get()](void*) { delete buffer; }, at::kLong);  // (N)
  owner.release();

  const std::int64_t n_train = training_part(n, options_.val_fraction);
  const std::int64_t needed = options_.block_size + 1;  // one window and its next token
  auto check = [&](Split split, std::int64_t size) {
    if (size >= needed) return;
    throw Error(std::string(kWho) + "the " + split_name(split) + " split of " +
                    options_.path.string() + " has " + std::to_string(size) +
                    " tokens, fewer than block_size + 1 = " + std::to_string(needed),
                "use a longer file, a smaller block_size, or a val_fraction that leaves both "
                "splits block_size + 1 tokens (val_fraction = 0 trains without validation)");
  };
  check(Split::kTrain, n_train);
  if (has_split(Split::kVal)) check(Split::kVal, n - n_train);

  tokens_ = tokens;
  train_ = tokens_.narrow(0, 0, n_train);
  val_ = tokens_.narrow(0, n_train, n - n_train);
}

bool TextFileDataset::has_split(Split split) const {
  return split == Split::kTrain || (split == Split::kVal && options_.val_fraction > 0);
}

const at::Tensor& TextFileDataset::stream(Split split, const char* what) const {
  if (!has_split(split)) {
    throw Error(std::string(kWho) + what + ": there is no " + split_name(split) + " split",
                split == Split::kVal ? "set val_fraction > 0 to hold out a validation split"
                                     : "text_file has train and val splits only");
  }
  if (!tokens_.defined()) {
    throw Error(std::string(kWho) + what + " before prepare()",
                "call prepare(tokenizer) once the tokenizer is fitted or loaded");
  }
  return split == Split::kTrain ? train_ : val_;
}

// ---------------------------------------------------------------------------------------------
// Batches

std::int64_t TextFileDataset::num_examples(Split split) const {
  // Window i needs tokens [i*T, i*T + T], its last target included.
  return (stream(split, "num_examples").size(0) - 1) / options_.block_size;
}

Batch TextFileDataset::sample(Split split, std::int64_t batch_size,
                              at::Generator& generator) const {
  const at::Tensor& data = stream(split, "sample");  // (n)
  if (batch_size < 1) {
    throw Error(std::string(kWho) + "sample: batch_size must be >= 1, got " +
                std::to_string(batch_size));
  }
  const std::int64_t T = options_.block_size;
  // As nanoGPT's get_batch: starts in [0, n - T), so the last target, at start + T, exists.
  at::Tensor starts = at::randint(0, data.size(0) - T, {batch_size}, generator, at::kLong);  // (B)
  at::Tensor index = starts.unsqueeze(1).add(at::arange(T, at::kLong));  // (B, T) token positions
  Batch batch;
  batch.inputs = data.index_select(0, index.view({-1})).view({batch_size, T});          // (B, T)
  batch.targets = data.index_select(0, index.add(1).view({-1})).view({batch_size, T});  // (B, T)
  return batch;
}

Batch TextFileDataset::slice(Split split, std::int64_t begin, std::int64_t end) const {
  const at::Tensor& data = stream(split, "slice");  // (n)
  const std::int64_t count = num_examples(split);
  if (begin < 0 || begin > end || end > count) {
    throw Error(std::string(kWho) + "slice [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") of the " + split_name(split) + " split is outside [0, " + std::to_string(count) +
                ")");
  }
  const std::int64_t T = options_.block_size;
  const std::int64_t k = end - begin;
  // Window i is data[i*T, i*T + T); consecutive windows tile the stream, so a slice is a reshape.
  // Cloned so that a caller writing into the batch cannot change the dataset.
  Batch batch;
  batch.inputs = data.narrow(0, begin * T, k * T).view({k, T}).clone();       // (k, T)
  batch.targets = data.narrow(0, begin * T + 1, k * T).view({k, T}).clone();  // (k, T)
  return batch;
}

// ---------------------------------------------------------------------------------------------
// Registration

namespace {

Schema<TextFileOptions> text_file_schema() {
  Schema<TextFileOptions> schema;
  schema.add("path", &TextFileOptions::path, "UTF-8 text file to model").required().input_file();
  schema
      .add("val_fraction", &TextFileOptions::val_fraction,
           "tail fraction of the token stream held out for validation")
      .range(0, 1, true);
  schema
      .add("block_size", &TextFileOptions::block_size,
           "tokens per training window (the model's context length)")
      .min(1);
  return schema;
}

void register_text_file(Registry& registry) {
  registry.add<Dataset>("text_file", "a UTF-8 text file as a language-modelling token stream",
                        text_file_schema(),
                        [](const TextFileOptions& options, const DatasetContext&) {
                          return std::make_shared<TextFileDataset>(options);
                        });
}

}  // namespace
}  // namespace lmrun::datasets

LMRUN_PLUGIN("text_file", lmrun::datasets::TextFileDataset::kPluginVersion,
             lmrun::datasets::register_text_file)
