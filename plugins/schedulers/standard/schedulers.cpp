// The standard learning-rate schedules. constant, linear, cosine: linear warmup, then a decay to a
// floor, as nanoGPT's get_lr; step: warmup, then a factor every step_size steps (PyTorch's
// StepLR). Each of those lr(step) is a pure function of the step, so resuming is exact. plateau
// (PyTorch's ReduceLROnPlateau) lowers the lr when a monitored metric stops improving; its state
// travels in checkpoints.
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "lmrun/util/suggest.h"

#include "lmrun/plugin.h"
#include "lmrun/scheduler.h"
#include "lmrun/schema.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Options

struct ConstantOptions {
  std::int64_t warmup_steps = 0;  // steps of linear warmup before the base lr
};

// linear and cosine share their parameters; only the shape of the decay differs.
struct DecayOptions {
  std::int64_t warmup_steps = 0;  // steps of linear warmup before the decay starts
  double min_lr = 0.0;            // the floor the decay ends at, absolute (not a ratio)
  std::int64_t decay_steps = 0;   // the step where the decay reaches min_lr; 0: the run's max_steps
};

lmrun::Schema<ConstantOptions> constant_schema() {
  lmrun::Schema<ConstantOptions> schema;
  schema
      .add("warmup_steps", &ConstantOptions::warmup_steps,
           "steps of linear warmup from 0: lr * (step + 1) / (warmup_steps + 1)")
      .min(0);
  return schema;
}

lmrun::Schema<DecayOptions> decay_schema() {
  lmrun::Schema<DecayOptions> schema;
  schema
      .add("warmup_steps", &DecayOptions::warmup_steps,
           "steps of linear warmup from 0: lr * (step + 1) / (warmup_steps + 1)")
      .min(0);
  schema
      .add("min_lr", &DecayOptions::min_lr,
           "learning rate at the end of the decay and after it (absolute, <= the optimizer's lr)")
      .min(0);
  schema
      .add("decay_steps", &DecayOptions::decay_steps,
           "step at which the decay reaches min_lr; 0 means train.max_steps")
      .min(0);
  return schema;
}

// ---------------------------------------------------------------------------------------------
// The schedule

enum class Decay { kNone, kLinear, kCosine };

constexpr double kPi = 3.14159265358979323846;

// lr(step), after nanoGPT's get_lr (https://github.com/karpathy/nanoGPT/blob/master/train.py):
//   step <  W:        base * (step + 1) / (W + 1)                    warmup, never exactly 0
//   W <= step < D:    min + coeff(r) * (base - min),  r = (step - W) / (D - W) in [0, 1)
//                     cosine: coeff = (1 + cos(pi r)) / 2;  linear: coeff = 1 - r
//   step >= D:        min
// constant has no decay: base from W on. D == W is allowed and means no decay phase.
class WarmupDecaySchedule final : public lmrun::Scheduler {
 public:
  WarmupDecaySchedule(Decay decay, double base_lr, double min_lr, std::int64_t warmup_steps,
                      std::int64_t decay_end)
      : decay_(decay),
        base_lr_(base_lr),
        min_lr_(min_lr),
        warmup_steps_(warmup_steps),
        decay_end_(decay_end) {}

  double lr(std::int64_t step) override {
    if (step < 0) throw lmrun::Error("lr() was asked for step " + std::to_string(step) + " (< 0)");
    if (step < warmup_steps_) {
      return base_lr_ * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_ + 1);
    }
    if (decay_ == Decay::kNone) return base_lr_;
    if (step >= decay_end_) return min_lr_;
    const double ratio =
        static_cast<double>(step - warmup_steps_) / static_cast<double>(decay_end_ - warmup_steps_);
    const double coeff =
        decay_ == Decay::kCosine ? 0.5 * (1.0 + std::cos(kPi * ratio)) : 1.0 - ratio;
    return min_lr_ + coeff * (base_lr_ - min_lr_);
  }

 private:
  Decay decay_;
  double base_lr_;
  double min_lr_;
  std::int64_t warmup_steps_;
  std::int64_t decay_end_;  // D above; unused by constant
};

// ---------------------------------------------------------------------------------------------
// Factories: the schemas enforce each parameter's range; what needs the context (base lr, run
// length) is checked here, at creation, which `lmrun check` runs too.

// TOML spelling, as the experiment file would write it: 0.001, 1e-05, 0.0.
std::string number(double v) { return lmrun::format_value(v); }

void check_base_lr(const lmrun::SchedulerContext& context) {
  if (!(context.base_lr > 0.0) || !std::isfinite(context.base_lr)) {
    throw lmrun::Error("the optimizer's learning rate is " + number(context.base_lr) +
                       ", a schedule needs a finite lr > 0");
  }
}

std::shared_ptr<lmrun::Scheduler> make_constant(const ConstantOptions& options,
                                                const lmrun::SchedulerContext& context) {
  check_base_lr(context);
  return std::make_shared<WarmupDecaySchedule>(Decay::kNone, context.base_lr, context.base_lr,
                                               options.warmup_steps, options.warmup_steps);
}

std::shared_ptr<lmrun::Scheduler> make_decay(Decay decay, const DecayOptions& options,
                                             const lmrun::SchedulerContext& context) {
  check_base_lr(context);
  if (options.min_lr > context.base_lr) {
    throw lmrun::Error("min_lr = " + number(options.min_lr) +
                           " is above the optimizer's lr = " + number(context.base_lr),
                       "min_lr is absolute: set it below optimizer.lr (lr / 10 is usual)");
  }
  const std::int64_t decay_end = options.decay_steps > 0 ? options.decay_steps : context.max_steps;
  const std::string decay_source = options.decay_steps > 0
                                       ? "decay_steps = " + std::to_string(options.decay_steps)
                                       : "max_steps = " + std::to_string(context.max_steps);
  if (decay_end <= 0) {
    throw lmrun::Error("the decay has no length: decay_steps = 0 and max_steps = " +
                           std::to_string(context.max_steps),
                       "set decay_steps, or train.max_steps");
  }
  if (options.warmup_steps > decay_end) {
    throw lmrun::Error("warmup_steps = " + std::to_string(options.warmup_steps) +
                           " is longer than the decay, which ends at " + decay_source,
                       "shorten warmup_steps or lengthen the decay");
  }
  return std::make_shared<WarmupDecaySchedule>(decay, context.base_lr, options.min_lr,
                                               options.warmup_steps, decay_end);
}

// ---------------------------------------------------------------------------------------------
// step

struct StepOptions {
  std::int64_t warmup_steps = 0;
  std::int64_t step_size = 1000;  // steps between reductions
  double gamma = 0.1;             // the factor of each reduction
};

// lr(step) = base * gamma^floor((step - W) / step_size) after W warmup steps.
class StepSchedule final : public lmrun::Scheduler {
 public:
  StepSchedule(double base_lr, const StepOptions& options) : base_lr_(base_lr), o_(options) {}
  double lr(std::int64_t step) override {
    if (step < 0) throw lmrun::Error("lr() was asked for step " + std::to_string(step) + " (< 0)");
    if (step < o_.warmup_steps) {
      return base_lr_ * static_cast<double>(step + 1) / static_cast<double>(o_.warmup_steps + 1);
    }
    const auto reductions = static_cast<double>((step - o_.warmup_steps) / o_.step_size);
    return base_lr_ * std::pow(o_.gamma, reductions);
  }

 private:
  double base_lr_;
  StepOptions o_;
};

// ---------------------------------------------------------------------------------------------
// plateau

struct PlateauOptions {
  std::string monitor = "val_loss";
  std::string mode = "min";
  double factor = 0.1;        // new lr = lr * factor
  std::int64_t patience = 2;  // evaluations without improvement before a reduction
  double threshold = 1e-4;    // relative: better means below best * (1 - threshold) (min)
  std::int64_t cooldown = 0;  // evaluations after a reduction before counting again
  double min_lr = 0.0;
};

// PyTorch's ReduceLROnPlateau with threshold_mode "rel", counted in evaluations.
class PlateauSchedule final : public lmrun::Scheduler {
 public:
  PlateauSchedule(double base_lr, const PlateauOptions& options)
      : o_(options), lr_(base_lr), best_(worst()) {}

  double lr(std::int64_t) override { return lr_; }

  void on_evaluation(std::int64_t, const lmrun::Metrics& metrics) override {
    const auto it = metrics.find(o_.monitor);
    if (it == metrics.end()) {
      std::vector<std::string> names;
      for (const auto& [name, value] : metrics) names.push_back(name);
      std::string list;
      for (const auto& name : names) list += (list.empty() ? "" : ", ") + name;
      throw lmrun::Error("plateau: monitor '" + o_.monitor +
                         "' is not a metric of this run's "
                         "evaluations" +
                         lmrun::did_you_mean(o_.monitor, names) + "; they report: " + list);
    }
    const double value = it->second;
    if (better(value)) {
      best_ = value;
      bad_ = 0;
    } else {
      ++bad_;
    }
    if (cooldown_left_ > 0) {
      --cooldown_left_;
      bad_ = 0;
    }
    if (bad_ > o_.patience) {
      lr_ = std::max(lr_ * o_.factor, o_.min_lr);
      cooldown_left_ = o_.cooldown;
      bad_ = 0;
    }
  }

  std::string save_state() const override {
    char text[160];
    std::snprintf(text, sizeof text, "plateau 1 %.17g %.17g %" PRId64 " %" PRId64, lr_, best_, bad_,
                  cooldown_left_);
    return text;
  }
  void load_state(const std::string& state) override {
    std::istringstream in(state);
    std::string tag;
    int format = 0;
    in >> tag >> format >> lr_ >> best_ >> bad_ >> cooldown_left_;
    if (!in || tag != "plateau" || format != 1) {
      throw lmrun::Error("plateau: the checkpoint's scheduler state '" + state +
                         "' is not one this version reads");
    }
  }

 private:
  double worst() const {
    return o_.mode == "max" ? -std::numeric_limits<double>::infinity()
                            : std::numeric_limits<double>::infinity();
  }
  bool better(double value) const {  // NaN is never better
    return o_.mode == "max" ? value > best_ * (1.0 + o_.threshold) && value > best_
                            : value < best_ * (1.0 - o_.threshold) && value < best_;
  }

  PlateauOptions o_;
  double lr_;
  double best_;
  std::int64_t bad_ = 0;
  std::int64_t cooldown_left_ = 0;
};

void register_step_and_plateau(lmrun::Registry& registry) {
  lmrun::Schema<StepOptions> step;
  step.add("warmup_steps", &StepOptions::warmup_steps,
           "steps of linear warmup from 0: lr * (step + 1) / (warmup_steps + 1)")
      .min(0);
  step.add("step_size", &StepOptions::step_size, "steps between two reductions (after warmup)")
      .min(1);
  step.add("gamma", &StepOptions::gamma, "the factor each reduction multiplies the lr by").min(0);
  registry.add<lmrun::Scheduler>(
      "step", "warmup, then the lr times gamma every step_size steps (PyTorch's StepLR)", step,
      [](const StepOptions& options, const lmrun::SchedulerContext& context) {
        check_base_lr(context);
        if (!(options.gamma > 0.0 && options.gamma <= 1.0)) {
          throw lmrun::Error("gamma = " + number(options.gamma) + " is not in (0, 1]",
                             "gamma is the factor of each reduction, e.g. 0.1");
        }
        return std::make_shared<StepSchedule>(context.base_lr, options);
      });

  lmrun::Schema<PlateauOptions> plateau;
  plateau.add("monitor", &PlateauOptions::monitor,
              "evaluation metric to watch, e.g. val_loss or val_f1_macro");
  plateau.add("mode", &PlateauOptions::mode, "min: lower is better; max: higher is better")
      .choices({"min", "max"});
  plateau.add("factor", &PlateauOptions::factor, "new lr = lr * factor, in (0, 1)").min(0);
  plateau
      .add("patience", &PlateauOptions::patience,
           "evaluations without improvement tolerated; one more reduces the lr")
      .min(0);
  plateau
      .add("threshold", &PlateauOptions::threshold,
           "relative improvement that counts: below best * (1 - threshold) for min")
      .min(0);
  plateau
      .add("cooldown", &PlateauOptions::cooldown,
           "evaluations after a reduction before counting resumes")
      .min(0);
  plateau.add("min_lr", &PlateauOptions::min_lr, "the lr never goes below this").min(0);
  registry.add<lmrun::Scheduler>(
      "plateau",
      "lower the lr by factor when a monitored metric stops improving (ReduceLROnPlateau)", plateau,
      [](const PlateauOptions& options, const lmrun::SchedulerContext& context) {
        check_base_lr(context);
        if (!(options.factor > 0.0 && options.factor < 1.0)) {
          throw lmrun::Error("factor = " + number(options.factor) + " is not in (0, 1)",
                             "factor multiplies the lr at each reduction, e.g. 0.1 or 0.5");
        }
        return std::make_shared<PlateauSchedule>(context.base_lr, options);
      });
}

void register_schedulers(lmrun::Registry& registry) {
  register_step_and_plateau(registry);
  registry.add<lmrun::Scheduler>("constant", "the optimizer's lr after an optional linear warmup",
                                 constant_schema(), make_constant);
  registry.add<lmrun::Scheduler>(
      "linear", "linear warmup, then linear decay to min_lr at decay_steps", decay_schema(),
      [](const DecayOptions& options, const lmrun::SchedulerContext& context) {
        return make_decay(Decay::kLinear, options, context);
      });
  registry.add<lmrun::Scheduler>(
      "cosine", "linear warmup, then cosine decay to min_lr at decay_steps (nanoGPT)",
      decay_schema(), [](const DecayOptions& options, const lmrun::SchedulerContext& context) {
        return make_decay(Decay::kCosine, options, context);
      });
}

}  // namespace

LMRUN_PLUGIN("schedulers", "0.1.0", register_schedulers)
