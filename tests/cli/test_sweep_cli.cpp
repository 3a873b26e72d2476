// lmrun sweep as a user runs it: real (tiny) trials as separate processes, a crash and a
// divergence recorded while the others finish, re-runs that skip finished trials, the refusal
// of a changed spec, shards merged by --report, validation before anything runs, and the median
// rule stopping a trial that falls behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "support/test_support.h"
#include "util/process.h"

namespace fs = std::filesystem;
using lmrun::test::read_file;
using lmrun::test::run_lmrun;
using lmrun::test::TempDir;
using lmrun::test::write_file;
using testing::HasSubstr;
using testing::Not;

namespace {

const fs::path kFaultDir = LMRUN_TEST_FAULT_DIR;

// A tiny gpt on tinyshakespeare (6 steps, an evaluation every 3) with the `fault` callback, and
// the given [sweep] table.
std::string sweep_file(const fs::path& out_dir, const std::string& sweep,
                       const std::string& fault = "at_step = 1000\nhow = \"abort\"") {
  return "[experiment]\nname = \"tiny\"\nout_dir = \"" + out_dir.string() +
         "\"\n"
         "[data]\ntype = \"text_file\"\npath = \"" +
         (lmrun::test::source_dir() / "data/tinyshakespeare/input.txt").string() +
         "\"\nblock_size = 16\n"
         "[tokenizer]\ntype = \"char\"\n"
         "[model]\ntype = \"transformer\"\nn_layer = 1\nn_head = 2\nn_embd = 32\n"
         "[optimizer]\ntype = \"adamw\"\nlr = 1e-3\n"
         "[train]\nbatch_size = 4\nmax_steps = 6\neval_interval = 3\neval_batches = 1\n"
         "log_interval = 3\n"
         "[[callbacks]]\ntype = \"fault\"\n" +
         fault + "\n" + sweep;
}

lmrun::test::ProcessResult sweep(const fs::path& file, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"sweep", file.string(), "--plugin-dir", kFaultDir.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_lmrun(args, lmrun::test::source_dir());
}

std::string status_of(const fs::path& trial_dir) {
  const std::string text = read_file(trial_dir / "status.toml");
  const auto at = text.find("status = '");
  return at == std::string::npos ? "" : text.substr(at + 10, text.find('\'', at + 10) - at - 10);
}

}  // namespace

TEST(Sweep, ACrashAndADivergenceAreRecordedAndTheOthersFinish) {
  TempDir dir;
  const fs::path file = dir / "sweep.toml";
  write_file(file, sweep_file(dir / "out", R"(
[sweep]
[sweep.parameters]
"callbacks.0.at_step" = [1000, 2]
"optimizer.lr" = [1e-3, 1e12]
)"));
  auto result = sweep(file, {"--jobs", "2"});
  EXPECT_EQ(result.exit_code, 1) << result.output;  // some trials did not finish
  // trial-0000: at_step 1000, lr 1e-3 completes; trial-0001: lr 1e12 diverges; trials 2 and 3
  // abort at step 2 (before lr 1e12 can diverge: the loss is still finite after one step).
  EXPECT_EQ(status_of(dir / "out/trial-0000"), "completed") << result.output;
  EXPECT_EQ(status_of(dir / "out/trial-0001"), "diverged") << result.output;
  EXPECT_EQ(status_of(dir / "out/trial-0002"), "failed");
  EXPECT_EQ(status_of(dir / "out/trial-0003"), "failed");
  EXPECT_THAT(result.output, HasSubstr("trial-0002 failed: crashed: signal 6"));
  EXPECT_THAT(result.output, HasSubstr("trial-0001 diverged: training diverged"));
  EXPECT_THAT(result.output, HasSubstr("best: trial-0000 (callbacks.0.at_step=1000 "
                                       "optimizer.lr=0.001): val_loss"));
  EXPECT_THAT(result.output, HasSubstr("2 trial(s) failed or were killed"));
  const std::string csv = read_file(dir / "out/sweep.csv");
  EXPECT_THAT(csv, HasSubstr("1,trial-0000,completed,1000,0.001,"));
  EXPECT_TRUE(fs::exists(dir / "out/trial-0002/log.txt"));
  // Each trial's experiment runs by hand too.
  EXPECT_THAT(read_file(dir / "out/trial-0000/experiment.toml"), HasSubstr("lr = 0.001"));
  // Its folder says what it ran.
  EXPECT_THAT(read_file(dir / "out/trial-0001/status.toml"),
              HasSubstr("[params]\n'callbacks.0.at_step' = '1000'\n'optimizer.lr' = '1e+12'"));

  // Again: the finished trials are skipped, the failed ones run (and fail) again.
  result = sweep(file);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("4 trials, 2 already finished, 2 to run"));
  EXPECT_THAT(result.output, Not(HasSubstr("trial-0000 started")));
  EXPECT_THAT(result.output, HasSubstr("trial-0002 started"));

  // A changed spec in the same folder is refused, and nothing runs.
  result = sweep(file, {"--set", "train.max_steps=5"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("holds a different sweep"));
  EXPECT_THAT(result.output, Not(HasSubstr("started")));
}

TEST(Sweep, ShardsCoverTheSweepAndTheReportMergesThem) {
  TempDir dir;
  const fs::path file = dir / "sweep.toml";
  write_file(file, sweep_file(dir / "out", R"(
[sweep]
method = "random"
trials = 3
seed = 1
[sweep.parameters]
"optimizer.lr" = { distribution = "loguniform", min = 1e-4, max = 1e-2 }
)"));
  auto first = sweep(file, {"--shard", "0/2"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("shard 0/2: 2 trials, 0 already finished, 2 to run"));
  EXPECT_THAT(first.output, HasSubstr("trial-0000 started"));
  EXPECT_THAT(first.output, HasSubstr("trial-0002 started"));
  EXPECT_THAT(first.output, HasSubstr("3 trials (2 completed, 1 pending)"));
  auto second = sweep(file, {"--shard", "1/2"});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("trial-0001 started"));
  EXPECT_THAT(second.output, Not(HasSubstr("trial-0000 started")));

  auto report = run_lmrun({"sweep", "--report", (dir / "out").string()});
  ASSERT_EQ(report.exit_code, 0) << report.output;
  EXPECT_THAT(report.output, HasSubstr("3 trials (3 completed)"));
  const std::string json = read_file(dir / "out/sweep.json");
  for (const char* trial : {"trial-0000", "trial-0001", "trial-0002"})
    EXPECT_THAT(json, HasSubstr(std::string("\"trial\": \"") + trial + "\""));

  report = run_lmrun({"sweep", "--report", dir.path().string()});
  EXPECT_EQ(report.exit_code, 1);
  EXPECT_THAT(report.output, HasSubstr("is not a sweep folder"));
}

TEST(Sweep, EveryTrialIsValidatedBeforeAnyRuns) {
  TempDir dir;
  const fs::path file = dir / "sweep.toml";
  write_file(file, sweep_file(dir / "out", R"(
[sweep]
[sweep.parameters]
"model.n_layr" = [1, 2]
)"));
  auto result = sweep(file);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("2 of 2 trials"));
  EXPECT_THAT(result.output, HasSubstr("did you mean n_layer?"));
  EXPECT_FALSE(fs::exists(dir / "out"));

  // Only the third value is bad (32 is not divisible by 3 heads): still nothing runs.
  write_file(file, sweep_file(dir / "out", R"(
[sweep]
[sweep.parameters]
"model.n_head" = [1, 2, 3]
)"));
  result = sweep(file);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("1 of 3 trials"));
  EXPECT_THAT(result.output, HasSubstr("trial-0002 (model.n_head=3)"));
  EXPECT_FALSE(fs::exists(dir / "out"));

  result = sweep(file, {"--dry-run", "--set", "model.n_embd=48"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("trial-0002  model.n_head=3"));
  EXPECT_THAT(result.output, HasSubstr("all 3 trials are valid"));
  EXPECT_FALSE(fs::exists(dir / "out"));

  // A single run of a sweep file, and a sweep of a file without [sweep], say what to do.
  result = run_lmrun({file.string(), "--plugin-dir", kFaultDir.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("run with `lmrun sweep`"));
  write_file(dir / "plain.toml", sweep_file(dir / "out", ""));
  result = sweep(dir / "plain.toml");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("has no [sweep] section"));
}

TEST(Sweep, ASweepOverTypesDropsTheOtherTypesKeysAndChecksEachPlan) {
  TempDir dir;
  const fs::path file = dir / "sweep.toml";
  // sgd takes no betas: each sgd trial drops adamw's, with one note; min_lr above one trial's lr
  // is caught by --dry-run, which runs the cross-section checks of every trial.
  write_file(dir / "base.toml", sweep_file(dir / "out", ""));
  write_file(file, R"(base = "base.toml"
[optimizer]
betas = [0.9, 0.95]
[scheduler]
type = "cosine"
warmup_steps = 1
min_lr = 1e-4
[sweep]
[sweep.parameters]
"optimizer.type" = ["adamw", "sgd"]
"optimizer.lr" = [1e-3, 2e-3]
)");
  auto result = sweep(file, {"--dry-run"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("all 4 trials are valid"));
  EXPECT_THAT(result.output,
              HasSubstr("lmrun: note: optimizer.type changed from \"adamw\" to \"sgd\""));
  EXPECT_THAT(result.output, HasSubstr("dropped betas, which sgd does not take"));
  const auto note = result.output.find("lmrun: note:");
  EXPECT_EQ(result.output.find("lmrun: note:", note + 1), std::string::npos)
      << "one note for the trials that change the type alike:\n"
      << result.output;

  result = sweep(file, {"--dry-run", "--set", "scheduler.min_lr=0.01"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("4 of 4 trials"));
  EXPECT_THAT(result.output, HasSubstr("min_lr = 0.01 is above the optimizer's lr = 0.002"));
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(Sweep, TheMedianRuleStopsATrialThatFallsBehind) {
  TempDir dir;
  const fs::path file = dir / "sweep.toml";
  // Every trial sleeps 4 s after step 4, past its first evaluation (step 3): time for the sweep
  // to compare it. lr 1e-7 barely moves from the initial loss; 1e-2 is well below it by step 3.
  write_file(file, sweep_file(dir / "out", R"(
[sweep]
[sweep.parameters]
"optimizer.lr" = [1e-2, 1e-7]
[sweep.early_termination]
rule = "median"
grace_steps = 3
min_trials = 1
)",
                              "at_step = 4\nhow = \"sleep\"\nseconds = 4.0"));
  auto result = sweep(file);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(status_of(dir / "out/trial-0000"), "completed");
  EXPECT_EQ(status_of(dir / "out/trial-0001"), "pruned") << result.output;
  EXPECT_THAT(result.output, HasSubstr("trial-0001: stopping it by the median rule: val_loss"));
  EXPECT_THAT(result.output, HasSubstr("at step 3 is worse than the median"));
  EXPECT_THAT(result.output, HasSubstr("of 1 finished trials"));
  // A pruned trial is finished: a re-run skips it.
  result = sweep(file);
  EXPECT_THAT(result.output, HasSubstr("2 already finished, 0 to run"));
}

TEST(Sweep, SigtermStopsTheRunningTrialsAndRecordsThemAsKilled) {
  TempDir dir;
  const fs::path file = dir / "sweep.toml";
  write_file(file, sweep_file(dir / "out", R"(
[sweep]
[sweep.parameters]
"optimizer.lr" = [1e-3, 2e-3]
)",
                              "at_step = 2\nhow = \"hang\""));
  pid_t pid = 0;
  ASSERT_EQ(lmrun::host::spawn_process({LMRUN_TEST_BINARY, "sweep", file.string(), "--plugin-dir",
                                        kFaultDir.string(), "--jobs", "2"},
                                       lmrun::host::environment_with({}), dir / "sweep.log", pid),
            0);
  // Both trials running (and hanging after step 2), as a scheduler's time limit would find them.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto running = [&] {
    for (const char* trial : {"trial-0000", "trial-0001"}) {
      if (!fs::exists(dir / "out" / trial / "status.toml") ||
          status_of(dir / "out" / trial) != "running")
        return false;
    }
    return true;
  };
  while (!running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(running()) << read_file(dir / "sweep.log");
  // The same sweep started again (a shard submitted twice) leaves the running trials alone.
  auto again = sweep(file);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.output, HasSubstr("trial-0000 is being run by another sweep process"));
  EXPECT_THAT(again.output, HasSubstr("2 trial(s) are still running in another sweep process"));
  EXPECT_EQ(status_of(dir / "out/trial-0000"), "running");
  kill(pid, SIGTERM);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(WIFEXITED(status)) << read_file(dir / "sweep.log");
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string log = read_file(dir / "sweep.log");
  EXPECT_THAT(log, HasSubstr("interrupted by signal 15"));
  EXPECT_THAT(log, HasSubstr("2 killed"));
  EXPECT_THAT(log, HasSubstr("run the same command again"));
  EXPECT_EQ(status_of(dir / "out/trial-0000"), "killed");
  EXPECT_EQ(status_of(dir / "out/trial-0001"), "killed");
}
