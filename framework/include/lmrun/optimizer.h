// Optimizer plugins: update a model's parameters from their gradients.
//
//   auto optimizer = registry.create<lmrun::Optimizer>("adamw", params, {named_parameters});
//   optimizer->set_lr(scheduler->lr(step));
//   optimizer->zero_grad(); loss.backward(); optimizer->step();
//
// Parameters come with their module names ("blocks.0.attn.qkv.weight"), so an optimizer can treat
// groups differently (no weight decay on biases and norms, as nanoGPT does).
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/serialize/archive.h>

#include "lmrun/parameter.h"
#include "lmrun/registry.h"

namespace lmrun {

struct OptimizerContext {
  std::vector<NamedParameter> parameters;
};

class LMRUN_API Optimizer {
 public:
  virtual ~Optimizer() = default;

  virtual void zero_grad() = 0;
  virtual void step() = 0;

  // The learning rate the experiment configured; schedulers scale from it.
  virtual double base_lr() const = 0;
  // The learning rate of the next step(), for every parameter group.
  virtual void set_lr(double lr) = 0;
  // Optional: each parameter group's learning rate for the next step, when they differ (an
  // optimizer that scales some groups). Empty, the default: every group has set_lr's value.
  virtual std::vector<double> learning_rates() const { return {}; }

  // Optimizer state (moments, step counts) for checkpoints.
  virtual void save(torch::serialize::OutputArchive& archive) = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;
};

template <>
struct KindTraits<Optimizer> {
  static constexpr Kind kKind = Kind::kOptimizer;
  using Context = OptimizerContext;
};

}  // namespace lmrun
