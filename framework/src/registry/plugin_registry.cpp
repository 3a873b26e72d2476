// The host registry: a map KIND.NAME -> factory, with each entry's origin for errors and listings.
#include "registry/plugin_registry.h"

namespace lmrun::host {

std::string PluginOrigin::describe() const {
  std::string out = plugin_name.empty() ? "built-in" : plugin_name + " " + plugin_version;
  if (!file.empty()) out += " (" + file.string() + ")";
  return out;
}

void PluginRegistry::add(Registration registration) {
  registration.require_complete();
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
  for (auto& [key, entry] : staging.entries_) {
    if (entries_.count(key) == 0) {
      entries_.emplace(key, std::move(entry));
      continue;
    }
    Conflict* existing = nullptr;
    for (Conflict& c : conflicts_) {
      if (c.kind == key.first && c.name == key.second) existing = &c;
    }
    if (existing == nullptr)
      existing = &conflicts_.emplace_back(Conflict{key.first, key.second, {}});
    existing->others.push_back(std::move(entry));
  }
  staging.entries_.clear();
}

const Conflict* PluginRegistry::conflict(Kind kind, std::string_view name) const {
  for (const Conflict& c : conflicts_) {
    if (c.kind == kind && c.name == name) return &c;
  }
  return nullptr;
}

std::string PluginRegistry::conflict_message(const Conflict& c) const {
  const RegistryEntry* first = find_entry(c.kind, c.name);
  std::string by = first ? first->origin.describe() : "?";
  for (std::size_t i = 0; i < c.others.size(); ++i)
    by += (i + 1 == c.others.size() ? " and by " : ", by ") + c.others[i].origin.describe();
  const char* times = c.others.size() == 1 ? "twice" : "more than once";
  return std::string(kind_name(c.kind)) + " '" + c.name + "' is registered " + times + ": by " + by;
}

AppliedOverride PluginRegistry::override_with_latest(Kind kind, const std::string& name) {
  const std::string key = std::string(kind_name(kind)) + "." + name;
  for (auto it = conflicts_.begin(); it != conflicts_.end(); ++it) {
    if (it->kind != kind || it->name != name) continue;
    RegistryEntry& holder = entries_.at(std::make_pair(kind, name));
    AppliedOverride applied{key, it->others.back().origin, holder.origin};
    holder = std::move(it->others.back());
    conflicts_.erase(it);
    return applied;
  }
  const RegistryEntry* entry = find_entry(kind, name);
  throw Error("[plugins] override names " + key + ", which " +
                  (entry ? "only " + entry->origin.describe() + " registers"
                         : std::string("no plugin registers")),
              "an override settles a name that two plugin files register; remove it from the list");
}

}  // namespace lmrun::host
