// The `callbacks` plugin's entry point: one register function adding every standard callback.
#include "callbacks.h"

#include "lmrun/plugin.h"

namespace {

void register_callbacks(lmrun::Registry& registry) {
  lmrun::callbacks::register_early_stopping(registry);
  lmrun::callbacks::register_checkpoint(registry);
  lmrun::callbacks::register_grad_norm(registry);
  lmrun::callbacks::register_lr_monitor(registry);
  lmrun::callbacks::register_lr_finder(registry);
}

}  // namespace

LMRUN_PLUGIN(lmrun::callbacks::kPluginName, lmrun::callbacks::kPluginVersion, register_callbacks)
