// The plugin loader against fixture plugins that are wrong in each way it must name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include <torch/version.h>

#include "lmrun/scheduler.h"
#include "lmrun/version.h"
#include "registry/plugin_loader.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::host::PluginLoader;
using lmrun::host::PluginRegistry;
using testing::HasSubstr;

namespace {

fs::path fixture(const std::string& name) {
  return lmrun::test::fixture_dir() / ("lmrun-" + name + ".so");
}

// The message of the lmrun::Error that loading `file` throws, or "" if it loads.
std::string load_error(const fs::path& file, PluginRegistry& registry) {
  PluginLoader loader(registry);
  try {
    loader.load_file(file);
  } catch (const lmrun::Error& e) {
    return std::string(e.what()) + " | hint: " + e.hint();
  }
  return "";
}

std::string load_error(const fs::path& file) {
  PluginRegistry registry;
  std::string message = load_error(file, registry);
  EXPECT_TRUE(registry.empty()) << "a failed load must leave the registry unchanged";
  return message;
}

}  // namespace

TEST(Loader, LoadsAGoodPluginAndRecordsItsOrigin) {
  PluginRegistry registry;
  PluginLoader loader(registry);
  loader.load_file(fixture("fixture_good"));
  ASSERT_EQ(loader.loaded().size(), 1u);
  EXPECT_EQ(loader.loaded()[0].name, "fixture_good");
  EXPECT_EQ(loader.loaded()[0].version, "1.2.3");

  const auto* entry = registry.find_entry(lmrun::Kind::kScheduler, "fixture_constant");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->origin.plugin_name, "fixture_good");
  EXPECT_EQ(entry->origin.file, fs::canonical(fixture("fixture_good")));
  ASSERT_EQ(entry->registration.params.size(), 1u);
  EXPECT_EQ(entry->registration.params[0].name, "value");

  lmrun::Params params;
  params.set("value", 0.25);
  auto scheduler = registry.create<lmrun::Scheduler>("fixture_constant", params, {1e-3, 100});
  EXPECT_DOUBLE_EQ(scheduler->lr(7), 0.25);
}

TEST(Loader, LoadingTheSameFileTwiceIsANoOp) {
  PluginRegistry registry;
  PluginLoader loader(registry);
  loader.load_file(fixture("fixture_good"));
  loader.load_file(fixture("fixture_good"));
  EXPECT_EQ(loader.loaded().size(), 1u);
}

TEST(Loader, NotASharedLibrary) {
  lmrun::test::TempDir dir;
  lmrun::test::write_file(dir / "notes.so", "these are my notes, not a plugin\n");
  const std::string message = load_error(dir / "notes.so");
  EXPECT_THAT(message, HasSubstr((dir / "notes.so").string()));
  EXPECT_THAT(message, HasSubstr("not a shared library"));
}

TEST(Loader, TruncatedFile) {
  lmrun::test::TempDir dir;
  const std::string bytes = lmrun::test::read_file(fixture("fixture_good"));
  lmrun::test::write_file(dir / "cut.so", bytes.substr(0, bytes.size() / 2));
  const std::string message = load_error(dir / "cut.so");
  EXPECT_THAT(message, HasSubstr("cut.so"));
  EXPECT_THAT(message, HasSubstr("truncated"));

  lmrun::test::write_file(dir / "header.so", bytes.substr(0, 20));
  EXPECT_THAT(load_error(dir / "header.so"), HasSubstr("truncated"));
}

TEST(Loader, NoEntryPoint) {
  const std::string message = load_error(fixture("fixture_no_entry"));
  EXPECT_THAT(message, HasSubstr("lmrun-fixture_no_entry.so"));
  EXPECT_THAT(message, HasSubstr("not an lmrun plugin: no 'lmrun_plugin' entry point"));
  EXPECT_THAT(message, HasSubstr("LMRUN_PLUGIN("));
}

TEST(Loader, OtherApiMajorVersion) {
  const std::string message = load_error(fixture("fixture_api_major"));
  EXPECT_THAT(message, HasSubstr("lmrun-fixture_api_major.so"));
  EXPECT_THAT(message, HasSubstr("wrong plugin API version: plugin 99.0, lmrun " +
                                 std::to_string(lmrun::kApiVersionMajor) + "." +
                                 std::to_string(lmrun::kApiVersionMinor)));
  EXPECT_THAT(message, HasSubstr("rebuild the plugin"));
}

TEST(Loader, NewerApiMinorVersion) {
  const std::string message = load_error(fixture("fixture_api_minor"));
  EXPECT_THAT(message, HasSubstr("plugin needs a newer lmrun"));
}

TEST(Loader, OtherLibTorchVersion) {
  const std::string message = load_error(fixture("fixture_torch"));
  EXPECT_THAT(message, HasSubstr("lmrun-fixture_torch.so"));
  EXPECT_THAT(message,
              HasSubstr("built against another LibTorch: plugin 0.4.1, lmrun " TORCH_VERSION));
}

TEST(Loader, OtherCxxAbi) {
  const std::string message = load_error(fixture("fixture_cxxabi"));
  EXPECT_THAT(message, HasSubstr("built with another C++ ABI: plugin _GLIBCXX_USE_CXX11_ABI="));
}

TEST(Loader, RegisterFunctionThrows) {
  const std::string message = load_error(fixture("fixture_throws"));
  EXPECT_THAT(message, HasSubstr("lmrun-fixture_throws.so"));
  EXPECT_THAT(
      message,
      HasSubstr(
          "register function failed: fixture refuses to register: its vocabulary file is missing"));
}

TEST(Loader, RegistersNothing) {
  EXPECT_THAT(load_error(fixture("fixture_empty")), HasSubstr("registered nothing"));
}

TEST(Loader, ADuplicateNameIsAConflictNamingBothFiles) {
  PluginRegistry registry;
  ASSERT_EQ(load_error(fixture("fixture_good"), registry), "");
  ASSERT_EQ(load_error(fixture("fixture_duplicate"), registry), "");
  // The first registration holds the name, and the conflict is recorded with both files.
  EXPECT_EQ(registry.find_entry(lmrun::Kind::kScheduler, "fixture_constant")->origin.plugin_name,
            "fixture_good");
  const auto* conflict = registry.conflict(lmrun::Kind::kScheduler, "fixture_constant");
  ASSERT_NE(conflict, nullptr);
  const std::string message = registry.conflict_message(*conflict);
  EXPECT_THAT(message, HasSubstr("scheduler 'fixture_constant' is registered twice"));
  EXPECT_THAT(message, HasSubstr("lmrun-fixture_good.so"));
  EXPECT_THAT(message, HasSubstr("lmrun-fixture_duplicate.so"));

  // An explicit override gives it to the file loaded last, and settles the conflict.
  const auto applied = registry.override_with_latest(lmrun::Kind::kScheduler, "fixture_constant");
  EXPECT_EQ(applied.by.plugin_name, "fixture_duplicate");
  EXPECT_EQ(applied.replaced.plugin_name, "fixture_good");
  EXPECT_EQ(registry.find_entry(lmrun::Kind::kScheduler, "fixture_constant")->origin.plugin_name,
            "fixture_duplicate");
  EXPECT_EQ(registry.conflict(lmrun::Kind::kScheduler, "fixture_constant"), nullptr);
  EXPECT_THAT(lmrun::test::error_of([&] {
                registry.override_with_latest(lmrun::Kind::kScheduler, "fixture_constant");
              }),
              HasSubstr("override names scheduler.fixture_constant, which only fixture_duplicate "
                        "1.2.3"));
}

TEST(Loader, ABadFileInAFolderDoesNotStopTheGoodOnes) {
  lmrun::test::TempDir dir;
  for (const char* name : {"fixture_good", "fixture_api_major", "fixture_throws"}) {
    fs::copy_file(fixture(name), dir / ("lmrun-" + std::string(name) + ".so"));
  }
  lmrun::test::write_file(dir / "README.so", "not a library");
  lmrun::test::write_file(dir / "notes.txt", "ignored: not a .so");
  PluginRegistry registry;
  PluginLoader loader(registry);
  EXPECT_NO_THROW(loader.load_directory(dir.path()));
  ASSERT_EQ(loader.loaded().size(), 1u);
  EXPECT_NE(registry.find(lmrun::Kind::kScheduler, "fixture_constant"), nullptr);
  ASSERT_EQ(loader.failures().size(), 3u);
  std::string all;
  for (const auto& failure : loader.failures()) all += failure.message + "\n";
  EXPECT_THAT(all, HasSubstr("README.so: not a shared library"));
  EXPECT_THAT(all, HasSubstr("wrong plugin API version"));
  EXPECT_THAT(all, HasSubstr("register function failed"));
}

TEST(Loader, MissingFolderIsAnError) {
  PluginRegistry registry;
  PluginLoader loader(registry);
  try {
    loader.load_directory("/nonexistent/lmrun/plugins");
    FAIL() << "expected an error";
  } catch (const lmrun::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/lmrun/plugins does not exist"));
  }
}

TEST(Loader, MissingFileIsAnError) {
  EXPECT_THAT(load_error("/nonexistent/lmrun-x.so"), HasSubstr("no such file"));
}

TEST(Loader, EnvPluginPathSplitsOnColons) {
  setenv("LMRUN_PLUGIN_PATH", "/a::/b/c:", 1);
  const auto dirs = lmrun::host::env_plugin_dirs();
  unsetenv("LMRUN_PLUGIN_PATH");
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_EQ(dirs[0], "/a");
  EXPECT_EQ(dirs[1], "/b/c");
}
