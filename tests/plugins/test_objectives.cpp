// The `objectives` plugin through the real loader, each loss against values computed by hand:
// cross-entropy's sum and count with masks, label smoothing and ignore_index; cosine_embedding and
// mse against a fixed embedding table, their scores (nearest token) and what they refuse.
#include <cmath>
#include <map>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "lmrun/objective.h"
#include "support/test_support.h"

namespace {

using lmrun::Batch;
using lmrun::kIgnoreTarget;
using lmrun::Objective;
using lmrun::ObjectiveContext;
using lmrun::Task;
using lmrun::test::error_of;
using ::testing::HasSubstr;

const ObjectiveContext kLanguageModel{Task::kLanguageModel, 4, 0, -1};

std::shared_ptr<Objective> make(const std::string& name,
                                const std::map<std::string, lmrun::Value>& params = {},
                                const ObjectiveContext& context = kLanguageModel) {
  return lmrun::test::plugin_registry().create<Objective>(
      name, lmrun::test::plugin_params(lmrun::Kind::kObjective, name, params), context);
}

at::Tensor longs(const std::vector<std::int64_t>& values, std::vector<std::int64_t> shape) {
  return at::tensor(values, at::kLong).view(shape);
}

// A model that is only an embedding table: four tokens in 2-d, at 0, 90, 180 and 45 degrees.
class TableModel final : public lmrun::Model {
 public:
  TableModel() {
    table_ = module_.register_parameter(
        "table", at::tensor({1.0, 0.0, 0.0, 2.0, -3.0, 0.0, 1.0, 1.0}, at::kFloat).view({4, 2}));
  }
  torch::nn::Module& module() override { return module_; }
  at::Tensor forward(const at::Tensor&, const at::Tensor&) override { return {}; }
  at::Tensor token_embeddings() override { return table_; }

 private:
  torch::nn::Module module_;
  at::Tensor table_;
};

class NoTableModel final : public lmrun::Model {
 public:
  torch::nn::Module& module() override { return module_; }
  at::Tensor forward(const at::Tensor&, const at::Tensor&) override { return {}; }

 private:
  torch::nn::Module module_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// cross_entropy

TEST(CrossEntropy, SumsOverTheCountedTargetsOnly) {
  auto objective = make("cross_entropy");
  EXPECT_EQ(objective->output(), lmrun::ModelOutput::kScores);
  EXPECT_TRUE(objective->loss_is_nll());
  // (1, 3, 4) logits; the middle target is masked.
  const at::Tensor logits =
      at::tensor({2.0f, 0.0f, 0.0f, 0.0f, 9.0f, 9.0f, 9.0f, 9.0f, 0.0f, 0.0f, 0.0f, 1.0f})
          .view({1, 3, 4});
  Batch batch{longs({0, 1, 2}, {1, 3}), longs({0, kIgnoreTarget, 3}, {1, 3}), {}};
  EXPECT_EQ(objective->count(batch), 2);
  // -log softmax: row 0 target 0: log(e^2 + 3) - 2; row 2 target 3: log(3 + e) - 1.
  const double expected = std::log(std::exp(2.0) + 3.0) - 2.0 + std::log(3.0 + std::exp(1.0)) - 1.0;
  EXPECT_NEAR(objective->loss(logits, batch).item<double>(), expected, 1e-5);
  EXPECT_TRUE(objective->scores(logits).equal(logits));
}

TEST(CrossEntropy, LabelSmoothingSpreadsTheTargetsMassAndIsNoLikelihood) {
  auto objective = make("cross_entropy", {{"label_smoothing", 0.1}});
  EXPECT_FALSE(objective->loss_is_nll());
  const at::Tensor logits = at::tensor({1.0f, 2.0f, 0.5f, -1.0f}).view({1, 4});
  const Batch batch{longs({0}, {1, 1}), longs({1}, {1}), {}};
  // (1 - s) * -log p[1] + s * mean over classes of -log p[c].
  const at::Tensor log_p = at::log_softmax(logits, -1);
  const double expected = 0.9 * -log_p[0][1].item<double>() + 0.1 * -log_p.mean().item<double>();
  EXPECT_NEAR(objective->loss(logits, batch).item<double>(), expected, 1e-5);
}

TEST(CrossEntropy, IgnoreIndexLeavesATargetIdOut) {
  auto objective = make("cross_entropy", {{"ignore_index", std::int64_t{3}}});
  const at::Tensor logits = at::zeros({1, 3, 4});
  const Batch batch{longs({0, 1, 2}, {1, 3}), longs({3, 1, 3}, {1, 3}), {}};
  EXPECT_EQ(objective->count(batch), 1);
  EXPECT_NEAR(objective->loss(logits, batch).item<double>(), std::log(4.0), 1e-6);
}

TEST(CrossEntropy, MismatchedShapesNameBoth) {
  auto objective = make("cross_entropy");
  const Batch batch{longs({0, 1}, {1, 2}), longs({0, 1}, {1, 2}), {}};
  EXPECT_THAT(error_of([&] {
                objective->loss(at::zeros({1, 3, 4}), batch);
              }),
              HasSubstr("cross_entropy: the model's outputs (1, 3, 4) do not match the targets "
                        "(1, 2)"));
}

// ---------------------------------------------------------------------------------------------
// cosine_embedding and mse

TEST(CosineEmbedding, OneMinusTheCosineToTheTargetsEmbedding) {
  auto objective = make("cosine_embedding");
  EXPECT_EQ(objective->output(), lmrun::ModelOutput::kVectors);
  EXPECT_FALSE(objective->loss_is_nll());
  TableModel model;
  objective->attach(model);
  // Vectors at 0 and 90 degrees against targets 3 (45 degrees) and 2 (180 degrees); one ignored.
  const at::Tensor vectors = at::tensor({5.0f, 0.0f, 0.0f, 1.0f, 7.0f, 7.0f}).view({1, 3, 2});
  const Batch batch{longs({0, 0, 0}, {1, 3}), longs({3, 2, kIgnoreTarget}, {1, 3}), {}};
  EXPECT_EQ(objective->count(batch), 2);
  EXPECT_NEAR(objective->loss(vectors, batch).item<double>(), (1 - std::sqrt(0.5)) + (1 - 0.0),
              1e-6);
}

TEST(CosineEmbedding, ScoresAreCosinesOverTheTemperatureAndTheNearestTokenWins) {
  auto objective = make("cosine_embedding", {{"temperature", 0.5}});
  TableModel model;
  objective->attach(model);
  const at::Tensor scores = objective->scores(at::tensor({3.0f, 2.9f}).view({1, 2}));  // (1, 4)
  ASSERT_EQ(scores.sizes().vec(), (std::vector<std::int64_t>{1, 4}));
  const double norm = std::sqrt(3.0 * 3.0 + 2.9 * 2.9);
  EXPECT_NEAR(scores[0][0].item<double>(), (3.0 / norm) / 0.5, 1e-5);
  EXPECT_NEAR(scores[0][2].item<double>(), (-3.0 / norm) / 0.5, 1e-5);
  EXPECT_EQ(scores.argmax(-1).item<std::int64_t>(), 3);  // 45 degrees is nearest
}

TEST(CosineEmbedding, TargetsAreConstantsUnlessTrainTargets) {
  TableModel model;
  const at::Tensor vectors = at::tensor({1.0f, 2.0f}).view({1, 1, 2}).requires_grad_();
  const Batch batch{longs({0}, {1, 1}), longs({3}, {1, 1}), {}};
  auto fixed = make("cosine_embedding");
  fixed->attach(model);
  fixed->loss(vectors, batch).backward();
  EXPECT_TRUE(vectors.grad().defined());
  EXPECT_FALSE(model.token_embeddings().grad().defined());
  auto trained = make("cosine_embedding", {{"train_targets", true}});
  trained->attach(model);
  trained->loss(vectors, batch).backward();
  ASSERT_TRUE(model.token_embeddings().grad().defined());
  EXPECT_GT(model.token_embeddings().grad()[3].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(model.token_embeddings().grad()[0].abs().sum().item<double>(), 0.0);
}

TEST(Mse, MeanSquaredDifferenceAndMinusTheDistanceAsScores) {
  auto objective = make("mse", {{"temperature", 1.0}});
  TableModel model;
  objective->attach(model);
  const at::Tensor vectors = at::tensor({1.0f, 1.0f, 0.0f, 0.0f}).view({1, 2, 2});
  const Batch batch{longs({0, 0}, {1, 2}), longs({0, 2}, {1, 2}), {}};
  // (0^2 + 1^2) / 2 + (3^2 + 0^2) / 2
  EXPECT_NEAR(objective->loss(vectors, batch).item<double>(), 0.5 + 4.5, 1e-6);
  const at::Tensor scores = objective->scores(vectors);                 // (1, 2, 4)
  EXPECT_NEAR(scores[0][0][1].item<double>(), -(1.0 + 1.0) / 2, 1e-5);  // (1,1) to (0,2)
  EXPECT_EQ(scores[0][0].argmax().item<std::int64_t>(), 3);             // (1,1) is token 3
  EXPECT_EQ(scores[0][1].argmax().item<std::int64_t>(), 0);             // (0,0) is nearest (1,0)
}

TEST(EmbeddingObjectives, RefuseAModelWithoutEmbeddingsAndAClassifier) {
  NoTableModel model;
  for (const char* name : {"cosine_embedding", "mse"}) {
    SCOPED_TRACE(name);
    auto objective = make(name);
    EXPECT_THAT(error_of([&] { objective->attach(model); }),
                HasSubstr(std::string(name) + " compares the model's output vectors with its token "
                                              "embeddings, but the model has none"));
    EXPECT_THAT(error_of([&] {
                  make(name, {}, ObjectiveContext{Task::kClassification, 4, 2, -1});
                }),
                HasSubstr("it needs a language model dataset, not classification"));
  }
  EXPECT_THAT(error_of([&] {
                make("cosine_embedding", {{"temperature", 0.0}});
              }),
              HasSubstr("temperature"));
}
