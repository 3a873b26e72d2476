// Dataset plugins: where examples come from, and how they become batches.
//
//   auto data = registry.create<lmrun::Dataset>("text_file", params, {seed});
//   tokenizer->fit(data->training_text());
//   data->prepare(*tokenizer);
//   lmrun::Batch batch = data->sample(lmrun::Split::kTrain, 12, generator);
//
// A dataset serves one task. Language modelling: inputs are token windows of sequence_length()
// and targets the same windows shifted by one. Classification: inputs are padded token sequences
// and targets one class id each. All randomness comes from the generator the caller passes, so a
// run is reproducible and resumes exactly from the generator's saved state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "lmrun/batch.h"
#include "lmrun/common.h"
#include "lmrun/registry.h"
#include "lmrun/tokenizer.h"

namespace lmrun {

enum class Task { kLanguageModel, kClassification };

// How a dataset of conversations renders one message as text: the role's marker, then `start`,
// the content and `end` ("|user||start|Good morrow.|end|"). The markers are the dataset's special
// tokens. The host saves it with each checkpoint, so `lmrun chat` renders the user's turns as the
// model was trained on them and stops an answer at `end`.
struct ChatFormat {
  std::string system, user, assistant;  // role markers
  std::string start, end;               // around the content
  bool defined() const { return !end.empty(); }
  // The text of one message; `role` is "system", "user" or "assistant".
  std::string render(std::string_view role, std::string_view content) const {
    const std::string& marker = role == "system" ? system : role == "user" ? user : assistant;
    return marker + start + std::string(content) + end;
  }
};

// A named set of examples reported on its own (see Dataset::groups).
struct ExampleGroup {
  std::string name;       // "test, 3 digits", "held out, 5 digits"
  std::int64_t size = 0;  // examples
};

struct DatasetContext {
  std::uint64_t seed = 0;  // the experiment's seed, for splits that shuffle
};

// After construction, before prepare(), these already answer (`lmrun check` asks them to plan the
// run without tokenizing anything): task(), has_split(), sequence_length(), num_classes(),
// class_names(). Construction may read the data's files; it must not need the tokenizer.
class LMRUN_API Dataset {
 public:
  virtual ~Dataset() = default;

  virtual Task task() const = 0;

  // The text a tokenizer is fitted on: the training split only, so nothing of val or test leaks
  // into the vocabulary.
  virtual std::string training_text() const = 0;

  // Tokenizes every split. Called once, after the tokenizer is fitted or loaded.
  virtual void prepare(const Tokenizer& tokenizer) = 0;

  virtual bool has_split(Split split) const = 0;

  // After prepare(): how many examples sequential access sees. Language model: non-overlapping
  // windows of sequence_length(); classification: examples.
  virtual std::int64_t num_examples(Split split) const = 0;

  // The model's context length: the window size (language model) or max padded length.
  virtual std::int64_t sequence_length() const = 0;

  // Classification only: number of classes and their names, in id order. 0 / empty otherwise.
  virtual std::int64_t num_classes() const { return 0; }
  virtual std::vector<std::string> class_names() const { return {}; }

  // A random batch drawn with `generator`, the only randomness used.
  virtual Batch sample(Split split, std::int64_t batch_size, at::Generator& generator) const = 0;

  // Examples [begin, end) in order, for full passes (evaluation, prediction).
  virtual Batch slice(Split split, std::int64_t begin, std::int64_t end) const = 0;

  // Groups of examples that training (at its end) and `lmrun eval` evaluate one by one, every
  // metric over each whole group, reported as a table in the log and in summary.json: the
  // arithmetic problems by operand length, with held-out lengths the model never trains on. A
  // group may hold examples of no split; sequence_length() covers them all. Default: none.
  virtual std::vector<ExampleGroup> groups() const { return {}; }
  // Examples [begin, end) of group `group` in order, as slice() reads a split.
  virtual Batch group_slice(std::size_t group, std::int64_t begin, std::int64_t end) const;

  // Tokens the dataset's text uses as markup ("|system|", "|end|"), which the tokenizer must keep
  // whole, one id each: the host adds them to the tokenizer's own special tokens
  // (TokenizerContext::special_tokens). Known after construction. Default: none.
  virtual std::vector<std::string> special_tokens() const { return {}; }

  // Conversations: how a message is rendered (see ChatFormat). Known after construction.
  // Default: undefined (not a dataset of conversations).
  virtual ChatFormat chat_format() const { return {}; }

  // The objective plugin ([objective] type) a run uses when the experiment names none. Default:
  // softmax cross-entropy over the next token or the classes.
  virtual std::string objective() const { return "cross_entropy"; }

  // Writes what reproduces or audits the run's data into `folder` (the run's data/, created and
  // emptied by the caller), such as generated examples. Default: nothing.
  virtual void save(const std::filesystem::path& /*folder*/) const {}
};

inline Batch Dataset::group_slice(std::size_t group, std::int64_t, std::int64_t) const {
  throw Error("this dataset has no example group " + std::to_string(group));
}

template <>
struct KindTraits<Dataset> {
  static constexpr Kind kKind = Kind::kDataset;
  using Context = DatasetContext;
};

}  // namespace lmrun
