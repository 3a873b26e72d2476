// The conformance runner's main: loads one plugin file, selects what to check, then hands over to
// GoogleTest, whose suites (model_suite.cpp, ...) are instantiated over the selection.
//
//   lmrun_conformance --plugin FILE [--kind KIND] [--name NAME] [--set key=value]...
//                     [--option key=value]... [--gtest_filter=...]
//
// lmrun_add_conformance_test() (LmrunPlugin.cmake) writes this command line for ctest.
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lmrun/testing/conformance.h"

namespace {

struct Invocation {
  std::string plugin;
  std::string kind;
  std::string name;
  std::vector<std::string> sets;
  std::vector<std::string> options;
};

constexpr const char* kUsage =
    "usage: lmrun_conformance --plugin FILE [--kind KIND] [--name NAME] [--set key=value]...\n"
    "                         [--option key=value]... [gtest flags]\n";

// Takes our flags out of argv, leaving gtest's (and argv[0]) for InitGoogleTest.
Invocation parse(int& argc, char** argv) {
  Invocation inv;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw lmrun::Error(arg + " needs a value", kUsage);
      return argv[++i];
    };
    if (arg == "--plugin") {
      inv.plugin = value();
    } else if (arg == "--kind") {
      inv.kind = value();
    } else if (arg == "--name") {
      inv.name = value();
    } else if (arg == "--set") {
      inv.sets.push_back(value());
    } else if (arg == "--option") {
      inv.options.push_back(value());
    } else if (arg.rfind("--gtest_", 0) == 0) {
      argv[kept++] = argv[i];
    } else {
      throw lmrun::Error("unknown argument '" + arg + "'", kUsage);
    }
  }
  argc = kept;
  if (inv.plugin.empty()) throw lmrun::Error("no --plugin FILE", kUsage);
  return inv;
}

// Lives until exit: the registrations hold the plugin's code.
lmrun::testing::MemoryRegistry& registry() {
  static auto* r = new lmrun::testing::MemoryRegistry();
  return *r;
}

}  // namespace

int main(int argc, char** argv) {
  namespace lt = lmrun::testing;
  try {
    const Invocation inv = parse(argc, argv);
    const lt::SuiteOptions options = lt::suite_options_from_text(inv.options);
    const lt::PluginInfo info = lt::load_plugin(inv.plugin, registry());
    lt::subjects() = lt::select_subjects(registry(), inv.kind, inv.name, inv.sets, options);
    std::printf("lmrun conformance: plugin %s %s (%s)\n", info.name.c_str(), info.version.c_str(),
                info.file.c_str());
    for (const lmrun::Registration* r : registry().all()) {
      if (!lt::has_suite(r->kind)) {
        std::printf("  %s %s: no conformance suite for this kind, skipped\n",
                    lmrun::kind_name(r->kind), r->name.c_str());
      }
    }
    for (const lt::Subject& subject : lt::subjects()) {
      std::ostringstream text;
      lt::PrintTo(subject, &text);
      std::printf("  checking %s\n", text.str().c_str());
    }
    std::fflush(stdout);
  } catch (const lmrun::Error& e) {
    std::fprintf(stderr, "lmrun conformance: error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lmrun conformance: error: %s\n", e.what());
    return 2;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
