// Loading plugin files: ELF sanity checks, Boost.DLL, the descriptor checks, staged registration.
#include "registry/plugin_loader.h"

#include <dlfcn.h>
#include <elf.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <system_error>

#include <torch/version.h>
#include <boost/dll/shared_library.hpp>

#include "lmrun/plugin.h"
#include "registry/probe.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

// ---------------------------------------------------------------------------------------------
// File checks before dlopen: dlopen on a truncated or foreign file gives a terse message at best.

Error file_error(const fs::path& file, const std::string& what, std::string hint = {}) {
  return Error("plugin " + file.string() + ": " + what, std::move(hint));
}

void check_elf(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) throw file_error(file, "cannot read: " + ec.message());
  std::ifstream in(file, std::ios::binary);
  Elf64_Ehdr header{};
  in.read(reinterpret_cast<char*>(&header), sizeof header);
  const auto got = static_cast<std::size_t>(in.gcount());
  if (got < SELFMAG || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) {
    throw file_error(
        file, "not a shared library (no ELF header)",
        "only lmrun plugins (.so files built with lmrun_add_plugin) belong in a plugin folder");
  }
  if (got < sizeof header) throw file_error(file, "truncated: the file ends inside its ELF header");
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_machine != EM_X86_64) {
#if defined(__x86_64__)
    throw file_error(file, "built for another machine (not x86-64)");
#endif
  }
  if (header.e_type != ET_DYN)
    throw file_error(file, "not a shared library (an ELF file of another type)");
  const auto program_end = header.e_phoff + std::uint64_t{header.e_phnum} * header.e_phentsize;
  const auto section_end = header.e_shoff + std::uint64_t{header.e_shnum} * header.e_shentsize;
  if (program_end > size || section_end > size) {
    throw file_error(file,
                     "truncated: " + std::to_string(size) + " bytes, but its headers reach byte " +
                         std::to_string(std::max(program_end, section_end)),
                     "rebuild or re-copy the plugin");
  }
}

// Boost.DLL clears dlerror(); ask dlopen once more for the loader's own words.
std::string dlopen_reason(const fs::path& file) {
  dlerror();
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle != nullptr) {
    dlclose(handle);
    return "unknown reason";
  }
  const char* reason = dlerror();
  return reason ? reason : "unknown reason";
}

// Libraries that were opened stay open until exit: objects their code made may live that long.
std::vector<boost::dll::shared_library>& open_libraries() {
  static auto* libraries = new std::vector<boost::dll::shared_library>();
  return *libraries;
}

std::string api_string(std::uint32_t version) {
  return std::to_string(version >> 16) + "." + std::to_string(version & 0xffff);
}

// "1.13.0" -> "1.13": plugins must match the host's LibTorch major.minor.
std::string major_minor(const std::string& version) {
  const auto first = version.find('.');
  if (first == std::string::npos) return version;
  const auto second = version.find('.', first + 1);
  return version.substr(0, second);
}

// ---------------------------------------------------------------------------------------------
// The descriptor: API version, size, build ABI. One message per way it can be wrong.

void check_descriptor(const fs::path& file, const lmrun_plugin_descriptor* d) {
  if (d == nullptr) throw file_error(file, "lmrun_plugin() returned no descriptor");
  const std::uint32_t major = d->api_version >> 16;
  const std::uint32_t minor = d->api_version & 0xffff;
  if (major != kApiVersionMajor) {
    throw file_error(file,
                     "wrong plugin API version: plugin " + api_string(d->api_version) + ", lmrun " +
                         api_string(kApiVersion),
                     "rebuild the plugin against the SDK of lmrun " + std::string(kVersion));
  }
  if (minor > kApiVersionMinor) {
    throw file_error(
        file,
        "plugin needs a newer lmrun: plugin API " + api_string(d->api_version) + ", lmrun " +
            api_string(kApiVersion),
        "update lmrun, or rebuild the plugin against the SDK of lmrun " + std::string(kVersion));
  }
  constexpr std::size_t kNeeded =
      offsetof(lmrun_plugin_descriptor, register_plugin) + sizeof(void*);
  if (d->descriptor_size < kNeeded) {
    throw file_error(file, "plugin descriptor too small: " + std::to_string(d->descriptor_size) +
                               " bytes, at least " + std::to_string(kNeeded) + " expected");
  }
  if (d->name == nullptr || d->name[0] == '\0' || d->version == nullptr ||
      d->torch_version == nullptr || d->register_plugin == nullptr) {
    throw file_error(file,
                     "plugin descriptor is incomplete (name, version, LibTorch version or register "
                     "function missing)");
  }
  if (major_minor(d->torch_version) != major_minor(TORCH_VERSION)) {
    throw file_error(file,
                     "built against another LibTorch: plugin " + std::string(d->torch_version) +
                         ", lmrun " + TORCH_VERSION,
                     "rebuild the plugin against the LibTorch lmrun uses");
  }
  if (d->cxx11_abi != _GLIBCXX_USE_CXX11_ABI) {
    throw file_error(file,
                     "built with another C++ ABI: plugin _GLIBCXX_USE_CXX11_ABI=" +
                         std::to_string(d->cxx11_abi) + ", lmrun " +
                         std::to_string(_GLIBCXX_USE_CXX11_ABI),
                     "rebuild the plugin with the compiler settings lmrun was built with");
  }
}

}  // namespace

// -----------------------------------------------------------------------------------------------

namespace {

// What the load steps leave: the descriptor and what the plugin registered. The library itself
// stays open until exit (open_libraries), whatever happens after it loaded.
struct Staged {
  const lmrun_plugin_descriptor* descriptor = nullptr;
  PluginRegistry staging;
};

// Loading a checked file: dlopen, the entry point, the descriptor checks, the register function
// into a staging registry. The real load and the probe's child run exactly these steps; `phase`
// hears each one begin.
Staged load_steps(const fs::path& file, const PhaseSink& phase) {
  Staged staged;
  boost::dll::shared_library library;
  boost::dll::fs::error_code load_error;
  phase(LoadPhase::kOpen);
  library.load(boost::dll::fs::path(file.string()),
               boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, load_error);
  if (load_error) throw file_error(file, "cannot load: " + dlopen_reason(file));
  open_libraries().push_back(library);
  if (!library.has(LMRUN_PLUGIN_ENTRY_NAME)) {
    throw file_error(
        file, "not an lmrun plugin: no '" LMRUN_PLUGIN_ENTRY_NAME "' entry point",
        "a plugin declares itself with LMRUN_PLUGIN(name, version, register_function)");
  }
  auto entry = library.get<const lmrun_plugin_descriptor*()>(LMRUN_PLUGIN_ENTRY_NAME);
  phase(LoadPhase::kEntry);
  staged.descriptor = entry();
  check_descriptor(file, staged.descriptor);

  const lmrun_plugin_descriptor* d = staged.descriptor;
  staged.staging.set_origin(PluginOrigin{d->name, d->version, file});
  char message[1024] = {};
  phase(LoadPhase::kRegister);
  if (d->register_plugin(&staged.staging, message, sizeof message) != 0) {
    throw file_error(file, std::string("register function failed: ") + message);
  }
  if (staged.staging.empty())
    throw file_error(file, "plugin '" + std::string(d->name) + "' registered nothing");
  return staged;
}

}  // namespace

PluginLoader::PluginLoader(PluginRegistry& registry)
    : registry_(registry),
      probe_(std::make_unique<PluginProbe>(default_probe_cache(), default_probe_timeout())) {}

PluginLoader::~PluginLoader() = default;

void PluginLoader::set_probe(std::unique_ptr<PluginProbe> probe) { probe_ = std::move(probe); }

void PluginLoader::load_file(const fs::path& path) {
  std::error_code ec;
  const fs::path file = fs::weakly_canonical(path, ec);
  if (ec || !fs::is_regular_file(file)) throw file_error(path, "no such file");
  for (const LoadedPlugin& plugin : loaded_) {
    if (plugin.file == file) return;
  }

  check_elf(file);
  if (probe_) {
    const auto problem =
        probe_->check(file, [&file](const PhaseSink& phase) { load_steps(file, phase); });
    if (problem) {
      throw CrashedPlugin(file_error(
          file, *problem + "; skipped",
          "fix or remove the file: lmrun loads every .so in its plugin folders, and skips this "
          "one until it changes"));
    }
  }
  Staged staged = load_steps(file, [](LoadPhase) {});
  try {
    registry_.merge(std::move(staged.staging));
  } catch (const Error& e) {
    throw file_error(file, e.what(), e.hint());
  }
  loaded_.push_back(LoadedPlugin{staged.descriptor->name, staged.descriptor->version, file});
}

void PluginLoader::load_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error("plugin folder " + dir.string() + " does not exist or is not a folder",
                "check LMRUN_PLUGIN_PATH, [plugins] paths and --plugin-dir");
  }
  std::vector<fs::path> files;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const fs::path& p = item.path();
    if (p.extension() == ".so" && p.filename().string()[0] != '.' && item.is_regular_file())
      files.push_back(p);
  }
  if (ec) throw Error("cannot list plugin folder " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    try {
      load_file(file);
    } catch (const Error& e) {
      failures_.push_back(LoadFailure{
          file, std::string(e.what()) + (e.hint().empty() ? "" : " (hint: " + e.hint() + ")"),
          dynamic_cast<const CrashedPlugin*>(&e) != nullptr});
    }
  }
}

fs::path builtin_plugin_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return (exe.parent_path().parent_path() / LMRUN_PLUGIN_SUBDIR).lexically_normal();
}

std::vector<fs::path> env_plugin_dirs() {
  std::vector<fs::path> dirs;
  const char* value = std::getenv("LMRUN_PLUGIN_PATH");
  if (value == nullptr) return dirs;
  std::string text = value;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(':', start), text.size());
    if (end > start) dirs.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return dirs;
}

}  // namespace lmrun::host
