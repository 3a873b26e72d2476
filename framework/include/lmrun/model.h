// Model plugins: a LibTorch module behind one interface for training, evaluation and generation.
//
//   auto model = registry.create<lmrun::Model>("transformer", params, {vocab, block, 0, -1});
//   at::Tensor logits = model->forward(batch.inputs, batch.mask);   // (B, T, V)
//
//   auto state = model->start_decoding(1);              // model-owned: KV cache, hidden state
//   at::Tensor next = model->decode(*state, prompt);     // (1, T0) -> (1, V) at the last position
//   next = model->decode(*state, token);                 // (1, 1)  -> (1, V)
//
// The trainer computes the loss from the logits, so a model only maps tokens to logits. Names given
// to register_module()/register_parameter() become checkpoint keys: they are API.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "lmrun/registry.h"
#include "lmrun/tokenizer.h"

namespace lmrun {

struct ModelContext {
  std::int64_t vocab_size = 0;       // the tokenizer's, special tokens included
  std::int64_t sequence_length = 0;  // the data's window or padded length (block_size)
  std::int64_t num_classes = 0;      // 0 for a language model
  std::int64_t pad_id = -1;          // the tokenizer's <pad> id, -1 when it has none
  // The run's fitted or loaded tokenizer, for initialisation that needs each id's text (word
  // vectors): tokenizer->decode({id}). Valid during construction only; null in unit tests that
  // build a model alone.
  const Tokenizer* tokenizer = nullptr;
  // True when a checkpoint's weights replace the initial ones right after construction (resume,
  // eval, generate, predict): skip initialisation that reads files.
  bool weights_from_checkpoint = false;
};

// A named intermediate tensor of one forward pass (`lmrun inspect`).
struct Activation {
  std::string name;           // "embedding", "blocks.0", "pooled", "logits"
  at::Tensor value;           // (B, T, ...) per position or (B, ...) per text
  bool per_position = false;  // (B, T, ...): statistics leave the padded positions out
};

// What a model carries between decode() calls. Owned by the caller, made by the model.
class LMRUN_API DecodeState {
 public:
  virtual ~DecodeState() = default;
  // Tokens fed so far.
  virtual std::int64_t length() const = 0;
  // Keeps the batch rows `rows` ((B') int64 indices into the current batch, repeats allowed), in
  // that order, as the new batch: beam search carrying each kept hypothesis's cache forward.
  // Returns false, changing nothing, when this state cannot (the default); beam search then
  // recomputes every step from the tokens.
  virtual bool select_rows(const at::Tensor& /*rows*/) { return false; }
};

class LMRUN_API Model {
 public:
  virtual ~Model() = default;

  // The module tree: parameters, train()/eval(), to(device), state for checkpoints.
  virtual torch::nn::Module& module() = 0;

  // inputs (B, T) int64; mask (B, T) bool or undefined. Returns language model logits (B, T, V)
  // or classification logits (B, C).
  virtual at::Tensor forward(const at::Tensor& inputs, const at::Tensor& mask) = 0;

  // Incremental decoding, language models only (a classifier throws lmrun::Error).
  virtual std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size) = 0;
  // Feeds tokens (B, t) after those already in `state`; returns the logits of the last position
  // (B, V). Throws lmrun::Error when state.length() + t would exceed max_context().
  virtual at::Tensor decode(DecodeState& state, const at::Tensor& tokens) = 0;
  // Longest context decode() accepts; 0 when unbounded (recurrent models).
  virtual std::int64_t max_context() const = 0;

  // Optional. forward() with its intermediate tensors, in the order computed, the logits last,
  // for `lmrun inspect`'s activation statistics. The default reports the logits alone, per
  // position when they are (B, T, vocabulary).
  virtual std::vector<Activation> activations(const at::Tensor& inputs, const at::Tensor& mask) {
    at::Tensor logits = forward(inputs, mask);
    const bool per_position = logits.dim() == 3;
    return {Activation{"logits", std::move(logits), per_position}};
  }

  // Several lines: architecture, parameter count.
  virtual std::string summary() const = 0;

  // Optional. Floating-point operations of one training step (forward and backward) per token at
  // the given context length, as nanoGPT's estimate_mfu counts them (6 per parameter of a matrix
  // product, plus the attention products): the numerator of the model-FLOPs utilisation the
  // trainer logs. 0, the default, means unknown, and the log leaves MFU out.
  virtual double flops_per_token(std::int64_t context) const {
    (void)context;
    return 0.0;
  }
};

template <>
struct KindTraits<Model> {
  static constexpr Kind kKind = Kind::kModel;
  using Context = ModelContext;
};

}  // namespace lmrun
