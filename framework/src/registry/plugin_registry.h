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

  // Moves every entry of `staging` in, or none: a KIND.NAME present in both is an lmrun::Error
  // naming both origins.
  void merge(PluginRegistry&& staging);

 private:
  std::map<std::pair<Kind, std::string>, RegistryEntry, std::less<>> entries_;
  PluginOrigin origin_;
};

}  // namespace lmrun::host
