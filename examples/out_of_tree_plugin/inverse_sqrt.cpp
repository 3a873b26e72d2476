// inverse_sqrt: the Transformer paper's learning-rate schedule, as a plugin built out of tree.
// Linear warmup to the optimizer's lr, then decay as 1/sqrt(step); lr(step) is a pure function of
// the step, so resuming is exact. Includes only the SDK (no LibTorch code in a scheduler).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "lmrun/plugin.h"
#include "lmrun/scheduler.h"
#include "lmrun/schema.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Options

struct InverseSqrtOptions {
  std::int64_t warmup_steps = 4000;  // the paper's value; the peak (the optimizer's lr) is here
  double min_lr = 0.0;               // floor of the decay, absolute; 0: no floor
};

lmrun::Schema<InverseSqrtOptions> inverse_sqrt_schema() {
  lmrun::Schema<InverseSqrtOptions> schema;
  schema
      .add(
          "warmup_steps", &InverseSqrtOptions::warmup_steps,
          "steps of linear warmup to the optimizer's lr, which is reached at step warmup_steps - 1")
      .min(1);
  schema
      .add("min_lr", &InverseSqrtOptions::min_lr,
           "floor of the 1/sqrt(step) decay (absolute, <= the optimizer's lr); 0: none")
      .min(0);
  return schema;
}

// ---------------------------------------------------------------------------------------------
// The schedule

// Vaswani et al. 2017, "Attention Is All You Need", section 5.3 (https://arxiv.org/abs/1706.03762):
//   lrate = d_model^-0.5 * min(s^-0.5, s * W^-1.5),  s = step + 1 (the paper counts from 1)
// with d_model^-0.5 replaced by base * sqrt(W), so that the peak, at s = W, is the optimizer's lr:
//   s <= W:  base * s / W           (linear warmup from base / W)
//   s >= W:  base * sqrt(W / s)     (then max(min_lr, ...))
class InverseSqrtSchedule final : public lmrun::Scheduler {
 public:
  InverseSqrtSchedule(double base_lr, std::int64_t warmup_steps, double min_lr)
      : base_lr_(base_lr), warmup_(static_cast<double>(warmup_steps)), min_lr_(min_lr) {}

  double lr(std::int64_t step) override {
    if (step < 0) throw lmrun::Error("lr() was asked for step " + std::to_string(step) + " (< 0)");
    const double s = static_cast<double>(step) + 1.0;
    const double factor = std::min(1.0 / std::sqrt(s), s * std::pow(warmup_, -1.5));
    const double lr = base_lr_ * std::sqrt(warmup_) * factor;
    return s < warmup_ ? lr : std::max(min_lr_, lr);
  }

 private:
  double base_lr_;
  double warmup_;  // W, >= 1
  double min_lr_;
};

// ---------------------------------------------------------------------------------------------
// Factory: the checks that need the context (the optimizer's lr) happen here, at creation.

std::string number(double v) { return lmrun::format_double(v); }

std::shared_ptr<lmrun::Scheduler> make_inverse_sqrt(const InverseSqrtOptions& options,
                                                    const lmrun::SchedulerContext& context) {
  if (!(context.base_lr > 0.0) || !std::isfinite(context.base_lr)) {
    throw lmrun::Error("the optimizer's learning rate is " + number(context.base_lr) +
                       ", a schedule needs a finite lr > 0");
  }
  if (options.warmup_steps < 1) {
    throw lmrun::Error("warmup_steps = " + std::to_string(options.warmup_steps) + " is below 1",
                       "set warmup_steps >= 1 (1: no warmup, decay from the first step)");
  }
  if (options.min_lr < 0.0 || options.min_lr > context.base_lr) {
    throw lmrun::Error("min_lr = " + number(options.min_lr) +
                           " is outside [0, the optimizer's lr = " + number(context.base_lr) + "]",
                       "min_lr is absolute: set it below optimizer.lr, or 0 for no floor");
  }
  return std::make_shared<InverseSqrtSchedule>(context.base_lr, options.warmup_steps,
                                               options.min_lr);
}

void register_inverse_sqrt(lmrun::Registry& registry) {
  registry.add<lmrun::Scheduler>(
      "inverse_sqrt",
      "linear warmup, then lr * sqrt(warmup_steps / (step + 1)) (Transformer paper)",
      inverse_sqrt_schema(), make_inverse_sqrt);
}

}  // namespace

LMRUN_PLUGIN("inverse_sqrt", "0.1.0", register_inverse_sqrt)
