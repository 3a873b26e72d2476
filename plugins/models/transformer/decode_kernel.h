// One decoding step of a GPT for a single sequence, in plain C++ over raw fp32 weights.
//
//   DecodeWeights w = ...;                 // pointers into the model's (contiguous) parameters
//   DecodeScratch scratch(w);
//   decode_token(w, token, position, scratch, logits);   // logits: V floats
//
// At batch 1 a decoding step is ~0.8 M multiply-adds for gpt_tiny, spread over ~120 small LibTorch
// ops whose dispatch costs more than their arithmetic; this step does the same arithmetic in one
// call (the llm.c way: a few loops per layer, no allocation). It computes what GptImpl's cached
// path computes, in the same order of operations per layer; sums are reassociated, so results
// agree to float rounding, not bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "int8_kernel.h"

namespace lmrun::models {

// Row-major fp32 views. A linear's weight is (out, in) as LibTorch stores it; a bias may be null.
struct DecodeLayer {
  const float* ln_1_weight;      // (C)
  const float* ln_1_bias;        // (C) or null
  const float* qkv_weight;       // (3C, C)
  const float* qkv_bias;         // (3C) or null
  const float* proj_weight;      // (C, C)
  const float* proj_bias;        // (C) or null
  const float* ln_2_weight;      // (C)
  const float* ln_2_bias;        // (C) or null
  const float* fc_weight;        // (4C, C)
  const float* fc_bias;          // (4C) or null
  const float* mlp_proj_weight;  // (C, 4C)
  const float* mlp_proj_bias;    // (C) or null
  float* keys;                   // (H, P, D): the KV cache of this layer for the one sequence
  float* values;                 // (H, P, D)
  // With INT8 weights (GptImpl::quantize_int8): the four linears' quantized copies, used
  // instead of the fp32 weights above; null otherwise.
  const Int8Matrix* qkv_int8 = nullptr;
  const Int8Matrix* proj_int8 = nullptr;
  const Int8Matrix* fc_int8 = nullptr;
  const Int8Matrix* mlp_proj_int8 = nullptr;
};

struct DecodeWeights {
  std::int64_t vocab_size = 0;                // V
  std::int64_t block_size = 0;                // P
  std::int64_t n_head = 0;                    // H
  std::int64_t n_embd = 0;                    // C = H * D
  bool rms_norm = false;                      // RMSNorm instead of LayerNorm
  bool tanh_gelu = false;                     // GPT-2's tanh GELU instead of the exact one
  const float* token_embedding = nullptr;     // (V, C)
  const float* position_embedding = nullptr;  // (P, C), learned or sinusoidal
  std::vector<DecodeLayer> layers;
  const float* ln_f_weight = nullptr;  // (C)
  const float* ln_f_bias = nullptr;    // (C) or null
  const float* head_weight = nullptr;  // (V, C)
};

// Working memory for one step, sized once for a model.
struct DecodeScratch {
  explicit DecodeScratch(const DecodeWeights& w);
  std::vector<float> x, h, qkv, y, attn, mlp;
  Int8Vector quantized;  // the activation vector of an INT8 product
};

// Feeds `token` at `position` (< block_size): writes its keys and values into each layer's cache
// at that position, attends over positions [0, position], and writes the V logits.
void decode_token(const DecodeWeights& w, std::int64_t token, std::int64_t position,
                  DecodeScratch& scratch, float* logits);

}  // namespace lmrun::models
