// Metric plugins: accumulate predictions over an evaluation pass, then report named values.
//
//   metric->reset();
//   for (batch : split) metric->update(logits, batch.targets);
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
  virtual void reset() = 0;
  // logits (B, C) with targets (B), or (B, T, V) with targets (B, T).
  virtual void update(const at::Tensor& logits, const at::Tensor& targets) = 0;
  virtual Metrics compute() const = 0;
};

template <>
struct KindTraits<Metric> {
  static constexpr Kind kKind = Kind::kMetric;
  using Context = MetricContext;
};

}  // namespace lmrun
