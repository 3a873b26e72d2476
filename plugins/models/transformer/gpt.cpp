// GPT decoder: the modules of gpt.h, GPT-2 initialisation, and the KV-cached decoding path.
// The full-sequence and cached paths share every op in the same order, so they agree to rounding.
#include "gpt.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/version.h>

#include "decode_kernel.h"
#include "lmrun/error.h"

namespace lmrun::models {
namespace {

constexpr double kNormEps = 1e-5;
constexpr double kInitStd = 0.02;  // GPT-2

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

at::Tensor maybe_dropout(const at::Tensor& x, double p, bool training) {
  return p > 0.0 && training ? at::dropout(x, p, /*train=*/true) : x;
}

// Vaswani et al. 2017 (https://arxiv.org/abs/1706.03762), section 3.5: channel 2i holds
// sin(pos / 10000^(2i/C)) and channel 2i+1 the matching cos. Unscaled, computed in double.
at::Tensor sinusoid_table(std::int64_t positions, std::int64_t channels) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor pos = at::arange(positions, f64).unsqueeze(1);                   // (P, 1)
  at::Tensor channel = at::arange(channels, f64);                             // (C)
  at::Tensor pair = at::floor(channel / 2) * 2;                               // (C) 2i
  at::Tensor freq = at::exp(pair * (-std::log(10000.0) / double(channels)));  // (C)
  at::Tensor angle = pos * freq;                                              // (P, C)
  at::Tensor even = at::fmod(channel, 2) == 0;                                // (C)
  return at::where(even, at::sin(angle), at::cos(angle));
}

std::string shape(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

}  // namespace

// ---- building blocks ----------------------------------------------------------------------------

NormImpl::NormImpl(std::int64_t dim, NormKind kind, bool bias) : kind_(kind) {
  weight_ = register_parameter("weight", at::ones({dim}));
  if (kind == NormKind::kLayerNorm && bias) bias_ = register_parameter("bias", at::zeros({dim}));
}

at::Tensor NormImpl::forward(const at::Tensor& x) {
  if (kind_ == NormKind::kLayerNorm) {
    return at::layer_norm(x, {weight_.size(0)}, weight_, bias_, kNormEps);
  }
  // RMSNorm: x / sqrt(mean(x^2) + eps) * weight
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + kNormEps) * weight_;
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const GptConfig& config)
    : n_head_(config.n_head), n_embd_(config.n_embd), dropout_(config.dropout) {
  using torch::nn::LinearOptions;
  qkv_ = register_module("qkv",
                         torch::nn::Linear(LinearOptions(n_embd_, 3 * n_embd_).bias(config.bias)));
  proj_ =
      register_module("proj", torch::nn::Linear(LinearOptions(n_embd_, n_embd_).bias(config.bias)));
}

namespace {

// x quantized symmetric per row (the last dimension) as int8_kernel's quantize_vector does, then
// dequantized: x ~= round(x / s) s, s = max|x| / 127 (round half to even, as nearbyint).
at::Tensor quantized_input(const at::Tensor& x, bool int8) {
  if (!int8) return x;
  const at::Tensor scale = x.abs().amax(-1, /*keepdim=*/true) / 127.0;
  const at::Tensor safe = at::where(scale > 0, scale, at::ones_like(scale));
  return (x / safe).round().clamp(-127, 127) * scale;
}

}  // namespace

at::Tensor CausalSelfAttentionImpl::forward(const at::Tensor& x, const at::Tensor& bias) {
  const std::int64_t B = x.size(0), T = x.size(1), D = n_embd_ / n_head_;
  // Output channels of the fused projection are [q | k | v], each H heads of D.
  at::Tensor qkv =
      qkv_->forward(quantized_input(x, int8_)).view({B, T, 3, n_head_, D}).permute({2, 0, 3, 1, 4});
  return attend(qkv[0], qkv[1], qkv[2], bias);  // each (B, H, T, D)
}

at::Tensor CausalSelfAttentionImpl::forward_cached(const at::Tensor& x, const at::Tensor& k_cache,
                                                   const at::Tensor& v_cache, std::int64_t start,
                                                   const at::Tensor& bias) {
  const std::int64_t B = x.size(0), t = x.size(1), D = n_embd_ / n_head_;
  at::Tensor qkv =
      qkv_->forward(quantized_input(x, int8_)).view({B, t, 3, n_head_, D}).permute({2, 0, 3, 1, 4});
  k_cache.narrow(2, start, t).copy_(qkv[1]);  // (B, H, t, D) into (B, H, P, D)
  v_cache.narrow(2, start, t).copy_(qkv[2]);
  // Views of the filled prefix (B, H, start + t, D): strided, no copy.
  return attend(qkv[0], k_cache.narrow(2, 0, start + t), v_cache.narrow(2, 0, start + t), bias);
}

at::Tensor CausalSelfAttentionImpl::attend(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& v, const at::Tensor& bias) {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k.size(2), D = q.size(3);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
#if TORCH_VERSION_MAJOR >= 2
  // LibTorch 2.x on CUDA: the fused kernels (flash / memory-efficient attention). A 2-D bias over
  // a square is the causal mask, which they take as a flag; anything else as an additive mask.
  if (q.is_cuda()) {
    const bool causal = bias.defined() && bias.dim() == 2 && T == S;
    const c10::optional<at::Tensor> mask =
        bias.defined() && !causal ? c10::optional<at::Tensor>(bias) : c10::nullopt;
    at::Tensor y =
        at::scaled_dot_product_attention(q, k, v, mask, is_training() ? dropout_ : 0.0, causal);
    y = y.transpose(1, 2).reshape({B, T, n_embd_});  // (B, T, C)
    return maybe_dropout(proj_->forward(quantized_input(y, int8_)), dropout_, is_training());
  }
#endif
  // Heads folded into the batch: (B*H, T, D). q, k, v are strided views of the fused projection,
  // so this is the one copy at::matmul would make anyway.
  const at::Tensor q3 = q.reshape({B * H, T, D});
  const at::Tensor k3 = k.reshape({B * H, S, D});
  const at::Tensor v3 = v.reshape({B * H, S, D});
  at::Tensor att;  // (B*H, T, S)
  if (bias.defined()) {
    // scale * q k^T + bias in one product: no separate scaling or masking pass, forward or back.
    const at::Tensor b = bias.dim() == 4 ? bias.expand({B, H, T, S}).reshape({B * H, T, S}) : bias;
    att = at::baddbmm(b, q3, k3.transpose(1, 2), /*beta=*/1.0, /*alpha=*/scale);
  } else {
    att = at::bmm(q3, k3.transpose(1, 2)).mul_(scale);
  }
  att = maybe_dropout(at::softmax(att, -1), dropout_, is_training());
  at::Tensor y = at::bmm(att, v3).view({B, H, T, D});
  y = y.transpose(1, 2).reshape({B, T, n_embd_});  // (B, T, C), heads side by side
  return maybe_dropout(proj_->forward(quantized_input(y, int8_)), dropout_, is_training());
}

MlpImpl::MlpImpl(const GptConfig& config) : dropout_(config.dropout), gelu_(config.gelu) {
  using torch::nn::LinearOptions;
  const std::int64_t C = config.n_embd;
  fc_ = register_module("fc", torch::nn::Linear(LinearOptions(C, 4 * C).bias(config.bias)));
  proj_ = register_module("proj", torch::nn::Linear(LinearOptions(4 * C, C).bias(config.bias)));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  const char* approximate = gelu_ == GeluKind::kTanh ? "tanh" : "none";
  const at::Tensor hidden = at::gelu(fc_->forward(quantized_input(x, int8_)), approximate);
  return maybe_dropout(proj_->forward(quantized_input(hidden, int8_)), dropout_, is_training());
}

BlockImpl::BlockImpl(const GptConfig& config) {
  ln_1_ = register_module("ln_1", Norm(config.n_embd, config.norm, config.bias));
  attn_ = register_module("attn", CausalSelfAttention(config));
  ln_2_ = register_module("ln_2", Norm(config.n_embd, config.norm, config.bias));
  mlp_ = register_module("mlp", Mlp(config));
}

at::Tensor BlockImpl::forward(const at::Tensor& x, const at::Tensor& bias) {
  at::Tensor h = x + attn_->forward(ln_1_->forward(x), bias);
  return h + mlp_->forward(ln_2_->forward(h));
}

at::Tensor BlockImpl::forward_cached(const at::Tensor& x, const at::Tensor& k_cache,
                                     const at::Tensor& v_cache, std::int64_t start,
                                     const at::Tensor& bias) {
  at::Tensor h = x + attn_->forward_cached(ln_1_->forward(x), k_cache, v_cache, start, bias);
  return h + mlp_->forward(ln_2_->forward(h));
}

// ---- the model ----------------------------------------------------------------------------------

GptImpl::GptImpl(GptConfig config) : config_(std::move(config)) {
  const GptConfig& c = config_;
  wte_ = register_module("wte", torch::nn::Embedding(c.vocab_size, c.n_embd));
  if (c.positions == PositionKind::kLearned) {
    wpe_ = register_module("wpe", torch::nn::Embedding(c.block_size, c.n_embd));
  }
  blocks_module_ = register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < c.n_layer; ++i) {
    Block block(c);
    blocks_module_->push_back(block);
    blocks_.push_back(block);
  }
  ln_f_ = register_module("ln_f", Norm(c.n_embd, c.norm, c.bias));
  if (!c.tie_weights && !c.vector_output) {
    // A tied head is not registered a second time: LibTorch's parameters() does not deduplicate,
    // so an optimizer would step the shared tensor twice.
    lm_head_ = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.n_embd, c.vocab_size).bias(false)));
  }
  init_parameters();
  build_constants();
}

// GPT-2 / nanoGPT: normal(0, 0.02) for every matrix (linears and embeddings), zero biases, unit
// norm weights, and normal(0, 0.02 / sqrt(2 n_layer)) for the two residual projections of each
// block, so the residual stream's variance does not grow with depth.
void GptImpl::init_parameters() {
  at::NoGradGuard no_grad;
  const double residual_std = kInitStd / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    if (ends_with(name, "attn.proj.weight") || ends_with(name, "mlp.proj.weight")) {
      torch::nn::init::normal_(p, 0.0, residual_std);
    } else if (p.dim() == 2) {
      torch::nn::init::normal_(p, 0.0, kInitStd);
    } else if (ends_with(name, "bias")) {
      torch::nn::init::zeros_(p);
    } else {
      torch::nn::init::ones_(p);
    }
  }
}

void GptImpl::build_constants() {
  const at::Tensor& w = wte_->weight;
  const std::int64_t P = config_.block_size;
  future_ = at::ones({P, P}, at::TensorOptions().dtype(at::kBool).device(w.device())).triu(1);
  future_bias_ = at::zeros({P, P}, w.options())
                     .masked_fill_(future_, -std::numeric_limits<double>::infinity());
  if (config_.positions == PositionKind::kSinusoidal) {
    sinusoids_ = sinusoid_table(P, config_.n_embd).to(w.options());
  }
}

void GptImpl::sync_constants() {
  const at::Tensor& w = wte_->weight;
  const bool stale =
      future_.device() != w.device() || future_bias_.scalar_type() != w.scalar_type() ||
      (sinusoids_.defined() &&
       (sinusoids_.device() != w.device() || sinusoids_.scalar_type() != w.scalar_type()));
  if (stale) build_constants();
}

void GptImpl::check_tokens(const at::Tensor& idx, const char* what) const {
  if (idx.dim() != 2 || idx.size(1) < 1 || idx.size(0) < 1) {
    throw Error(std::string("transformer: ") + what +
                " must be (batch, time) token ids, got a tensor of shape " + shape(idx));
  }
  if (idx.scalar_type() != at::kLong) {
    throw Error(std::string("transformer: ") + what + " must be int64 token ids, got " +
                std::string(c10::toString(idx.scalar_type())));
  }
}

at::Tensor GptImpl::embed(const at::Tensor& idx, std::int64_t start) {
  const std::int64_t T = idx.size(1);
  at::Tensor x = wte_->forward(idx);  // (B, T, C)
  // Positions [start, start + T) as rows of the table: (T, C), broadcast over the batch.
  x = x + (wpe_ ? wpe_->weight : sinusoids_).narrow(0, start, T);
  return maybe_dropout(x, config_.dropout, is_training());
}

at::Tensor GptImpl::head(const at::Tensor& x) {
  if (config_.vector_output) return ln_f_->forward(x);
  return at::linear(ln_f_->forward(x), config_.tie_weights ? wte_->weight : lm_head_->weight);
}

at::Tensor GptImpl::forward(const at::Tensor& idx, const at::Tensor& key_mask,
                            std::vector<Activation>* record) {
  check_tokens(idx, "inputs");
  const std::int64_t B = idx.size(0), T = idx.size(1);
  if (T > config_.block_size) {
    throw Error("transformer: a sequence of " + std::to_string(T) +
                    " tokens is longer than block_size = " + std::to_string(config_.block_size),
                "crop the inputs to the last " + std::to_string(config_.block_size) +
                    " tokens, or build the model with a larger block_size");
  }
  if (key_mask.defined() &&
      (key_mask.dim() != 2 || key_mask.size(0) != B || key_mask.size(1) != T)) {
    throw Error("transformer: the mask must have the inputs' shape " + shape(idx) + ", got " +
                shape(key_mask));
  }
  sync_constants();
  at::Tensor bias = future_bias_.narrow(0, 0, T).narrow(1, 0, T);  // (T, T)
  if (key_mask.defined()) {
    // No query sees a padding key, but every query sees itself, so no row of the softmax is
    // empty (a padding query's output is finite and ignored).
    at::Tensor masked = future_.narrow(0, 0, T).narrow(1, 0, T);
    at::Tensor pad_key = key_mask.to(at::kBool).logical_not().view({B, 1, 1, T});
    at::Tensor self = at::eye(T, masked.options());
    masked = (masked | pad_key) & self.logical_not();  // (B, 1, T, T)
    bias = at::zeros(masked.sizes(), bias.options())
               .masked_fill_(masked, -std::numeric_limits<double>::infinity());
  }
  at::Tensor x = embed(idx, 0);  // (B, T, C)
  if (record == nullptr) {
    for (Block& block : blocks_) x = block->forward(x, bias);
    return head(x);  // (B, T, V)
  }
  record->push_back({"embeddings", x, true});
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    x = blocks_[i]->forward(x, bias);
    record->push_back({"blocks." + std::to_string(i), x, true});
  }
  record->push_back({"ln_f", ln_f_->forward(x), true});
  if (config_.vector_output) return record->back().value;
  return at::linear(record->back().value, config_.tie_weights ? wte_->weight : lm_head_->weight);
}

bool KvCache::select_rows(const at::Tensor& rows) {
  const at::Tensor index = rows.to(keys.empty() ? at::kCPU : keys.front().device(), at::kLong);
  // Only [0, filled) matters; the copies keep the whole preallocated length for later tokens.
  for (auto& k : keys) k = k.index_select(0, index);
  for (auto& v : values) v = v.index_select(0, index);
  batch_size = index.size(0);
  scratch.reset();  // sized for the old batch
  return true;
}

KvCache GptImpl::make_cache(std::int64_t batch_size) const {
  if (batch_size < 1) {
    throw Error("transformer: decoding needs a batch size >= 1, got " + std::to_string(batch_size));
  }
  const at::Tensor& w = wte_->weight;
  const auto options = at::TensorOptions().dtype(w.scalar_type()).device(w.device());
  const std::int64_t H = config_.n_head, D = config_.n_embd / config_.n_head;
  KvCache cache;
  cache.batch_size = batch_size;
  for (std::int64_t i = 0; i < config_.n_layer; ++i) {
    // Only [0, filled) is ever read, so the rest may stay uninitialised.
    cache.keys.push_back(at::empty({batch_size, H, config_.block_size, D}, options));
    cache.values.push_back(at::empty({batch_size, H, config_.block_size, D}, options));
  }
  return cache;
}

at::Tensor GptImpl::forward_cached(const at::Tensor& idx, KvCache& cache) {
  check_tokens(idx, "tokens");
  const std::int64_t start = cache.filled, t = idx.size(1), P = config_.block_size;
  if (idx.size(0) != cache.batch_size) {
    throw Error("transformer: the decoding state holds a batch of " +
                std::to_string(cache.batch_size) + ", but the tokens are " + shape(idx));
  }
  if (start + t > P) {
    throw Error("transformer: cannot decode " + std::to_string(t) + " more token(s) after " +
                    std::to_string(start) + ": that would exceed the context of " +
                    std::to_string(P) + " tokens (block_size)",
                "start a new decoding state and feed it the last " + std::to_string(P) +
                    " tokens or fewer");
  }
  at::NoGradGuard no_grad;
  sync_constants();
  // The kernel ends in the logits: vectors take the op path.
  if (t == 1 && cache.batch_size == 1 && fast_decode_ && !config_.vector_output &&
      !(is_training() && config_.dropout > 0)) {
    std::optional<DecodeWeights> weights = decode_weights(cache);
    if (weights) {
      const auto token = idx.item<std::int64_t>();
      if (token < 0 || token >= config_.vocab_size) {
        throw Error("transformer: token id " + std::to_string(token) +
                    " is outside the vocabulary of " + std::to_string(config_.vocab_size));
      }
      if (!cache.scratch) cache.scratch = std::make_unique<DecodeScratch>(*weights);
      at::Tensor logits = at::empty({1, config_.vocab_size}, wte_->weight.options());  // (1, V)
      decode_token(*weights, token, start, *cache.scratch, logits.data_ptr<float>());
      cache.filled = start + 1;
      return logits;
    }
  }
  // Query rows [start, start + t) against key columns [0, start + t); a single token sees all.
  at::Tensor bias;
  if (t > 1) bias = future_bias_.narrow(0, start, t).narrow(1, 0, start + t);  // (t, start + t)
  at::Tensor x = embed(idx, start);                                            // (B, t, C)
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    x = blocks_[i]->forward_cached(x, cache.keys[i], cache.values[i], start, bias);
  }
  cache.filled = start + t;
  return head(x.select(1, t - 1));  // (B, V)
}

std::optional<DecodeWeights> GptImpl::decode_weights(KvCache& cache) const {
  const at::Tensor& w = wte_->weight;
  if (!w.device().is_cpu() || w.scalar_type() != at::kFloat) return std::nullopt;
  bool usable = true;
  // A contiguous fp32 CPU tensor's data, or null (usable = false) for anything else.
  auto data = [&usable](const at::Tensor& t) -> const float* {
    if (!t.defined()) return nullptr;
    if (!t.device().is_cpu() || t.scalar_type() != at::kFloat || !t.is_contiguous()) {
      usable = false;
      return nullptr;
    }
    return t.data_ptr<float>();
  };
  DecodeWeights d;
  d.vocab_size = config_.vocab_size;
  d.block_size = config_.block_size;
  d.n_head = config_.n_head;
  d.n_embd = config_.n_embd;
  d.rms_norm = config_.norm == NormKind::kRmsNorm;
  d.tanh_gelu = config_.gelu == GeluKind::kTanh;
  d.token_embedding = data(w);
  d.position_embedding = data(wpe_ ? wpe_->weight : sinusoids_);
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    const BlockImpl& b = *blocks_[i];
    DecodeLayer layer;
    layer.ln_1_weight = data(b.ln_1_->weight_);
    layer.ln_1_bias = data(b.ln_1_->bias_);
    layer.qkv_weight = data(b.attn_->qkv_->weight);
    layer.qkv_bias = data(b.attn_->qkv_->bias);
    layer.proj_weight = data(b.attn_->proj_->weight);
    layer.proj_bias = data(b.attn_->proj_->bias);
    layer.ln_2_weight = data(b.ln_2_->weight_);
    layer.ln_2_bias = data(b.ln_2_->bias_);
    layer.fc_weight = data(b.mlp_->fc_->weight);
    layer.fc_bias = data(b.mlp_->fc_->bias);
    layer.mlp_proj_weight = data(b.mlp_->proj_->weight);
    layer.mlp_proj_bias = data(b.mlp_->proj_->bias);
    if (!int8_.empty()) {
      layer.qkv_int8 = &int8_[i][0];
      layer.proj_int8 = &int8_[i][1];
      layer.fc_int8 = &int8_[i][2];
      layer.mlp_proj_int8 = &int8_[i][3];
    }
    layer.keys = const_cast<float*>(data(cache.keys[i]));
    layer.values = const_cast<float*>(data(cache.values[i]));
    d.layers.push_back(layer);
  }
  d.ln_f_weight = data(ln_f_->weight_);
  d.ln_f_bias = data(ln_f_->bias_);
  d.head_weight = data(config_.tie_weights ? wte_->weight : lm_head_->weight);
  if (!usable) return std::nullopt;
  return d;
}

std::pair<std::int64_t, std::int64_t> GptImpl::quantize_int8() {
  if (!wte_->weight.device().is_cpu() || wte_->weight.scalar_type() != at::kFloat) {
    throw Error("transformer: INT8 inference runs on fp32 CPU models",
                "set train.device = \"cpu\" for the command");
  }
  if (!int8_.empty()) throw Error("transformer: the model is quantized already");
  at::NoGradGuard no_grad;
  std::int64_t fp32_bytes = 0, int8_bytes = 0;
  // Quantizes `linear`'s weight and writes its dequantized values back into it.
  auto quantize = [&](torch::nn::Linear& linear) {
    at::Tensor& w = linear->weight;
    const at::Tensor contiguous = w.contiguous();
    Int8Matrix q = quantize_rows(contiguous.data_ptr<float>(), w.size(0), w.size(1));
    const at::Tensor values =
        at::from_blob(q.q.data(), {q.rows, q.cols}, {q.stride, 1}, at::kChar).to(at::kFloat);
    w.copy_(values * at::from_blob(q.scale.data(), {q.rows, 1}, at::kFloat));
    fp32_bytes += w.numel() * 4;
    int8_bytes += w.numel() + q.rows * 4;
    return q;
  };
  for (Block& block : blocks_) {
    BlockImpl& b = *block;
    int8_.push_back({quantize(b.attn_->qkv_), quantize(b.attn_->proj_), quantize(b.mlp_->fc_),
                     quantize(b.mlp_->proj_)});
    b.attn_->int8_ = true;
    b.mlp_->int8_ = true;
  }
  return {fp32_bytes, int8_bytes};
}

std::int64_t GptImpl::num_parameters() const {
  std::int64_t n = 0;
  for (const at::Tensor& p : parameters()) n += p.numel();
  return n;
}

std::int64_t GptImpl::num_parameters_without_positions() const {
  return num_parameters() - (wpe_ ? wpe_->weight.numel() : 0);
}

std::vector<std::string> GptImpl::describe() const {
  const GptConfig& c = config_;
  const std::int64_t C = c.n_embd;
  const char* norm = c.norm == NormKind::kLayerNorm ? "layernorm" : "rmsnorm";
  auto str = [](auto v) { return std::to_string(v); };
  std::ostringstream dropout_text;
  dropout_text << c.dropout;
  std::vector<std::string> lines;
  lines.push_back("transformer: GPT decoder, " + str(c.n_layer) + " layers, " + str(c.n_head) +
                  " heads, n_embd " + str(C) + ", block_size " + str(c.block_size) + ", vocab " +
                  str(c.vocab_size));
  lines.push_back("  embed:  wte (" + str(c.vocab_size) + ", " + str(C) + ") + " +
                  (wpe_ ? "wpe learned (" + str(c.block_size) + ", " + str(C) + ")"
                        : std::string("sinusoidal positions")) +
                  ", dropout " + dropout_text.str());
  lines.push_back("  blocks.{0.." + str(c.n_layer - 1) + "}: " + norm + " -> attn (qkv " + str(C) +
                  "->" + str(3 * C) + ", " + str(c.n_head) + " heads of " + str(C / c.n_head) +
                  ", proj " + str(C) + "->" + str(C) + ") ; " + norm + " -> mlp (fc " + str(C) +
                  "->" + str(4 * C) +
                  (c.gelu == GeluKind::kTanh ? ", gelu tanh, proj " : ", gelu, proj ") +
                  str(4 * C) + "->" + str(C) + "), bias " + (c.bias ? "true" : "false"));
  if (c.vector_output) {
    lines.push_back(std::string("  head:   ln_f ") + norm + " -> (" + str(C) +
                    ") vectors in wte's space, for the embedding objective");
  } else {
    lines.push_back(std::string("  head:   ln_f ") + norm + " -> lm_head (" + str(C) + "->" +
                    str(c.vocab_size) + ")" + (c.tie_weights ? " tied to wte" : " untied"));
  }
  lines.push_back("  parameters: " + str(num_parameters()) + " total, " +
                  str(num_parameters_without_positions()) +
                  " without the position embedding (nanoGPT's count)");
  return lines;
}

}  // namespace lmrun::models
