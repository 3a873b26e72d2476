// lmrun as a user runs it: subcommands as processes, with exit codes and output checked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lmrun/version.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::run_lmrun;
using lmrun::test::TempDir;
using testing::HasSubstr;
using testing::Not;

namespace {

fs::path gpt_tiny() { return lmrun::test::source_dir() / "experiments" / "gpt_tiny.toml"; }

// gpt_tiny as a two-step run into `out_dir`, plus `extra` arguments.
std::vector<std::string> short_run(const fs::path& out_dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {gpt_tiny().string(),
                                   "--set",
                                   "experiment.out_dir=" + out_dir.string(),
                                   "--set",
                                   "train.max_steps=2",
                                   "--set",
                                   "scheduler.warmup_steps=1",
                                   "--set",
                                   "train.eval_batches=1",
                                   "--set",
                                   "generate.max_new_tokens=4"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

TEST(Cli, VersionAndHelp) {
  auto result = run_lmrun({"--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output,
              HasSubstr("lmrun 0.1.0 (plugin API " + std::to_string(lmrun::kApiVersionMajor) + "." +
                        std::to_string(lmrun::kApiVersionMinor) + ")"));
  result = run_lmrun({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("lmrun check FILE.toml"));
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run_lmrun({}).exit_code, 2);
  auto result = run_lmrun({"frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("unknown command 'frobnicate'"));
  result = run_lmrun({"check"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("expected: lmrun check FILE.toml"));
  result = run_lmrun({"--no-such-flag"});
  EXPECT_EQ(result.exit_code, 2);
}

TEST(Cli, PluginsListsEveryKindNameVersionAndFile) {
  const auto result = run_lmrun({"plugins"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* line : {"dataset\n", "tokenizer\n", "model\n", "optimizer\n", "scheduler\n",
                           "callback\n", "sampler\n", "metric\n"}) {
    EXPECT_THAT(result.output, HasSubstr(line));
  }
  EXPECT_THAT(result.output, HasSubstr("transformer"));
  EXPECT_THAT(result.output, HasSubstr("lmrun-transformer.so"));
  EXPECT_THAT(result.output, HasSubstr("optimizers 0.1.0"));
  EXPECT_THAT(result.output, Not(HasSubstr("warning")));
}

TEST(Cli, ABrokenPluginOnThePathIsAWarningNotAFailure) {
  TempDir dir;
  lmrun::test::write_file(dir / "lmrun-broken.so", "not a library");
  fs::copy_file(lmrun::test::fixture_dir() / "lmrun-fixture_api_major.so", dir / "lmrun-old.so");
  const auto result =
      run_lmrun({"plugins"}, fs::current_path(), {"LMRUN_PLUGIN_PATH=" + dir.path().string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("transformer"));
  EXPECT_THAT(result.output, HasSubstr("warning: plugin " + (dir / "lmrun-broken.so").string() +
                                       ": not a shared library"));
  EXPECT_THAT(result.output, HasSubstr("lmrun-old.so: wrong plugin API version"));

  // ... and the experiment still runs, since it needs neither.
  const auto check = run_lmrun({"check", gpt_tiny().string()}, lmrun::test::source_dir(),
                               {"LMRUN_PLUGIN_PATH=" + dir.path().string()});
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST(Cli, PluginDirAddsPlugins) {
  const auto result = run_lmrun({"plugins", "--plugin-dir", lmrun::test::fixture_dir().string()});
  // The fixture folder holds broken plugins too: the good one is listed, the others warned about.
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("fixture_constant"));
  EXPECT_THAT(result.output, HasSubstr("fixture_good 1.2.3"));
  EXPECT_THAT(result.output, HasSubstr("register function failed"));

  const auto missing = run_lmrun({"plugins", "--plugin-dir", "/nonexistent/plugins"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output,
              HasSubstr("--plugin-dir: plugin folder /nonexistent/plugins does not exist"));
}

TEST(Cli, ExperimentPluginPathsLoadPluginsRelativeToTheFile) {
  TempDir dir;
  fs::create_directories(dir / "exp" / "my_plugins");
  fs::copy_file(lmrun::test::fixture_dir() / "lmrun-fixture_good.so",
                dir / "exp" / "my_plugins" / "lmrun-fixture_good.so");
  std::string text = lmrun::test::read_file(gpt_tiny());
  const std::string cosine = "type = \"cosine\"\nwarmup_steps = 100\nmin_lr = 1e-4";
  text.replace(text.find(cosine), cosine.size(), "type = \"fixture_constant\"\nvalue = 0.002");
  lmrun::test::write_file(dir / "exp" / "uses_plugin.toml",
                          "[plugins]\npaths = [\"my_plugins\"]\n" + text);
  // From the repository root (the data path is relative to it): the plugin folder is found
  // relative to the experiment file, not the working directory.
  auto result =
      run_lmrun({"check", (dir / "exp" / "uses_plugin.toml").string()}, lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("[scheduler]\ntype = \"fixture_constant\"\nvalue = 0.002\n"));
  EXPECT_THAT(result.output, HasSubstr("paths = [\"" + (dir / "exp" / "my_plugins").string()));

  fs::remove_all(dir / "exp" / "my_plugins");
  result =
      run_lmrun({"check", (dir / "exp" / "uses_plugin.toml").string()}, lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("[plugins] paths: plugin folder"));
}

TEST(Cli, DescribePrintsParameters) {
  auto result = run_lmrun({"describe", "transformer"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("model.transformer: "));
  EXPECT_THAT(result.output, HasSubstr("n_layer"));
  EXPECT_THAT(result.output, HasSubstr("int"));
  EXPECT_THAT(result.output, HasSubstr("= 4"));
  EXPECT_THAT(result.output, HasSubstr(">= 1"));

  result = run_lmrun({"describe", "optimizer.adamw"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("betas"));
  EXPECT_THAT(result.output, HasSubstr("2 elements"));

  result = run_lmrun({"describe", "train"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("batch_size"));
  EXPECT_THAT(result.output, HasSubstr("one of: cpu, cuda, auto"));
}

TEST(Cli, DescribeUnknownSuggests) {
  auto result = run_lmrun({"describe", "transfomer"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("no plugin named 'transfomer' (did you mean transformer?)"));
  EXPECT_THAT(result.output, HasSubstr("hint: `lmrun plugins` lists every registered name"));
  result = run_lmrun({"describe", "modle.transformer"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("unknown plugin kind 'modle' (did you mean model?)"));
}

TEST(Cli, CheckPrintsTheResolvedConfig) {
  const auto result = run_lmrun({"check", gpt_tiny().string(), "--set", "model.n_layer=2"},
                                lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("[model]\ntype = \"transformer\"\nn_layer = 2\n"));
  EXPECT_THAT(result.output, HasSubstr("is valid"));
}

TEST(Cli, CheckReportsEveryProblemAndWritesNothing) {
  TempDir dir;
  std::string text = lmrun::test::read_file(gpt_tiny());
  text.replace(text.find("n_layer = 4"), 11, "n_layers = 4");
  text.replace(text.find("type = \"cosine\""), 15, "type = \"cosin\"");
  text.replace(text.find("out_dir = \"runs/gpt_tiny\""), 25,
               "out_dir = \"" + (dir / "run").string() + "\"");
  lmrun::test::write_file(dir / "bad.toml", text);
  for (const char* command : {"check", ""}) {
    std::vector<std::string> args = {(dir / "bad.toml").string()};
    if (*command) args.insert(args.begin(), command);
    const auto result = run_lmrun(args, lmrun::test::source_dir());
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.output, HasSubstr("invalid experiment (2 problems)"));
    EXPECT_THAT(result.output,
                HasSubstr("bad.toml:27:1: model.n_layers: unknown key (did you mean n_layer?)"));
    EXPECT_THAT(result.output,
                HasSubstr("scheduler.type: unknown scheduler 'cosin' (did you mean cosine?)"));
    EXPECT_THAT(result.output, Not(HasSubstr("terminate called")));
    EXPECT_FALSE(fs::exists(dir / "run"));
  }
}

TEST(Cli, CheckReportsEveryCrossSectionProblemBeforeARun) {
  const fs::path file = gpt_tiny();
  auto check = [&](std::vector<std::string> sets) {
    std::vector<std::string> args = {"check", file.string()};
    for (auto& set : sets) args.insert(args.end(), {"--set", set});
    return run_lmrun(args, lmrun::test::source_dir());
  };
  // Each alone passes its section's own checks; together with another section each is wrong.
  const auto result = check({"train.max_steps=50",           // cosine warms up for 100
                             "scheduler.min_lr=0.01",        // above optimizer.lr = 0.001
                             "callbacks.0.monitor=val_los",  // a typo
                             "model.n_layer=4294967297"});   // cannot fit in memory
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("scheduler: scheduler 'cosine': min_lr = 0.01 is above the "
                                       "optimizer's lr = 0.001"));
  EXPECT_THAT(result.output, HasSubstr("callbacks.0: callback 'early_stopping': early_stopping: "
                                       "monitor 'val_los' is not a metric this run reports"));
  EXPECT_THAT(result.output, HasSubstr("did you mean val_loss?"));
  EXPECT_THAT(result.output, HasSubstr("model: model 'transformer' would need about "));
  EXPECT_THAT(result.output, HasSubstr("this machine has "));

  const auto warmup = check({"train.max_steps=50"});
  EXPECT_EQ(warmup.exit_code, 1) << warmup.output;
  EXPECT_THAT(warmup.output, HasSubstr("warmup_steps = 100 is longer than the decay, which ends at "
                                       "max_steps = 50"));

  // No validation split, and a callback that watches one.
  const auto no_val = check({"data.val_fraction=0.0"});
  EXPECT_EQ(no_val.exit_code, 1) << no_val.output;
  EXPECT_THAT(no_val.output, HasSubstr("monitor 'val_loss' is not a metric this run reports; it "
                                       "reports: train_loss"));

  EXPECT_EQ(check({}).exit_code, 0);
}

TEST(Cli, ChangingTheModelTypeDropsTheOldTypesKeysWithANote) {
  // README's own example: gpt_tiny.toml's [model] holds transformer keys lstm does not take.
  const auto result = run_lmrun({"check", gpt_tiny().string(), "--set", "model.type=lstm"},
                                lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("lmrun: note: model.type changed from \"transformer\" to "
                                       "\"lstm\" (--set model.type=lstm): dropped n_head, which "
                                       "lstm does not take"));
  EXPECT_THAT(result.output, HasSubstr("[model]\ntype = \"lstm\"\nn_layer = 4\nn_embd = 128\n"));
  const auto config = result.output.find("# lmrun resolved experiment");
  ASSERT_NE(config, std::string::npos) << result.output;
  EXPECT_THAT(result.output.substr(config), Not(HasSubstr("n_head")));
}

TEST(Cli, RunWritesTheResolvedConfigAndNeverOverwrites) {
  TempDir dir;
  auto result = run_lmrun(short_run(dir / "run"), lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("model      transformer (n_layer=4"));
  const std::string config = lmrun::test::read_file(dir / "run" / "config.toml");
  EXPECT_THAT(config, HasSubstr("# lmrun resolved experiment, format 1"));
  EXPECT_THAT(config, HasSubstr("[[generate.samplers]]\ntype = \"top_k\"\nk = 40\n"));

  lmrun::test::write_file(dir / "run" / "notes.txt", "mine");
  result = run_lmrun(short_run(dir / "run"), lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("already exists"));
  EXPECT_THAT(result.output, HasSubstr("--force"));
  EXPECT_EQ(lmrun::test::read_file(dir / "run" / "notes.txt"), "mine");

  result = run_lmrun(short_run(dir / "run", {"--force"}), lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 0) << result.output;
}

TEST(Cli, ResolvedConfigRunsAsAnExperiment) {
  TempDir dir;
  auto result = run_lmrun(short_run(dir / "a"), lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // From another working directory: the resolved config holds absolute paths.
  result = run_lmrun({"check", (dir / "a" / "config.toml").string()}, dir.path());
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("path = \"" +
                        (lmrun::test::source_dir() / "data/tinyshakespeare/input.txt").string()));
}

TEST(Cli, ExperimentFileErrors) {
  auto result = run_lmrun({"check", "/nonexistent/exp.toml"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("experiment file /nonexistent/exp.toml does not exist"));
  TempDir dir;
  lmrun::test::write_file(dir / "syntax.toml", "[model\ntype = 1\n");
  result = run_lmrun({"check", (dir / "syntax.toml").string()}, dir.path());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("syntax.toml:1:"));
  EXPECT_THAT(result.output, HasSubstr("TOML syntax error"));
}

namespace {

std::vector<std::string> gpt2_bpe(std::vector<std::string> args) {
  const fs::path data = lmrun::test::source_dir() / "data" / "gpt2";
  const std::vector<std::string> tokenizer = {
      "--tokenizer", "bpe",
      "--set",       "tokenizer.vocab=" + (data / "encoder.json").string(),
      "--set",       "tokenizer.merges=" + (data / "vocab.bpe").string()};
  args.insert(args.end(), tokenizer.begin(), tokenizer.end());
  return args;
}

TEST(Tokenize, TextToIdsAndBackWithANamedTokenizer) {
  TempDir dir;
  auto result = run_lmrun(gpt2_bpe({"tokenize", "--text", "Hello world", "--text", " Hello"}));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "[15496, 995]\n[18435]\n");
  // One array per input line; --whole reads the input as one text (its newlines included).
  lmrun::test::write_file(dir / "two.txt", "Hello world\r\n Hello\n");
  result = run_lmrun(gpt2_bpe({"tokenize", "--input", (dir / "two.txt").string()}));
  EXPECT_EQ(result.output, "[15496, 995]\n[18435]\n");
  result = run_lmrun(gpt2_bpe({"tokenize", "--whole", "--input", (dir / "two.txt").string()}));
  EXPECT_EQ(result.output, "[15496, 995, 201, 198, 18435, 198]\n");  // \r\n is "\r", "\n"
  // --decode: a JSON array or spaced ids, one text a line.
  lmrun::test::write_file(dir / "ids.txt", "[15496, 995]\n18435 995\n");
  result = run_lmrun(gpt2_bpe({"tokenize", "--decode", "--input", (dir / "ids.txt").string()}));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "Hello world\n Hello world\n");
  // --fit trains a tokenizer that needs it, here on a two-letter alphabet.
  lmrun::test::write_file(dir / "ab.txt", "abba\n");
  result = run_lmrun(
      {"tokenize", "--tokenizer", "char", "--fit", (dir / "ab.txt").string(), "--text", "baa"});
  EXPECT_EQ(result.output, "[2, 1, 1]\n") << result.output;  // "\n" 0, a 1, b 2
}

TEST(Tokenize, ErrorsSayWhatToPass) {
  // The command line's own mistakes exit 2 (issue 21: one rule for options and --set).
  auto result = run_lmrun({"tokenize", "--text", "x"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("tokenize needs a tokenizer"));
  result = run_lmrun({"tokenize", "--tokenizer", "bpee", "--text", "x"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("unknown tokenizer 'bpee' (did you mean bpe?)"));
  result = run_lmrun({"tokenize", "--tokenizer", "bpe", "--set", "model.n_layer=2", "--text", "x"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("only tokenizer.KEY=VALUE applies"));
  result = run_lmrun(
      {"tokenize", "--tokenizer", "bpe", "--set", "tokenizer.vocab_sise=3", "--text", "x"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("vocab_size"));
  result = run_lmrun({"tokenize", "--tokenizer", "bpe", "--text", "x"});  // never fitted
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("encode before the tokenizer has a vocabulary"));
  TempDir dir;
  lmrun::test::write_file(dir / "ids.txt", "1 2\n3 x4\n");
  result = run_lmrun(gpt2_bpe({"tokenize", "--decode", "--input", (dir / "ids.txt").string()}));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("'x4' on input line 2 is not a token id"));
  result = run_lmrun(gpt2_bpe({"tokenize", "--decode", "--text", "50257"}));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("input 1: tokenizer 'bpe': id 50257"));
}

}  // namespace
