// Metrics over a split, for classification (logits (B, C), targets (B)) and, where they make
// sense, language models (logits (B, T, V), targets (B, T)); targets equal to kIgnoreTarget
// (padding) are left out.
//
//   accuracy          share of targets the top-k logits hold (k = 1: argmax); any task
//   precision         per class: correct predictions of the class / predictions of it
//   recall            per class: correct predictions of the class / examples of it
//   f1                per class: harmonic mean of the two
//   roc_auc           binary tasks: the probability that a positive example scores above a
//                     negative one (ties count half), from the positive class's logit margin
//   confusion_matrix  confusion_<true>_<predicted>: counts of examples
//
// precision, recall and f1 report "<name>_macro", the unweighted mean over the classes that occur
// in the targets or the predictions (as scikit-learn's default), and with per_class = true also
// "<name>_<class>" for every class. A class never predicted has precision 0, a class with no
// examples recall 0, and F1 is 0 when both are: never a division by zero. A split with no
// examples gives NaN.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "lmrun/metric.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"

namespace lmrun::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// logits (..., C) and targets (...) as flat CPU arrays of predictions (argmax) and targets, with
// ignored targets dropped.
struct Flat {
  at::Tensor logits;   // (N, C) fp32 CPU, the kept rows
  at::Tensor targets;  // (N) int64 CPU
};

Flat flatten(const std::string& metric, const at::Tensor& logits, const at::Tensor& targets) {
  if (logits.dim() != targets.dim() + 1 ||
      logits.sizes().slice(0, static_cast<std::size_t>(targets.dim())) != targets.sizes()) {
    throw Error(metric + ": logits of shape " + std::to_string(logits.dim()) +
                "-d do not match targets of " + std::to_string(targets.dim()) +
                "-d (expected logits (B, C) with targets (B), or (B, T, V) with (B, T))");
  }
  const std::int64_t classes = logits.size(-1);
  at::Tensor flat_targets = targets.reshape({-1}).to(at::kCPU, at::kLong);
  at::Tensor keep = flat_targets != kIgnoreTarget;
  at::Tensor flat_logits = logits.detach().reshape({-1, classes}).to(at::kCPU, at::kFloat);
  Flat out{flat_logits.index({keep}), flat_targets.index({keep})};
  if (out.targets.numel() > 0) {
    const std::int64_t low = out.targets.min().item<std::int64_t>();
    const std::int64_t high = out.targets.max().item<std::int64_t>();
    if (low < 0 || high >= classes) {
      throw Error(metric + ": target " + std::to_string(low < 0 ? low : high) +
                  " is outside the model's " + std::to_string(classes) + " classes");
    }
  }
  return out;
}

// A name part from a class name: letters, digits and '_' ("very positive" -> very_positive).
std::string name_part(const std::string& text) {
  std::string out;
  for (unsigned char c : text) out += std::isalnum(c) ? static_cast<char>(c) : '_';
  return out.empty() ? "_" : out;
}

std::vector<std::string> class_labels(const MetricContext& context) {
  std::vector<std::string> labels;
  for (std::int64_t c = 0; c < context.num_classes; ++c) {
    const auto i = static_cast<std::size_t>(c);
    labels.push_back(i < context.class_names.size() ? name_part(context.class_names[i])
                                                    : std::to_string(c));
  }
  return labels;
}

void need_classes(const std::string& metric, const MetricContext& context, std::int64_t at_least) {
  if (context.num_classes < at_least) {
    throw Error(metric + " needs a classification dataset with at least " +
                    std::to_string(at_least) + " classes; this one has " +
                    std::to_string(context.num_classes),
                "for a language model use `accuracy`");
  }
}

// ---------------------------------------------------------------------------------------------
// accuracy

struct AccuracyOptions {
  std::int64_t top_k = 1;
};

class Accuracy final : public Metric {
 public:
  explicit Accuracy(std::int64_t top_k) : top_k_(top_k) {}
  std::vector<std::string> names() const override {
    return {top_k_ == 1 ? "accuracy" : "top" + std::to_string(top_k_) + "_accuracy"};
  }
  void reset() override { correct_ = total_ = 0; }
  void update(const at::Tensor& logits, const at::Tensor& targets) override {
    const Flat flat = flatten("accuracy", logits, targets);
    if (flat.targets.numel() == 0) return;
    const std::int64_t k = std::min<std::int64_t>(top_k_, flat.logits.size(1));
    at::Tensor top = std::get<1>(flat.logits.topk(k, 1));  // (N, k)
    correct_ += (top == flat.targets.unsqueeze(1)).any(1).sum().item<std::int64_t>();
    total_ += flat.targets.numel();
  }
  Metrics compute() const override {
    return {
        {names()[0], total_ ? static_cast<double>(correct_) / static_cast<double>(total_) : kNaN}};
  }

 private:
  std::int64_t top_k_;
  std::int64_t correct_ = 0, total_ = 0;
};

// Sequences whose every target (padding and masked positions, kIgnoreTarget, left out) is the
// argmax. Teacher-forced, this equals greedy decoding's exact match: greedy generation follows
// the targets as long as each argmax is the target, and leaves them at the first that is not. So
// for a dataset that masks all but the answer (a+b=c) it is the share of answers greedy decoding
// gets exactly right. A classification row is one target: there it is accuracy.
class ExactMatch final : public Metric {
 public:
  std::vector<std::string> names() const override { return {"exact_match"}; }
  void reset() override { correct_ = total_ = 0; }
  void update(const at::Tensor& logits, const at::Tensor& targets) override {
    flatten("exact_match", logits, targets);  // checks the shapes and the target range
    if (targets.dim() > 2) throw Error("exact_match: targets of more than 2 dimensions");
    const at::Tensor t = (targets.dim() == 1 ? targets.unsqueeze(1) : targets).to(at::kCPU);
    const at::Tensor p =
        (targets.dim() == 1 ? logits.unsqueeze(1) : logits).detach().argmax(-1).to(at::kCPU);
    const at::Tensor counted = t.ne(kIgnoreTarget);
    const at::Tensor wrong = p.ne(t).logical_and(counted).any(1);
    const at::Tensor rows = counted.any(1);  // a row with nothing to predict is left out
    correct_ += rows.logical_and(wrong.logical_not()).sum().item<std::int64_t>();
    total_ += rows.sum().item<std::int64_t>();
  }
  Metrics compute() const override {
    return {{"exact_match",
             total_ ? static_cast<double>(correct_) / static_cast<double>(total_) : kNaN}};
  }

 private:
  std::int64_t correct_ = 0, total_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The confusion matrix and what is read from it

class Confusion {
 public:
  explicit Confusion(std::int64_t classes)
      : classes_(classes), counts_(static_cast<std::size_t>(classes * classes), 0) {}
  void reset() { std::fill(counts_.begin(), counts_.end(), 0); }
  void add(const std::string& metric, const at::Tensor& logits, const at::Tensor& targets) {
    const Flat flat = flatten(metric, logits, targets);
    if (flat.logits.size(1) != classes_) {
      throw Error(metric + ": the model gives " + std::to_string(flat.logits.size(1)) +
                  " classes, the dataset has " + std::to_string(classes_));
    }
    const at::Tensor predicted = flat.logits.argmax(1).contiguous();
    const at::Tensor truth = flat.targets.contiguous();
    const std::int64_t* p = predicted.data_ptr<std::int64_t>();
    const std::int64_t* t = truth.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < truth.numel(); ++i) ++at(t[i], p[i]);
  }
  std::int64_t& at(std::int64_t truth, std::int64_t predicted) {
    return counts_[static_cast<std::size_t>(truth * classes_ + predicted)];
  }
  std::int64_t at(std::int64_t truth, std::int64_t predicted) const {
    return counts_[static_cast<std::size_t>(truth * classes_ + predicted)];
  }
  std::int64_t examples_of(std::int64_t c) const {  // row sum
    std::int64_t n = 0;
    for (std::int64_t p = 0; p < classes_; ++p) n += at(c, p);
    return n;
  }
  std::int64_t predictions_of(std::int64_t c) const {  // column sum
    std::int64_t n = 0;
    for (std::int64_t t = 0; t < classes_; ++t) n += at(t, c);
    return n;
  }
  std::int64_t total() const {
    std::int64_t n = 0;
    for (std::int64_t v : counts_) n += v;
    return n;
  }
  std::int64_t classes() const { return classes_; }

 private:
  std::int64_t classes_;
  std::vector<std::int64_t> counts_;
};

enum class Score { kPrecision, kRecall, kF1 };

struct ScoreOptions {
  bool per_class = false;
};

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

class ClassScore final : public Metric {
 public:
  ClassScore(Score score, const std::string& name, bool per_class, const MetricContext& context)
      : score_(score),
        name_(name),
        per_class_(per_class),
        labels_(class_labels(context)),
        confusion_(context.num_classes) {}

  std::vector<std::string> names() const override {
    std::vector<std::string> out = {name_ + "_macro"};
    if (per_class_) {
      for (const auto& label : labels_) out.push_back(name_ + "_" + label);
    }
    return out;
  }
  void reset() override { confusion_.reset(); }
  void update(const at::Tensor& logits, const at::Tensor& targets) override {
    confusion_.add(name_, logits, targets);
  }
  Metrics compute() const override {
    Metrics out;
    double sum = 0.0;
    std::int64_t present = 0;
    for (std::int64_t c = 0; c < confusion_.classes(); ++c) {
      const std::int64_t hits = confusion_.at(c, c);
      const double precision = ratio(hits, confusion_.predictions_of(c));
      const double recall = ratio(hits, confusion_.examples_of(c));
      double value = score_ == Score::kPrecision ? precision : recall;
      if (score_ == Score::kF1) {
        value = precision + recall == 0 ? 0.0 : 2 * precision * recall / (precision + recall);
      }
      if (confusion_.examples_of(c) + confusion_.predictions_of(c) > 0) {
        sum += value;
        ++present;
      }
      if (per_class_) out[name_ + "_" + labels_[static_cast<std::size_t>(c)]] = value;
    }
    out[name_ + "_macro"] = present ? sum / static_cast<double>(present) : kNaN;
    if (confusion_.total() == 0) {
      for (auto& [key, value] : out) value = kNaN;
    }
    return out;
  }

 private:
  Score score_;
  std::string name_;
  bool per_class_;
  std::vector<std::string> labels_;
  Confusion confusion_;
};

// ---------------------------------------------------------------------------------------------
// confusion_matrix

struct NoOptions {};

class ConfusionMatrix final : public Metric {
 public:
  explicit ConfusionMatrix(const MetricContext& context)
      : labels_(class_labels(context)), confusion_(context.num_classes) {}
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& truth : labels_) {
      for (const auto& predicted : labels_) out.push_back("confusion_" + truth + "_" + predicted);
    }
    return out;
  }
  void reset() override { confusion_.reset(); }
  void update(const at::Tensor& logits, const at::Tensor& targets) override {
    confusion_.add("confusion_matrix", logits, targets);
  }
  Metrics compute() const override {
    Metrics out;
    for (std::int64_t t = 0; t < confusion_.classes(); ++t) {
      for (std::int64_t p = 0; p < confusion_.classes(); ++p) {
        out["confusion_" + labels_[static_cast<std::size_t>(t)] + "_" +
            labels_[static_cast<std::size_t>(p)]] = static_cast<double>(confusion_.at(t, p));
      }
    }
    return out;
  }

 private:
  std::vector<std::string> labels_;
  Confusion confusion_;
};

// ---------------------------------------------------------------------------------------------
// roc_auc

class RocAuc final : public Metric {
 public:
  std::vector<std::string> names() const override { return {"roc_auc"}; }
  void reset() override {
    scores_.clear();
    positive_.clear();
  }
  void update(const at::Tensor& logits, const at::Tensor& targets) override {
    const Flat flat = flatten("roc_auc", logits, targets);
    if (flat.logits.size(1) != 2) {
      throw Error("roc_auc: the model gives " + std::to_string(flat.logits.size(1)) +
                  " classes; ROC AUC is for binary tasks");
    }
    // The margin of class 1 over class 0: a monotone function of its softmax probability.
    const at::Tensor margin = (flat.logits.select(1, 1) - flat.logits.select(1, 0)).contiguous();
    const at::Tensor truth = flat.targets.contiguous();
    const float* m = margin.data_ptr<float>();
    const std::int64_t* t = truth.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < truth.numel(); ++i) {
      scores_.push_back(m[i]);
      positive_.push_back(t[i] == 1);
    }
  }
  // The Mann-Whitney statistic: mean rank of the positives, ties sharing their average rank.
  Metrics compute() const override {
    std::vector<std::size_t> order(scores_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return scores_[a] < scores_[b]; });
    double positive_rank_sum = 0.0;
    std::int64_t positives = 0;
    for (std::size_t i = 0; i < order.size();) {
      std::size_t j = i;
      while (j < order.size() && scores_[order[j]] == scores_[order[i]]) ++j;
      const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
      for (std::size_t k = i; k < j; ++k) {
        if (positive_[order[k]]) {
          positive_rank_sum += rank;
          ++positives;
        }
      }
      i = j;
    }
    const auto negatives = static_cast<std::int64_t>(scores_.size()) - positives;
    if (positives == 0 || negatives == 0) return {{"roc_auc", kNaN}};
    const auto p = static_cast<double>(positives), n = static_cast<double>(negatives);
    return {{"roc_auc", (positive_rank_sum - p * (p + 1) / 2) / (p * n)}};
  }

 private:
  std::vector<float> scores_;
  std::vector<bool> positive_;
};

// ---------------------------------------------------------------------------------------------
// Registration

void register_score(Registry& registry, Score score, const char* name, const char* doc) {
  Schema<ScoreOptions> schema;
  schema.add("per_class", &ScoreOptions::per_class,
             "also report <name>_<class> for every class, beside <name>_macro");
  registry.add<Metric>(
      name, doc, schema, [score, name](const ScoreOptions& options, const MetricContext& context) {
        need_classes(name, context, 2);
        return std::make_shared<ClassScore>(score, name, options.per_class, context);
      });
}

void register_metrics(Registry& registry) {
  Schema<AccuracyOptions> accuracy;
  accuracy
      .add("top_k", &AccuracyOptions::top_k,
           "a prediction counts when the target is among the k highest logits")
      .min(1);
  registry.add<Metric>("accuracy",
                       "share of targets predicted (top-k); classification or next-token", accuracy,
                       [](const AccuracyOptions& options, const MetricContext&) {
                         return std::make_shared<Accuracy>(options.top_k);
                       });
  register_score(registry, Score::kPrecision, "precision",
                 "per-class and macro precision (classification)");
  register_score(registry, Score::kRecall, "recall", "per-class and macro recall (classification)");
  register_score(registry, Score::kF1, "f1", "per-class and macro F1 (classification)");
  registry.add<Metric>("exact_match",
                       "share of sequences whose every unmasked target is the argmax (greedy "
                       "decoding's exact match); classification: accuracy",
                       Schema<NoOptions>(), [](const NoOptions&, const MetricContext&) {
                         return std::make_shared<ExactMatch>();
                       });
  registry.add<Metric>("roc_auc", "area under the ROC curve (binary classification)",
                       Schema<NoOptions>(), [](const NoOptions&, const MetricContext& context) {
                         need_classes("roc_auc", context, 2);
                         if (context.num_classes != 2) {
                           throw Error("roc_auc is for binary tasks; this dataset has " +
                                           std::to_string(context.num_classes) + " classes",
                                       "use f1 or accuracy");
                         }
                         return std::make_shared<RocAuc>();
                       });
  registry.add<Metric>("confusion_matrix", "confusion_<true>_<predicted> counts (classification)",
                       Schema<NoOptions>(), [](const NoOptions&, const MetricContext& context) {
                         need_classes("confusion_matrix", context, 2);
                         return std::make_shared<ConfusionMatrix>(context);
                       });
}

}  // namespace
}  // namespace lmrun::metrics

LMRUN_PLUGIN("metrics", "0.1.0", lmrun::metrics::register_metrics)
