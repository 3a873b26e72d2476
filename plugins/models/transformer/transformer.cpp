// The `transformer` model plugin: declares its parameters, validates them against the data, and
// puts the GPT decoder of gpt.h behind lmrun::Model.
#include <cstdint>
#include <memory>
#include <string>

#include "gpt.h"
#include "lmrun/error.h"
#include "lmrun/model.h"
#include "lmrun/plugin.h"
#include "lmrun/registry.h"
#include "lmrun/schema.h"

namespace lmrun::models {
namespace {

// [model] type = "transformer". Defaults are nanoGPT's baby Shakespeare scale; gpt_tiny.toml
// relies on these names.
struct TransformerOptions {
  std::int64_t n_layer = 4;
  std::int64_t n_head = 4;
  std::int64_t n_embd = 128;
  double dropout = 0.0;
  bool bias = true;
  std::string norm = "layernorm";
  std::string positions = "learned";
  bool tie_weights = true;
  std::int64_t block_size = 0;  // 0: the data's sequence_length
};

// Rules across parameters. The host runs them while it validates the experiment, before any work;
// the factory runs them again for callers that skip validation.
void check_options(const TransformerOptions& o) {
  if (o.n_embd % o.n_head != 0) {
    throw Error("n_embd (" + std::to_string(o.n_embd) + ") must be divisible by n_head (" +
                    std::to_string(o.n_head) + ")",
                "choose n_embd as a multiple of n_head, e.g. n_embd = " +
                    std::to_string((o.n_embd / o.n_head + 1) * o.n_head));
  }
}

Schema<TransformerOptions> transformer_schema() {
  using O = TransformerOptions;
  Schema<O> schema;
  schema.add("n_layer", &O::n_layer, "number of decoder blocks").min(1);
  schema.add("n_head", &O::n_head, "attention heads per block; must divide n_embd").min(1);
  schema.add("n_embd", &O::n_embd, "width of the residual stream (embedding size)").min(1);
  schema.add("dropout", &O::dropout, "dropout on embeddings, attention weights and residuals")
      .range(0, 1, /*max_exclusive=*/true);
  schema.add("bias", &O::bias, "biases in the linear layers and layer norms");
  schema.add("norm", &O::norm, "normalisation before each sub-layer and at the end")
      .choices({"layernorm", "rmsnorm"});
  schema.add("positions", &O::positions, "position encoding added to the token embedding")
      .choices({"learned", "sinusoidal"});
  schema.add("tie_weights", &O::tie_weights, "the output head reuses the token embedding matrix");
  schema
      .add("block_size", &O::block_size,
           "longest context in tokens; 0 takes the data's block_size (sequence length)")
      .min(0);
  schema.check(check_options);
  return schema;
}

GptConfig resolve(const TransformerOptions& o, const ModelContext& context) {
  if (context.num_classes != 0) {
    throw Error("is a language model, but the data asks for " +
                    std::to_string(context.num_classes) + " classes",
                "use a classification model for a classification dataset");
  }
  if (context.vocab_size < 1) {
    throw Error("the vocabulary is empty (vocab_size " + std::to_string(context.vocab_size) + ")");
  }
  check_options(o);
  GptConfig c;
  c.vocab_size = context.vocab_size;
  c.block_size = o.block_size > 0 ? o.block_size : context.sequence_length;
  if (c.block_size < 1) {
    throw Error("block_size is 0 and the data gives no sequence length",
                "set model.block_size or data.block_size");
  }
  c.n_layer = o.n_layer;
  c.n_head = o.n_head;
  c.n_embd = o.n_embd;
  c.dropout = o.dropout;
  c.bias = o.bias;
  if (o.norm == "layernorm") {
    c.norm = NormKind::kLayerNorm;
  } else if (o.norm == "rmsnorm") {
    c.norm = NormKind::kRmsNorm;
  } else {
    throw Error("norm must be \"layernorm\" or \"rmsnorm\", got \"" + o.norm + "\"");
  }
  if (o.positions == "learned") {
    c.positions = PositionKind::kLearned;
  } else if (o.positions == "sinusoidal") {
    c.positions = PositionKind::kSinusoidal;
  } else {
    throw Error("positions must be \"learned\" or \"sinusoidal\", got \"" + o.positions + "\"");
  }
  c.tie_weights = o.tie_weights;
  return c;
}

class Transformer final : public Model {
 public:
  explicit Transformer(GptConfig config) : gpt_(std::move(config)) {}

  torch::nn::Module& module() override { return *gpt_; }

  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& mask) override {
    return gpt_->forward(inputs, mask);
  }

  std::vector<Activation> activations(const at::Tensor& inputs, const at::Tensor& mask) override {
    std::vector<Activation> out;
    at::Tensor logits = gpt_->forward(inputs, mask, &out);
    out.push_back({"logits", logits, true});
    return out;
  }

  std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size) override {
    return std::make_unique<KvCache>(gpt_->make_cache(batch_size));
  }

  at::Tensor decode(DecodeState& state, const at::Tensor& tokens) override {
    auto* cache = dynamic_cast<KvCache*>(&state);
    if (cache == nullptr) {
      throw Error("transformer: the decoding state was not made by this model's start_decoding()");
    }
    return gpt_->forward_cached(tokens, *cache);
  }

  std::int64_t max_context() const override { return gpt_->config().block_size; }

  // nanoGPT's estimate_mfu: 6N (N without the position table) + 12 L T C, T the context.
  double flops_per_token(std::int64_t context) const override {
    const GptConfig& c = gpt_->config();
    return 6.0 * static_cast<double>(gpt_->num_parameters_without_positions()) +
           12.0 * static_cast<double>(c.n_layer * context * c.n_embd);
  }

  std::string summary() const override {
    std::string text;
    for (const std::string& line : gpt_->describe()) text += line + "\n";
    return text;
  }

 private:
  Gpt gpt_;
};

void register_transformer(Registry& registry) {
  registry.add<Model>("transformer", "GPT decoder (nanoGPT): pre-norm blocks, KV-cached decoding",
                      transformer_schema(),
                      [](const TransformerOptions& options, const ModelContext& context) {
                        return std::make_shared<Transformer>(resolve(options, context));
                      });
}

}  // namespace
}  // namespace lmrun::models

LMRUN_PLUGIN("transformer", "0.1.0", lmrun::models::register_transformer)
