// The reservoir's token embedder: a (V, D) table that is learned (a parameter), fixed random, or
// sinusoidal (fitted once to the training text's co-occurrence statistics; a buffer).
//
//   TokenEmbedder embed(options, vocab_size, ids_of_training_text);
//   at::Tensor e = embed->forward(tokens);      // (B, T) -> (B, T, D)
//
// Checkpoint key: embed.weight (V, D), a parameter (learned) or a buffer (fixed_random,
// sinusoidal).
//
// The sinusoidal fit (fit_sinusoidal below), deterministic and O(text + V K + K^2 k):
//  1. Context statistics: for every token, the counts of its left and right neighbours among the
//     K = sinusoid_context most frequent tokens; positive pointwise mutual information with
//     context-distribution smoothing 0.75 (Levy, Goldberg & Dagan 2015); each row scaled to unit
//     length. Tokens the text never holds have a zero row.
//  2. Spectral coordinates: the rows projected on the k = sinusoid_components leading
//     eigenvectors of their (log-count weighted) Gram matrix, p_v in R^k; then two identity
//     coordinates per token (normal, from reservoir_seed) so that tokens with the same contexts
//     stay distinguishable.
//  3. Sinusoids: entry d of token v is sqrt(2) cos(w_d . (p_v / sigma) + phi_d), the frequencies
//     w_d ~ N(0, I) and phases phi_d ~ U[0, 2 pi) from reservoir_seed: random Fourier features
//     (Rahimi & Recht 2007), so e_u . e_v / D approximates the Gaussian kernel
//     exp(-|p_u - p_v|^2 / (2 sigma^2)): tokens used in similar contexts get similar vectors.
//     The bandwidth sigma (the frequencies' scale) is fitted: of 33 values on a log grid around
//     the median distance, the one whose kernel correlates best with the cosine similarity of the
//     context rows over pairs of the K frequent tokens. Entries have unit RMS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "reservoir_options.h"

namespace lmrun::models::reservoir {

// What the fit chose, for the model's summary.
struct SinusoidalFit {
  at::Tensor table;              // (V, D)
  double bandwidth = 0.0;        // sigma
  double correlation = 0.0;      // of the fitted kernel with the context similarity
  std::int64_t seen_tokens = 0;  // tokens of the vocabulary the text holds
};

// `ids`: the training text's token ids (may be empty: only the identity coordinates count).
SinusoidalFit fit_sinusoidal(const std::vector<std::int64_t>& ids, std::int64_t vocab_size,
                             std::int64_t dim, std::int64_t components, std::int64_t contexts,
                             std::int64_t seed);

class TokenEmbedderImpl : public torch::nn::Module {
 public:
  // `ids` is read by the sinusoidal embedding only; `fit` false leaves its table at zeros for a
  // checkpoint to fill.
  TokenEmbedderImpl(const ReservoirOptions& options, std::int64_t vocab_size,
                    const std::vector<std::int64_t>& ids, bool fit);

  at::Tensor forward(const at::Tensor& tokens) const;  // (B, T) -> (B, T, D)
  const at::Tensor& weight() const { return weight_; }
  bool trainable() const { return weight_.requires_grad(); }
  // One line on how the table was made.
  const std::string& description() const { return description_; }

 private:
  at::Tensor weight_;  // (V, D)
  std::string description_;
};
TORCH_MODULE(TokenEmbedder);

}  // namespace lmrun::models::reservoir
