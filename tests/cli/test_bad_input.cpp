// Bad input through the lmrun binary (issue 21, "Reliability"): files that are not regular files
// (a FIFO must never hang lmrun), messages that say what is wrong, one exit-code rule (2: the
// command line, 1: the experiment or the run), and what `lmrun check` finds before any training.
// lmrun runs under timeout(1), so a hang fails the test (exit 124) instead of stalling it.
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::TempDir;
using testing::HasSubstr;
using testing::Not;

namespace {

fs::path gpt_tiny() { return lmrun::test::source_dir() / "experiments" / "gpt_tiny.toml"; }

// lmrun with `args` in the repository root, killed after 60 s (exit 124).
lmrun::test::ProgramResult lmrun_within(std::vector<std::string> args,
                                        const fs::path& cwd = lmrun::test::source_dir()) {
  args.insert(args.begin(), {"60", LMRUN_TEST_BINARY});
  return lmrun::test::run_program("timeout", args, cwd);
}

// `lmrun check gpt_tiny.toml --set S...`.
lmrun::test::ProgramResult check(const std::vector<std::string>& sets) {
  std::vector<std::string> args = {"check", gpt_tiny().string()};
  for (const auto& set : sets) args.insert(args.end(), {"--set", set});
  return lmrun_within(args);
}

void make_fifo(const fs::path& path) {
  fs::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0) << path;
}

// A trained two-step gpt_tiny run, made once for the tests that need one.
const fs::path& trained_run() {
  static TempDir dir;
  static const fs::path run = dir / "run";
  if (!fs::exists(run / "checkpoints" / "last")) {
    const auto result =
        lmrun_within({gpt_tiny().string(), "--set", "experiment.out_dir=" + run.string(), "--set",
                      "train.max_steps=2", "--set", "scheduler.warmup_steps=1", "--set",
                      "train.eval_batches=1", "--set", "generate.max_new_tokens=4"});
    EXPECT_EQ(result.exit_code, 0) << result.errors;
  }
  return run;
}

// A copy of the trained run, to damage.
fs::path copy_of_run(const TempDir& dir) {
  const fs::path copy = dir / "run";
  fs::copy(trained_run(), copy, fs::copy_options::recursive);
  return copy;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Files that are not regular files

TEST(Reliability, AFifoAsTheExperimentFileIsRefusedAtOnce) {
  TempDir dir;
  make_fifo(dir / "exp.toml");
  for (const char* command : {"check", ""}) {
    std::vector<std::string> args = {(dir / "exp.toml").string()};
    if (*command) args.insert(args.begin(), command);
    const auto result = lmrun_within(args, dir.path());
    EXPECT_EQ(result.exit_code, 1) << result.errors;
    EXPECT_THAT(result.errors, HasSubstr("exp.toml is a FIFO, not a regular file"));
  }
}

TEST(Reliability, AFifoInARunFolderIsRefusedAtOnce) {
  {
    TempDir dir;
    const fs::path run = copy_of_run(dir);
    std::vector<fs::path> tokenizer_files;  // the run's and each checkpoint's
    for (const auto& entry : fs::recursive_directory_iterator(run)) {
      if (entry.path().parent_path().filename() == "tokenizer")
        tokenizer_files.push_back(entry.path());
    }
    ASSERT_FALSE(tokenizer_files.empty());
    for (const auto& file : tokenizer_files) make_fifo(file);
    const auto result = lmrun_within({"generate", run.string(), "-n", "4"});
    EXPECT_EQ(result.exit_code, 1) << result.errors;
    EXPECT_THAT(result.errors, HasSubstr("char_tokenizer.txt is a FIFO, not a regular file"));
  }
  {
    TempDir dir;
    const fs::path run = copy_of_run(dir);
    make_fifo(run / "config.toml");
    const auto result = lmrun_within({"generate", run.string(), "-n", "4"});
    EXPECT_EQ(result.exit_code, 1) << result.errors;
    EXPECT_THAT(result.errors, HasSubstr("config.toml is a FIFO, not a regular file"));
  }
  {
    TempDir dir;
    make_fifo(dir / "prompts.txt");
    const auto result = lmrun_within(
        {"generate", trained_run().string(), "--prompts", (dir / "prompts.txt").string()});
    EXPECT_EQ(result.exit_code, 1) << result.errors;
    EXPECT_THAT(result.errors, HasSubstr("--prompts " + (dir / "prompts.txt").string() +
                                         " is a FIFO, not a regular file"));
  }
}

TEST(Reliability, AFifoAsAFileAnExperimentReadsIsRefusedByCheck) {
  TempDir dir;
  make_fifo(dir / "input.txt");
  const auto result = check({"data.path=" + (dir / "input.txt").string()});
  EXPECT_EQ(result.exit_code, 2) << result.errors;  // named on the command line
  EXPECT_THAT(result.errors, HasSubstr("input.txt is a FIFO, not a regular file"));
}

// ---------------------------------------------------------------------------------------------
// Messages

TEST(Reliability, AnExperimentThatIsNotAFileSaysWhatItIs) {
  TempDir dir;
  auto result = lmrun_within({"check", dir.path().string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.errors, HasSubstr(" is a folder"));
  EXPECT_THAT(result.errors, Not(HasSubstr("does not exist")));
  result = lmrun_within({"check", "/dev/null"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.errors, HasSubstr("/dev/null is a character device, not a regular file"));
}

TEST(Reliability, AnUnreadableExperimentIsAReadErrorNotATomlError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads a chmod 000 file: permissions not enforced";
  TempDir dir;
  lmrun::test::write_file(dir / "exp.toml", "[model]\n");
  fs::permissions(dir / "exp.toml", fs::perms::none);
  const auto result = lmrun_within({"check", (dir / "exp.toml").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.errors, HasSubstr("cannot read " + (dir / "exp.toml").string()));
  EXPECT_THAT(result.errors, HasSubstr("Permission denied"));
  EXPECT_THAT(result.errors, Not(HasSubstr("TOML")));
}

TEST(Reliability, AFilesystemErrorNamesThePathInOneLine) {
  // A folder name past NAME_MAX: std::filesystem throws (ENAMETOOLONG) whoever asks, root too.
  const std::string out = "/tmp/" + std::string(300, 'x') + "/export";
  const auto result =
      lmrun_within({"export", trained_run().string(), "--format", "safetensors", "-o", out});
  EXPECT_EQ(result.exit_code, 1) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr(std::string(300, 'x')));
  EXPECT_THAT(result.errors, HasSubstr("File name too long"));
  EXPECT_THAT(result.errors, Not(HasSubstr("filesystem error")));
}

TEST(Reliability, GenerateChecksItsOutputBeforeSampling) {
  TempDir dir;
  const fs::path out = dir / "missing" / "out.jsonl";
  lmrun::test::write_file(dir / "prompts.txt", "ROMEO:\n");
  const auto result = lmrun_within({"generate", trained_run().string(), "--prompts",
                                    (dir / "prompts.txt").string(), "-n", "4", "-o", out.string()});
  EXPECT_EQ(result.exit_code, 1) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("--output " + out.string() + ": its folder " +
                                       (dir / "missing").string() + " does not exist"));
  EXPECT_THAT(result.errors, Not(HasSubstr("generating from")));  // before the model loads
}

TEST(Reliability, AFloatPastTheRangeOfADoubleIsNamedSo) {
  auto result = check({"train.grad_clip=1e400"});
  EXPECT_EQ(result.exit_code, 2) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("1e400 is out of range of a float"));
  EXPECT_THAT(result.errors, Not(HasSubstr("string")));
}

TEST(Reliability, AFloatThatUnderflowsToZeroIsRefused) {
  auto result = check({"train.grad_clip=1e-400"});
  EXPECT_EQ(result.exit_code, 2) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("1e-400 is too small for a float: it would be 0"));
  result = check({"optimizer.betas=[0.9, 4e-320]"});  // a subnormal, in a list
  EXPECT_EQ(result.exit_code, 2) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("4e-320 is too small for a float"));
  EXPECT_EQ(check({"train.grad_clip=0.0"}).exit_code, 0);

  TempDir dir;
  std::string text = lmrun::test::read_file(gpt_tiny());
  text.replace(text.find("grad_clip = 1.0"), 15, "grad_clip = 1e-400");
  lmrun::test::write_file(dir / "exp.toml", text);
  result = lmrun_within({"check", (dir / "exp.toml").string()});
  EXPECT_EQ(result.exit_code, 1) << result.errors;  // the file's own value
  EXPECT_THAT(result.errors, HasSubstr("exp.toml:"));
  EXPECT_THAT(result.errors, HasSubstr("train.grad_clip: 1e-400 is too small for a float"));
}

TEST(Reliability, CommandLineErrorsExitTwoAndExperimentErrorsOne) {
  EXPECT_EQ(check({"train.max_steps=abc"}).exit_code, 2);  // a bad type
  EXPECT_EQ(check({"train.max_steps=-5"}).exit_code, 2);   // a bad value
  EXPECT_EQ(check({"train.max_stepz=5"}).exit_code, 2);    // an unknown key
  EXPECT_EQ(check({"no_equals"}).exit_code, 2);            // bad syntax
  EXPECT_EQ(lmrun_within({"check", gpt_tiny().string(), "--no-such-option"}).exit_code, 2);
  EXPECT_EQ(lmrun_within({"eval", trained_run().string(), "--split", "nope"}).exit_code, 2);
  EXPECT_EQ(lmrun_within({"generate", trained_run().string(), "-n", "-5"}).exit_code, 2);

  TempDir dir;
  std::string text = lmrun::test::read_file(gpt_tiny());
  text.replace(text.find("max_steps = 2000"), 16, "max_steps = -5");
  lmrun::test::write_file(dir / "exp.toml", text);
  const auto result = lmrun_within({"check", (dir / "exp.toml").string()});
  EXPECT_EQ(result.exit_code, 1) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("-5 is out of range"));
}

TEST(Reliability, ErrorsCutEchoedInputShort) {
  const std::string huge(100000, 'x');  // under Linux's 128 KiB limit on one argument
  for (const std::string& set :
       {"train.max_steps=" + huge, "train." + huge + "=1", "experiment." + huge}) {
    const auto result = check({set});
    EXPECT_EQ(result.exit_code, 2);
    EXPECT_LT(result.errors.size(), 2000u) << result.errors.substr(0, 2000);
    EXPECT_THAT(result.errors, HasSubstr("... ("));
    EXPECT_THAT(result.errors, HasSubstr(" bytes)"));
  }
}

// ---------------------------------------------------------------------------------------------
// What check (and a run, before training) finds

TEST(Reliability, APromptTheTokenizerCannotEncodeFailsBeforeTraining) {
  TempDir dir;
  const auto result =
      lmrun_within({gpt_tiny().string(), "--set", "experiment.out_dir=" + (dir / "run").string(),
                    "--set", "train.max_steps=2", "--set", "scheduler.warmup_steps=1", "--set",
                    "train.eval_batches=1", "--set", "generate.prompt=caf\u00e9 \u2603"});
  EXPECT_EQ(result.exit_code, 1) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("generate.prompt: "));
  EXPECT_THAT(result.output + result.errors, Not(HasSubstr("step ")));  // no training step ran
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoints" / "last"));
  EXPECT_THAT(result.errors, Not(HasSubstr("frame #")));
}

TEST(Reliability, MaxNewTokensHasAMaximum) {
  const auto result = check({"generate.max_new_tokens=1000000000000"});
  EXPECT_EQ(result.exit_code, 2) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("generate.max_new_tokens: 1000000000000 is out of range: "
                                       "expected in [0, 1000000]"));
  EXPECT_EQ(check({"generate.max_new_tokens=1000000"}).exit_code, 0);
}

TEST(Reliability, CheckFindsFilesThatDoNotExist) {
  auto result = check({"data.path=/nonexistent/input.txt"});
  EXPECT_EQ(result.exit_code, 2) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("data.path: /nonexistent/input.txt does not exist"));

  result = check(
      {"tokenizer.type=bpe", "tokenizer.vocab=/nonexistent/encoder.json",
       "tokenizer.merges=" + (lmrun::test::source_dir() / "data" / "gpt2" / "vocab.bpe").string()});
  EXPECT_EQ(result.exit_code, 2) << result.errors;
  EXPECT_THAT(result.errors,
              HasSubstr("tokenizer.vocab: /nonexistent/encoder.json does not exist"));
  EXPECT_THAT(result.errors, Not(HasSubstr("frame #")));
}

TEST(Reliability, AModelTooLargeForMemoryIsOneLine) {
  // 403M parameters (1.6 GB of fp32 weights) under a 2 GiB address-space limit: the size estimate,
  // against the machine's physical memory, lets it through; building it fails.
  TempDir dir;
  const std::string command =
      "ulimit -v 2097152; exec timeout 120 " + std::string(LMRUN_TEST_BINARY) + " " +
      gpt_tiny().string() + " --set experiment.out_dir=" + (dir / "run").string() +
      " --set model.n_layer=2 --set model.n_embd=4096 --set model.n_head=8" +
      " --set train.batch_size=1 --set train.max_steps=1 --set scheduler.warmup_steps=0";
  const auto result = lmrun::test::run_program("bash", {"-c", command}, lmrun::test::source_dir());
  if (result.errors.find("would need about") != std::string::npos)
    GTEST_SKIP() << "this machine has too little memory even for the estimate: " << result.errors;
  EXPECT_EQ(result.exit_code, 1) << result.errors;
  EXPECT_THAT(result.errors, HasSubstr("model 'transformer' does not fit in memory (4.0"));
  EXPECT_THAT(result.errors, HasSubstr(" parameters: 1.6"));
  EXPECT_THAT(result.errors, Not(HasSubstr("frame #")));
  EXPECT_THAT(result.errors, Not(HasSubstr("enforce fail")));
}
