// The host registry: a map KIND.NAME -> factory, with each entry's origin for errors and listings.
#include "registry/plugin_registry.h"

namespace lmrun::host {

std::string PluginOrigin::describe() const {
  std::string out = plugin_name.empty() ? "built-in" : plugin_name + " " + plugin_version;
  if (!file.empty()) out += " (" + file.string() + ")";
  return out;
}

void PluginRegistry::add(Registration registration) {
  if (registration.name.empty())
    throw Error(std::string("a ") + kind_name(registration.kind) +
                " was registered without a name");
  if (!registration.factory) {
    throw Error(std::string(kind_name(registration.kind)) + " '" + registration.name +
                "' was registered without a factory");
  }
  auto key = std::make_pair(registration.kind, registration.name);
  if (auto it = entries_.find(key); it != entries_.end()) {
    throw Error(std::string(kind_name(registration.kind)) + " '" + registration.name +
                "' is registered twice: by " + it->second.origin.describe() + " and by " +
                origin_.describe());
  }
  entries_.emplace(std::move(key), RegistryEntry{std::move(registration), origin_});
}

const RegistryEntry* PluginRegistry::find_entry(Kind kind, std::string_view name) const {
  auto it = entries_.find(std::make_pair(kind, std::string(name)));
  return it == entries_.end() ? nullptr : &it->second;
}

const Registration* PluginRegistry::find(Kind kind, std::string_view name) const {
  const RegistryEntry* entry = find_entry(kind, name);
  return entry ? &entry->registration : nullptr;
}

std::vector<const RegistryEntry*> PluginRegistry::entries(Kind kind) const {
  std::vector<const RegistryEntry*> out;
  for (const auto& [key, entry] : entries_) {
    if (key.first == kind) out.push_back(&entry);
  }
  return out;  // the map orders by (kind, name)
}

std::vector<std::string> PluginRegistry::names(Kind kind) const {
  std::vector<std::string> out;
  for (const RegistryEntry* entry : entries(kind)) out.push_back(entry->registration.name);
  return out;
}

void PluginRegistry::merge(PluginRegistry&& staging) {
  for (const auto& [key, entry] : staging.entries_) {
    if (auto it = entries_.find(key); it != entries_.end()) {
      throw Error(std::string(kind_name(key.first)) + " '" + key.second +
                      "' is registered twice: by " + it->second.origin.describe() + " and by " +
                      entry.origin.describe(),
                  "remove one of the two files from the plugin path, or rename one plugin's " +
                      std::string(kind_name(key.first)));
    }
  }
  entries_.merge(staging.entries_);
}

}  // namespace lmrun::host
