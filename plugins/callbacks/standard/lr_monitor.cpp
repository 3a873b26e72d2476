// Callback `lr_monitor`: logs the learning rate of each optimizer parameter group, as Lightning's
// LearningRateMonitor does
// (https://lightning.ai/docs/pytorch/stable/api/lightning.pytorch.callbacks.LearningRateMonitor.html).
// Momentum is not logged: the SDK shows callbacks the optimizer's learning rates only.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "callbacks.h"
#include "lmrun/callback.h"
#include "lmrun/schema.h"

namespace lmrun::callbacks {
namespace {

constexpr const char* kName = "lr_monitor";
constexpr const char* kPrefix = "lr_group";  // lr_group0, lr_group1, ...

struct LrMonitorOptions {
  std::int64_t every_steps = 10;  // log at every N-th optimizer step and at the last
};

Schema<LrMonitorOptions> lr_monitor_schema() {
  Schema<LrMonitorOptions> schema;
  schema
      .add("every_steps", &LrMonitorOptions::every_steps,
           "log at every this many optimizer steps, and at the last (train.log_interval's rule)")
      .min(1);
  return schema;
}

class LrMonitor final : public Callback {
 public:
  explicit LrMonitor(const LrMonitorOptions& options) : every_steps_(options.every_steps) {}

  // Every optimizer has at least one group (the trainer reports the step's lr as group 0 when the
  // optimizer reports none); how many more is known only once the model exists.
  std::vector<std::string> metric_names() const override { return {std::string(kPrefix) + "0"}; }

  void on_step_end(const TrainState& state, TrainerControl& control) override {
    if (!is_logging_step(state.step, every_steps_, state.max_steps)) return;
    for (std::size_t group = 0; group < state.learning_rates.size(); ++group)
      control.log_metric(kPrefix + std::to_string(group), state.learning_rates[group]);
  }

 private:
  std::int64_t every_steps_;
};

std::shared_ptr<Callback> make_lr_monitor(const LrMonitorOptions& options,
                                          const CallbackContext& /*context*/) {
  return std::make_shared<LrMonitor>(options);
}

}  // namespace

void register_lr_monitor(Registry& registry) {
  registry.add<Callback>(kName, "log the learning rate of each optimizer parameter group",
                         lr_monitor_schema(), make_lr_monitor);
}

}  // namespace lmrun::callbacks
