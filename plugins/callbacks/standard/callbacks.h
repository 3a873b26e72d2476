// The register functions of the `callbacks` plugin, one per callback; callbacks.cpp calls them all.
// Also the one "is this a logging step" rule that grad_norm and lr_monitor share.
#pragma once

#include <cstdint>

#include "lmrun/registry.h"

namespace lmrun::callbacks {

// The plugin's name and version, as LMRUN_PLUGIN declares them and the files it writes record.
inline constexpr const char* kPluginName = "callbacks";
inline constexpr const char* kPluginVersion = "0.2.0";

void register_early_stopping(Registry& registry);  // early_stopping.cpp
void register_checkpoint(Registry& registry);      // checkpoint.cpp
void register_grad_norm(Registry& registry);       // grad_norm.cpp
void register_lr_monitor(Registry& registry);      // lr_monitor.cpp
void register_lr_finder(Registry& registry);       // lr_finder.cpp

// True for the steps a logging callback logs at: every `every_steps`-th optimizer step (1-based,
// as TrainState::step counts them after the step) and the run's last, as the trainer's own log
// lines do with train.log_interval.
inline bool is_logging_step(std::int64_t step, std::int64_t every_steps, std::int64_t max_steps) {
  return step > 0 && (step % every_steps == 0 || step == max_steps);
}

}  // namespace lmrun::callbacks
