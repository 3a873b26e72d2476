// The reservoir's readouts: what maps the reservoir's states (and the current token's embedding)
// to the outputs, logits over the vocabulary or a vector in the token-embedding space. The only
// trained part besides the embeddings and the FiLM modifiers.
//
//   Readout readout(options, n_units, n_embd, out_dim);
//   at::Tensor history = readout->empty_history(B, N, options);        // (B, W - 1, N) zeros
//   at::Tensor y = readout->forward(states, history, embeddings, ctx);  // (B, T, out_dim)
//   history = readout->next_history(states, history);                  // the last W - 1 states
//
// Kinds (ReadoutKind):
//   linear  y = A [x_t; e_t] + b                     (ridge-fittable: readout_fit = "ridge")
//   mlp     readout_layers x (Linear, GELU) of readout_hidden, then a linear output
//   cnn2d   the window of the last W states as a one-channel (W, n_units) image: a Conv2d with a
//           (3, kernel) kernel (1 in time when W < 3) and `stride` over units, then cnn_layers
//           more convolutions (residual blocks of two when `residual`), GELU after each; the
//           flattened maps, with e_t, feed a hidden layer of readout_hidden (none when 0) and a
//           linear output
//   cnn3d   the same with the units on grid = [rows, cols]: a (W, rows, cols) volume, time as
//           depth, Conv3d; context_channels more input channels carry the system message's
//           context vector (a learned projection, constant over the volume; zero without one)
// e_t joins the features only when readout_input (it is the current token: a readout without it
// sees the token only through the reservoir).
//
// Checkpoint keys, under the model's `readout.`:
//   out.weight (O, F), out.bias (O)            every kind; F the features of the last layer
//   hidden.{i}.weight, hidden.{i}.bias         mlp
//   conv.{i}.weight, conv.{i}.bias             cnn2d, cnn3d (0 the first; residual: 2 per block)
//   head.weight, head.bias                     cnn with readout_hidden > 0
//   context.weight (context_channels, D)       cnn3d with use_context (no bias)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "reservoir_options.h"

namespace lmrun::models::reservoir {

class ReadoutImpl : public torch::nn::Module {
 public:
  ReadoutImpl(const ReservoirOptions& options, std::int64_t n_units, std::int64_t n_embd,
              std::int64_t out_dim);

  // states (B, T, N); history (B, W - 1, N), the states before states[:, 0] (zeros at the start
  // of a sequence; ignored by linear and mlp); embeddings (B, T, D) of the current tokens;
  // context (B, D) or undefined. Returns (B, T, out_dim).
  at::Tensor forward(const at::Tensor& states, const at::Tensor& history,
                     const at::Tensor& embeddings, const at::Tensor& context);

  // W - 1 for the cnn readouts, else 0.
  std::int64_t history_length() const { return history_length_; }
  at::Tensor empty_history(std::int64_t batch, const at::Tensor& like) const;
  // The last W - 1 of [history; states] (B, W - 1, N).
  at::Tensor next_history(const at::Tensor& states, const at::Tensor& history) const;

  // linear: the features [x_t; e_t] (B, T, F) that `out` maps (the ridge fit's design matrix).
  at::Tensor linear_features(const at::Tensor& states, const at::Tensor& embeddings) const;
  torch::nn::Linear& out() { return out_; }

  std::vector<std::string> describe() const;

  // Multiply-adds of one token's forward pass: every linear layer's weights, and each
  // convolution's kernel volume times the outputs it computes for the token's window.
  double macs_per_token() const;

 private:
  at::Tensor conv_features(const at::Tensor& states, const at::Tensor& history,
                           const at::Tensor& context);  // (B, T, flat)
  at::Tensor conv(std::size_t i, const at::Tensor& x);

  ReservoirOptions options_;
  std::int64_t n_units_, n_embd_, out_dim_;
  std::int64_t history_length_ = 0;
  std::int64_t flat_ = 0;    // cnn: features after flattening the maps
  double conv_macs_ = 0;     // cnn: the convolutions' multiply-adds for one window
  bool count_macs_ = false;  // conv() adds to conv_macs_ (the construction's dry run)
  torch::nn::ModuleList hidden_{nullptr};
  torch::nn::ModuleList conv_{nullptr};
  torch::nn::Linear head_{nullptr};
  torch::nn::Linear context_{nullptr};
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(Readout);

}  // namespace lmrun::models::reservoir
