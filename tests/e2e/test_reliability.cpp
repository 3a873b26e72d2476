// The checkpoint promise under hostile conditions: SIGKILL at random moments (checkpoint writes
// and evictions included), SIGINT/SIGTERM, two processes on one folder, resumes that would mix
// runs or rewrite finished ones, a full disk, and damaged checkpoint files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::read_file;
using lmrun::test::run_lmrun;
using lmrun::test::TempDir;
using lmrun::test::write_file;
using testing::HasSubstr;
using testing::Not;

namespace {

using Clock = std::chrono::steady_clock;

// A small, deterministic run (one thread) that checkpoints every step and keeps one periodic
// checkpoint, so that a kill lands in a write or an eviction about as often as in a step.
std::string experiment(const fs::path& out_dir, std::int64_t steps) {
  return "[experiment]\nname = \"hostile\"\nseed = 7\nout_dir = \"" + out_dir.string() +
         "\"\n"
         "[data]\ntype = \"text_file\"\npath = \"" +
         (lmrun::test::source_dir() / "data" / "tinyshakespeare" / "input.txt").string() +
         "\"\nval_fraction = 0.1\nblock_size = 32\n"
         "[tokenizer]\ntype = \"char\"\n"
         "[model]\ntype = \"transformer\"\nn_layer = 1\nn_head = 2\nn_embd = 32\ndropout = 0.1\n"
         "[optimizer]\ntype = \"adamw\"\nlr = 1e-3\n"
         "[train]\nbatch_size = 4\nmax_steps = " +
         std::to_string(steps) +
         "\neval_interval = 10\neval_batches = 2\nlog_interval = 1\nthreads = 1\n"
         "[[callbacks]]\ntype = \"checkpoint\"\nevery_steps = 1\nkeep_last_periodic = 1\n";
}

// metrics.jsonl's training loss by step.
std::map<std::int64_t, double> losses(const fs::path& run_dir) {
  std::map<std::int64_t, double> out;
  std::istringstream in(read_file(run_dir / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const auto record = nlohmann::json::parse(line);
    if (record.contains("loss")) out[record["step"].get<std::int64_t>()] = record["loss"];
  }
  return out;
}

nlohmann::json summary_of(const fs::path& run_dir) {
  return nlohmann::json::parse(read_file(run_dir / "summary.json"));
}

// lmrun started in the background, its output in a file; signals and waits.
class Background {
 public:
  Background(const std::vector<std::string>& args, const fs::path& log) {
    std::vector<std::string> argv = {LMRUN_TEST_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> pointers;
    for (auto& a : argv) pointers.push_back(a.data());
    pointers.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    EXPECT_EQ(posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, pointers.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  // The raw wait status.
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }
  // True, with the wait status, once it has ended.
  bool try_wait(int& status) {
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Waits until metrics.jsonl has a record of step >= `step` (or `limit` passes).
bool wait_for_step(const fs::path& run_dir, std::int64_t step,
                   std::chrono::seconds limit = std::chrono::seconds(120)) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    std::error_code ec;
    if (fs::exists(run_dir / "metrics.jsonl", ec)) {
      const auto seen = losses(run_dir);
      if (!seen.empty() && seen.rbegin()->first >= step) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool has_checkpoint(const fs::path& run_dir) {
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(run_dir / "checkpoints", ec)) {
    if (item.path().filename().string()[0] != '.' && fs::exists(item.path() / "state.toml", ec))
      return true;
  }
  return false;
}

}  // namespace

TEST(Kill, TwentyKillsAtRandomMomentsAllResumeToTheUninterruptedCurve) {
  TempDir dir;
  constexpr std::int64_t kSteps = 40;
  write_file(dir / "reference.toml", experiment(dir / "reference", kSteps));
  const auto started = Clock::now();
  auto result = run_lmrun({(dir / "reference.toml").string()});
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto reference = losses(dir / "reference");
  ASSERT_EQ(reference.size(), static_cast<std::size_t>(kSteps));
  // Kills between the first logged step and a little past the end (start-up is most of a short
  // run, and a loaded machine stretches it): the delay after step 1 is drawn over the training
  // time of the reference run.
  const double first_step = summary_of(dir / "reference")["startup_seconds"];
  const double training = std::max(0.5, seconds - first_step);

  std::mt19937 random(20261203);  // the delays are the same in every run of the test
  std::uniform_real_distribution<double> moment(0.0, 1.05 * training);
  int resumed = 0, restarted = 0, in_write = 0, in_eviction = 0;
  for (int kill = 0; kill < 20; ++kill) {
    const double at = moment(random);
    SCOPED_TRACE("kill " + std::to_string(kill) + " " + std::to_string(at) + " s after step 1");
    const fs::path run = dir / ("run-" + std::to_string(kill));
    write_file(dir / "run.toml", experiment(run, kSteps));
    {
      Background training({(dir / "run.toml").string()}, dir / "killed.log");
      ASSERT_TRUE(wait_for_step(run, 1)) << read_file(dir / "killed.log");
      std::this_thread::sleep_for(std::chrono::duration<double>(at));
      training.signal(SIGKILL);
      training.wait();
    }
    std::error_code ec;
    for (const auto& item : fs::directory_iterator(run / "checkpoints", ec)) {
      const std::string name = item.path().filename().string();
      in_write += name.rfind(".tmp-", 0) == 0;
      in_eviction += name.rfind(".removing-", 0) == 0 || name.rfind(".old-", 0) == 0;
    }
    // Whatever the moment, the folder is usable: resumed from its checkpoint, or started over
    // when the kill came before the first one.
    const bool resume = has_checkpoint(run);
    std::vector<std::string> args = {(dir / "run.toml").string()};
    if (resume) {
      args.insert(args.end(), {"--resume", run.string()});
    } else if (fs::exists(run)) {
      args.push_back("--force");
    }
    result = run_lmrun(args);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    (resume ? resumed : restarted) += 1;
    // Every logged step, before the kill and after the resume, as the uninterrupted run logged it.
    EXPECT_EQ(losses(run), reference);
    EXPECT_EQ(summary_of(run)["steps"], kSteps);
    for (const auto& item : fs::directory_iterator(run / "checkpoints"))
      EXPECT_NE(item.path().filename().string()[0], '.') << "leftover " << item.path();
    fs::remove_all(run);
  }
  std::cout << "kills: " << resumed << " resumed from a checkpoint, " << restarted
            << " before the first checkpoint (started over); " << in_write
            << " landed in a checkpoint write, " << in_eviction << " in an eviction\n";
  EXPECT_GE(resumed, 15);
}

TEST(Signals, SigtermStopsAtAStepWithItsCheckpointAndTheRunContinuesExactly) {
  TempDir dir;
  write_file(dir / "reference.toml", experiment(dir / "reference", 30));
  ASSERT_EQ(run_lmrun({(dir / "reference.toml").string()}).exit_code, 0);
  write_file(dir / "run.toml", experiment(dir / "run", 30));
  for (const int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(sig == SIGTERM ? "SIGTERM" : "SIGINT");
    fs::remove_all(dir / "run");
    Background training({(dir / "run.toml").string()}, dir / "run.log");
    ASSERT_TRUE(wait_for_step(dir / "run", 3)) << read_file(dir / "run.log");
    training.signal(sig);
    const int status = training.wait();
    ASSERT_TRUE(WIFEXITED(status)) << read_file(dir / "run.log");
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
    const std::string log = read_file(dir / "run.log");
    EXPECT_THAT(log,
                HasSubstr(sig == SIGTERM ? "interrupted by SIGTERM" : "interrupted by SIGINT"));
    const auto summary = summary_of(dir / "run");
    EXPECT_EQ(summary["stop_reason"], "interrupted");
    const std::int64_t stopped = summary["steps"];
    EXPECT_LT(stopped, 30);
    EXPECT_THAT(read_file(dir / "run" / "checkpoints" / "last" / "state.toml"),
                HasSubstr("step = " + std::to_string(stopped) + "\n"));
    auto result = run_lmrun({(dir / "run.toml").string(), "--resume", (dir / "run").string()});
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("at step " + std::to_string(stopped)));
    EXPECT_EQ(losses(dir / "run"), losses(dir / "reference"));
  }
}

TEST(Signals, ASecondSignalEndsTheProcessAtOnce) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 100000));
  // Steps long enough (a bigger model) that the second signal comes while the first one's step
  // is still running.
  Background training({(dir / "run.toml").string(), "--set", "model.n_embd=256", "--set",
                       "model.n_layer=4", "--set", "train.batch_size=32"},
                      dir / "run.log");
  ASSERT_TRUE(wait_for_step(dir / "run", 2)) << read_file(dir / "run.log");
  // A signal every 50 ms until it ends: two that arrive before the process runs merge into one
  // (a loaded machine), so the second to be delivered is whichever comes after the first.
  int status = 0;
  while (true) {
    training.signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (training.try_wait(status)) break;
  }
  ASSERT_TRUE(WIFSIGNALED(status)) << read_file(dir / "run.log");
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
}

TEST(RunFolder, OneProcessAtATimeTrainsAFolder) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 100000));
  Background first({(dir / "run.toml").string()}, dir / "first.log");
  ASSERT_TRUE(wait_for_step(dir / "run", 2)) << read_file(dir / "first.log");
  const std::string holder = "in use by another lmrun (pid " + std::to_string(first.pid()) + ")";
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, {"--force"}, {"--resume", (dir / "run").string()}}) {
    std::vector<std::string> args = {(dir / "run.toml").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto result = run_lmrun(args);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output, HasSubstr(holder));
  }
  first.signal(SIGTERM);
  EXPECT_EQ(WEXITSTATUS(first.wait()), 128 + SIGTERM);
  // Its records are its own: one line per step, in order.
  std::int64_t expected = 1;
  for (const auto& [step, loss] : losses(dir / "run")) EXPECT_EQ(step, expected++);
}

TEST(RunFolder, TwoRunsStartedTogetherOnANewFolderDoNotMix) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 12));
  Background one({(dir / "run.toml").string()}, dir / "one.log");
  Background two({(dir / "run.toml").string()}, dir / "two.log");
  const int a = one.wait(), b = two.wait();
  ASSERT_TRUE(WIFEXITED(a) && WIFEXITED(b));
  // Exactly one trains; the other is refused before writing anything.
  EXPECT_EQ(WEXITSTATUS(a) + WEXITSTATUS(b), 1)
      << read_file(dir / "one.log") << read_file(dir / "two.log");
  const std::string refused = read_file(dir / (WEXITSTATUS(a) == 1 ? "one.log" : "two.log"));
  EXPECT_THAT(refused, testing::AnyOf(HasSubstr("already exists"), HasSubstr("in use by")));
  EXPECT_EQ(losses(dir / "run").size(), 12u);
}

TEST(Resume, IntoAnotherRunsFolderIsRefusedAndChangesNothing) {
  TempDir dir;
  write_file(dir / "a.toml", experiment(dir / "a", 4));
  write_file(dir / "b.toml", experiment(dir / "b", 4));
  ASSERT_EQ(run_lmrun({(dir / "a.toml").string()}).exit_code, 0);
  ASSERT_EQ(run_lmrun({(dir / "b.toml").string()}).exit_code, 0);
  const std::string config = read_file(dir / "b" / "config.toml");
  const std::string metrics = read_file(dir / "b" / "metrics.jsonl");
  auto result = run_lmrun(
      {(dir / "b.toml").string(), "--resume", (dir / "a").string(), "--set", "train.max_steps=8"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("is another run's folder"));
  EXPECT_EQ(read_file(dir / "b" / "config.toml"), config);
  EXPECT_EQ(read_file(dir / "b" / "metrics.jsonl"), metrics);
  // A new folder may continue another run's checkpoint (a branch).
  write_file(dir / "c.toml", experiment(dir / "c", 8));
  result = run_lmrun({(dir / "c.toml").string(), "--resume", (dir / "a").string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(losses(dir / "c").begin()->first, 5);
}

TEST(Resume, AChangedExperimentIsRefusedListingWhatDiffers) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 4));
  ASSERT_EQ(run_lmrun({(dir / "run.toml").string(), "--set", "train.max_steps=2"}).exit_code, 0);
  const std::vector<std::string> resume = {(dir / "run.toml").string(), "--resume",
                                           (dir / "run").string()};
  auto changed = resume;
  changed.insert(changed.end(), {"--set", "train.batch_size=8", "--set", "experiment.seed=9",
                                 "--set", "optimizer.lr=0.01", "--set", "data.val_fraction=0.2"});
  auto result = run_lmrun(changed);
  EXPECT_EQ(result.exit_code, 1);
  for (const char* change : {"train.batch_size: 4 -> 8", "experiment.seed: 7 -> 9",
                             "optimizer.lr: 0.001 -> 0.01", "data.val_fraction: 0.1 -> 0.2"})
    EXPECT_THAT(result.output, HasSubstr(change));
  EXPECT_THAT(result.output, HasSubstr("--resume-changed"));
  EXPECT_EQ(summary_of(dir / "run")["steps"], 2);
  changed.push_back("--resume-changed");
  result = run_lmrun(changed);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("resuming with 4 change(s)"));
  // More steps alone is a continuation, not a change.
  result =
      run_lmrun({(dir / "run.toml").string(), "--resume", (dir / "run").string(), "--set",
                 "train.max_steps=6", "--set", "train.batch_size=8", "--set", "experiment.seed=9",
                 "--set", "optimizer.lr=0.01", "--set", "data.val_fraction=0.2"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(summary_of(dir / "run")["steps"], 6);
}

TEST(Resume, AFinishedRunSaysSoAndChangesNothing) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 4));
  ASSERT_EQ(run_lmrun({(dir / "run.toml").string()}).exit_code, 0);
  const fs::path last = dir / "run" / "checkpoints" / "last";
  const std::string summary = read_file(dir / "run" / "summary.json");
  const std::string weights = read_file(last / "model.pt");
  const std::string metrics = read_file(dir / "run" / "metrics.jsonl");
  for (int again = 0; again < 2; ++again) {
    const auto result =
        run_lmrun({(dir / "run.toml").string(), "--resume", (dir / "run").string()});
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("the run finished at step 4 (max_steps); nothing to do"));
    EXPECT_EQ(read_file(dir / "run" / "summary.json"), summary);
    EXPECT_EQ(read_file(last / "model.pt"), weights);
    EXPECT_EQ(read_file(dir / "run" / "metrics.jsonl"), metrics);
  }
  const auto result = run_lmrun({(dir / "run.toml").string(), "--resume", (dir / "run").string(),
                                 "--set", "train.max_steps=6"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(summary_of(dir / "run")["steps"], 6);
}

TEST(Resume, LeftoversOfInterruptedWritesAreRemovedNotRead) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 4));
  ASSERT_EQ(run_lmrun({(dir / "run.toml").string(), "--set", "train.max_steps=2"}).exit_code, 0);
  const fs::path checkpoints = dir / "run" / "checkpoints";
  fs::create_directories(checkpoints / ".tmp-step-000003-12345");
  write_file(checkpoints / ".tmp-step-000003-12345" / "state.toml", "step = 3\n");
  fs::create_directories(checkpoints / ".removing-step-000001");
  const auto result = run_lmrun({(dir / "run.toml").string(), "--resume", (dir / "run").string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("removed 2 leftover(s) of interrupted writes"));
  EXPECT_THAT(result.output, HasSubstr("at step 2"));
  EXPECT_FALSE(fs::exists(checkpoints / ".tmp-step-000003-12345"));
  EXPECT_FALSE(fs::exists(checkpoints / ".removing-step-000001"));
}

// A full disk, as a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so writes fail with
// EFBIG instead of killing): checkpoint files are larger than the limit, metrics lines not.
TEST(DiskFull, ACheckpointThatCannotBeWrittenIsAClearErrorAndThePreviousOneStays) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 6));
  ASSERT_EQ(run_lmrun({(dir / "run.toml").string(), "--set", "train.max_steps=2"}).exit_code, 0);
  const std::string script = "trap '' XFSZ; ulimit -f 40; exec \"$@\"";  // 40 KiB
  const auto full = lmrun::test::run_program(
      "/bin/bash", {"-c", script, "bash", LMRUN_TEST_BINARY, (dir / "run.toml").string(),
                    "--resume", (dir / "run").string()});
  const std::string output = full.output + full.errors;
  EXPECT_EQ(full.exit_code, 1) << output;
  EXPECT_THAT(output, HasSubstr("cannot write"));
  EXPECT_THAT(output, HasSubstr("model.pt"));
  EXPECT_THAT(output, HasSubstr("File too large"));
  EXPECT_THAT(output, Not(HasSubstr("terminate called")));
  EXPECT_THAT(output, Not(HasSubstr("frame #")));
  // The summary says what happened; the step-2 checkpoint is whole and resumes.
  EXPECT_THAT(summary_of(dir / "run")["stop_reason"].get<std::string>(), HasSubstr("failed:"));
  const auto result = run_lmrun({(dir / "run.toml").string(), "--resume", (dir / "run").string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("at step 2"));
}

TEST(DiskFull, AMetricsLineThatCannotBeWrittenStopsTheRunNamingTheFile) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 400));
  // Checkpoints off but `last`; 2 KiB of metrics fill up after a few dozen steps.
  const std::string script = "trap '' XFSZ; ulimit -f 2; exec \"$@\"";
  const auto full = lmrun::test::run_program(
      "/bin/bash", {"-c", script, "bash", LMRUN_TEST_BINARY, (dir / "run.toml").string(), "--set",
                    "callbacks.0.every_steps=0"});
  const std::string output = full.output + full.errors;
  EXPECT_EQ(full.exit_code, 1) << output;
  EXPECT_THAT(output, HasSubstr("cannot write " + (dir / "run" / "metrics").string()));
  EXPECT_THAT(output, Not(HasSubstr("frame #")));
}

TEST(Integrity, AFlippedBitInTheWeightsIsCaughtByItsChecksum) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 2));
  ASSERT_EQ(run_lmrun({(dir / "run.toml").string()}).exit_code, 0);
  const fs::path weights = dir / "run" / "checkpoints" / "last" / "model.pt";
  std::string bytes = read_file(weights);
  bytes[bytes.size() / 2] ^= 0x04;  // inside the tensor data: the zip still opens
  write_file(weights, bytes);
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"eval", (dir / "run").string()},
        {"generate", (dir / "run").string(), "-n", "4"},
        {(dir / "run.toml").string(), "--resume", (dir / "run").string(), "--set",
         "train.max_steps=4"}}) {
    const auto result = run_lmrun(command);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output, HasSubstr("model.pt is corrupt: its checksum is crc32:"));
  }
}

TEST(Integrity, StateValuesOutOfRangeOrOfTheWrongTypeAreRefused) {
  TempDir dir;
  write_file(dir / "run.toml", experiment(dir / "run", 2));
  ASSERT_EQ(run_lmrun({(dir / "run.toml").string()}).exit_code, 0);
  const fs::path state = dir / "run" / "checkpoints" / "last" / "state.toml";
  const std::string original = read_file(state);
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = original;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {replaced("step = 2\n", "step = 9223372036854775807\n"),
       "step = 9223372036854775807 is out of range"},
      {replaced("step = 2\n", "step = \"2\"\n"), "step is a string, expected an integer"},
      {replaced("elapsed_seconds = ", "elapsed_seconds = -"),
       "elapsed_seconds is not a finite number >= 0"},
      {replaced("tokens_seen = ", "tokens_seen = -"), "tokens_seen = -"},
  };
  for (const auto& [text, message] : cases) {
    write_file(state, text);
    const auto result = run_lmrun({(dir / "run.toml").string(), "--resume", (dir / "run").string(),
                                   "--set", "train.max_steps=4"});
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output, HasSubstr(message));
  }
}

TEST(Integrity, NonFiniteWeightsAreAnErrorNamingTheTensor) {
  TempDir dir;
  // A learning rate that blows the weights up: the run diverges and its checkpoint holds NaN.
  write_file(dir / "run.toml", experiment(dir / "run", 6));
  const auto run = run_lmrun(
      {(dir / "run.toml").string(), "--set", "optimizer.lr=1e30", "--set", "train.grad_clip=0"});
  ASSERT_EQ(run.exit_code, 1) << run.output;
  ASSERT_THAT(run.output, HasSubstr("training diverged"));
  const auto result = run_lmrun({"eval", (dir / "run").string()});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output,
              testing::ContainsRegex("'[a-z_.0-9]+' holds [0-9]+ non-finite values"));
}
