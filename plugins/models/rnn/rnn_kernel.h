// One decoding step of a stacked LSTM or GRU language model for a single sequence, in plain C++
// over raw fp32 weights (the recurrent twin of the transformer's decode_kernel.h).
//
//   RnnWeights w = ...;                                // pointers into the module's parameters
//   std::vector<float> scratch(rnn_scratch_size(w));
//   rnn_step(w, token, h, c, scratch.data(), logits);  // h, c: (L, H), updated in place
//
// The gate equations and orders are LibTorch's (torch.nn.LSTM: i, f, g, o; torch.nn.GRU: r, z, n
// with r applied to W_hn h + b_hn), so the results agree with the module to float rounding.
#pragma once

#include <cstdint>
#include <vector>

namespace lmrun::models {

struct RnnLayerWeights {
  const float* weight_ih;  // (G*H, in)   in = E for layer 0, H above; G = 4 (LSTM) or 3 (GRU)
  const float* weight_hh;  // (G*H, H)
  const float* bias_ih;    // (G*H)
  const float* bias_hh;    // (G*H)
};

struct RnnWeights {
  bool lstm = true;
  std::int64_t vocab_size = 0;       // V
  std::int64_t n_embd = 0;           // E
  std::int64_t n_hidden = 0;         // H
  const float* embedding = nullptr;  // (V, E)
  std::vector<RnnLayerWeights> layers;
  const float* head_weight = nullptr;  // (V, H)
  const float* head_bias = nullptr;    // (V)
};

// Floats of working memory rnn_step needs.
std::int64_t rnn_scratch_size(const RnnWeights& w);

// Feeds `token`: h (and c, LSTM only; null for a GRU) hold every layer's state, (L, H) row-major,
// and are advanced in place; writes the V logits of the top layer's output.
void rnn_step(const RnnWeights& w, std::int64_t token, float* h, float* c, float* scratch,
              float* logits);

}  // namespace lmrun::models
