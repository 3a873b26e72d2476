// The recurrent language model as ONNX graphs (opset 17, ai.onnx), built with the ONNX project's
// own protobuf definitions (Debian's libonnx-dev), the weights as initializers:
//
//   "model"   input_ids (batch, sequence) int64 -> logits (batch, sequence, vocab), from a zero
//             hidden state: RecurrentLmImpl::forward in eval mode
//   "decode"  input_ids (batch, new) int64 and, for each layer k, state_h_k (and state_c_k for an
//             LSTM) (1, batch, n_hidden) -> logits (batch, new, vocab) and next_state_h_k (and
//             next_state_c_k) (1, batch, n_hidden): the hidden state in and out. Start with
//             zeros; feeding the tokens in chunks, each step's state outputs fed back, gives
//             "model"'s logits.
//
// One ONNX LSTM or GRU operator per layer (layout 0: X is (sequence, batch, input)). LibTorch's
// gate blocks are reordered to ONNX's: LSTM [i, f, g, o] -> [i, o, f, c], GRU [r, z, n] ->
// [z, r, h], the GRU with linear_before_reset = 1 (r scales W_hn h + b_hn, as in torch.nn.GRU).
// B is [b_ih ; b_hh] of each layer. Dropout is left out (the graphs are inference).
#pragma once

#include <cstdint>
#include <vector>

#include "lmrun/model.h"
#include "recurrent_lm.h"

namespace lmrun::models {

std::vector<OnnxGraph> recurrent_onnx(const RecurrentLmImpl& lm, std::int64_t opset);

}  // namespace lmrun::models
