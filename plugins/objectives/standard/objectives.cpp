// Objectives `cross_entropy`, `cosine_embedding` and `mse`: the losses a run can optimise.
//
//   cross_entropy     scores over the vocabulary (next token) or the classes; label smoothing,
//                     an extra ignored target id; the mean loss is a negative log-likelihood
//                     when nothing is smoothed
//   cosine_embedding  the model predicts a vector; the loss of an item is 1 - cos(vector, the
//                     target token's embedding); scores are cos / temperature
//   mse               the model predicts a vector; the loss of an item is the mean squared
//                     difference from the target token's embedding over its dimensions; scores
//                     are -that / temperature
//
// The two embedding objectives read the target embeddings from the model
// (Model::token_embeddings(), (V, D)), detached unless train_targets: a loss that could move the
// targets towards the predictions could also collapse every embedding onto one vector.
#include <cstdint>
#include <memory>
#include <string>

#include <ATen/ops/cosine_similarity.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/where.h>

#include "lmrun/objective.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"

namespace lmrun::objectives {
namespace {

std::string shape_text(const at::Tensor& t) {
  std::string out = "(";
  for (std::int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + ")";
}

// outputs (..., K) must cover targets (...): one row of K per target.
void check_shapes(const char* name, const at::Tensor& outputs, const at::Tensor& targets,
                  const char* last) {
  const bool fits =
      outputs.dim() == targets.dim() + 1 &&
      outputs.sizes().slice(0, static_cast<std::size_t>(targets.dim())) == targets.sizes();
  if (!fits) {
    throw Error(std::string(name) + ": the model's outputs " + shape_text(outputs) +
                " do not match the targets " + shape_text(targets) + ": expected (" +
                "targets' shape, " + last + ")");
  }
}

// ---------------------------------------------------------------------------------------------
// cross_entropy

struct CrossEntropyOptions {
  double label_smoothing = 0.0;
  std::int64_t ignore_index = kIgnoreTarget;
};

class CrossEntropy final : public Objective {
 public:
  explicit CrossEntropy(const CrossEntropyOptions& options) : options_(options) {}

  std::int64_t count(const Batch& batch) const override {
    return (counted(batch.targets) != kIgnoreTarget).sum().item<std::int64_t>();
  }

  at::Tensor loss(const at::Tensor& outputs, const Batch& batch) override {
    check_shapes("cross_entropy", outputs, batch.targets, "classes or vocabulary");
    const std::int64_t classes = outputs.size(-1);
    return at::cross_entropy_loss(outputs.reshape({-1, classes}),
                                  counted(batch.targets).reshape({-1}), {}, at::Reduction::Sum,
                                  kIgnoreTarget, options_.label_smoothing);
  }

  bool loss_is_nll() const override { return options_.label_smoothing == 0.0; }

 private:
  // The targets with ignore_index left out too.
  at::Tensor counted(const at::Tensor& targets) const {
    if (options_.ignore_index == kIgnoreTarget) return targets;
    return at::where(targets == options_.ignore_index, at::full_like(targets, kIgnoreTarget),
                     targets);
  }

  CrossEntropyOptions options_;
};

Schema<CrossEntropyOptions> cross_entropy_schema() {
  Schema<CrossEntropyOptions> s;
  s.add("label_smoothing", &CrossEntropyOptions::label_smoothing,
        "share of each target's probability spread evenly over all classes (Szegedy et al. "
        "2016); 0: none, and exp(val_loss) is the perplexity")
      .range(0, 1, true);
  s.add("ignore_index", &CrossEntropyOptions::ignore_index,
        "a target id left out of the loss and its count besides the masked positions (e.g. a "
        "padding token's id); -100: none")
      .min(-100);
  return s;
}

// ---------------------------------------------------------------------------------------------
// cosine_embedding and mse: a vector against the target token's embedding

struct EmbeddingOptions {
  double temperature = 0.1;
  bool train_targets = false;
};

enum class Distance { kCosine, kSquared };

class EmbeddingObjective final : public Objective {
 public:
  EmbeddingObjective(const char* name, Distance distance, const EmbeddingOptions& options)
      : name_(name), distance_(distance), options_(options) {}

  ModelOutput output() const override { return ModelOutput::kVectors; }

  void attach(Model& model) override {
    const at::Tensor table = model.token_embeddings();
    if (!table.defined() || table.dim() != 2) {
      throw Error(std::string(name_) +
                      " compares the model's output vectors with its token "
                      "embeddings, but the model has none (Model::token_embeddings() gave " +
                      (table.defined() ? shape_text(table) : std::string("nothing")) +
                      ", not (V, D))",
                  "use a model that exposes its embedding table (transformer, reservoir), or "
                  "objective type = \"cross_entropy\"");
    }
    model_ = &model;
  }

  at::Tensor loss(const at::Tensor& outputs, const Batch& batch) override {
    const at::Tensor table = targets_table();  // (V, D)
    check_shapes(name_, outputs, batch.targets, "embedding size");
    if (outputs.size(-1) != table.size(1)) {
      throw Error(std::string(name_) + ": the model's vectors have " +
                  std::to_string(outputs.size(-1)) + " dimensions, its token embeddings " +
                  std::to_string(table.size(1)));
    }
    const at::Tensor targets = batch.targets.reshape({-1});
    const at::Tensor keep = (targets != kIgnoreTarget).nonzero().squeeze(1);  // (N)
    const at::Tensor vectors = outputs.reshape({-1, table.size(1)}).index_select(0, keep);
    const at::Tensor wanted = table.index_select(0, targets.index_select(0, keep));  // (N, D)
    if (distance_ == Distance::kCosine) {
      return (1.0 - at::cosine_similarity(vectors, wanted, 1, 1e-8)).sum();
    }
    return (vectors - wanted).pow(2).mean(1).sum();
  }

  at::Tensor scores(const at::Tensor& outputs) override {
    const at::Tensor table = targets_table().detach();  // (V, D)
    at::Tensor scores;
    if (distance_ == Distance::kCosine) {
      const auto unit = [](const at::Tensor& t) { return t / t.norm(2, -1, true).clamp_min(1e-8); };
      scores = at::matmul(unit(outputs), unit(table).t());  // (..., V), cos in [-1, 1]
    } else {
      // mean((v - e)^2) = (|v|^2 - 2 v.e + |e|^2) / D, without the (..., V, D) difference.
      const double d = static_cast<double>(table.size(1));
      scores = -(outputs.pow(2).sum(-1, true) - 2.0 * at::matmul(outputs, table.t()) +
                 table.pow(2).sum(1)) /
               d;
    }
    return scores / options_.temperature;
  }

 private:
  at::Tensor targets_table() const {
    if (model_ == nullptr) throw Error(std::string(name_) + ": no model attached");
    const at::Tensor table = model_->token_embeddings();
    return options_.train_targets ? table : table.detach();
  }

  const char* name_;
  Distance distance_;
  EmbeddingOptions options_;
  Model* model_ = nullptr;
};

Schema<EmbeddingOptions> embedding_schema(const char* scores) {
  Schema<EmbeddingOptions> s;
  s.add("temperature", &EmbeddingOptions::temperature,
        std::string("divides the scores (") + scores +
            ") that metrics and generation see: softmax(scores) is what sampling draws from; "
            "small values approach the nearest token")
      .min(0, true);
  s.add("train_targets", &EmbeddingOptions::train_targets,
        "let the loss's gradient reach the target embeddings too (they may then collapse onto "
        "one vector); false: the targets are constants of each step");
  return s;
}

void require_next_token_task(const char* name, const ObjectiveContext& context) {
  if (context.task != Task::kLanguageModel) {
    throw Error(std::string(name) +
                    " predicts the next token's embedding: it needs a language "
                    "model dataset, not classification",
                "use objective type = \"cross_entropy\" for a classifier");
  }
}

void register_objectives(Registry& registry) {
  registry.add<Objective>(
      "cross_entropy",
      "softmax cross-entropy over the vocabulary (next token) or the classes, optionally "
      "label-smoothed",
      cross_entropy_schema(), [](const CrossEntropyOptions& o, const ObjectiveContext&) {
        return std::make_shared<CrossEntropy>(o);
      });
  registry.add<Objective>(
      "cosine_embedding",
      "1 - cos between the model's output vector and the target token's embedding",
      embedding_schema("the cosine similarity to every token's embedding"),
      [](const EmbeddingOptions& o, const ObjectiveContext& c) {
        require_next_token_task("cosine_embedding", c);
        return std::make_shared<EmbeddingObjective>("cosine_embedding", Distance::kCosine, o);
      });
  registry.add<Objective>(
      "mse",
      "mean squared error between the model's output vector and the target token's embedding",
      embedding_schema("minus the mean squared distance to every token's embedding"),
      [](const EmbeddingOptions& o, const ObjectiveContext& c) {
        require_next_token_task("mse", c);
        return std::make_shared<EmbeddingObjective>("mse", Distance::kSquared, o);
      });
}

}  // namespace
}  // namespace lmrun::objectives

LMRUN_PLUGIN("objectives", "0.1.0", lmrun::objectives::register_objectives)
