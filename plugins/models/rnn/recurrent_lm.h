// Recurrent character language model (char-rnn, https://github.com/karpathy/char-rnn): an
// embedding, a stacked LSTM or GRU, and a linear head. One module for both cells; the cell kind
// is a flag read in exactly one place (RecurrentLmImpl::run).
//
//   RecurrentLm lm(config);
//   at::Tensor logits = lm->forward(idx);               // (B, T) -> (B, T, V), zero initial state
//   RecurrentState state = lm->make_state(B);
//   at::Tensor last = lm->forward_cached(prompt, state);  // (B, t) -> (B, V), advances the state
//
// Checkpoint keys (they are API):
//   wte.weight                 (V, E)       token embedding; also the head's weight when tied
//   rnn.weight_ih_l{k}         (G*H, E|H)   LibTorch's names; G = 4 gates (LSTM) or 3 (GRU)
//   rnn.weight_hh_l{k}         (G*H, H)
//   rnn.bias_ih_l{k}           (G*H)
//   rnn.bias_hh_l{k}           (G*H)
//   lm_head.weight             (V, H)       untied only
//   lm_head.bias               (V)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/rnn.h>

#include "lmrun/model.h"

namespace lmrun::models {

enum class CellKind { kLstm, kGru };

// Resolved and validated.
struct RecurrentLmConfig {
  CellKind cell = CellKind::kLstm;
  std::int64_t vocab_size = 0;
  std::int64_t n_layer = 2;
  std::int64_t n_embd = 128;    // E
  std::int64_t n_hidden = 256;  // H
  double dropout = 0.0;         // between recurrent layers and before the head
  bool tie_weights = false;     // needs n_embd == n_hidden
};

// The hidden state of every layer after the tokens fed so far. Undefined tensors before the
// first token mean zeros.
class RecurrentState final : public DecodeState {
 public:
  std::int64_t length() const override { return filled; }
  bool select_rows(const at::Tensor& rows) override;

  at::Tensor h;  // (L, B, H)
  at::Tensor c;  // (L, B, H) LSTM cell state; undefined for a GRU
  std::int64_t batch_size = 0;
  std::int64_t filled = 0;  // tokens fed
};

// Output projection H -> V with a bias. When tied, its weight is the token embedding, passed in
// rather than registered a second time (LibTorch's parameters() does not deduplicate).
class HeadImpl : public torch::nn::Module {
 public:
  HeadImpl(std::int64_t in_features, std::int64_t vocab_size, bool own_weight);
  // x (..., H) -> (..., V); tied_weight (V, H) is used when this head has no weight of its own.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& tied_weight);

 private:
  friend class RecurrentLmImpl;  // reads the weights for the decoding kernel
  at::Tensor weight_;            // (V, H); undefined when tied
  at::Tensor bias_;              // (V)
};
TORCH_MODULE(Head);

class RecurrentLmImpl : public torch::nn::Module {
 public:
  explicit RecurrentLmImpl(RecurrentLmConfig config);

  // idx (B, T) int64 -> logits (B, T, V), starting from a zero hidden state. `record`, when
  // given, receives the embeddings and the last layer's outputs (Model::activations).
  at::Tensor forward(const at::Tensor& idx, std::vector<Activation>* record = nullptr);

  RecurrentState make_state(std::int64_t batch_size) const;
  // Feeds idx (B, t) after the tokens in `state`, advances it, and returns the logits of the last
  // position (B, V). No autograd.
  at::Tensor forward_cached(const at::Tensor& idx, RecurrentState& state);

  // Single tokens of a batch-1 state on a contiguous fp32 CPU model go through rnn_step()
  // (rnn_kernel.h) unless this is off; everything else through LibTorch's modules. On by default.
  void set_fast_decode(bool on) { fast_decode_ = on; }

  std::int64_t num_parameters() const;
  std::vector<std::string> describe() const;
  const RecurrentLmConfig& config() const { return config_; }

 private:
  // idx (B, T) from hidden state (h, c) -> top-layer outputs (B, T, H); h and c are replaced by
  // the final state. The one place that knows LSTM from GRU.
  at::Tensor run(const at::Tensor& idx, at::Tensor& h, at::Tensor& c);
  // (..., H) -> (..., V): dropout, then the head.
  at::Tensor logits(const at::Tensor& out);
  void check_tokens(const at::Tensor& idx, const char* what) const;
  const char* name() const;
  // One token through rnn_step(), advancing `state`; undefined when some tensor does not suit
  // the kernel (the caller then takes the op path).
  at::Tensor decode_one(std::int64_t token, RecurrentState& state);

  RecurrentLmConfig config_;
  torch::nn::Embedding wte_{nullptr};
  torch::nn::LSTM lstm_{nullptr};  // registered as "rnn" when cell == kLstm
  torch::nn::GRU gru_{nullptr};    // registered as "rnn" when cell == kGru
  Head lm_head_{nullptr};
  bool fast_decode_ = true;
};
TORCH_MODULE(RecurrentLm);

}  // namespace lmrun::models
