// The single-sequence decoding step of decode_kernel.h: norm, fused QKV, attention over the cache,
// output projection, MLP, head. Loops are written so GCC vectorises them (8-wide partial sums).
#include "decode_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lmrun/util/cpu_kernels.h"

namespace lmrun::models {
namespace {

using cpu::dot;
using cpu::matvec;

constexpr float kNormEps = 1e-5f;

// LayerNorm (biased variance, as torch) or RMSNorm over n channels; statistics in double.
void norm(const float* x, const float* weight, const float* bias, bool rms, std::int64_t n,
          float* out) {
  double mean = 0.0;
  if (!rms) {
    for (std::int64_t i = 0; i < n; ++i) mean += x[i];
    mean /= static_cast<double>(n);
  }
  double square = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double centred = x[i] - mean;
    square += centred * centred;
  }
  const auto inv = static_cast<float>(1.0 / std::sqrt(square / static_cast<double>(n) + kNormEps));
  const auto m = static_cast<float>(mean);
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = (x[i] - m) * inv * weight[i] + (bias != nullptr ? bias[i] : 0.0f);
  }
}

// Causal attention of one query position over the cached positions [0, length), all heads.
// qkv: (3C) this position's [q | k | v]; out: (C), heads side by side.
void attend(const DecodeWeights& w, const DecodeLayer& layer, const float* qkv, std::int64_t length,
            float* scores, float* out) {
  const std::int64_t C = w.n_embd, H = w.n_head, D = C / H, P = w.block_size;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  for (std::int64_t h = 0; h < H; ++h) {
    const float* q = qkv + h * D;
    const float* keys = layer.keys + h * P * D;      // (P, D)
    const float* values = layer.values + h * P * D;  // (P, D)
    float top = -INFINITY;
    for (std::int64_t s = 0; s < length; ++s) {
      scores[s] = dot(q, keys + s * D, D) * scale;
      top = std::max(top, scores[s]);
    }
    float total = 0.0f;
    for (std::int64_t s = 0; s < length; ++s) {
      scores[s] = std::exp(scores[s] - top);
      total += scores[s];
    }
    float* y = out + h * D;
    std::fill(y, y + D, 0.0f);
    for (std::int64_t s = 0; s < length; ++s) {
      const float p = scores[s] / total;
      const float* v = values + s * D;
      for (std::int64_t d = 0; d < D; ++d) y[d] += p * v[d];
    }
  }
}

// Exact GELU, nanoGPT's nn.GELU(): x/2 (1 + erf(x / sqrt 2)); or GPT-2's tanh approximation,
// x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as at::gelu(x, "tanh") computes it.
void gelu(float* x, std::int64_t n, bool tanh_form) {
  if (tanh_form) {
    for (std::int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      x[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
    }
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678f));
}

// y = W x + b through the INT8 copy when there is one.
void product(const Int8Matrix* q, const float* w, const float* b, const float* x, std::int64_t rows,
             std::int64_t cols, Int8Vector& scratch, float* y) {
  if (q != nullptr) {
    matvec_int8(*q, b, x, scratch, y);
  } else {
    matvec(w, b, x, rows, cols, y);
  }
}

}  // namespace

DecodeScratch::DecodeScratch(const DecodeWeights& w)
    : x(w.n_embd),
      h(w.n_embd),
      qkv(3 * w.n_embd),
      y(w.n_embd),
      attn(w.block_size),
      mlp(4 * w.n_embd) {}

void decode_token(const DecodeWeights& w, std::int64_t token, std::int64_t position,
                  DecodeScratch& scratch, float* logits) {
  const std::int64_t C = w.n_embd, H = w.n_head, D = C / H, P = w.block_size;
  float* x = scratch.x.data();  // (C) the residual stream
  float* h = scratch.h.data();  // (C)
  const float* te = w.token_embedding + token * C;
  const float* pe = w.position_embedding + position * C;
  for (std::int64_t i = 0; i < C; ++i) x[i] = te[i] + pe[i];

  for (const DecodeLayer& layer : w.layers) {
    norm(x, layer.ln_1_weight, layer.ln_1_bias, w.rms_norm, C, h);
    float* qkv = scratch.qkv.data();
    product(layer.qkv_int8, layer.qkv_weight, layer.qkv_bias, h, 3 * C, C, scratch.quantized, qkv);
    for (std::int64_t head = 0; head < H; ++head) {  // this position's keys and values
      std::memcpy(layer.keys + (head * P + position) * D, qkv + C + head * D, D * sizeof(float));
      std::memcpy(layer.values + (head * P + position) * D, qkv + 2 * C + head * D,
                  D * sizeof(float));
    }
    attend(w, layer, qkv, position + 1, scratch.attn.data(), scratch.y.data());
    product(layer.proj_int8, layer.proj_weight, layer.proj_bias, scratch.y.data(), C, C,
            scratch.quantized, h);
    for (std::int64_t i = 0; i < C; ++i) x[i] += h[i];

    norm(x, layer.ln_2_weight, layer.ln_2_bias, w.rms_norm, C, h);
    float* hidden = scratch.mlp.data();  // (4C)
    product(layer.fc_int8, layer.fc_weight, layer.fc_bias, h, 4 * C, C, scratch.quantized, hidden);
    gelu(hidden, 4 * C, w.tanh_gelu);
    product(layer.mlp_proj_int8, layer.mlp_proj_weight, layer.mlp_proj_bias, hidden, C, 4 * C,
            scratch.quantized, h);
    for (std::int64_t i = 0; i < C; ++i) x[i] += h[i];
  }
  norm(x, w.ln_f_weight, w.ln_f_bias, w.rms_norm, C, h);
  matvec(w.head_weight, nullptr, h, w.vocab_size, C, logits);
}

}  // namespace lmrun::models
