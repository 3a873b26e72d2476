// Scheduler plugins: the learning rate at each step.
//
//   auto scheduler = registry.create<lmrun::Scheduler>("cosine", params, {1e-3, 2000});
//   optimizer->set_lr(scheduler->lr(step));
//
// lr(step) is a function of the step for schedules fixed in advance, which makes resuming exact.
// A metric-driven schedule (reduce on plateau) also sees each evaluation and keeps state that
// checkpoints save as text. No LibTorch here.
#pragma once

#include <cstdint>
#include <string>

#include "lmrun/common.h"
#include "lmrun/registry.h"

namespace lmrun {

struct SchedulerContext {
  double base_lr = 0.0;        // the optimizer's configured learning rate
  std::int64_t max_steps = 0;  // the run's length in optimizer steps
};

class LMRUN_API Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Learning rate for optimizer step `step` (0-based).
  virtual double lr(std::int64_t step) = 0;

  // Optional: called after each evaluation with its metrics.
  virtual void on_evaluation(std::int64_t /*step*/, const Metrics& /*metrics*/) {}

  // Optional: state beyond the step, as text the scheduler itself reads back.
  virtual std::string save_state() const { return {}; }
  virtual void load_state(const std::string& /*state*/) {}
};

template <>
struct KindTraits<Scheduler> {
  static constexpr Kind kKind = Kind::kScheduler;
  using Context = SchedulerContext;
};

}  // namespace lmrun
