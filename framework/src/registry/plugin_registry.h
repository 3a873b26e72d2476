// The host's registry: every factory, with the plugin and file it came from.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmrun/registry.h"

namespace lmrun::host {

// Where a registration came from. `file` is empty for factories added in-process (tests).
struct PluginOrigin {
  std::string plugin_name;
  std::string plugin_version;
  std::filesystem::path file;

  std::string describe() const;  // "transformer 0.1.0 (/path/lmrun-transformer.so)"
};

struct RegistryEntry {
  Registration registration;
  PluginOrigin origin;
};

// A KIND.NAME that more than one file registers. The first file's registration holds the name;
// `others` are the later ones, in load order. An experiment that uses the name is refused, naming
// every file, unless it overrides it explicitly ([plugins] override), which gives it to the last.
struct Conflict {
  Kind kind = Kind::kModel;
  std::string name;
  std::vector<RegistryEntry> others;
};

// An override that was applied: `by` now holds KIND.NAME, which `replaced` held.
struct AppliedOverride {
  std::string key;  // "model.transformer"
  PluginOrigin by;
  PluginOrigin replaced;
};

class PluginRegistry final : public Registry {
 public:
  // Registrations made from now on are attributed to `origin`.
  void set_origin(PluginOrigin origin) { origin_ = std::move(origin); }

  using Registry::add;  // the typed add<Interface>(...) too
  void add(Registration registration) override;
  const Registration* find(Kind kind, std::string_view name) const override;

  const RegistryEntry* find_entry(Kind kind, std::string_view name) const;
  // Sorted by name.
  std::vector<const RegistryEntry*> entries(Kind kind) const;
  std::vector<std::string> names(Kind kind) const;
  bool empty() const { return entries_.empty(); }

  // Moves every entry of `staging` in. A KIND.NAME already here stays with its first holder and
  // becomes a Conflict.
  void merge(PluginRegistry&& staging);

  const std::vector<Conflict>& conflicts() const { return conflicts_; }
  const Conflict* conflict(Kind kind, std::string_view name) const;
  // "model 'transformer' is registered twice: by transformer 0.1.0 (/a.so) and by mine 0.2 (/b.so)"
  std::string conflict_message(const Conflict& conflict) const;

  // Gives KIND.NAME to the last file that registered it and drops the conflict. Throws
  // lmrun::Error when KIND.NAME is not registered by more than one file.
  AppliedOverride override_with_latest(Kind kind, const std::string& name);

 private:
  std::map<std::pair<Kind, std::string>, RegistryEntry, std::less<>> entries_;
  std::vector<Conflict> conflicts_;
  PluginOrigin origin_;
};

}  // namespace lmrun::host
