// Declaring a plugin: one macro per shared library.
//
//   #include "lmrun/plugin.h"
//   static void register_all(lmrun::Registry& registry) { registry.add<lmrun::Model>(...); }
//   LMRUN_PLUGIN("transformer", "0.1.0", register_all)
//
// The macro defines the library's one exported symbol, `lmrun_plugin`, an extern "C" function that
// never throws and returns a static descriptor. The host checks, in order: the file loads, the
// symbol exists, the API version matches (version.h), the build ABI matches (LibTorch version and
// _GLIBCXX_USE_CXX11_ABI), then calls `register_plugin` into a staging registry. An exception from
// the register function is caught inside the plugin and returned as text: nothing is thrown across
// the entry point. Fields are only ever appended; `descriptor_size` tells the host which it has.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <typeinfo>

#include <cxxabi.h>

#include <c10/util/Exception.h>
#include <torch/version.h>

#include "lmrun/registry.h"
#include "lmrun/version.h"

extern "C" {

struct lmrun_plugin_descriptor {
  std::uint32_t api_version;      // lmrun::kApiVersion the plugin was built against
  std::uint32_t descriptor_size;  // sizeof(lmrun_plugin_descriptor) as the plugin saw it
  const char* name;               // the plugin's name, e.g. "transformer"
  const char* version;            // the plugin's own version, e.g. "0.1.0"
  const char* torch_version;      // TORCH_VERSION at build time, e.g. "1.13.0"
  std::int32_t cxx11_abi;         // _GLIBCXX_USE_CXX11_ABI at build time (0 or 1)
  // Adds the plugin's factories. Returns 0 on success; otherwise writes a NUL-terminated message
  // of at most `capacity` bytes into `error` and returns non-zero. Never throws.
  int (*register_plugin)(lmrun::Registry* registry, char* error, std::size_t capacity);
};

// The exported entry point's type and name.
typedef const lmrun_plugin_descriptor* (*lmrun_plugin_entry)(void);
}

#define LMRUN_PLUGIN_ENTRY_NAME "lmrun_plugin"

namespace lmrun::detail {

inline void copy_message(const char* message, char* error, std::size_t capacity) {
  if (capacity == 0) return;
  std::strncpy(error, message, capacity - 1);
  error[capacity - 1] = '\0';
}

template <void (*Register)(Registry&)>
int register_trampoline(Registry* registry, char* error, std::size_t capacity) noexcept {
  try {
    Register(*registry);
    return 0;
  } catch (const c10::Error& e) {  // LibTorch's, without its C++ backtrace
    copy_message(e.what_without_backtrace(), error, capacity);
  } catch (const std::exception& e) {
    copy_message(e.what(), error, capacity);
  } catch (...) {
    // `throw 42`: say what was thrown, so the author can find it.
    const std::type_info* type = abi::__cxa_current_exception_type();
    std::string message = "a non-standard exception (";
    int status = 0;
    char* name = type ? abi::__cxa_demangle(type->name(), nullptr, nullptr, &status) : nullptr;
    message += name ? name : (type ? type->name() : "unknown type");
    std::free(name);
    message += "); throw lmrun::Error instead";
    copy_message(message.c_str(), error, capacity);
  }
  return 1;
}

}  // namespace lmrun::detail

#define LMRUN_PLUGIN(NAME, VERSION, REGISTER_FUNCTION)                                           \
  extern "C" __attribute__((visibility("default"))) const lmrun_plugin_descriptor* lmrun_plugin( \
      void) noexcept {                                                                           \
    static const lmrun_plugin_descriptor descriptor = {                                          \
        ::lmrun::kApiVersion,                                                                    \
        static_cast<std::uint32_t>(sizeof(lmrun_plugin_descriptor)),                             \
        NAME,                                                                                    \
        VERSION,                                                                                 \
        TORCH_VERSION,                                                                           \
        _GLIBCXX_USE_CXX11_ABI,                                                                  \
        &::lmrun::detail::register_trampoline<REGISTER_FUNCTION>};                               \
    return &descriptor;                                                                          \
  }
