// mlp_lm: the neural probabilistic language model of Bengio et al. (2003) as a plugin built out of
// tree. The embeddings of the last `context` tokens, concatenated, go through one tanh layer to
// the next token's logits. A fixed window, so decoding carries only the last context - 1 tokens.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/torch_model.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Options

struct MlpLmOptions {
  std::int64_t context = 3;     // tokens each prediction reads, the current one included
  std::int64_t n_embd = 16;     // C: embedding width
  std::int64_t n_hidden = 128;  // H: tanh layer width
};

lmrun::Schema<MlpLmOptions> mlp_lm_schema() {
  lmrun::Schema<MlpLmOptions> schema;
  schema
      .add("context", &MlpLmOptions::context,
           "tokens each prediction reads, the current one included (1: a bigram model)")
      .min(1);
  schema.add("n_embd", &MlpLmOptions::n_embd, "token embedding width").min(1);
  schema.add("n_hidden", &MlpLmOptions::n_hidden, "width of the tanh hidden layer").min(1);
  return schema;
}

// ---------------------------------------------------------------------------------------------
// The module
//
// "A Neural Probabilistic Language Model", Bengio, Ducharme, Vincent & Jauvin, JMLR 2003
// (https://www.jmlr.org/papers/v3/bengio03a.html), without its direct input-to-output weights;
// Karpathy's makemore part 2 builds the same network. Checkpoint keys (they are API):
//   wte.weight      (V + 1, C)    the last row embeds the start id, before the first token
//   hidden.weight   (H, K * C)    K = context
//   hidden.bias     (H)
//   head.weight     (V, H)
//   head.bias       (V)

struct MlpLmImpl : torch::nn::Module {
  MlpLmImpl(const MlpLmOptions& o, std::int64_t vocab_size)
      : context(o.context),
        start_id(vocab_size),
        wte(register_module("wte", torch::nn::Embedding(vocab_size + 1, o.n_embd))),
        hidden(register_module("hidden", torch::nn::Linear(o.context * o.n_embd, o.n_hidden))),
        head(register_module("head", torch::nn::Linear(o.n_hidden, vocab_size))) {}

  // (B, context - 1) start ids: what precedes the first token.
  at::Tensor starts(std::int64_t batch) const {
    return at::full({batch, context - 1}, start_id, at::kLong);
  }

  // window (B, context - 1 + T): T tokens behind the context - 1 before them. -> (B, T, V), at t
  // the logits after the window's tokens t .. t + context - 1.
  at::Tensor predict(const at::Tensor& window) {
    const at::Tensor grams = window.unfold(1, context, 1);  // (B, T, K)
    const at::Tensor x = wte->forward(grams).flatten(2);    // (B, T, K * C)
    return head->forward(hidden->forward(x).tanh());        // (B, T, V)
  }

  // inputs (B, T) -> (B, T, V). Reads left to right, so padding after the text changes nothing
  // before it; TorchModel passes no mask.
  at::Tensor forward(const at::Tensor& inputs) {
    return predict(at::cat({starts(inputs.size(0)), inputs}, 1));
  }

  std::vector<std::string> describe() const {
    return {"mlp_lm: " + std::to_string(context) + " tokens x " +
            std::to_string(wte->options.embedding_dim()) + " -> tanh " +
            std::to_string(hidden->options.out_features()) + " -> " + std::to_string(start_id)};
  }

  std::int64_t context;
  std::int64_t start_id;  // = vocab_size
  torch::nn::Embedding wte;
  torch::nn::Linear hidden, head;
};
TORCH_MODULE(MlpLm);

// ---------------------------------------------------------------------------------------------
// Decoding: the state is the window's last context - 1 tokens.

struct MlpLmState final : lmrun::DecodeState {
  std::int64_t length() const override { return fed; }
  // Beam search keeps hypotheses by row: the window goes with its row.
  bool select_rows(const at::Tensor& rows) override {
    recent = recent.index_select(0, rows);
    return true;
  }
  at::Tensor recent;  // (B, context - 1): the last tokens fed, start ids before the first
  std::int64_t fed = 0;
};

class MlpLmModel final : public lmrun::TorchModel<MlpLm> {
 public:
  using TorchModel::TorchModel;

  bool can_decode() const override { return true; }

  std::unique_ptr<lmrun::DecodeState> start_decoding(std::int64_t batch_size) override {
    if (batch_size < 1) throw lmrun::Error("mlp_lm: decoding needs a batch size >= 1");
    auto state = std::make_unique<MlpLmState>();
    state->recent = net_->starts(batch_size);
    return state;
  }

  // tokens (B, t) -> (B, V): the logits after the last of them.
  at::Tensor decode(lmrun::DecodeState& base, const at::Tensor& tokens) override {
    auto* state = dynamic_cast<MlpLmState*>(&base);
    if (state == nullptr) throw lmrun::Error("mlp_lm: the state was not made by this model");
    if (tokens.size(0) != state->recent.size(0)) {
      throw lmrun::Error("mlp_lm: the state holds a batch of " +
                         std::to_string(state->recent.size(0)) + ", got tokens for " +
                         std::to_string(tokens.size(0)));
    }
    const std::int64_t vocab = net_->start_id;
    if (tokens.numel() > 0 &&
        (tokens.min().item<std::int64_t>() < 0 || tokens.max().item<std::int64_t>() >= vocab)) {
      throw lmrun::Error("mlp_lm: a token id is outside the vocabulary of " +
                         std::to_string(vocab));
    }
    const at::Tensor window = at::cat({state->recent, tokens}, 1);  // (B, K - 1 + t)
    const at::Tensor logits = net_->predict(window).select(1, -1);  // (B, V)
    const std::int64_t keep = net_->context - 1;
    state->recent = window.narrow(1, window.size(1) - keep, keep);
    state->fed += tokens.size(1);
    return logits;
  }

  // 6 per weight of a product (forward 2, backward 4); the embedding is a lookup.
  double flops_per_token(std::int64_t /*context*/) const override {
    return 6.0 * static_cast<double>(net_->hidden->weight.numel() + net_->head->weight.numel());
  }
};

// ---------------------------------------------------------------------------------------------
// Registration

void register_mlp_lm(lmrun::Registry& registry) {
  registry.add<lmrun::Model>(
      "mlp_lm", "Bengio et al.'s MLP language model over a fixed window of tokens", mlp_lm_schema(),
      [](const MlpLmOptions& options, const lmrun::ModelContext& context) {
        lmrun::require_language_model(context);
        return std::make_shared<MlpLmModel>(MlpLm(options, context.vocab_size));
      });
}

}  // namespace

LMRUN_PLUGIN("mlp_lm", "0.1.0", register_mlp_lm)
