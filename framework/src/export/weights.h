// Weights from outside a run, for `[model] init_from`: fine-tuning starts from them with a fresh
// optimizer at step 0 (what --resume is not).
//
//   WeightsSource source = read_weights("gpt2/model.safetensors");
//   InitReport report = load_weights(model, source, /*strict=*/true);
//   FreezeReport frozen = freeze_parameters(model, {"wte", "blocks.0.*"});
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "lmrun/model.h"

namespace lmrun::host {

// The layout name of a model's own keys (module().named_parameters()).
inline constexpr const char* kOwnLayout = "lmrun";

struct WeightsSource {
  std::filesystem::path file;  // the file read
  std::string format;          // "safetensors", "nanoGPT checkpoint", "lmrun checkpoint"
  std::vector<NamedTensor> tensors;
  // Layouts the names may be in, the likeliest first: the file's own statement (an lmrun export's
  // metadata), then what its format implies. kOwnLayout for the model's own names.
  std::vector<std::string> layouts;
  // The folder of the tokenizer saved beside the weights (an lmrun run, checkpoint or export),
  // and that tokenizer's type; empty when there is none.
  std::filesystem::path tokenizer_dir;
  std::string tokenizer_type;
};

// `path`: a .safetensors file or a folder holding model.safetensors; a nanoGPT ckpt.pt (or a
// folder holding one); an lmrun run folder, checkpoint folder or export folder. Throws lmrun::Error
// naming the path: missing, truncated, or not weights at all.
WeightsSource read_weights(const std::filesystem::path& path);

struct InitReport {
  std::string layout;                   // the layout the names were read in
  std::int64_t loaded = 0;              // tensors copied into the model
  std::vector<std::string> missing;     // model tensors the file lacks (kept as initialised)
  std::vector<std::string> unexpected;  // file tensors the model has no place for
  std::vector<std::string> mismatched;  // "name: file [a, b], model [c, d]"
  bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

// Matches the source's tensors to the model's parameters and buffers by name and shape, in the
// layout that matches most of them, and copies them in (converted to the model's dtype and
// device). strict: any mismatch throws lmrun::Error listing them all, before anything is copied.
InitReport load_weights(Model& model, const WeightsSource& source, bool strict);

// The report as lines for the run's banner: what was loaded, and every mismatch.
std::vector<std::string> describe(const InitReport& report, const WeightsSource& source);

struct FreezeReport {
  std::vector<std::string> frozen;  // parameter names, in module order
  std::int64_t frozen_parameters = 0;
};

// True when `name` matches `pattern`: a glob where `*` matches any run of characters, or, without a
// wildcard, the name itself or a module path above it ("wte" matches "wte.weight").
bool matches_pattern(const std::string& name, const std::string& pattern);

// Stops gradients for every parameter a pattern matches. Throws lmrun::Error for a pattern that
// matches none, listing a few names.
FreezeReport freeze_parameters(Model& model, const std::vector<std::string>& patterns);

}  // namespace lmrun::host
