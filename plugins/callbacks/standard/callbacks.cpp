// The `callbacks` plugin's entry point: one register function adding early_stopping and checkpoint.
#include "callbacks.h"

#include "lmrun/plugin.h"

namespace {

void register_callbacks(lmrun::Registry& registry) {
  lmrun::callbacks::register_early_stopping(registry);
  lmrun::callbacks::register_checkpoint(registry);
}

}  // namespace

LMRUN_PLUGIN("callbacks", "0.1.0", register_callbacks)
