// lmrun's subcommands: run, check, plugins, describe. Thin layers over registry and config.
#include "cli/commands.h"

#include <cstdio>
#include <iostream>
#include <map>

#include "config/emit.h"
#include "config/experiment.h"
#include "lmrun/suggest.h"
#include "config/toml_document.h"
#include "lmrun/version.h"
#include "registry/plugin_loader.h"
#include "util/fs.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

// ---------------------------------------------------------------------------------------------
// The plugin path: the build's or install's folder, LMRUN_PLUGIN_PATH, [plugins] paths,
// --plugin-dir, in that order.

struct LoadedRegistry {
  PluginRegistry registry;
  std::vector<LoadedPlugin> loaded;
  std::vector<LoadFailure> failures;

  std::vector<std::string> failure_messages() const {
    std::vector<std::string> out;
    for (const auto& failure : failures) out.push_back(failure.message);
    return out;
  }
};

void warn(const std::string& message) { std::cerr << "lmrun: warning: " << message << "\n"; }

std::unique_ptr<LoadedRegistry> load_registry(const CommonArgs& common,
                                              const std::vector<fs::path>& experiment_dirs) {
  auto result = std::make_unique<LoadedRegistry>();
  PluginLoader loader(result->registry);
  const fs::path builtin = builtin_plugin_dir();
  std::error_code ec;
  if (!builtin.empty() && fs::is_directory(builtin, ec)) {
    loader.load_directory(builtin);
  } else {
    warn("no built-in plugin folder at " + builtin.string() + "; only LMRUN_PLUGIN_PATH and --plugin-dir are searched");
  }
  for (const auto& dir : env_plugin_dirs()) {
    if (fs::is_directory(dir, ec)) {
      loader.load_directory(dir);
    } else {
      warn("LMRUN_PLUGIN_PATH names " + dir.string() + ", which is not a folder");
    }
  }
  for (const auto& dir : experiment_dirs) {
    try {
      loader.load_directory(dir);
    } catch (const Error& e) {
      throw e.with_context("[plugins] paths");
    }
  }
  for (const auto& dir : common.plugin_dirs) {
    try {
      loader.load_directory(dir);
    } catch (const Error& e) {
      throw e.with_context("--plugin-dir");
    }
  }
  result->loaded = loader.loaded();
  result->failures = loader.failures();
  if (common.verbose) {
    for (const auto& plugin : result->loaded) {
      std::cerr << "lmrun: loaded plugin " << plugin.name << " " << plugin.version << " from " << plugin.file.string()
                << "\n";
    }
  }
  return result;
}

struct Resolved {
  std::unique_ptr<LoadedRegistry> plugins;
  Experiment experiment;
};

Resolved resolve(const CommonArgs& common, const ExperimentArgs& args) {
  TomlDocument doc = load_document(args.file, args.overrides);
  Resolved resolved;
  resolved.plugins = load_registry(common, plugin_dirs_of(doc));
  resolved.experiment = resolve_experiment(doc, resolved.plugins->registry, resolved.plugins->failure_messages());
  return resolved;
}

std::string one_line(const PluginSpec& spec, const PluginRegistry& registry) {
  std::string out = spec.type;
  const Registration* registration = registry.find(spec.kind, spec.type);
  if (registration == nullptr) return out;
  std::string params;
  for (const auto& p : registration->params) {
    if (spec.params.contains(p.name)) params += (params.empty() ? "" : ", ") + p.name + "=" + format_value(spec.params.at(p.name));
  }
  return params.empty() ? out : out + " (" + params + ")";
}

}  // namespace

// -----------------------------------------------------------------------------------------------

int command_check(const CommonArgs& common, const ExperimentArgs& args) {
  Resolved resolved = resolve(common, args);
  std::cout << resolved_toml(resolved.experiment, resolved.plugins->registry);
  std::cerr << "lmrun: " << args.file.string() << " is valid\n";
  return kExitOk;
}

int command_run(const CommonArgs& common, const ExperimentArgs& args) {
  Resolved resolved = resolve(common, args);
  const Experiment& e = resolved.experiment;
  const PluginRegistry& registry = resolved.plugins->registry;
  const fs::path& run_dir = e.experiment.out_dir;

  std::error_code ec;
  if (fs::exists(run_dir, ec) && !args.force) {
    throw Error("run folder " + run_dir.string() + " already exists",
                "pass --force to reuse it, or choose another with --set experiment.out_dir=...");
  }
  fs::create_directories(run_dir, ec);
  if (ec) throw Error("cannot create run folder " + run_dir.string() + ": " + ec.message());
  write_file_atomic(run_dir / "config.toml", resolved_toml(e, registry));

  std::cout << "lmrun " << kVersion << ": experiment " << e.experiment.name << " (" << e.file.string() << ")\n";
  std::cout << "  data       " << one_line(e.data, registry) << "\n";
  std::cout << "  tokenizer  " << one_line(e.tokenizer, registry) << "\n";
  std::cout << "  model      " << one_line(e.model, registry) << "\n";
  std::cout << "  optimizer  " << one_line(e.optimizer, registry) << "\n";
  if (e.scheduler) std::cout << "  scheduler  " << one_line(*e.scheduler, registry) << "\n";
  for (const auto& callback : e.callbacks) std::cout << "  callback   " << one_line(callback, registry) << "\n";
  for (const auto& sampler : e.samplers) std::cout << "  sampler    " << one_line(sampler, registry) << "\n";
  std::cout << "  train      " << e.train.max_steps << " steps of batch " << e.train.batch_size << ", seed "
            << e.experiment.seed << "\n";
  std::cout << "wrote " << (run_dir / "config.toml").string() << "\n";
  std::cerr << "lmrun: this build validates experiments but has no trainer yet; nothing was trained\n";
  return kExitOk;
}

int command_plugins(const CommonArgs& common) {
  auto plugins = load_registry(common, {});
  for (Kind kind : kAllKinds) {
    std::cout << kind_name(kind) << "\n";
    const auto entries = plugins->registry.entries(kind);
    if (entries.empty()) std::cout << "  (none)\n";
    for (const RegistryEntry* entry : entries) {
      char line[512];
      std::snprintf(line, sizeof line, "  %-16s %-24s %s", entry->registration.name.c_str(),
                    (entry->origin.plugin_name + " " + entry->origin.plugin_version).c_str(),
                    entry->origin.file.string().c_str());
      std::cout << line << "\n";
    }
  }
  for (const auto& failure : plugins->failures) warn(failure.message);
  return kExitOk;
}

namespace {

void print_params(const std::vector<ParamSpec>& specs) {
  if (specs.empty()) {
    std::cout << "  (no parameters)\n";
    return;
  }
  std::size_t width = 4;
  for (const auto& spec : specs) width = std::max(width, spec.name.size());
  for (const auto& spec : specs) {
    std::string line = "  " + spec.name + std::string(width - spec.name.size() + 2, ' ');
    std::string type = type_name(spec.type);
    line += type + std::string(type.size() < 12 ? 12 - type.size() : 1, ' ');
    line += spec.default_value ? "= " + format_value(*spec.default_value) : "(required)";
    std::cout << line << "\n      " << spec.doc;
    const std::string constraint = spec.constraint();
    if (!constraint.empty()) std::cout << " [" << constraint << "]";
    std::cout << "\n";
  }
}

}  // namespace

int command_describe(const CommonArgs& common, const std::string& name) {
  // Host sections first: `lmrun describe train`.
  const std::map<std::string, const std::vector<ParamSpec>*> host = {
      {"experiment", &experiment_schema().specs()},
      {"train", &train_schema().specs()},
      {"generate", &generate_schema().specs()},
      {"plugins", &plugins_schema().specs()}};
  if (auto it = host.find(name); it != host.end()) {
    std::cout << "[" << name << "] (lmrun " << kVersion << ")\n";
    print_params(*it->second);
    return kExitOk;
  }

  auto plugins = load_registry(common, {});
  std::string kind_word, plain = name;
  if (const auto dot = name.find('.'); dot != std::string::npos) {
    kind_word = name.substr(0, dot);
    plain = name.substr(dot + 1);
    if (!parse_kind(kind_word)) {
      std::vector<std::string> kinds;
      for (Kind k : kAllKinds) kinds.push_back(kind_name(k));
      throw Error("unknown plugin kind '" + kind_word + "'" + did_you_mean(kind_word, kinds) + "; kinds: " + join(kinds));
    }
  }
  std::vector<const RegistryEntry*> matches;
  std::vector<std::string> all;
  for (Kind kind : kAllKinds) {
    for (const RegistryEntry* entry : plugins->registry.entries(kind)) {
      all.push_back(std::string(kind_name(kind)) + "." + entry->registration.name);
      if (entry->registration.name == plain && (kind_word.empty() || kind_word == kind_name(kind))) {
        matches.push_back(entry);
      }
    }
  }
  if (matches.empty()) {
    std::vector<std::string> plain_names;
    for (const auto& full : all) plain_names.push_back(full.substr(full.find('.') + 1));
    std::string hint = did_you_mean(plain, plain_names);
    throw Error("no plugin named '" + name + "'" + hint, "`lmrun plugins` lists every registered name");
  }
  if (matches.size() > 1) {
    std::vector<std::string> options;
    for (const auto* entry : matches) options.push_back(std::string(kind_name(entry->registration.kind)) + "." + plain);
    throw Error("'" + name + "' names several plugins: " + join(options), "name one of them as KIND.NAME");
  }
  const RegistryEntry& entry = *matches.front();
  std::cout << kind_name(entry.registration.kind) << "." << entry.registration.name << ": " << entry.registration.doc
            << "\n  from " << entry.origin.describe() << "\n\n";
  print_params(entry.registration.params);
  return kExitOk;
}

}  // namespace lmrun::host
