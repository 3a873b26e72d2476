// What a batch of examples is, as datasets make it and models, objectives and metrics read it.
//
//   lmrun::Batch batch = dataset->sample(lmrun::Split::kTrain, 12, generator);
//   at::Tensor outputs = batch.context.defined()
//       ? model->forward_conditioned(batch.inputs, batch.mask, batch.context)
//       : model->forward(batch.inputs, batch.mask);
#pragma once

#include <ATen/core/Tensor.h>

namespace lmrun {

// Text an example is conditioned on apart from its own tokens: a conversation's system turn,
// rendered and encoded (Dataset::chat_format), which the example's tokens do not repeat. Models
// that use it (Model::forward_conditioned) turn it into whatever they condition on (the
// transformer reads it as a prefix; the reservoir as FiLM modifiers of its input); the others
// ignore it, and lmrun says so at the start of the run.
struct Conditioning {
  at::Tensor tokens;  // (B, S) int64 token ids, padded at the end; undefined: no conditioning
  at::Tensor mask;    // (B, S) bool, true at real tokens; undefined when nothing is padded
  bool defined() const { return tokens.defined(); }
};

struct Batch {
  at::Tensor inputs;  // (B, T) int64 token ids
  // Language model: (B, T) int64, the next token; classification: (B) int64. kIgnoreTarget
  // (lmrun/common.h) where nothing is to be learned (a prompt, a padded position, a user's turn).
  at::Tensor targets;
  at::Tensor mask;            // (B, T) bool, true at real tokens; undefined when nothing is padded
  Conditioning context = {};  // per example; undefined for datasets without any
};

}  // namespace lmrun
