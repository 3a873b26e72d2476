// Loading one plugin file as a third party's test would: dlopen, the SDK's entry point, the API
// and build checks, registration into a registry of its own. Then params from `key=value` text,
// converted by each parameter's declared type and checked against its declaration.
//
//   lmrun::testing::MemoryRegistry registry;
//   lmrun::testing::PluginInfo info = lmrun::testing::load_plugin("build/lmrun-mine.so", registry);
//   const lmrun::Registration* r = registry.find(lmrun::Kind::kSampler, "mine");
//   lmrun::Params params = lmrun::testing::params_from_text(*r, {"p=0.3", "window=[1, 2]"});
//   auto sampler = registry.create<lmrun::Sampler>("mine", params, lmrun::SamplerContext{50});
//
// Part of lmrun::testing (conformance.h): header-only, no LibTorch, no host code. The host's own
// loader (framework/src/registry) does more (ELF checks, crash probes, conflicts between files);
// this one refuses what the host refuses for a single file and says why. A library stays loaded
// until the process exits, as in the host: objects made by its code may live that long.
#pragma once

#include <dlfcn.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "lmrun/plugin.h"
#include "lmrun/registry.h"

namespace lmrun::testing {

// ---------------------------------------------------------------------------------------------
// A registry in memory

// What a plugin registers into, and what tests create objects from. A KIND.NAME registered twice
// is an error, as in the host.
class MemoryRegistry final : public Registry {
 public:
  using Registry::add;
  void add(Registration registration) override {
    registration.require_complete();
    auto key = std::make_pair(registration.kind, registration.name);
    if (entries_.count(key) > 0) {
      throw Error(std::string(kind_name(registration.kind)) + " '" + registration.name +
                  "' is registered twice");
    }
    entries_.emplace(std::move(key), std::move(registration));
  }

  const Registration* find(Kind kind, std::string_view name) const override {
    auto it = entries_.find(std::make_pair(kind, std::string(name)));
    return it == entries_.end() ? nullptr : &it->second;
  }

  // Every registration, ordered by kind then name.
  std::vector<const Registration*> all() const {
    std::vector<const Registration*> out;
    for (const auto& [key, registration] : entries_) out.push_back(&registration);
    return out;
  }

 private:
  std::map<std::pair<Kind, std::string>, Registration> entries_;
};

// ---------------------------------------------------------------------------------------------
// Loading a plugin file

struct PluginInfo {
  std::string name;     // the descriptor's, e.g. "transformer"
  std::string version;  // the plugin's own version
  std::filesystem::path file;
};

namespace detail {

inline std::string api_text(std::uint32_t version) {
  return std::to_string(version >> 16) + "." + std::to_string(version & 0xffff);
}

// "1.13.0" -> "1.13": a plugin must match lmrun's LibTorch major.minor.
inline std::string major_minor(const std::string& version) {
  const auto first = version.find('.');
  if (first == std::string::npos) return version;
  return version.substr(0, version.find('.', first + 1));
}

}  // namespace detail

// Loads `file` and registers its factories into `registry`. Throws lmrun::Error naming the file
// when it does not load, has no entry point, was built against another API version, LibTorch or
// C++ ABI, or its register function fails.
inline PluginInfo load_plugin(const std::filesystem::path& file, Registry& registry) {
  auto fail = [&file](const std::string& what, std::string hint = {}) {
    return Error("plugin " + file.string() + ": " + what, std::move(hint));
  };
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw fail("no such file");
  dlerror();
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* reason = dlerror();
    throw fail(std::string("cannot load: ") + (reason ? reason : "unknown reason"));
  }
  // Never closed: see the header comment.
  void* symbol = dlsym(handle, LMRUN_PLUGIN_ENTRY_NAME);
  if (symbol == nullptr) {
    throw fail("no lmrun_plugin entry point",
               "declare the plugin with LMRUN_PLUGIN(name, version, register_function)");
  }
  const auto entry = reinterpret_cast<lmrun_plugin_entry>(symbol);
  const lmrun_plugin_descriptor* d = entry();
  if (d == nullptr) throw fail("lmrun_plugin() returned no descriptor");
  if ((d->api_version >> 16) != kApiVersionMajor || (d->api_version & 0xffff) > kApiVersionMinor) {
    throw fail("wrong plugin API version: plugin " + detail::api_text(d->api_version) +
                   ", this SDK " + detail::api_text(kApiVersion),
               "rebuild the plugin against this SDK");
  }
  if (d->name == nullptr || d->version == nullptr || d->torch_version == nullptr ||
      d->register_plugin == nullptr) {
    throw fail("the plugin descriptor is incomplete");
  }
  if (detail::major_minor(d->torch_version) != detail::major_minor(TORCH_VERSION)) {
    throw fail("built against another LibTorch: plugin " + std::string(d->torch_version) +
               ", this SDK " + TORCH_VERSION);
  }
  if (d->cxx11_abi != _GLIBCXX_USE_CXX11_ABI) {
    throw fail("built with another C++ ABI: plugin _GLIBCXX_USE_CXX11_ABI=" +
               std::to_string(d->cxx11_abi) + ", this SDK " +
               std::to_string(_GLIBCXX_USE_CXX11_ABI));
  }
  char error[1024] = {0};
  if (d->register_plugin(&registry, error, sizeof error) != 0) {
    throw fail(std::string("its register function failed: ") + error);
  }
  return PluginInfo{d->name, d->version, file};
}

// ---------------------------------------------------------------------------------------------
// Parameters from text

namespace detail {

inline std::string_view trim(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

inline std::string unquote(std::string_view s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
    return std::string(s.substr(1, s.size() - 2));
  }
  return std::string(s);
}

// One scalar of `type`: bool, int, float, string or path (resolved against the working folder).
inline Value scalar_from_text(ParamType type, std::string_view text, const std::string& name) {
  auto bad = [&](const char* expected) {
    return Error(name + ": '" + std::string(text) + "' is not " + expected);
  };
  switch (type) {
    case ParamType::kBool:
      if (text == "true") return true;
      if (text == "false") return false;
      throw bad("a bool (true or false)");
    case ParamType::kInt:
    case ParamType::kIntList: {
      std::int64_t v = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        throw bad("an integer");
      }
      return v;
    }
    case ParamType::kFloat:
    case ParamType::kFloatList: {
      const std::string copy(text);
      char* end = nullptr;
      const double v = std::strtod(copy.c_str(), &end);
      if (copy.empty() || end != copy.c_str() + copy.size()) throw bad("a number");
      return v;
    }
    case ParamType::kPath: {
      const std::string path = unquote(text);
      if (path.empty()) return path;
      return std::filesystem::absolute(path).lexically_normal().string();
    }
    case ParamType::kString:
    case ParamType::kStringList:
      return unquote(text);
  }
  throw bad("of a known type");
}

}  // namespace detail

// `text` as the value of `spec`: `true`, `3`, `0.5`, `-inf`, `gelu` or `"gelu"`, and lists as
// `[0.9, 0.99]` or `0.9,0.99`. Throws lmrun::Error naming the parameter when the text is not of
// its type or breaks its declared range, choices or size.
inline Value value_from_text(const ParamSpec& spec, std::string_view text) {
  text = detail::trim(text);
  Value value;
  if (!is_list(spec.type)) {
    value = detail::scalar_from_text(spec.type, text, spec.name);
  } else {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
      text = detail::trim(text.substr(1, text.size() - 2));
    }
    std::vector<std::string_view> items;
    for (std::size_t start = 0; !text.empty() && start <= text.size();) {
      const std::size_t comma = std::min(text.find(',', start), text.size());
      items.push_back(detail::trim(text.substr(start, comma - start)));
      start = comma + 1;
    }
    auto collect = [&](auto element) {
      std::vector<decltype(element)> list;
      for (std::string_view item : items) {
        list.push_back(
            std::get<decltype(element)>(detail::scalar_from_text(spec.type, item, spec.name)));
      }
      return Value(std::move(list));
    };
    if (spec.type == ParamType::kIntList) value = collect(std::int64_t{});
    if (spec.type == ParamType::kFloatList) value = collect(double{});
    if (spec.type == ParamType::kStringList) value = collect(std::string{});
  }
  const std::string problem = check_value(value, spec);
  if (!problem.empty()) throw Error(spec.name + ": " + problem);
  return value;
}

// Splits "key=value" at the first '='; throws lmrun::Error when there is none.
inline std::pair<std::string, std::string> split_assignment(std::string_view assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    throw Error("'" + std::string(assignment) + "' is not key=value");
  }
  return {std::string(detail::trim(assignment.substr(0, eq))),
          std::string(assignment.substr(eq + 1))};
}

// A registration's params as the host passes them: every declared default, then `assignments`
// ("key=value", converted by value_from_text). Throws lmrun::Error for a key the registration
// does not declare (with the nearest one) and for a required parameter left unset.
inline Params params_from_text(const Registration& registration,
                               const std::vector<std::string>& assignments) {
  const std::string who =
      std::string(kind_name(registration.kind)) + " '" + registration.name + "'";
  Params params;
  for (const ParamSpec& spec : registration.params) {
    if (spec.default_value) params.set(spec.name, *spec.default_value);
  }
  for (const std::string& assignment : assignments) {
    const auto [key, text] = split_assignment(assignment);
    const ParamSpec* spec = nullptr;
    std::vector<std::string> names;
    for (const ParamSpec& s : registration.params) {
      names.push_back(s.name);
      if (s.name == key) spec = &s;
    }
    if (spec == nullptr) {
      throw Error(who + " declares no parameter '" + key + "'" + did_you_mean(key, names));
    }
    try {
      params.set(key, value_from_text(*spec, text));
    } catch (const Error& e) {
      throw e.with_context(who);
    }
  }
  for (const ParamSpec& spec : registration.params) {
    if (!params.contains(spec.name)) {
      throw Error(who + ": required parameter '" + spec.name + "' (" + type_name(spec.type) +
                      ") is not set",
                  "set it: SET " + spec.name + "=VALUE");
    }
  }
  return params;
}

}  // namespace lmrun::testing
