// Metric plugins: accumulate predictions over an evaluation pass, then report named values.
// An experiment lists them as [[metrics]] sections; the trainer runs each over every split it
// evaluates and logs "<split>_<name>" (val_accuracy, val_f1_macro), which early stopping and
// checkpointing can monitor.
//
//   metric->reset();
//   for (batch : split) metric->update(scores, targets);   // padding: kIgnoreTarget
//
// `scores` are the objective's (lmrun/objective.h): a model's logits under cross-entropy, cosine
// similarities over the vocabulary under cosine_embedding; argmax is the prediction either way.
//   lmrun::Metrics values = metric->compute();   // {"accuracy": 0.87}; the trainer adds "val_"
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "lmrun/common.h"
#include "lmrun/registry.h"

namespace lmrun {

struct MetricContext {
  std::int64_t num_classes = 0;          // 0 for a language model
  std::vector<std::string> class_names;  // may be empty
};

class LMRUN_API Metric {
 public:
  virtual ~Metric() = default;
  // The names compute() reports, known before any data (the log's columns, monitors' checks).
  virtual std::vector<std::string> names() const = 0;
  virtual void reset() = 0;
  // scores (B, C) with targets (B), or (B, T, V) with targets (B, T).
  virtual void update(const at::Tensor& logits, const at::Tensor& targets) = 0;
  // Every name of names(); a value with nothing to measure (no examples) is NaN.
  virtual Metrics compute() const = 0;
};

template <>
struct KindTraits<Metric> {
  static constexpr Kind kKind = Kind::kMetric;
  using Context = MetricContext;
};

}  // namespace lmrun
