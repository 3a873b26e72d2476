// The `rnn` plugin: registers the recurrent language models `lstm` and `gru`, one schema and one
// module (recurrent_lm.h) for both, behind lmrun::Model.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmrun/error.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/torch_model.h"
#include "onnx_export.h"
#include "recurrent_lm.h"

namespace lmrun::models {
namespace {

// [model] type = "lstm" or "gru": the schema binds RecurrentLmConfig's fields (the cell is the
// registered name's).
Schema<RecurrentLmConfig> rnn_schema() {
  using C = RecurrentLmConfig;
  Schema<C> schema;
  schema.add("n_layer", &C::n_layer, "number of stacked recurrent layers").min(1);
  schema.add("n_embd", &C::n_embd, "token embedding size").min(1);
  schema.add("n_hidden", &C::n_hidden, "hidden state size of each recurrent layer").min(1);
  schema.add("dropout", &C::dropout, "dropout between recurrent layers and before the head")
      .range(0, 1, /*max_exclusive=*/true);
  schema.add("tie_weights", &C::tie_weights,
             "the output head reuses the token embedding; needs n_embd == n_hidden");
  schema.check([](const C& c) {
    if (c.tie_weights && c.n_embd != c.n_hidden) {
      throw Error("tie_weights needs n_embd == n_hidden, got n_embd " + std::to_string(c.n_embd) +
                      " and n_hidden " + std::to_string(c.n_hidden),
                  "set n_hidden = n_embd, or tie_weights = false");
    }
  });
  return schema;
}

RecurrentLmConfig for_context(RecurrentLmConfig c, CellKind cell, const ModelContext& context) {
  require_language_model(context);
  require_scores(context);
  c.cell = cell;
  c.vocab_size = context.vocab_size;
  return c;
}

// Parameters, and the per-token floats a training step keeps (each layer's gates and states).
SizeEstimate estimate(CellKind cell, const RecurrentLmConfig& c, const ModelContext& context) {
  const double v = static_cast<double>(std::max<std::int64_t>(context.vocab_size, 1));
  const double e = static_cast<double>(c.n_embd), h = static_cast<double>(c.n_hidden);
  const double l = static_cast<double>(c.n_layer), gates = cell == CellKind::kLstm ? 4 : 3;
  SizeEstimate size;
  size.parameters = v * e + gates * h * (e + h + 2) + (l - 1) * gates * h * (2 * h + 2) +
                    (c.tie_weights ? 0 : h * v) + v;
  size.activations_per_token = e + l * (gates + 2) * h + v;
  return size;
}

class RecurrentModel final : public TorchModel<RecurrentLm> {
 public:
  explicit RecurrentModel(const RecurrentLmConfig& config) : TorchModel(RecurrentLm(config)) {}

  bool can_decode() const override { return true; }

  std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size) override {
    return std::make_unique<RecurrentState>(net_->make_state(batch_size));
  }

  at::Tensor decode(DecodeState& state, const at::Tensor& tokens) override {
    auto* recurrent = dynamic_cast<RecurrentState*>(&state);
    if (recurrent == nullptr) {
      throw Error(std::string(net_->config().cell == CellKind::kLstm ? "lstm" : "gru") +
                  ": the decoding state was not made by this model's start_decoding()");
    }
    return net_->forward_cached(tokens, *recurrent);
  }

  std::vector<OnnxGraph> export_onnx(std::int64_t opset) override {
    return recurrent_onnx(*net_, opset);
  }

  // 6 per weight of a product (forward 2, backward 4), nanoGPT's convention: the cell's weights
  // and the head take part in one product per token; an untied embedding is a lookup and costs
  // none. The context does not change the cost of a recurrent step.
  double flops_per_token(std::int64_t /*context*/) const override {
    double n = 0;
    for (const auto& named : net_->named_parameters()) {
      if (named.key() == "wte.weight" && !net_->config().tie_weights) continue;
      n += static_cast<double>(named.value().numel());
    }
    return 6.0 * n;
  }
};

void add_model(Registry& registry, const char* name, const char* doc, CellKind cell) {
  registry.add<Model>(
      name, doc, rnn_schema(),
      [cell](const RecurrentLmConfig& options, const ModelContext& context) {
        return std::make_shared<RecurrentModel>(for_context(options, cell, context));
      },
      [cell](const RecurrentLmConfig& options, const ModelContext& context) {
        return estimate(cell, options, context);
      });
}

void register_rnn(Registry& registry) {
  add_model(registry, "lstm", "multi-layer LSTM character language model", CellKind::kLstm);
  add_model(registry, "gru", "multi-layer GRU character language model", CellKind::kGru);
}

}  // namespace
}  // namespace lmrun::models

LMRUN_PLUGIN("rnn", "0.2.0", lmrun::models::register_rnn)
