// The transformer as ONNX graphs (opset 17, ai.onnx), built with the ONNX project's own protobuf
// definitions (Debian's libonnx-dev), the weights as initializers:
//
//   "model"   input_ids (batch, sequence) int64 -> logits (batch, sequence, vocab)
//   "decode"  input_ids (batch, new) int64 and past_key_i / past_value_i (batch, heads, past,
//             head_size) for each layer i -> logits (batch, new, vocab) and present_key_i /
//             present_value_i (batch, heads, past + new, head_size): the KV cache in and out, as
//             Hugging Face's ONNX exports name them. Start with past = 0 positions.
//
// A model with vector outputs (an embedding objective) gives `vectors` (..., n_embd) instead of
// logits. The graphs compute what GptImpl::forward computes, op for op: LayerNormalization (or
// RMSNorm from ReduceMean), attention with an additive causal bias of -inf, exact (Erf) or tanh
// GELU, the tied or untied head.
#pragma once

#include <cstdint>
#include <vector>

#include "gpt.h"
#include "lmrun/model.h"

namespace lmrun::models {

std::vector<OnnxGraph> gpt_onnx(const GptImpl& gpt, std::int64_t opset);

}  // namespace lmrun::models
