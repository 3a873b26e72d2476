// The `transformer` model plugin: its parameters bound to GptConfig, and the GPT decoder of gpt.h
// behind lmrun::Model through TorchModel, with KV-cached decoding.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include "gpt.h"
#include "interchange.h"
#include "lmrun/error.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/torch_model.h"
#include "onnx_export.h"

namespace lmrun::models {
namespace {

Schema<GptConfig> transformer_schema() {
  using C = GptConfig;
  Schema<C> schema;
  schema.add("n_layer", &C::n_layer, "number of decoder blocks").min(1);
  schema.add("n_head", &C::n_head, "attention heads per block; must divide n_embd").min(1);
  schema.add("n_embd", &C::n_embd, "width of the residual stream (embedding size)").min(1);
  schema.add("dropout", &C::dropout, "dropout on embeddings, attention weights and residuals")
      .range(0, 1, /*max_exclusive=*/true);
  schema.add("bias", &C::bias, "biases in the linear layers and layer norms");
  schema.add_enum("norm", &C::norm,
                  {{"layernorm", NormKind::kLayerNorm}, {"rmsnorm", NormKind::kRmsNorm}},
                  "normalisation before each sub-layer and at the end");
  schema.add_enum("positions", &C::positions,
                  {{"learned", PositionKind::kLearned}, {"sinusoidal", PositionKind::kSinusoidal}},
                  "position encoding added to the token embedding");
  schema.add("tie_weights", &C::tie_weights, "the output head reuses the token embedding matrix");
  schema.add_enum("gelu", &C::gelu, {{"exact", GeluKind::kExact}, {"tanh", GeluKind::kTanh}},
                  "the MLP's GELU: exact (erf, nanoGPT) or tanh (GPT-2's approximation)");
  schema
      .add("block_size", &C::block_size,
           "longest context in tokens; 0 takes the data's block_size (sequence length)")
      .min(0);
  schema.check([](const C& c) {
    if (c.n_embd % c.n_head != 0) {
      throw Error("n_embd (" + std::to_string(c.n_embd) + ") must be divisible by n_head (" +
                      std::to_string(c.n_head) + ")",
                  "choose n_embd as a multiple of n_head, e.g. n_embd = " +
                      std::to_string((c.n_embd / c.n_head + 1) * c.n_head));
    }
  });
  return schema;
}

// The options completed from what the run knows: the vocabulary and, for block_size 0, the data's
// sequence length.
GptConfig for_context(GptConfig c, const ModelContext& context) {
  require_language_model(context);
  c.vocab_size = context.vocab_size;
  c.vector_output = context.output == ModelOutput::kVectors;
  if (c.block_size == 0) c.block_size = context.sequence_length;
  if (c.block_size < 1) {
    throw Error("block_size is 0 and the data gives no sequence length",
                "set model.block_size or data.block_size");
  }
  return c;
}

// Parameters and the activations a training step keeps per token, counted as gpt.cpp builds the
// model (for `lmrun check`'s memory estimate; unknown counts of the context taken as 1).
SizeEstimate estimate(const GptConfig& c, const ModelContext& context) {
  const double v = static_cast<double>(std::max<std::int64_t>(context.vocab_size, 1));
  const double t = static_cast<double>(
      c.block_size > 0 ? c.block_size : std::max<std::int64_t>(context.sequence_length, 1));
  const double e = static_cast<double>(c.n_embd), l = static_cast<double>(c.n_layer);
  SizeEstimate size;
  size.parameters = v * e * (c.tie_weights ? 1 : 2) + t * e + l * 12 * e * e;
  // Per block: the inputs of its products and norms (~16 C) and the attention weights (heads x T).
  size.activations_per_token = l * (16 * e + static_cast<double>(c.n_head) * t) + v;
  return size;
}

class Transformer final : public TorchModel<Gpt> {
 public:
  explicit Transformer(const GptConfig& config) : TorchModel(Gpt(config)) {}

  bool can_decode() const override { return true; }

  std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size) override {
    return std::make_unique<KvCache>(net_->make_cache(batch_size));
  }

  at::Tensor decode(DecodeState& state, const at::Tensor& tokens) override {
    auto* cache = dynamic_cast<KvCache*>(&state);
    if (cache == nullptr) {
      throw Error("transformer: the decoding state was not made by this model's start_decoding()");
    }
    return net_->forward_cached(tokens, *cache);
  }

  std::int64_t max_context() const override { return net_->config().block_size; }

  // The context (a conversation's system turn) is read as a prefix: row i runs on its context's
  // real tokens followed by its inputs, so its inputs sit at the positions they have when decoding
  // after start_decoding_conditioned(), and the outputs of the inputs' positions come back.
  bool uses_context() const override { return true; }

  at::Tensor forward_conditioned(const at::Tensor& inputs, const at::Tensor& mask,
                                 const Conditioning& context) override {
    const std::int64_t batch = inputs.size(0), t = inputs.size(1), s = context.tokens.size(1);
    if (context.tokens.size(0) != batch) {
      throw Error("transformer: the context has " + std::to_string(context.tokens.size(0)) +
                  " rows for " + std::to_string(batch) + " sequences");
    }
    const at::Tensor lengths =  // (B, 1) real context tokens per row
        (context.mask.defined() ? context.mask.sum(1) : at::full({batch}, s, inputs.options()))
            .to(at::kLong)
            .unsqueeze(1);
    const std::int64_t width = lengths.max().item<std::int64_t>() + t;
    if (width > net_->config().block_size) {
      throw Error("transformer: a context of " + std::to_string(width - t) + " tokens and " +
                      std::to_string(t) + " inputs exceed block_size " +
                      std::to_string(net_->config().block_size),
                  "raise model.block_size, or shorten the data's sequences or system messages");
    }
    const at::Tensor pos = at::arange(width, inputs.options()).unsqueeze(0);  // (1, W)
    const at::Tensor in_context = pos < lengths;                              // (B, W)
    const at::Tensor in_inputs = pos.ge(lengths) & (pos < lengths + t);
    const at::Tensor from_context =
        context.tokens.gather(1, pos.clamp_max(s - 1).expand({batch, width}));
    const at::Tensor input_index = (pos - lengths).clamp(0, t - 1);  // (B, W)
    const at::Tensor from_inputs = inputs.gather(1, input_index);
    const at::Tensor tokens = at::where(
        in_context, from_context, at::where(in_inputs, from_inputs, at::zeros_like(from_inputs)));
    at::Tensor real = in_inputs;
    if (mask.defined()) real = real & mask.gather(1, input_index);
    const at::Tensor out = net_->forward(tokens, in_context | real);  // (B, W, V or C)
    const at::Tensor at_inputs = (lengths + at::arange(t, inputs.options()).unsqueeze(0))
                                     .unsqueeze(-1)
                                     .expand({batch, t, out.size(-1)});
    return out.gather(1, at_inputs);
  }

  // Decoding starts with the context in the cache; it takes that many of block_size positions.
  std::unique_ptr<DecodeState> start_decoding_conditioned(std::int64_t batch_size,
                                                          const Conditioning& context) override {
    auto cache = std::make_unique<KvCache>(net_->make_cache(batch_size));
    at::Tensor tokens = context.tokens;
    if (context.mask.defined()) {
      const at::Tensor lengths = context.mask.sum(1);
      if (!lengths.eq(lengths[0]).all().item<bool>()) {
        throw Error("transformer: decoding takes contexts of one length for all sequences");
      }
      tokens = tokens.narrow(1, 0, lengths[0].item<std::int64_t>());
    }
    if (tokens.size(1) > 0)
      net_->forward_cached(tokens.expand({batch_size, tokens.size(1)}), *cache);
    return cache;
  }

  at::Tensor token_embeddings() override { return net_->token_embeddings(); }

  std::vector<WeightLayout> weight_layouts() const override { return gpt_layouts(net_->config()); }
  ExternalWeights export_weights(const std::string& layout) override {
    return gpt_export(*net_, layout);
  }
  std::vector<NamedTensor> import_weights(const std::string& layout,
                                          std::vector<NamedTensor> tensors) override {
    return gpt_import(net_->config(), layout, std::move(tensors));
  }
  std::string quantize(const std::string& scheme) override {
    if (scheme != "int8") {
      throw Error("transformer: no quantization scheme '" + scheme + "'", "use --quantize int8");
    }
    const auto [fp32_bytes, int8_bytes] = net_->quantize_int8();
    const GptConfig& c = net_->config();
    return "int8: " + std::to_string(4 * c.n_layer) + " linear weights (qkv, attn.proj, mlp.fc, " +
           "mlp.proj of each block), " + std::to_string(fp32_bytes) + " bytes as fp32 -> " +
           std::to_string(int8_bytes) + " as int8 with per-row scales; embeddings, norms and " +
           "the head stay fp32";
  }
  std::vector<OnnxGraph> export_onnx(std::int64_t opset) override { return gpt_onnx(*net_, opset); }

  // nanoGPT's estimate_mfu: 6N (N without the position table) + 12 L T C, T the context.
  double flops_per_token(std::int64_t context) const override {
    const GptConfig& c = net_->config();
    return 6.0 * static_cast<double>(net_->num_parameters_without_positions()) +
           12.0 * static_cast<double>(c.n_layer * context * c.n_embd);
  }
};

void register_transformer(Registry& registry) {
  registry.add<Model>(
      "transformer", "GPT decoder (nanoGPT): pre-norm blocks, KV-cached decoding",
      transformer_schema(),
      [](const GptConfig& options, const ModelContext& context) {
        return std::make_shared<Transformer>(for_context(options, context));
      },
      estimate);
}

}  // namespace
}  // namespace lmrun::models

LMRUN_PLUGIN("transformer", "0.2.0", lmrun::models::register_transformer)
