// The register functions of the `callbacks` plugin, one per callback; callbacks.cpp calls both.
#pragma once

#include "lmrun/registry.h"

namespace lmrun::callbacks {

void register_early_stopping(Registry& registry);  // early_stopping.cpp
void register_checkpoint(Registry& registry);      // checkpoint.cpp

}  // namespace lmrun::callbacks
