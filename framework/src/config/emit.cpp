// Writing a resolved experiment back out as TOML, in a fixed section order and declaration order.
#include "config/emit.h"

#include "lmrun/version.h"

namespace lmrun::host {
namespace {

void emit_params(std::string& out, const Params& params, const std::vector<ParamSpec>& specs) {
  for (const auto& spec : specs) {
    if (params.contains(spec.name))
      out += spec.name + " = " + format_value(params.at(spec.name)) + "\n";
  }
}

void emit_plugin(std::string& out, const PluginSpec& spec, const PluginRegistry& registry,
                 bool array) {
  const std::string header = spec.key.substr(0, spec.key.rfind('.'));
  out += array ? "\n[[" + header + "]]\n" : "\n[" + spec.key + "]\n";
  out += "type = " + format_value(spec.type) + "\n";
  const Registration* registration = registry.find(spec.kind, spec.type);
  if (registration != nullptr) emit_params(out, spec.params, registration->params);
}

template <class Options>
void emit_host(std::string& out, const std::string& name, const Schema<Options>& schema,
               const Options& options) {
  out += "\n[" + name + "]\n";
  emit_params(out, schema.to_params(options), schema.specs());
}

}  // namespace

std::string resolved_toml(const Experiment& e, const PluginRegistry& registry) {
  std::string out =
      "# lmrun resolved experiment, format " + std::to_string(kResolvedConfigFormat) + "\n";
  out += "# written by lmrun " + std::string(kVersion) + " from " + e.file.string() + "\n";
  emit_host(out, "experiment", experiment_schema(), e.experiment);
  if (!e.plugin_dirs.empty() || !e.plugin_overrides.empty()) {
    PluginsOptions plugins;
    for (const auto& dir : e.plugin_dirs) plugins.paths.push_back(dir.string());
    plugins.overrides = e.plugin_overrides;
    emit_host(out, "plugins", plugins_schema(), plugins);
  }
  emit_plugin(out, e.data, registry, false);
  emit_plugin(out, e.tokenizer, registry, false);
  emit_plugin(out, e.model, registry, false);
  const ModelInitOptions& init = e.model_init;
  if (!init.init_from.empty()) out += "init_from = " + format_value(init.init_from) + "\n";
  if (!init.init_strict) out += "init_strict = false\n";
  if (!init.freeze.empty()) out += "freeze = " + format_value(init.freeze) + "\n";
  if (e.objective) emit_plugin(out, *e.objective, registry, false);
  emit_plugin(out, e.optimizer, registry, false);
  if (e.scheduler) emit_plugin(out, *e.scheduler, registry, false);
  emit_host(out, "train", train_schema(), e.train);
  for (const auto& callback : e.callbacks) emit_plugin(out, callback, registry, true);
  for (const auto& metric : e.metrics) emit_plugin(out, metric, registry, true);
  if (e.generate) {
    emit_host(out, "generate", generate_schema(), *e.generate);
    for (const auto& sampler : e.samplers) emit_plugin(out, sampler, registry, true);
  }
  return out;
}

}  // namespace lmrun::host
