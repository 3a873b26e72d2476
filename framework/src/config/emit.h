// The resolved experiment as TOML: every section, every parameter with its default filled in,
// paths absolute. `lmrun check` prints it and every run writes it to <run>/config.toml; it loads
// back into the same experiment.
#pragma once

#include <string>

#include "config/experiment.h"
#include "registry/plugin_registry.h"

namespace lmrun::host {

inline constexpr int kResolvedConfigFormat = 1;

std::string resolved_toml(const Experiment& experiment, const PluginRegistry& registry);

}  // namespace lmrun::host
