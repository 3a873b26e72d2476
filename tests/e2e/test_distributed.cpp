// Data-parallel training with real processes over loopback (c10d Gloo): two ranks with half the
// batch each follow one process's loss curve, resume works with two ranks, and a bad world is
// refused with the variable to fix.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::read_file;
using lmrun::test::run_lmrun;
using lmrun::test::TempDir;
using testing::HasSubstr;

namespace {

// Agreement between the two: the same data and the same arithmetic but for the order in which
// gradients and losses are summed (float rounding), over 20 steps.
constexpr double kTolerance = 1e-4;

std::string experiment(const fs::path& out_dir) {
  return "[experiment]\nname = \"dp\"\nout_dir = \"" + out_dir.string() +
         "\"\n[data]\ntype = \"text_file\"\npath = \"" +
         (lmrun::test::source_dir() / "data/tinyshakespeare/input.txt").string() +
         "\"\nblock_size = 32\n[tokenizer]\ntype = \"char\"\n"
         "[model]\ntype = \"transformer\"\nn_layer = 2\nn_head = 2\nn_embd = 64\n"
         "[optimizer]\ntype = \"adamw\"\nlr = 3e-3\n"
         "[train]\nbatch_size = 8\nmax_steps = 20\neval_interval = 10\neval_batches = 2\n"
         "log_interval = 5\n";
}

// metric -> step -> value, from a run's metrics.jsonl.
std::map<std::string, std::map<int, double>> curves(const fs::path& run_dir) {
  std::map<std::string, std::map<int, double>> out;
  std::istringstream in(read_file(run_dir / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const int step = std::stoi(line.substr(line.find(':') + 1));
    for (const char* metric :
         {"loss", "val_loss", "train_loss", "val_accuracy", "train_accuracy"}) {
      const std::string key = std::string("\"") + metric + "\": ";
      const auto at = line.find(key);
      if (at != std::string::npos) out[metric][step] = std::stod(line.substr(at + key.size()));
    }
  }
  return out;
}

void expect_same_curves(const fs::path& a, const fs::path& b, double tolerance,
                        const std::vector<std::string>& metrics = {"loss", "val_loss",
                                                                   "train_loss"}) {
  const auto ca = curves(a), cb = curves(b);
  for (const auto& metric : metrics) {
    ASSERT_EQ(ca.count(metric), 1u) << metric;
    ASSERT_EQ(cb.count(metric), 1u) << metric;
    const auto& x = ca.at(metric);
    const auto& y = cb.at(metric);
    ASSERT_EQ(x.size(), y.size()) << metric;
    ASSERT_FALSE(x.empty()) << metric;
    for (const auto& [step, value] : x) {
      ASSERT_EQ(y.count(step), 1u) << metric << " at step " << step;
      EXPECT_NEAR(value, y.at(step), tolerance) << metric << " at step " << step;
    }
  }
}

}  // namespace

TEST(DataParallel, TwoRanksFollowOneProcessWithTheSameGlobalBatch) {
  TempDir dir;
  lmrun::test::write_file(dir / "one.toml", experiment(dir / "one"));
  lmrun::test::write_file(dir / "two.toml", experiment(dir / "two"));
  auto one = run_lmrun({(dir / "one.toml").string()});
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto two =
      run_lmrun({"--nproc", "2", (dir / "two.toml").string(), "--set", "train.batch_size=4"});
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_THAT(two.output, HasSubstr("world      2 ranks (c10d Gloo at 127.0.0.1:"));
  EXPECT_THAT(two.output, HasSubstr("batch 4 per rank, 8 in all"));
  // Only rank 0 prints and writes.
  EXPECT_EQ(two.output.find("done: "), two.output.rfind("done: ")) << two.output;
  EXPECT_TRUE(fs::exists(dir / "two/summary.json"));
  EXPECT_TRUE(fs::exists(dir / "two/checkpoints/last"));
  expect_same_curves(dir / "one", dir / "two", kTolerance);
  // The summary counts every rank's tokens: 20 steps of 8 sequences of 32.
  EXPECT_THAT(read_file(dir / "two/summary.json"), HasSubstr("\"tokens_seen\": 5120"));
}

TEST(DataParallel, MetricsUnderTwoRanksAreThoseOfOneProcess) {
  // Every rank evaluates the whole global batches (in chunks of batch_size) when [[metrics]] are
  // set, and the ranks average the values, so val_accuracy is
  // over the same 2 x 8 sequences of 32 tokens as one process's. Rounding may flip an argmax
  // whose two logits tie to 1e-7: the tolerance allows one such flip in the 512 predictions.
  TempDir dir;
  const std::string metric = "[[metrics]]\ntype = \"accuracy\"\n";
  lmrun::test::write_file(dir / "one.toml", experiment(dir / "one") + metric);
  lmrun::test::write_file(dir / "two.toml", experiment(dir / "two") + metric);
  auto one = run_lmrun({(dir / "one.toml").string()});
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto two =
      run_lmrun({"--nproc", "2", (dir / "two.toml").string(), "--set", "train.batch_size=4"});
  ASSERT_EQ(two.exit_code, 0) << two.output;
  expect_same_curves(dir / "one", dir / "two", kTolerance, {"loss", "val_loss", "train_loss"});
  expect_same_curves(dir / "one", dir / "two", 1.01 / 512, {"val_accuracy", "train_accuracy"});
  EXPECT_THAT(read_file(dir / "two/summary.json"), HasSubstr("\"val_accuracy\": 0."));
}

TEST(DataParallel, ResumeWithTwoRanksContinuesTheSameCurve) {
  TempDir dir;
  lmrun::test::write_file(dir / "whole.toml", experiment(dir / "whole"));
  lmrun::test::write_file(dir / "halves.toml", experiment(dir / "halves"));
  const std::vector<std::string> two = {"--nproc", "2", "--set", "train.batch_size=4"};
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.end(), two.begin(), two.end());
    return run_lmrun(args);
  };
  auto whole = run({(dir / "whole.toml").string()});
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  auto first = run({(dir / "halves.toml").string(), "--set", "train.max_steps=10"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto second = run({(dir / "halves.toml").string(), "--resume", (dir / "halves").string()});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("resumed from"));
  expect_same_curves(dir / "whole", dir / "halves", 1e-6);
}

TEST(DataParallel, ABadWorldIsRefusedNamingTheVariable) {
  TempDir dir;
  lmrun::test::write_file(dir / "x.toml", experiment(dir / "x"));
  const std::string file = (dir / "x.toml").string();
  auto result = run_lmrun({file}, fs::current_path(), {"WORLD_SIZE=2"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("WORLD_SIZE is set but RANK is not"));
  EXPECT_THAT(result.output, HasSubstr("lmrun --nproc N FILE.toml"));
  result = run_lmrun({file}, fs::current_path(),
                     {"WORLD_SIZE=2", "RANK=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=1"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("RANK=2 is outside 0..1"));
  result = run_lmrun({file}, fs::current_path(), {"WORLD_SIZE=2", "RANK=0"});
  EXPECT_THAT(result.output, HasSubstr("WORLD_SIZE > 1 needs MASTER_ADDR"));
  result = run_lmrun({"--nproc", "2", file}, fs::current_path(), {"WORLD_SIZE=2"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("WORLD_SIZE is already set"));
  result = run_lmrun({"--nproc", "2", "plugins"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("--nproc applies to a run"));
  EXPECT_FALSE(fs::exists(dir / "x"));
}

// A script starts `lmrun --nproc 2` in the background (its SIGINT ignored, as shells do for
// background jobs) and stops it with kill -INT: the workers stop together at a step, with the
// run's last checkpoint and summary, and none is left running.
TEST(DataParallel, SigintFromAScriptStopsEveryWorkerWithACheckpoint) {
  TempDir dir;
  std::string long_run = experiment(dir / "run");
  long_run.replace(long_run.find("max_steps = 20"), 14, "max_steps = 100000");
  lmrun::test::write_file(dir / "run.toml", long_run);
  const std::string script =
      "\"$0\" --nproc 2 \"$1\" > \"$2/log.txt\" 2>&1 &\n"
      "pid=$!\n"
      "for i in $(seq 1200); do grep -q '\"step\": 10,' \"$2/run/metrics.jsonl\" 2>/dev/null && "
      "break; sleep 0.1; done\n"
      "kill -INT $pid\n"
      "wait $pid\n"
      "echo \"exit=$?\"\n"
      "sleep 0.5\n"
      // lmrun processes (not this shell, whose command line names the file too) still there
      "left=0; for p in $(pgrep -f \"$1\"); do\n"
      "  [ \"$(readlink /proc/$p/exe)\" = \"$(readlink -f \"$0\")\" ] && left=1; done\n"
      "[ $left = 1 ] && echo 'workers left' || echo 'no workers left'\n";
  const auto result = lmrun::test::run_program(
      "/bin/bash",
      {"-c", script, LMRUN_TEST_BINARY, (dir / "run.toml").string(), dir.path().string()});
  const std::string log = read_file(dir / "log.txt");
  EXPECT_THAT(result.output, HasSubstr("exit=130")) << log;
  EXPECT_THAT(result.output, HasSubstr("no workers left")) << log;
  EXPECT_THAT(log, HasSubstr("interrupted by SIGINT"));
  const std::string summary = read_file(dir / "run" / "summary.json");
  EXPECT_THAT(summary, HasSubstr("\"stop_reason\": \"interrupted\""));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "last" / "model.pt"));
}
