// The model's output contracts checked once before any work, and the adapter that hands
// generation an objective's scores instead of the model's raw outputs.
#include "train/model_checks.h"

#include <string>
#include <utility>
#include <vector>

#include <ATen/ops/arange.h>
#include <ATen/ops/ones.h>
#include <torch/utils.h>

#include "registry/guarded.h"

namespace lmrun::host {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + ")";
}

std::string shape_of(const at::Tensor& t) {
  return t.defined() ? shape_text(t.sizes().vec()) : "an undefined tensor";
}

// The model with outputs turned into scores; everything else is the model's own.
class ScoredModel final : public Model {
 public:
  ScoredModel(std::shared_ptr<Model> model, std::shared_ptr<Objective> objective)
      : model_(std::move(model)), objective_(std::move(objective)) {}

  torch::nn::Module& module() override { return model_->module(); }
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& mask) override {
    return objective_->scores(model_->forward(inputs, mask));
  }
  at::Tensor forward_conditioned(const at::Tensor& inputs, const at::Tensor& mask,
                                 const Conditioning& context) override {
    return objective_->scores(model_->forward_conditioned(inputs, mask, context));
  }
  bool uses_context() const override { return model_->uses_context(); }
  bool can_decode() const override { return model_->can_decode(); }
  std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size) override {
    return model_->start_decoding(batch_size);
  }
  std::unique_ptr<DecodeState> start_decoding_conditioned(std::int64_t batch_size,
                                                          const Conditioning& context) override {
    return model_->start_decoding_conditioned(batch_size, context);
  }
  at::Tensor decode(DecodeState& state, const at::Tensor& tokens) override {
    return objective_->scores(model_->decode(state, tokens));
  }
  std::int64_t max_context() const override { return model_->max_context(); }
  std::vector<Activation> activations(const at::Tensor& inputs, const at::Tensor& mask) override {
    return model_->activations(inputs, mask);
  }
  at::Tensor token_embeddings() override { return model_->token_embeddings(); }
  std::int64_t washout() const override { return model_->washout(); }
  std::string diagnostics(const Batch& batch) override { return model_->diagnostics(batch); }
  std::string summary() const override { return model_->summary(); }
  double flops_per_token(std::int64_t context) const override {
    return model_->flops_per_token(context);
  }

 private:
  std::shared_ptr<Model> model_;
  std::shared_ptr<Objective> objective_;
};

}  // namespace

void check_model_outputs(Model& model, const ModelContext& context, c10::Device device) {
  const PluginWho* who = who_of(model);
  const std::string name = who ? who->name : "the model";
  const std::string hint_file = who && !who->file.empty() ? "; the plugin is " + who->file : "";
  const bool language_model = context.num_classes == 0;
  const bool vectors = context.output == ModelOutput::kVectors;
  const std::int64_t vocab = context.vocab_size, b = 2;
  std::int64_t t = std::min<std::int64_t>(std::max<std::int64_t>(context.sequence_length, 1), 4);
  if (model.max_context() > 0) t = std::min(t, model.max_context());
  // A batch of real token ids (0, 1, 2, ... below the vocabulary), nothing padded.
  const at::Tensor inputs =
      (at::arange(b * t, at::kLong) % std::max<std::int64_t>(vocab, 1)).view({b, t}).to(device);
  const at::Tensor mask = at::ones({b, t}, at::TensorOptions(at::kBool).device(device));
  const bool was_training = model.module().is_training();
  model.module().eval();
  torch::NoGradGuard no_grad;

  // What the last dimension holds: the vocabulary, the classes, or the embedding width.
  std::int64_t width = language_model ? vocab : context.num_classes;
  std::string what = language_model ? "vocab_size" : "classes";
  if (vectors) {
    const at::Tensor table = model.token_embeddings();
    if (!table.defined() || table.dim() != 2 || table.size(0) != vocab) {
      throw Error(name + " was built for vector outputs, but token_embeddings() gave " +
                      shape_of(table) + ", not (vocab_size, D) = (" + std::to_string(vocab) +
                      ", D)",
                  "an embedding objective needs the model's token embedding table: see "
                  "lmrun/model.h" +
                      hint_file);
    }
    width = table.size(1);
    what = "D, the token embeddings' width";
  }
  const std::vector<std::int64_t> expected =
      language_model ? std::vector<std::int64_t>{b, t, width} : std::vector<std::int64_t>{b, width};
  const at::Tensor outputs = model.forward(inputs, mask);
  if (!outputs.defined() || outputs.sizes().vec() != expected) {
    throw Error(
        name + ": forward() on a (" + std::to_string(b) + ", " + std::to_string(t) +
            ") batch returned " + shape_of(outputs) + ", but " +
            (language_model ? "a language model gives (B, T, " : "a classifier gives (B, ") + what +
            ") = " + shape_text(expected),
        std::string(vectors ? "built for vectors (ModelContext::output), the model "
                              "outputs its token-embedding space; "
                            : "the model must size its output layer from ModelContext "
                              "(vocab_size, num_classes); ") +
            "see lmrun/model.h" + hint_file);
  }
  if (model.can_decode()) {
    std::unique_ptr<DecodeState> state = model.start_decoding(1);
    const at::Tensor next = state ? model.decode(*state, inputs.narrow(0, 0, 1)) : at::Tensor();
    const std::vector<std::int64_t> one = {1, width};
    if (!state || !next.defined() || next.sizes().vec() != one) {
      throw Error(name + ": decode() of a (1, " + std::to_string(t) + ") prompt returned " +
                      (state ? shape_of(next) : std::string("no decoding state")) +
                      ", but it gives the last position's " + (vectors ? "vector" : "logits") +
                      ", (B, " + what + ") = " + shape_text(one),
                  "see lmrun/model.h" + hint_file);
    }
  }
  model.module().train(was_training);
}

std::shared_ptr<Model> scored_model(std::shared_ptr<Model> model,
                                    std::shared_ptr<Objective> objective) {
  if (!objective) return model;
  return std::make_shared<ScoredModel>(std::move(model), std::move(objective));
}

}  // namespace lmrun::host
