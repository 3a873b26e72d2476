// GPT decoder modules after nanoGPT's model.py (https://github.com/karpathy/nanoGPT), in the plain
// LibTorch module pattern, with a preallocated KV cache for incremental decoding.
//
//   Gpt gpt(config);
//   at::Tensor logits = gpt->forward(idx);            // (B, T) -> (B, T, V)
//   KvCache cache = gpt->make_cache(B);
//   at::Tensor last = gpt->forward_cached(prompt, cache);   // (B, t) -> (B, V), appends to cache
//
// Checkpoint keys (the names given to register_module / register_parameter; they are API):
//   wte.weight                       (V, C)   token embedding; also the output head when tied
//   wpe.weight                       (P, C)   learned positions only (P = block_size)
//   blocks.{i}.ln_1.weight / .bias   (C)      .bias only for layernorm with bias = true
//   blocks.{i}.attn.qkv.weight/.bias (3C, C)  fused query, key, value projection
//   blocks.{i}.attn.proj.weight/.bias(C, C)   attention output (residual) projection
//   blocks.{i}.ln_2.weight / .bias   (C)
//   blocks.{i}.mlp.fc.weight / .bias (4C, C)
//   blocks.{i}.mlp.proj.weight/.bias (C, 4C)  MLP output (residual) projection
//   ln_f.weight / .bias              (C)
//   lm_head.weight                   (V, C)   untied only; tied models read wte.weight instead
// The causal mask and the sinusoidal table are derived constants, not checkpoint keys.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "decode_kernel.h"
#include "lmrun/model.h"

namespace lmrun::models {

enum class NormKind { kLayerNorm, kRmsNorm };
enum class PositionKind { kLearned, kSinusoidal };
// GELU exactly (x/2 (1 + erf(x/sqrt 2)), nanoGPT's nn.GELU(), Hugging Face's "gelu"), or GPT-2's
// tanh approximation (Hugging Face's "gelu_new").
enum class GeluKind { kExact, kTanh };

// A resolved, validated configuration: no defaults left to fill, no strings left to parse.
// Also the plugin's options ([model] type = "transformer", transformer.cpp binds the schema to
// these fields): the defaults are nanoGPT's baby Shakespeare scale, and gpt_tiny.toml relies on
// the names. vocab_size comes from the tokenizer, block_size 0 from the data.
struct GptConfig {
  std::int64_t vocab_size = 0;
  std::int64_t block_size = 0;  // longest sequence, and the size of the KV cache
  std::int64_t n_layer = 4;
  std::int64_t n_head = 4;
  std::int64_t n_embd = 128;  // must be divisible by n_head
  double dropout = 0.0;       // embedding, attention-probability and residual dropout
  bool bias = true;           // biases in the linears and layer norms
  NormKind norm = NormKind::kLayerNorm;
  PositionKind positions = PositionKind::kLearned;
  bool tie_weights = true;  // the output head reuses wte.weight
  GeluKind gelu = GeluKind::kExact;
  // Not a parameter: set from ModelContext::output. The output is ln_f's (B, T, C) vectors in
  // wte's space instead of logits, and there is no lm_head.
  bool vector_output = false;
};

// ---- building blocks ----------------------------------------------------------------------------

// LayerNorm with an optional bias (LibTorch's has both or neither), or RMSNorm
// (https://arxiv.org/abs/1910.07467, weight only). eps = 1e-5 for both.
class NormImpl : public torch::nn::Module {
 public:
  NormImpl(std::int64_t dim, NormKind kind, bool bias);
  at::Tensor forward(const at::Tensor& x);  // (..., C) -> (..., C)

 private:
  friend class GptImpl;  // reads the weights for the decoding kernel
  NormKind kind_;
  at::Tensor weight_;  // (C)
  at::Tensor bias_;    // (C); undefined for RMSNorm or bias = false
};
TORCH_MODULE(Norm);

// Multi-head causal self-attention with one fused QKV projection; all heads in one batched matmul.
class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit CausalSelfAttentionImpl(const GptConfig& config);

  // x (B, T, C); bias: added to the scaled scores, -inf where a query must not see a key, 0
  // elsewhere; (T, T) or (B, 1, T, T).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias);

  // x (B, t, C) at positions [start, start + t). Writes its keys and values into k_cache and
  // v_cache (B, H, block_size, D) at those positions, then attends over all start + t of them.
  // bias: (t, start + t), or undefined when nothing is masked (t == 1).
  at::Tensor forward_cached(const at::Tensor& x, const at::Tensor& k_cache,
                            const at::Tensor& v_cache, std::int64_t start, const at::Tensor& bias);

 private:
  friend class GptImpl;  // reads the weights for the decoding kernel
  // q (B, H, T, D), k and v (B, H, S, D) -> (B, T, C) after the output projection.
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& bias);

  std::int64_t n_head_;
  std::int64_t n_embd_;
  double dropout_;
  bool int8_ = false;                // activations quantized as the INT8 decoding kernel does
  torch::nn::Linear qkv_{nullptr};   // C -> 3C
  torch::nn::Linear proj_{nullptr};  // C -> C
};
TORCH_MODULE(CausalSelfAttention);

// Position-wise feed-forward: C -> 4C -> GELU (exact, nanoGPT's nn.GELU(); or tanh, GPT-2's) -> C.
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const GptConfig& config);
  at::Tensor forward(const at::Tensor& x);  // (B, T, C) -> (B, T, C)

 private:
  friend class GptImpl;  // reads the weights for the decoding kernel
  double dropout_;
  GeluKind gelu_;
  bool int8_ = false;
  torch::nn::Linear fc_{nullptr};    // C -> 4C
  torch::nn::Linear proj_{nullptr};  // 4C -> C
};
TORCH_MODULE(Mlp);

// Pre-norm decoder block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const GptConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias);  // (B, T, C)
  at::Tensor forward_cached(const at::Tensor& x, const at::Tensor& k_cache,
                            const at::Tensor& v_cache, std::int64_t start,
                            const at::Tensor& bias);  // (B, t, C)

 private:
  friend class GptImpl;  // reads the weights for the decoding kernel
  Norm ln_1_{nullptr};
  CausalSelfAttention attn_{nullptr};
  Norm ln_2_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(Block);

// ---- the model ----------------------------------------------------------------------------------

// Keys and values of every layer for one decoding session. Preallocated to block_size positions,
// so decoding a token allocates no cache memory.
class KvCache final : public DecodeState {
 public:
  std::int64_t length() const override { return filled; }
  bool select_rows(const at::Tensor& rows) override;

  std::vector<at::Tensor> keys;    // per layer (B, H, block_size, D)
  std::vector<at::Tensor> values;  // per layer (B, H, block_size, D)
  std::int64_t batch_size = 0;
  std::int64_t filled = 0;                 // positions written, [0, filled) valid
  std::unique_ptr<DecodeScratch> scratch;  // the single-token kernel's buffers, made on first use
};

class GptImpl : public torch::nn::Module {
 public:
  explicit GptImpl(GptConfig config);

  // idx (B, T) int64 with T <= block_size; key_mask (B, T) bool, true at real tokens, or
  // undefined. Returns logits (B, T, V), or vectors (B, T, C) with vector_output. `record`, when
  // given, receives the embeddings, each block's output and the final norm's (Model::activations).
  at::Tensor forward(const at::Tensor& idx, const at::Tensor& key_mask = {},
                     std::vector<Activation>* record = nullptr);

  // An empty cache on the parameters' device and dtype.
  KvCache make_cache(std::int64_t batch_size) const;
  // Feeds idx (B, t) at positions cache.length() onwards and returns the logits of the last one
  // (B, V), or its vector (B, C) with vector_output. Throws lmrun::Error past block_size. No
  // autograd.
  at::Tensor forward_cached(const at::Tensor& idx, KvCache& cache);

  // INT8 inference: each block's four linears quantized symmetric per output row (int8_kernel.h),
  // activations per row as they come. The fp32 weights are replaced by their dequantized values
  // and the op path quantizes activations too, so batched passes (eval) compute what the INT8
  // single-token kernel computes, to float rounding. Returns {fp32 bytes, int8 bytes} of the
  // quantized weights (int8 bytes with their scales). CPU fp32 models only; throws otherwise.
  std::pair<std::int64_t, std::int64_t> quantize_int8();
  // After quantize_int8(): per block, the INT8 copies of qkv, attn.proj, mlp.fc and mlp.proj;
  // empty before.
  const std::vector<std::array<Int8Matrix, 4>>& int8_weights() const { return int8_; }

  // Single tokens of a batch-1 cache on a contiguous fp32 CPU model go through decode_token()
  // (decode_kernel.h) unless this is off; everything else through LibTorch ops. On by default.
  void set_fast_decode(bool on) { fast_decode_ = on; }

  // Every parameter, counted once (a tied head is wte itself).
  std::int64_t num_parameters() const;
  // nanoGPT's get_num_params(): without the learned position embedding.
  std::int64_t num_parameters_without_positions() const;
  std::vector<std::string> describe() const;
  const GptConfig& config() const { return config_; }
  // wte.weight (V, C): the token embeddings, and the tied head.
  const at::Tensor& token_embeddings() const { return wte_->weight; }
  // The position embedding (P, C): wpe.weight, or the sinusoidal table.
  const at::Tensor& position_table() const { return wpe_ ? wpe_->weight : sinusoids_; }

 private:
  // GPT-2 initialisation; see gpt.cpp.
  void init_parameters();
  // (B, t) tokens at positions [start, start + t) -> (B, t, C) embeddings, after dropout.
  at::Tensor embed(const at::Tensor& idx, std::int64_t start);
  // (..., C) -> (..., V) logits, or (..., C) after ln_f with vector_output
  at::Tensor head(const at::Tensor& x);
  // The derived constants (future_, sinusoids_) on the parameters' device and dtype.
  void build_constants();
  // Rebuilds them when the parameters have moved (module().to(device)) or changed dtype.
  void sync_constants();
  // Throws lmrun::Error unless idx is (B, T) int64 with B, T >= 1; `what` names it.
  void check_tokens(const at::Tensor& idx, const char* what) const;
  // Raw views of the parameters and of `cache` for decode_token(), or nothing when some tensor
  // is not a contiguous fp32 CPU one.
  std::optional<DecodeWeights> decode_weights(KvCache& cache) const;

  GptConfig config_;
  torch::nn::Embedding wte_{nullptr};
  torch::nn::Embedding wpe_{nullptr};  // learned positions only
  torch::nn::ModuleList blocks_module_;
  std::vector<Block> blocks_;  // the same modules, typed
  Norm ln_f_{nullptr};
  torch::nn::Linear lm_head_{nullptr};  // untied only

  at::Tensor future_;       // (P, P) bool, true above the diagonal: keys a query must not see
  at::Tensor future_bias_;  // (P, P) the same as an additive bias: -inf above the diagonal, else 0
  at::Tensor sinusoids_;    // (P, C) sinusoidal positions only
  bool fast_decode_ = true;
  // quantize_int8(): per block, the INT8 copies of qkv, attn.proj, mlp.fc, mlp.proj.
  std::vector<std::array<Int8Matrix, 4>> int8_;
};
TORCH_MODULE(Gpt);

}  // namespace lmrun::models
