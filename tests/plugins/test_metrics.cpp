// The `metrics` plugin through the real loader, each metric against values computed by hand:
// ignored targets, top-k, a class never predicted (no division by zero), macro averages over the
// classes present, ROC AUC with ties, the confusion matrix, and the errors.
#include <cmath>
#include <map>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "lmrun/metric.h"
#include "support/test_support.h"

namespace {

using lmrun::Metric;
using lmrun::MetricContext;
using lmrun::test::error_of;
using ::testing::HasSubstr;

std::shared_ptr<Metric> make(const std::string& name, MetricContext context,
                             const std::map<std::string, lmrun::Value>& params = {}) {
  return lmrun::test::plugin_registry().create<Metric>(
      name, lmrun::test::plugin_params(lmrun::Kind::kMetric, name, params), context);
}

// Logits whose argmax is each of `predicted`, over `classes` classes.
at::Tensor logits_for(const std::vector<std::int64_t>& predicted, std::int64_t classes) {
  at::Tensor logits = at::zeros({static_cast<std::int64_t>(predicted.size()), classes});
  for (std::size_t i = 0; i < predicted.size(); ++i)
    logits[static_cast<std::int64_t>(i)][predicted[i]] = 1.0;
  return logits;
}

at::Tensor longs(const std::vector<std::int64_t>& values) { return at::tensor(values, at::kLong); }

const MetricContext kThree{3, {"neg", "neutral", "very positive"}};

// truth:     0 0 0 1 1 2 2 2   (2 has three examples)
// predicted: 0 0 1 1 0 0 0 0   (class 2 is never predicted)
// class 0: tp 2, predicted 6, examples 3 -> p 1/3, r 2/3, f1 4/9
// class 1: tp 1, predicted 2, examples 2 -> p 0.5, r 0.5, f1 0.5
// class 2: tp 0, predicted 0, examples 3 -> p 0 (no predictions), r 0, f1 0
void feed(Metric& metric) {
  metric.reset();
  metric.update(logits_for({0, 0, 1, 1}, 3), longs({0, 0, 0, 1}));
  metric.update(logits_for({0, 0, 0, 0}, 3), longs({1, 2, 2, 2}));
}

TEST(Metrics, AccuracyCountsTopKAndSkipsIgnoredTargets) {
  auto accuracy = make("accuracy", kThree);
  EXPECT_EQ(accuracy->names(), std::vector<std::string>{"accuracy"});
  feed(*accuracy);
  EXPECT_DOUBLE_EQ(accuracy->compute().at("accuracy"), 3.0 / 8.0);

  // A language model's (B, T, V) with a padded position: 3 real targets, 2 right.
  auto lm = make("accuracy", MetricContext{});
  at::Tensor logits = logits_for({1, 2, 0, 1}, 4).reshape({2, 2, 4});
  lm->update(logits, longs({1, lmrun::kIgnoreTarget, 0, 3}).reshape({2, 2}));
  EXPECT_DOUBLE_EQ(lm->compute().at("accuracy"), 2.0 / 3.0);

  auto top2 = make("accuracy", kThree, {{"top_k", std::int64_t{2}}});
  EXPECT_EQ(top2->names(), std::vector<std::string>{"top2_accuracy"});
  // Scores 3 > 2 > 1 over classes 0, 1, 2: targets 0 and 1 are in the top 2, target 2 is not.
  at::Tensor ranked = at::tensor({3.0f, 2.0f, 1.0f}).repeat({3, 1});
  top2->update(ranked, longs({0, 1, 2}));
  EXPECT_DOUBLE_EQ(top2->compute().at("top2_accuracy"), 2.0 / 3.0);

  accuracy->reset();
  EXPECT_TRUE(std::isnan(accuracy->compute().at("accuracy")));  // nothing measured
}

TEST(Metrics, ExactMatchCountsWholeSequencesOverTheUnmaskedTargets) {
  auto exact = make("exact_match", MetricContext{});
  // Three sequences of 3 positions over 5 tokens; masked positions (kIgnoreTarget) are the
  // prompt. Row 0: both answer tokens right. Row 1: one answer token wrong. Row 2: the only
  // wrong argmax is at a masked position, so the answer is right.
  const std::int64_t m = lmrun::kIgnoreTarget;
  at::Tensor logits = logits_for({4, 1, 2, 0, 3, 3, 1, 1, 2}, 5).reshape({3, 3, 5});
  exact->update(logits, longs({m, 1, 2, m, 3, 4, m, 1, 2}).reshape({3, 3}));
  EXPECT_DOUBLE_EQ(exact->compute().at("exact_match"), 2.0 / 3.0);
  // A row with nothing to predict is not counted; classification rows are one target each.
  exact->update(logits_for({0, 0, 0}, 5).reshape({1, 3, 5}), longs({m, m, m}).reshape({1, 3}));
  EXPECT_DOUBLE_EQ(exact->compute().at("exact_match"), 2.0 / 3.0);
  auto classes = make("exact_match", kThree);
  feed(*classes);
  EXPECT_DOUBLE_EQ(classes->compute().at("exact_match"), 3.0 / 8.0);  // accuracy
  exact->reset();
  EXPECT_TRUE(std::isnan(exact->compute().at("exact_match")));
  EXPECT_THAT(error_of([&] {
                exact->update(at::zeros({2, 3, 5}), longs({1, 2}));
              }),
              HasSubstr("exact_match: logits"));
}

TEST(Metrics, PrecisionRecallF1PerClassAndMacroWithAClassNeverPredicted) {
  auto precision = make("precision", kThree, {{"per_class", true}});
  auto recall = make("recall", kThree, {{"per_class", true}});
  auto f1 = make("f1", kThree, {{"per_class", true}});
  EXPECT_EQ(f1->names(),
            (std::vector<std::string>{"f1_macro", "f1_neg", "f1_neutral", "f1_very_positive"}));
  feed(*precision);
  feed(*recall);
  feed(*f1);
  const auto p = precision->compute(), r = recall->compute(), f = f1->compute();
  EXPECT_DOUBLE_EQ(p.at("precision_neg"), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(p.at("precision_neutral"), 0.5);
  EXPECT_DOUBLE_EQ(p.at("precision_very_positive"), 0.0);
  EXPECT_DOUBLE_EQ(p.at("precision_macro"), (1.0 / 3.0 + 0.5) / 3.0);
  EXPECT_DOUBLE_EQ(r.at("recall_neg"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.at("recall_very_positive"), 0.0);
  EXPECT_DOUBLE_EQ(r.at("recall_macro"), (2.0 / 3.0 + 0.5) / 3.0);
  EXPECT_DOUBLE_EQ(f.at("f1_neg"), 4.0 / 9.0);
  EXPECT_DOUBLE_EQ(f.at("f1_very_positive"), 0.0);
  EXPECT_DOUBLE_EQ(f.at("f1_macro"), (4.0 / 9.0 + 0.5) / 3.0);

  // Macro over the classes present: class 2 neither occurs nor is predicted here.
  auto only_two = make("f1", kThree);
  EXPECT_EQ(only_two->names(), std::vector<std::string>{"f1_macro"});
  only_two->update(logits_for({0, 1, 1}, 3), longs({0, 1, 0}));
  // class 0: p 1, r 0.5, f1 2/3; class 1: p 0.5, r 1, f1 2/3.
  EXPECT_DOUBLE_EQ(only_two->compute().at("f1_macro"), 2.0 / 3.0);
}

TEST(Metrics, ConfusionMatrixCountsTrueByPredicted) {
  auto confusion = make("confusion_matrix", kThree);
  EXPECT_EQ(confusion->names().size(), 9u);
  feed(*confusion);
  const auto c = confusion->compute();
  EXPECT_EQ(c.at("confusion_neg_neg"), 2);
  EXPECT_EQ(c.at("confusion_neg_neutral"), 1);
  EXPECT_EQ(c.at("confusion_neutral_neg"), 1);
  EXPECT_EQ(c.at("confusion_neutral_neutral"), 1);
  EXPECT_EQ(c.at("confusion_very_positive_neg"), 3);
  EXPECT_EQ(c.at("confusion_very_positive_very_positive"), 0);
}

TEST(Metrics, RocAucIsTheShareOfPositiveNegativePairsRankedRightTiesHalf) {
  const MetricContext binary{2, {"no", "yes"}};
  auto auc = make("roc_auc", binary);
  // Margins (logit 1 - logit 0): positives 0.9, 0.4, 0.4; negatives 0.4, 0.1.
  // Pairs: (0.9 > 0.4, 0.9 > 0.1, 0.4 = 0.4 half, 0.4 > 0.1, 0.4 = 0.4 half, 0.4 > 0.1) = 5/6.
  at::Tensor margin = at::tensor({0.9f, 0.4f, 0.4f, 0.4f, 0.1f});
  at::Tensor logits = at::stack({at::zeros_like(margin), margin}, 1);
  auc->update(logits, longs({1, 1, 1, 0, 0}));
  EXPECT_NEAR(auc->compute().at("roc_auc"), 5.0 / 6.0, 1e-12);
  auc->reset();
  auc->update(logits, longs({1, 1, 1, 1, 1}));
  EXPECT_TRUE(std::isnan(auc->compute().at("roc_auc")));  // no negatives: undefined
}

TEST(Metrics, ErrorsNameTheMetricAndTheMismatch) {
  EXPECT_THAT(error_of([] { make("f1", MetricContext{}); }),
              HasSubstr("f1 needs a classification dataset"));
  EXPECT_THAT(error_of([] { make("roc_auc", kThree); }), HasSubstr("roc_auc is for binary tasks"));
  auto f1 = make("f1", kThree);
  EXPECT_THAT(error_of([&] { f1->update(logits_for({0}, 3), longs({3})); }),
              HasSubstr("target 3 is outside the model's 3 classes"));
  EXPECT_THAT(error_of([&] { f1->update(logits_for({0}, 4), longs({0})); }),
              HasSubstr("the model gives 4 classes, the dataset has 3"));
  EXPECT_THAT(error_of([&] {
                f1->update(at::zeros({2, 3, 3}), longs({0, 1}));
              }),
              HasSubstr("do not match targets"));
}

}  // namespace
