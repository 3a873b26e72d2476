// The text classifier as one ONNX graph (opset 17, ai.onnx), built with the ONNX project's own
// protobuf definitions (Debian's libonnx-dev), the weights as initializers:
//
//   "model"   input_ids (batch, sequence) int64 and attention_mask (batch, sequence) int64 (1 at
//             real tokens, 0 at padding; right padding, as data.type = "text_classification"
//             batches) -> logits (batch, classes): ClassifierImpl::forward in eval mode
//
// One ONNX LSTM or GRU operator per layer (layout 0: X is (sequence, batch, input)), its
// sequence_lens the mask's row sums (at least 1, as the packed sequences clamp them), so that
// padding never reaches a real position in either direction, as with packed sequences.
// LibTorch's gate blocks are reordered to ONNX's: LSTM [i, f, g, o] -> [i, o, f, c], GRU
// [r, z, n] -> [z, r, h], the GRU with linear_before_reset = 1. A bidirectional layer stacks the
// forward and the `_reverse` weights (direction "bidirectional"); B is [b_ih ; b_hh] of each
// direction. Pooling: `last` is the last layer's Y_h (forward, then backward); `mean`, `max`
// and `attention` see the real positions only. Dropout is left out (the graph is inference).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "lmrun/model.h"

namespace lmrun::models {

// What the graph needs of the classifier's options.
struct ClassifierShape {
  std::string cell;  // "lstm" or "gru"
  std::int64_t n_hidden = 0;
  std::int64_t n_layer = 1;
  bool bidirectional = false;
  std::string pooling;  // "last", "mean", "max" or "attention"
  std::int64_t head_hidden = 0;
};

// `net`'s parameters under the names ClassifierImpl registers (wte, rnn, attn_proj, attn_score,
// hidden, head).
std::vector<OnnxGraph> classifier_onnx(const ClassifierShape& shape, const torch::nn::Module& net,
                                       std::int64_t opset);

}  // namespace lmrun::models
