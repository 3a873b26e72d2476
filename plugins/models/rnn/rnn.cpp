// The `rnn` plugin: registers the recurrent language models `lstm` and `gru`, one schema and one
// module (recurrent_lm.h) for both, behind lmrun::Model.
#include <cstdint>
#include <memory>
#include <string>

#include "lmrun/error.h"
#include "lmrun/model.h"
#include "lmrun/plugin.h"
#include "lmrun/registry.h"
#include "lmrun/schema.h"
#include "recurrent_lm.h"

namespace lmrun::models {
namespace {

// [model] type = "lstm" or "gru".
struct RnnOptions {
  std::int64_t n_layer = 2;
  std::int64_t n_embd = 128;
  std::int64_t n_hidden = 256;
  double dropout = 0.0;
  bool tie_weights = false;
};

// Rules across parameters. The host runs them while it validates the experiment, before any work;
// the factory runs them again for callers that skip validation.
void check_options(const RnnOptions& o) {
  if (o.tie_weights && o.n_embd != o.n_hidden) {
    throw Error("tie_weights needs n_embd == n_hidden, got n_embd " + std::to_string(o.n_embd) +
                    " and n_hidden " + std::to_string(o.n_hidden),
                "set n_hidden = n_embd, or tie_weights = false");
  }
}

Schema<RnnOptions> rnn_schema() {
  using O = RnnOptions;
  Schema<O> schema;
  schema.add("n_layer", &O::n_layer, "number of stacked recurrent layers").min(1);
  schema.add("n_embd", &O::n_embd, "token embedding size").min(1);
  schema.add("n_hidden", &O::n_hidden, "hidden state size of each recurrent layer").min(1);
  schema.add("dropout", &O::dropout, "dropout between recurrent layers and before the head")
      .range(0, 1, /*max_exclusive=*/true);
  schema.add("tie_weights", &O::tie_weights,
             "the output head reuses the token embedding; needs n_embd == n_hidden");
  schema.check(check_options);
  return schema;
}

RecurrentLmConfig resolve(CellKind cell, const RnnOptions& o, const ModelContext& context) {
  if (context.num_classes != 0) {
    throw Error("is a language model, but the data asks for " +
                    std::to_string(context.num_classes) + " classes",
                "use a classification model for a classification dataset");
  }
  if (context.vocab_size < 1) {
    throw Error("the vocabulary is empty (vocab_size " + std::to_string(context.vocab_size) + ")");
  }
  check_options(o);
  RecurrentLmConfig c;
  c.cell = cell;
  c.vocab_size = context.vocab_size;
  c.n_layer = o.n_layer;
  c.n_embd = o.n_embd;
  c.n_hidden = o.n_hidden;
  c.dropout = o.dropout;
  c.tie_weights = o.tie_weights;
  return c;
}

class RecurrentModel final : public Model {
 public:
  explicit RecurrentModel(RecurrentLmConfig config) : lm_(std::move(config)) {}

  torch::nn::Module& module() override { return *lm_; }

  // The mask is not needed: a recurrent model reads left to right, so the logits at the real
  // tokens of a right-padded sequence do not depend on the padding after them.
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& /*mask*/) override {
    return lm_->forward(inputs);
  }

  std::vector<Activation> activations(const at::Tensor& inputs, const at::Tensor&) override {
    std::vector<Activation> out;
    at::Tensor logits = lm_->forward(inputs, &out);
    out.push_back({"logits", logits, true});
    return out;
  }

  std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size) override {
    return std::make_unique<RecurrentState>(lm_->make_state(batch_size));
  }

  at::Tensor decode(DecodeState& state, const at::Tensor& tokens) override {
    auto* recurrent = dynamic_cast<RecurrentState*>(&state);
    if (recurrent == nullptr) {
      throw Error(std::string(lm_->config().cell == CellKind::kLstm ? "lstm" : "gru") +
                  ": the decoding state was not made by this model's start_decoding()");
    }
    return lm_->forward_cached(tokens, *recurrent);
  }

  std::int64_t max_context() const override { return 0; }  // unbounded

  // 6 per weight of a product (forward 2, backward 4), nanoGPT's convention: the cell's weights
  // and the head take part in one product per token; an untied embedding is a lookup and costs
  // none. The context does not change the cost of a recurrent step.
  double flops_per_token(std::int64_t /*context*/) const override {
    double n = 0;
    for (const auto& named : lm_->named_parameters()) {
      if (named.key() == "wte.weight" && !lm_->config().tie_weights) continue;
      n += static_cast<double>(named.value().numel());
    }
    return 6.0 * n;
  }

  std::string summary() const override {
    std::string text;
    for (const std::string& line : lm_->describe()) text += line + "\n";
    return text;
  }

 private:
  RecurrentLm lm_;
};

void add_model(Registry& registry, const char* name, const char* doc, CellKind cell) {
  registry.add<Model>(name, doc, rnn_schema(),
                      [cell](const RnnOptions& options, const ModelContext& context) {
                        return std::make_shared<RecurrentModel>(resolve(cell, options, context));
                      });
}

void register_rnn(Registry& registry) {
  add_model(registry, "lstm", "multi-layer LSTM character language model", CellKind::kLstm);
  add_model(registry, "gru", "multi-layer GRU character language model", CellKind::kGru);
}

}  // namespace
}  // namespace lmrun::models

LMRUN_PLUGIN("rnn", "0.1.0", lmrun::models::register_rnn)
