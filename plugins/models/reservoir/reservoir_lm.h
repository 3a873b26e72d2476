// The reservoir language model: token embedding -> FiLM from the context -> the fixed reservoir ->
// a trained readout. An echo state network (rate neurons) or a liquid state machine (leaky
// integrate-and-fire neurons), whichever `activation` says.
//
//   ReservoirLm lm(options, context, training_ids);
//   at::Tensor y = lm->forward(idx, mask);                 // (B, T) -> (B, T, V or D)
//   ReservoirCarry carry = lm->start(B, lm->context_vector(conditioning));
//   at::Tensor last = lm->run(idx, carry).select(1, -1);   // advances the carry
//
// Checkpoint keys (they are API):
//   embed.weight             (V, D)   parameter (learned) or buffer (fixed_random, sinusoidal)
//   film.weight, film.bias   (2D, D), (2D)  use_context only; zero at start: the identity
//   reservoir.*              buffers, never trained (reservoir.h)
//   readout.*                the trained readout (readout.h)
//   score_floor              (1) buffer: ridge scores read as probabilities floored here; 0: off
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "embedding.h"
#include "lmrun/batch.h"
#include "lmrun/model.h"
#include "readout.h"
#include "reservoir.h"
#include "reservoir_options.h"

namespace lmrun::models::reservoir {

// What carries over from one call of run() to the next: the reservoir's state, the readout's
// window, and the context the sequences are conditioned on.
struct ReservoirCarry {
  at::Tensor state;    // (K, N, B) on the CPU, fp32 (reservoir_kernel.h)
  at::Tensor history;  // (B, W - 1, N) on the model's device
  at::Tensor context;  // (B, D) the context vector; undefined: no conditioning
  std::int64_t batch_size = 0;
  std::int64_t filled = 0;  // tokens fed
};

class ReservoirLmImpl : public torch::nn::Module {
 public:
  // `ids`: the training text's token ids, read by the sinusoidal embedding (may be empty).
  ReservoirLmImpl(const ReservoirOptions& options, const ModelContext& context,
                  const std::vector<std::int64_t>& ids);

  // idx (B, T) -> (B, T, out) from a zero state, unconditioned. `record` receives the stages.
  at::Tensor forward(const at::Tensor& idx, const at::Tensor& mask,
                     std::vector<Activation>* record = nullptr);

  // (B, D): the masked mean of the context's token embeddings; undefined for an undefined one.
  at::Tensor context_vector(const Conditioning& context);
  ReservoirCarry start(std::int64_t batch_size, const at::Tensor& context_vector) const;
  // idx (B, T) after the tokens in `carry` -> (B, T, out), advancing it.
  at::Tensor run(const at::Tensor& idx, ReservoirCarry& carry,
                 std::vector<Activation>* record = nullptr);

  // The closed-form readout (readout_fit = "ridge"): ridge regression of the targets (one-hot
  // next token, or its embedding for vector outputs) on the linear readout's features over
  // windows of `sequence_length` of the training ids. Returns one line on what it did.
  std::string fit_ridge(const std::vector<std::int64_t>& ids, std::int64_t sequence_length);

  // `lmrun inspect`'s lines (Model::diagnostics).
  std::string diagnostics(const Batch& batch);

  at::Tensor token_embeddings() const { return embed_->weight(); }
  const ReservoirOptions& options() const { return options_; }
  std::int64_t out_dim() const { return out_dim_; }
  std::vector<std::string> describe() const;
  // Model::flops_per_token: 6 per multiply-add of a token's forward pass (forward and backward,
  // nanoGPT's convention): the reservoir's sparse recurrence and input weights (the gradient
  // flows back through them to the embeddings and FiLM), and the readout's.
  double flops_per_token() const;
  void set_note(std::string note) { note_ = std::move(note); }

 private:
  // tokens (B, T) -> the embeddings the reservoir and readout see (B, T, D), FiLM applied.
  at::Tensor embed(const at::Tensor& idx, const at::Tensor& context);
  void check_tokens(const at::Tensor& idx) const;

  ReservoirOptions options_;
  std::int64_t vocab_size_;
  std::int64_t out_dim_;
  bool vectors_;
  TokenEmbedder embed_{nullptr};
  torch::nn::Linear film_{nullptr};
  Reservoir reservoir_{nullptr};
  Readout readout_{nullptr};
  at::Tensor score_floor_;  // (1) ridge: > 0 when the logits are log(max(scores, floor))
  std::string note_;        // what construction fitted (ridge), for the summary
};
TORCH_MODULE(ReservoirLm);

}  // namespace lmrun::models::reservoir
