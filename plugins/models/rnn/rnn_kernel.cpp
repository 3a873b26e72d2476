// The single-sequence LSTM / GRU step of rnn_kernel.h.
#include "rnn_kernel.h"

#include <algorithm>
#include <cmath>

#include "lmrun/util/cpu_kernels.h"

namespace lmrun::models {
namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

std::int64_t rnn_scratch_size(const RnnWeights& w) {
  return 2 * 4 * w.n_hidden;  // the input-side and hidden-side gate pre-activations
}

void rnn_step(const RnnWeights& w, std::int64_t token, float* h, float* c, float* scratch,
              float* logits) {
  const std::int64_t H = w.n_hidden;
  const std::int64_t gates = (w.lstm ? 4 : 3) * H;
  float* gi = scratch;          // (G*H) W_ih x + b_ih
  float* gh = scratch + gates;  // (G*H) W_hh h + b_hh
  const float* x = w.embedding + token * w.n_embd;
  std::int64_t in = w.n_embd;
  for (std::size_t l = 0; l < w.layers.size(); ++l) {
    const RnnLayerWeights& layer = w.layers[l];
    float* hl = h + static_cast<std::int64_t>(l) * H;
    cpu::matvec(layer.weight_ih, layer.bias_ih, x, gates, in, gi);
    cpu::matvec(layer.weight_hh, layer.bias_hh, hl, gates, H, gh);
    if (w.lstm) {
      float* cl = c + static_cast<std::int64_t>(l) * H;
      for (std::int64_t j = 0; j < H; ++j) {
        const float i = sigmoid(gi[j] + gh[j]);
        const float f = sigmoid(gi[H + j] + gh[H + j]);
        const float g = std::tanh(gi[2 * H + j] + gh[2 * H + j]);
        const float o = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
        cl[j] = f * cl[j] + i * g;
        hl[j] = o * std::tanh(cl[j]);
      }
    } else {
      for (std::int64_t j = 0; j < H; ++j) {
        const float r = sigmoid(gi[j] + gh[j]);
        const float z = sigmoid(gi[H + j] + gh[H + j]);
        const float n = std::tanh(gi[2 * H + j] + r * gh[2 * H + j]);
        hl[j] = (1.0f - z) * n + z * hl[j];
      }
    }
    x = hl;  // the next layer's input
    in = H;
  }
  cpu::matvec(w.head_weight, w.head_bias, x, w.vocab_size, H, logits);
}

}  // namespace lmrun::models
