// Objective plugins: the loss a run optimises, from the model's outputs and the batch.
//
//   [objective]
//   type = "cosine_embedding"      # default: what the dataset declares (Dataset::objective())
//   temperature = 0.1
//
//   auto objective = registry.create<lmrun::Objective>("cross_entropy", params, context);
//   objective->attach(*model);                        // once, after the model is built
//   std::int64_t n = objective->count(batch);         // the items its loss sums over
//   at::Tensor sum = objective->loss(outputs, batch); // scalar: the loss summed over them
//   at::Tensor scores = objective->scores(outputs);   // (B, T, V) or (B, C): metrics, samplers
//
// The trainer counts the items of every micro-batch of a step (every rank's, data-parallel) first,
// then divides each micro-batch's summed loss by that total: the step's loss is the mean over the
// global batch, exactly, whatever the accumulation or the number of ranks. Evaluation sums and
// counts alike.
//
// What an objective can rely on:
// - `batch.targets` has every position that must not count set to kIgnoreTarget (lmrun/metric.h)
//   before the objective sees it: padding (batch.mask false), the dataset's own loss masks (an
//   arithmetic problem's question, a conversation's user turns), and the model's washout
//   positions (Model::washout()). Inputs, targets and mask are on the model's device.
// - `outputs` is what Model::forward() returned for the batch: (B, T, V) scores over the
//   vocabulary or (B, C) over classes when output() is kScores; (B, T, D) vectors in the space of
//   Model::token_embeddings() when it is kVectors, the model having been built for that
//   (ModelContext::output).
// - loss() runs under autograd in training and under NoGradGuard in evaluation; it must be
//   differentiable in `outputs` (and in the embeddings it reads from the model, if it lets them
//   train).
// - scores() maps outputs of any leading shape (B, T, ·), (B, ·) or (·) to scores over the
//   vocabulary or the classes: what metrics see, and what generation's sampler chain and beam
//   search turn into a next token (softmax(scores) is the distribution drawn from). For an
//   objective whose model outputs scores, the identity.
// - Calls are guarded by the host like every plugin's: an error names the objective and the call.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "lmrun/dataset.h"
#include "lmrun/model.h"
#include "lmrun/registry.h"

namespace lmrun {

struct ObjectiveContext {
  Task task = Task::kLanguageModel;
  std::int64_t vocab_size = 0;   // the tokenizer's, special tokens included
  std::int64_t num_classes = 0;  // classification: the classes; 0 for a language model
  std::int64_t pad_id = -1;      // the tokenizer's <pad> id, -1 when it has none
};

class LMRUN_API Objective {
 public:
  virtual ~Objective() = default;

  // What the model's forward() must produce for this objective; the host builds the model for it
  // (ModelContext::output) and checks the shapes on a dry batch before any step.
  virtual ModelOutput output() const { return ModelOutput::kScores; }

  // Optional: binds the objective to the run's model, once, after it is built and moved to its
  // device and before any loss. Throws lmrun::Error to refuse a model it cannot work with (a
  // kVectors objective and a model without token_embeddings()). The model outlives the objective.
  virtual void attach(Model& /*model*/) {}

  // The items loss() sums over in `batch`, the trainer's divisor. Default: the targets that are
  // not kIgnoreTarget.
  virtual std::int64_t count(const Batch& batch) const;

  // The loss summed over the batch's counted items: a scalar tensor.
  virtual at::Tensor loss(const at::Tensor& outputs, const Batch& batch) = 0;

  // Scores over the vocabulary or the classes for `outputs` (see above). Default: the outputs.
  virtual at::Tensor scores(const at::Tensor& outputs) { return outputs; }

  // Optional: true when the mean loss is a negative log-likelihood per item in nats, so that
  // exp(val_loss) is a perplexity the trainer may report (cross-entropy without smoothing).
  virtual bool loss_is_nll() const { return false; }
};

inline std::int64_t Objective::count(const Batch& batch) const {
  return (batch.targets != kIgnoreTarget).sum().item<std::int64_t>();
}

template <>
struct KindTraits<Objective> {
  static constexpr Kind kKind = Kind::kObjective;
  using Context = ObjectiveContext;
};

}  // namespace lmrun
