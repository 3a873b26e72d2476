// A host that survives its plugins' mistakes: files that crash or hang while loading are skipped
// with a warning naming the file, the signal and the phase; a crash during a run names the plugin
// and the call before the process dies; whatever a plugin throws comes out as one clear error
// naming it; no LibTorch backtrace reaches the user.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::run_lmrun;
using lmrun::test::TempDir;
using testing::HasSubstr;
using testing::Not;

namespace {

const fs::path kCrashDir = LMRUN_TEST_CRASH_DIR;
const fs::path kFaultDir = LMRUN_TEST_FAULT_DIR;

fs::path crash_file(const std::string& name) { return kCrashDir / ("lmrun-" + name + ".so"); }

// A tiny gpt on tinyshakespeare, 3 steps, with `extra` TOML appended.
std::string tiny(const fs::path& out_dir, const std::string& extra = "",
                 const std::string& model =
                     "type = \"transformer\"\nn_layer = 1\nn_head = 2\n"
                     "n_embd = 16") {
  return "[experiment]\nout_dir = \"" + out_dir.string() +
         "\"\n"
         "[data]\ntype = \"text_file\"\npath = \"" +
         (lmrun::test::source_dir() / "data/tinyshakespeare/input.txt").string() +
         "\"\nblock_size = 16\n"
         "[tokenizer]\ntype = \"char\"\n"
         "[model]\n" +
         model +
         "\n"
         "[optimizer]\ntype = \"adamw\"\nlr = 1e-3\n"
         "[train]\nbatch_size = 4\nmax_steps = 3\neval_interval = 0\neval_batches = 1\n"
         "log_interval = 1\n" +
         extra;
}

// Runs lmrun with a probe cache of the test's own, so that each test probes afresh.
lmrun::test::ProcessResult lmrun_with(const TempDir& dir, std::vector<std::string> args,
                                      std::vector<std::string> env = {}) {
  env.push_back("LMRUN_PLUGIN_CACHE=" + (dir / "probe-cache.tsv").string());
  env.push_back("LMRUN_PLUGIN_PROBE_TIMEOUT=2");
  return run_lmrun(args, lmrun::test::source_dir(), env);
}

}  // namespace

TEST(BadPlugins, FilesThatCrashOrHangWhileLoadingAreSkippedWithAWarning) {
  TempDir dir;
  const auto result = lmrun_with(dir, {"plugins", "--plugin-dir", kCrashDir.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const std::string& out = result.output;
  EXPECT_THAT(out, HasSubstr("warning: plugin " + crash_file("crash_static_segv").string() +
                             ": crashed with SIGSEGV (segmentation fault) while loading (its "
                             "static initialisers"));
  EXPECT_THAT(out, HasSubstr("warning: plugin " + crash_file("crash_static_throw").string() +
                             ": crashed with SIGABRT (abort) while loading"));
  EXPECT_THAT(out, HasSubstr("it printed: terminate called after throwing an instance of 'int'"));
  EXPECT_THAT(out, HasSubstr("warning: plugin " + crash_file("crash_register_segv").string() +
                             ": crashed with SIGSEGV (segmentation fault) in its register "
                             "function; skipped"));
  EXPECT_THAT(out, HasSubstr("warning: plugin " + crash_file("crash_register_hang").string() +
                             ": hung in its register function (stopped after 2 s)"));
  // Throwing is an error the plugin reports, not a crash: named, with what was thrown.
  EXPECT_THAT(out, HasSubstr(crash_file("crash_register_int").string() +
                             ": register function failed: a non-standard exception (int)"));
  // The good file of the folder loads.
  EXPECT_THAT(out, HasSubstr("crash_constant   crash_none 0.0.1"));

  // The verdicts are remembered: the second start probes nothing and warns the same.
  const auto again = lmrun_with(dir, {"plugins", "--plugin-dir", kCrashDir.string()});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr(crash_file("crash_register_segv").string() +
                                      ": crashed with SIGSEGV (segmentation fault) in its "
                                      "register function (remembered from an earlier try"));
  EXPECT_THAT(again.output, HasSubstr("crash_constant   crash_none 0.0.1"));
}

TEST(BadPlugins, AFolderHoldingCrashingPluginsStillRunsExperimentsThatDoNotUseThem) {
  TempDir dir;
  lmrun::test::write_file(dir / "x.toml", tiny(dir / "run"));
  const auto result =
      lmrun_with(dir, {(dir / "x.toml").string(), "--plugin-dir", kCrashDir.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("crash_static_segv.so: crashed with SIGSEGV"));
  EXPECT_TRUE(fs::exists(dir / "run" / "summary.json"));
}

TEST(BadPlugins, ACrashDuringARunNamesThePluginAndTheCall) {
  TempDir dir;
  const std::string fault_file = (kFaultDir / "lmrun-fixture_fault.so").string();
  struct Case {
    std::string fault;
    int exit_code;
    std::string signal;
    std::string call;
  };
  for (const Case& c : {Case{"how = \"segv\"\nat_step = 2", 128 + 11, "SIGSEGV", "on_step_end"},
                        Case{"how = \"abort\"\nat_step = 2", 128 + 6, "SIGABRT", "on_step_end"},
                        Case{"how = \"segv\"\nin_factory = true", 128 + 11, "SIGSEGV", "create"}}) {
    SCOPED_TRACE(c.fault);
    lmrun::test::write_file(dir / "x.toml",
                            tiny(dir / "run", "[[callbacks]]\ntype = \"fault\"\n" + c.fault));
    const auto result =
        lmrun_with(dir, {(dir / "x.toml").string(), "--force", "--plugin-dir", kFaultDir.string()});
    EXPECT_EQ(result.exit_code, c.exit_code) << result.output;
    EXPECT_THAT(result.output, HasSubstr("lmrun: fatal: " + c.signal + " (")) << result.output;
    EXPECT_THAT(result.output, HasSubstr(" in callback 'fault' (" + fault_file + "), during " +
                                         c.call + "\n  hint: the plugin crashed"));
  }

  // A model's forward pass, named as the model.
  lmrun::test::write_file(dir / "x.toml",
                          tiny(dir / "run", "", "type = \"bad_model\"\nfault = \"segv_forward\""));
  const auto model =
      lmrun_with(dir, {(dir / "x.toml").string(), "--force", "--plugin-dir", kFaultDir.string()});
  EXPECT_EQ(model.exit_code, 128 + 11) << model.output;
  EXPECT_THAT(model.output,
              HasSubstr(" in model 'bad_model' (" +
                        (kFaultDir / "lmrun-fixture_bad_model.so").string() + "), during forward"));
}

TEST(BadPlugins, WhateverAPluginThrowsIsOneErrorNamingIt) {
  TempDir dir;
  struct Case {
    std::string fault;
    std::string message;
  };
  for (const Case& c :
       {Case{"how = \"throw_int\"\nat_step = 2",
             "lmrun: error: callback 'fault': on_step_end threw a non-standard exception (int)"},
        Case{"how = \"throw_std\"\nat_step = 2",
             "lmrun: error: callback 'fault': on_step_end threw std::out_of_range: fault: index 7 "
             "is past the end"},
        Case{"how = \"throw_int\"\nin_factory = true",
             "lmrun: error: callback 'fault': create threw a non-standard exception (int)"},
        // A LibTorch error: its message, never its C++ backtrace.
        Case{"how = \"torch\"\nat_step = 2", "shape '[7]' is invalid for input of size 6"}}) {
    SCOPED_TRACE(c.fault);
    lmrun::test::write_file(dir / "x.toml",
                            tiny(dir / "run", "[[callbacks]]\ntype = \"fault\"\n" + c.fault));
    const auto result =
        lmrun_with(dir, {(dir / "x.toml").string(), "--force", "--plugin-dir", kFaultDir.string()});
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output, HasSubstr(c.message));
    EXPECT_THAT(result.output, HasSubstr("hint: ")) << "a hint names the file or says what to do";
    EXPECT_THAT(result.output, Not(HasSubstr("frame #")));
    EXPECT_THAT(result.output, Not(HasSubstr("fatal")));
  }
}

TEST(BadPlugins, ADuplicateNameIsRefusedWhereUsedUnlessOverriddenExplicitly) {
  TempDir dir;
  fs::create_directories(dir / "plugins");
  for (const char* name : {"fixture_good", "fixture_duplicate"}) {
    fs::copy_file(lmrun::test::fixture_dir() / ("lmrun-" + std::string(name) + ".so"),
                  dir / "plugins" / ("lmrun-" + std::string(name) + ".so"));
  }
  const std::string good = (dir / "plugins" / "lmrun-fixture_good.so").string();
  const std::string duplicate = (dir / "plugins" / "lmrun-fixture_duplicate.so").string();
  lmrun::test::write_file(dir / "x.toml",
                          tiny(dir / "run", "[scheduler]\ntype = \"fixture_constant\"\n"));
  const std::vector<std::string> run = {(dir / "x.toml").string(), "--plugin-dir",
                                        (dir / "plugins").string()};

  // Used: refused before anything is written, naming both files (in load order: by file name)
  // and the way out.
  auto result = lmrun_with(dir, run);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("scheduler.type: scheduler 'fixture_constant' is registered twice: by "
                        "fixture_duplicate 1.2.3 (" +
                        duplicate + ") and by fixture_good 1.2.3 (" + good + ")"));
  EXPECT_THAT(result.output, HasSubstr("[plugins] override = [\"scheduler.fixture_constant\"]"));
  EXPECT_FALSE(fs::exists(dir / "run"));

  // Not used: the experiment runs, with a warning.
  lmrun::test::write_file(dir / "y.toml", tiny(dir / "run-y"));
  result = lmrun_with(dir, {(dir / "y.toml").string(), "--plugin-dir", (dir / "plugins").string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("warning: scheduler 'fixture_constant' is registered twice"));

  // Overridden: the later file's scheduler (fixture_good's) runs, and the run says so and
  // records it.
  std::vector<std::string> overridden = run;
  overridden.insert(overridden.end(),
                    {"--set", "plugins.override=[\"scheduler.fixture_constant\"]"});
  result = lmrun_with(dir, overridden);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("override   scheduler.fixture_constant from "
                        "fixture_good 1.2.3 (" +
                        good + "), replacing fixture_duplicate 1.2.3 (" + duplicate + ")"));
  const std::string summary = lmrun::test::read_file(dir / "run" / "summary.json");
  EXPECT_THAT(summary, HasSubstr("\"plugin_overrides\""));
  EXPECT_THAT(summary, HasSubstr("scheduler.fixture_constant from fixture_good 1.2.3"));
  EXPECT_THAT(summary, HasSubstr("\"scheduler fixture_constant (fixture_good 1.2.3)\""));
  EXPECT_THAT(lmrun::test::read_file(dir / "run" / "config.toml"),
              HasSubstr("override = [\"scheduler.fixture_constant\"]"));

  // An override of a name nobody else registers is a mistake too.
  result = lmrun_with(dir, {(dir / "y.toml").string(), "--force", "--set",
                            "plugins.override=[\"model.transformer\"]"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("override names model.transformer, which only "
                                       "transformer "));
  EXPECT_THAT(result.output, HasSubstr("lmrun-transformer.so) registers"));
}

TEST(BadPlugins, ARunRemembersItsPluginFoldersAndCommandsNeedOnlyTheirPlugins) {
  TempDir dir;
  fs::create_directories(dir / "plugins");
  for (const char* name : {"fixture_fault", "fixture_bad_model"}) {
    fs::copy_file(kFaultDir / ("lmrun-" + std::string(name) + ".so"),
                  dir / "plugins" / ("lmrun-" + std::string(name) + ".so"));
  }
  // A model and a callback from a folder named on the command line only.
  lmrun::test::write_file(dir / "x.toml",
                          tiny(dir / "run", "[[callbacks]]\ntype = \"fault\"\nat_step = 1000\n",
                               "type = \"bad_model\""));
  auto result =
      lmrun_with(dir, {(dir / "x.toml").string(), "--plugin-dir", (dir / "plugins").string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(lmrun::test::read_file(dir / "run" / "config.toml"),
              HasSubstr("paths = [\"" + (dir / "plugins").string() + "\"]"));

  // generate finds the model's plugin again without being told where it is.
  const std::vector<std::string> generate = {"generate", (dir / "run").string(), "-n", "4"};
  result = lmrun_with(dir, generate);
  EXPECT_EQ(result.exit_code, 0) << result.output;

  // With the callback's plugin gone, generate (which runs no callback) still works; eval too.
  fs::remove(dir / "plugins" / "lmrun-fixture_fault.so");
  result = lmrun_with(dir, generate);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  result = lmrun_with(dir, {"eval", (dir / "run").string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("val_loss"));

  // A plugin the command does need is still an error, naming what is missing.
  fs::remove(dir / "plugins" / "lmrun-fixture_bad_model.so");
  result = lmrun_with(dir, generate);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("unknown model 'bad_model'"));
}

TEST(BadPlugins, AModelBreakingAnOutputContractIsRefusedBeforeAnyStep) {
  TempDir dir;
  struct Case {
    std::string fault;
    std::string message;
  };
  for (const Case& c : {Case{"wide_logits",
                             "model 'bad_model': forward() on a (2, 4) batch returned (2, 4, 66), "
                             "but a language model gives (B, T, vocab_size) = (2, 4, 65)"},
                        Case{"class_logits",
                             "forward() on a (2, 4) batch returned (2, 65), but a language "
                             "model gives (B, T, vocab_size) = (2, 4, 65)"},
                        Case{"undefined_decode",
                             "model 'bad_model': decode() of a (1, 4) prompt returned an "
                             "undefined tensor, but it gives the last position's logits, "
                             "(B, vocab_size) = (1, 65)"},
                        Case{"wrong_decode", "decode() of a (1, 4) prompt returned (1, 67)"}}) {
    SCOPED_TRACE(c.fault);
    lmrun::test::write_file(
        dir / "x.toml", tiny(dir / "run", "", "type = \"bad_model\"\nfault = \"" + c.fault + "\""));
    const auto result =
        lmrun_with(dir, {(dir / "x.toml").string(), "--plugin-dir", kFaultDir.string()});
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output, HasSubstr(c.message));
    EXPECT_THAT(result.output, HasSubstr("lmrun-fixture_bad_model.so"));  // the hint names it
    EXPECT_THAT(result.output, Not(HasSubstr("step ")));
    EXPECT_FALSE(fs::exists(dir / "run"));
  }
}
