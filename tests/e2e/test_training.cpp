// Real experiments, kept small: every shipped experiment for a few steps, exact resume, generation
// and evaluation from a run folder, and the ways a run can fail.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <map>
#include <sstream>

#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include "config/toml_document.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::read_file;
using lmrun::test::run_lmrun;
using lmrun::test::TempDir;
using testing::HasSubstr;
using testing::Not;

namespace {

fs::path experiment(const std::string& name) {
  return lmrun::test::source_dir() / "experiments" / (name + ".toml");
}

// Settings that make any shipped experiment a few-second run.
std::vector<std::string> short_run(const fs::path& file, const fs::path& out_dir,
                                   std::int64_t steps) {
  std::vector<std::string> args = {file.string(),
                                   "--set",
                                   "train.max_steps=" + std::to_string(steps),
                                   "--set",
                                   "train.eval_interval=2",
                                   "--set",
                                   "train.eval_batches=2",
                                   "--set",
                                   "train.log_interval=1",
                                   "--set",
                                   "experiment.out_dir=" + out_dir.string()};
  // The document with its `base` files merged: a section may come from the base.
  const toml::table doc = lmrun::host::load_document(file, {}).root;
  if (doc.contains("scheduler")) args.insert(args.end(), {"--set", "scheduler.warmup_steps=1"});
  if (doc.contains("generate")) args.insert(args.end(), {"--set", "generate.max_new_tokens=16"});
  return args;
}

// metrics.jsonl lines of the training log steps, by step, without the timing fields mfu and
// tokens_per_second (which vary).
std::map<int, std::string> loss_lines(const fs::path& run_dir) {
  std::map<int, std::string> out;
  std::istringstream in(read_file(run_dir / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find(", \"mfu\"");
    if (line.find("\"loss\"") == std::string::npos || at == std::string::npos) continue;
    EXPECT_NE(line.find("\"tokens_per_second\""), std::string::npos) << line;
    out[std::stoi(line.substr(line.find(':') + 1))] = line.substr(0, at);
  }
  return out;
}

}  // namespace

TEST(Experiments, EveryShippedExperimentRunsAFewSteps) {
  std::vector<fs::path> files;
  for (const auto& item : fs::directory_iterator(lmrun::test::source_dir() / "experiments")) {
    if (item.path().extension() != ".toml") continue;
    if (toml::parse_file(item.path().string()).contains("sweep")) continue;  // run by lmrun sweep
    files.push_back(item.path());
  }
  ASSERT_FALSE(files.empty());
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    TempDir dir;
    const auto result = run_lmrun(short_run(file, dir / "run", 4), lmrun::test::source_dir());
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("stopped at step 4: max_steps"));
    // A cross-validation (data.folds) is a run per fold, and their statistics.
    const bool folds = fs::exists(dir / "run" / "fold-0");
    if (folds) {
      EXPECT_TRUE(fs::exists(dir / "run" / "cross_validation.json"));
    }
    const fs::path run = folds ? dir / "run" / "fold-0" : dir / "run";
    const std::string summary = read_file(run / "summary.json");
    EXPECT_THAT(summary, HasSubstr("\"steps\": 4"));
    EXPECT_THAT(summary, HasSubstr("\"val_loss\": "));
    EXPECT_TRUE(fs::exists(run / "checkpoints" / "last" / "model.pt"));
    EXPECT_TRUE(fs::exists(run / "config.toml"));
    EXPECT_EQ(loss_lines(run).size(), 4u);
    // Every shipped model counts its FLOPs, so the log and the summary carry its MFU.
    EXPECT_THAT(result.output, ::testing::ContainsRegex("ms/step \\| mfu +[0-9.]+%"));
    for (const char* key : {"\"mfu\": 0.", "\"model_flops_per_token\": ", "\"peak_gflops\": ",
                            "\"startup_seconds\": ", "\"peak_rss_mib\": "}) {
      EXPECT_THAT(summary, HasSubstr(key));
    }
  }
}

// A peak given in the experiment is the MFU's denominator: gpt_tiny's count is 6N + 12 L T C =
// 6 * 801,664 + 12 * 4 * 64 * 128 = 5,203,200 FLOPs per token.
TEST(Experiments, MfuIsModelFlopsOverTheGivenPeak) {
  TempDir dir;
  auto args = short_run(experiment("gpt_tiny"), dir / "run", 2);
  args.insert(args.end(), {"--set", "train.peak_gflops=1000"});
  const auto result = run_lmrun(args, lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const std::string summary = read_file(dir / "run" / "summary.json");
  EXPECT_THAT(summary, HasSubstr("\"model_flops_per_token\": 5203200.0"));
  EXPECT_THAT(summary, HasSubstr("\"peak_gflops\": 1000.0"));
  auto number = [&](const std::string& key) {
    return std::stod(summary.substr(summary.find("\"" + key + "\": ") + key.size() + 4));
  };
  EXPECT_NEAR(number("mfu"), 5.2032e6 * number("tokens_per_second") / 1e12, 1e-9);
}

// [[metrics]] on a language model: next-token accuracy at every evaluation, logged and
// monitored like the loss, and reported by `lmrun eval` over a whole split.
TEST(Training, MetricPluginsAreEvaluatedLoggedAndMonitored) {
  TempDir dir;
  lmrun::test::write_file(dir / "acc.toml", "base = \"" + experiment("gpt_tiny").string() + "\"\n" +
                                                R"(
[[metrics]]
type = "accuracy"
[[metrics]]
type = "accuracy"
top_k = 5
[[callbacks]]
type = "early_stopping"
monitor = "val_accuracy"
mode = "max"
patience = 10
)");
  // The file holds gpt_tiny through `base`, so short_run cannot see its scheduler: set it here.
  auto with_base = [&](const fs::path& file, const fs::path& out) {
    auto args = short_run(file, out, 4);
    args.insert(args.end(),
                {"--set", "scheduler.warmup_steps=1", "--set", "generate.max_new_tokens=4"});
    return args;
  };
  auto result = run_lmrun(with_base(dir / "acc.toml", dir / "run"), lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("metric     accuracy (top_k=1)"));
  EXPECT_THAT(result.output, HasSubstr("| val_accuracy 0."));
  EXPECT_THAT(result.output, HasSubstr("| val_top5_accuracy 0."));
  const std::string metrics = read_file(dir / "run" / "metrics.jsonl");
  EXPECT_THAT(metrics, HasSubstr("\"train_accuracy\": 0."));
  EXPECT_THAT(read_file(dir / "run" / "metrics.csv"), HasSubstr(",val_accuracy,"));
  EXPECT_THAT(read_file(dir / "run" / "summary.json"), HasSubstr("\"val_top5_accuracy\": 0."));

  auto eval = run_lmrun({"eval", (dir / "run").string()});
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_THAT(eval.output, testing::ContainsRegex("val_accuracy +0\\."));

  // A metric a classification dataset needs is refused on a language model, before any step.
  lmrun::test::write_file(dir / "f1.toml", "base = \"" + experiment("gpt_tiny").string() +
                                               "\"\n[[metrics]]\ntype = \"f1\"\n");
  result = run_lmrun(with_base(dir / "f1.toml", dir / "f1"), lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("metrics.0: metric 'f1': f1 needs a classification"));
  EXPECT_FALSE(fs::exists(dir / "f1"));
}

// The instrument callbacks on a real run: grad_norm's and lr_monitor's values land in
// metrics.jsonl and metrics.csv, a declared per-layer norm is a metric early_stopping may watch,
// and lr_finder sweeps the learning rate, writes its curve and ends the run.
TEST(Training, GradNormLrMonitorAndLrFinderOnARealRun) {
  TempDir dir;
  lmrun::test::write_file(dir / "finder.toml",
                          "base = \"" + experiment("gpt_tiny").string() + "\"\n" + R"(
[[callbacks]]
type = "grad_norm"
every_steps = 1
layers = ["blocks.0", "wte"]
[[callbacks]]
type = "lr_monitor"
every_steps = 1
[[callbacks]]
type = "early_stopping"
monitor = "grad_norm/blocks.0"
mode = "max"
patience = 100
[[callbacks]]
type = "lr_finder"
min_lr = 1e-4
max_lr = 1.0
num_steps = 6
skip_begin = 1
skip_end = 1
)");
  auto args = short_run(dir / "finder.toml", dir / "run", 20);
  args.insert(args.end(),
              {"--set", "scheduler.warmup_steps=1", "--set", "generate.max_new_tokens=4"});
  const auto result = run_lmrun(args, lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("stopped at step 6: lr_finder: range test complete: 6 "
                                       "steps from lr 0.0001 to 1; suggested lr "));
  const auto summary = nlohmann::json::parse(read_file(dir / "run" / "summary.json"));
  EXPECT_EQ(summary["steps"], 6);

  // The finder's curve: one point per step, at lr 1e-4 * 10^(4 (i - 1) / 5).
  const auto curve = nlohmann::json::parse(read_file(dir / "run" / "lr_finder.json"));
  EXPECT_EQ(curve["status"], "complete");
  ASSERT_EQ(curve["points"].size(), 6u);
  EXPECT_EQ(curve["points"][0]["lr"].get<double>(), 1e-4);
  EXPECT_EQ(curve["points"][5]["lr"].get<double>(), 1.0);
  EXPECT_TRUE(curve["suggested_lr"].is_number());
  std::istringstream csv(read_file(dir / "run" / "lr_finder.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "step,lr,loss,smoothed_loss");
  std::getline(csv, line);
  EXPECT_THAT(line, testing::StartsWith("1,0.0001,4."));

  // Every step's record has the norms and the learning rate the finder set.
  std::map<int, nlohmann::json> records;
  std::istringstream jsonl(read_file(dir / "run" / "metrics.jsonl"));
  while (std::getline(jsonl, line)) {
    const auto record = nlohmann::json::parse(line);
    if (record.contains("grad_norm")) records[record["step"].get<int>()] = record;
  }
  ASSERT_EQ(records.size(), 6u);
  for (const auto& [step, record] : records) {
    SCOPED_TRACE(step);
    const double total = record["grad_norm"], block = record["grad_norm/blocks.0"],
                 wte = record["grad_norm/wte"];
    EXPECT_GT(block, 0.0);
    EXPECT_GT(wte, 0.0);
    EXPECT_LE(std::hypot(block, wte), total * (1 + 1e-12));  // the total bounds its parts
    EXPECT_EQ(record["lr_group0"].get<double>(),
              curve["points"][static_cast<std::size_t>(step - 1)]["lr"].get<double>());
  }
  std::istringstream table(read_file(dir / "run" / "metrics.csv"));
  std::getline(table, line);  // the header
  EXPECT_THAT(line, HasSubstr(",grad_norm,grad_norm/blocks.0,grad_norm/wte,lr_group0"));
}

TEST(Training, ResumeContinuesExactlyAsAnUninterruptedRun) {
  TempDir dir;
  // Dropout on, so the global generator's state matters too; a checkpoint every 4 steps.
  auto args = short_run(experiment("gpt_tiny"), dir / "full", 8);
  args.insert(args.end(), {"--set", "model.dropout=0.1", "--set", "callbacks.1.every_steps=4"});
  auto result = run_lmrun(args, lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  ASSERT_TRUE(fs::exists(dir / "full" / "checkpoints" / "step-000004"));

  auto resumed_args = args;
  resumed_args[std::find(args.begin(), args.end(),
                         "experiment.out_dir=" + (dir / "full").string()) -
               args.begin()] = "experiment.out_dir=" + (dir / "resumed").string();
  resumed_args.insert(resumed_args.end(),
                      {"--resume", (dir / "full" / "checkpoints" / "step-000004").string()});
  result = run_lmrun(resumed_args, lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("at step 4"));

  const auto full = loss_lines(dir / "full");
  const auto resumed = loss_lines(dir / "resumed");
  ASSERT_EQ(resumed.size(), 4u);  // steps 5..8
  for (const auto& [step, line] : resumed) {
    ASSERT_TRUE(full.count(step)) << step;
    EXPECT_EQ(line, full.at(step)) << "step " << step;
  }
  // Evaluations after the resume match too.
  EXPECT_THAT(
      read_file(dir / "resumed" / "summary.json"),
      HasSubstr(read_file(dir / "full" / "summary.json")
                    .substr(read_file(dir / "full" / "summary.json").find("\"val_loss\""), 40)));
}

TEST(Training, ResumeIntoTheSameRunFolderCutsItsMetricsBack) {
  TempDir dir;
  auto args = short_run(experiment("gpt_tiny"), dir / "run", 6);
  args.insert(args.end(), {"--set", "callbacks.1.every_steps=3"});
  ASSERT_EQ(run_lmrun(args, lmrun::test::source_dir()).exit_code, 0);
  const auto before = loss_lines(dir / "run");
  args.insert(args.end(), {"--resume", (dir / "run" / "checkpoints" / "step-000003").string()});
  const auto result = run_lmrun(args, lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(loss_lines(dir / "run"), before);  // steps 4..6 rewritten, once each, identically
}

TEST(Training, GenerateAndEvalFromARunFolder) {
  TempDir dir;
  ASSERT_EQ(run_lmrun(short_run(experiment("gpt_tiny"), dir / "run", 4), lmrun::test::source_dir())
                .exit_code,
            0);
  const std::string run = (dir / "run").string();
  auto first =
      run_lmrun({"generate", run, "--prompt", "JULIET:", "-n", "24", "--seed", "5"}, dir.path());
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("JULIET:"));
  auto second =
      run_lmrun({"generate", run, "--prompt", "JULIET:", "-n", "24", "--seed", "5"}, dir.path());
  EXPECT_EQ(first.output, second.output);
  // --prompts: one prompt a line (blank lines skipped) -> a JSON line per prompt, each sample
  // what --prompt with the same seed draws.
  lmrun::test::write_file(dir / "prompts.txt", "JULIET:\n\nROMEO:\r\n");
  auto batch = run_lmrun({"generate", run, "--prompts", "prompts.txt", "-n", "24", "--seed", "5",
                          "--output", "out.jsonl"},
                         dir.path());
  ASSERT_EQ(batch.exit_code, 0) << batch.output;
  EXPECT_THAT(batch.output, HasSubstr("2 prompts x 1 samples, 48 tokens"));
  std::vector<nlohmann::json> lines;
  std::istringstream jsonl(read_file(dir / "out.jsonl"));
  for (std::string line; std::getline(jsonl, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["prompt"], "JULIET:");
  EXPECT_EQ(lines[1]["prompt"], "ROMEO:");
  EXPECT_EQ(lines[0]["seed"], 5);
  EXPECT_EQ(lines[0]["stop_reason"], "max_new_tokens");
  EXPECT_THAT(first.output, HasSubstr("JULIET:" + lines[0]["text"].get<std::string>() + "\n"));
  // A .jsonl file's prompts may hold newlines.
  lmrun::test::write_file(dir / "prompts.jsonl", "{\"prompt\": \"A\\nB\"}\n");
  batch = run_lmrun({"generate", run, "--prompts", "prompts.jsonl", "-n", "3"}, dir.path());
  ASSERT_EQ(batch.exit_code, 0) << batch.output;
  EXPECT_THAT(batch.output, HasSubstr("{\"prompt\": \"A\\nB\", \"sample\": 1"));
  lmrun::test::write_file(dir / "bad.jsonl", "{\"prompt\": \"A\"}\n[1, 2]\n");
  batch = run_lmrun({"generate", run, "--prompts", "bad.jsonl"}, dir.path());
  EXPECT_EQ(batch.exit_code, 1);
  EXPECT_THAT(batch.output, HasSubstr("bad.jsonl:2: expected a JSON object with a \"prompt\""));
  lmrun::test::write_file(dir / "empty.txt", "\n\n");
  batch = run_lmrun({"generate", run, "--prompts", "empty.txt"}, dir.path());
  EXPECT_EQ(batch.exit_code, 1);
  EXPECT_THAT(batch.output, HasSubstr("holds no prompts"));

  auto greedy = run_lmrun(
      {"generate", run, "--prompt", "A", "-n", "10", "--set", "generate.samplers.0.value=0"},
      dir.path());
  EXPECT_EQ(greedy.exit_code, 0) << greedy.output;

  const auto eval = run_lmrun({"eval", run}, dir.path());
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_THAT(eval.output, testing::ContainsRegex("val_loss +[0-9]+\\.[0-9]{6}\n"));
  EXPECT_THAT(eval.output, testing::ContainsRegex("val_perplexity +[0-9]+\\.[0-9]{6}\n"));
  EXPECT_THAT(eval.output, Not(HasSubstr("confusion matrix")));  // a language model has none
  EXPECT_EQ(run_lmrun({"eval", run, "--split", "test"}, dir.path()).exit_code,
            1);  // text_file has no test split
  const auto inspect = run_lmrun({"inspect", run}, dir.path());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_THAT(inspect.output,
              testing::ContainsRegex("blocks.3.mlp.fc.weight +\\[512, 128\\] +65,536"));
  EXPECT_THAT(inspect.output, testing::ContainsRegex("total +[0-9,]+  [0-9,]+ trainable"));
  for (const char* stage : {"embeddings", "blocks.0", "blocks.3", "ln_f", "logits"})
    EXPECT_THAT(inspect.output, testing::ContainsRegex(std::string("\n  ") + stage + " +\\[8, 64"));
  EXPECT_THAT(inspect.output, HasSubstr("activations on 8 val examples"));  // at most 8
  const auto no_test = run_lmrun({"inspect", run, "--split", "test"}, dir.path());
  EXPECT_EQ(no_test.exit_code, 1);
  EXPECT_THAT(no_test.output, HasSubstr("the run's dataset has no test split"));
  const auto predict = run_lmrun({"predict", run, "--text", "ROMEO"}, dir.path());
  EXPECT_EQ(predict.exit_code, 1);
  EXPECT_THAT(predict.output, HasSubstr("holds a language model"));

  const auto missing = run_lmrun({"generate", (dir / "nothing").string()}, dir.path());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("is not a run folder"));
}

// A dataset's groups (arithmetic: the test split by operand length, and held-out longer operands)
// are evaluated whole at the end of training, into the log and summary.json, and again by
// `lmrun eval` with the same figures; the run keeps the problems it was given in data/.
TEST(Training, DatasetGroupsAreReportedAfterTrainingAndByEval) {
  TempDir dir;
  auto args = short_run(experiment("arithmetic"), dir / "run", 6);
  args.insert(args.end(), {"--set", "data.problems=2000", "--set", "data.held_out_problems=100"});
  const auto train = run_lmrun(args, lmrun::test::source_dir());
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_THAT(train.output, HasSubstr("by group, the model at step 6:"));
  EXPECT_THAT(train.output,
              testing::ContainsRegex("\n  held out, 5 digits +100 +[0-9.]+ +[0-9.]+ +[0-9.]+ *\n"));
  const auto summary = nlohmann::json::parse(read_file(dir / "run" / "summary.json"));
  ASSERT_TRUE(summary.contains("groups")) << summary.dump(1);
  std::vector<std::string> names;
  for (const auto& [name, values] : summary["groups"].items()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"held out, 4 digits", "held out, 5 digits",
                                             "test, 1 digit", "test, 2 digits", "test, 3 digits"}));
  double test_examples = 0;
  for (const char* d : {"1 digit", "2 digits", "3 digits"})
    test_examples += summary["groups"][std::string("test, ") + d]["examples"].get<double>();
  EXPECT_EQ(test_examples, 200);  // the test groups partition the test split
  for (const char* file : {"train.txt", "val.txt", "test.txt", "held_out_4_digits.txt"})
    EXPECT_TRUE(fs::exists(dir / "run" / "data" / file)) << file;

  const auto eval = run_lmrun({"eval", (dir / "run").string(), "--split", "test", "--output",
                               (dir / "eval.json").string()});
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_THAT(eval.output, HasSubstr("by group:\n  group "));
  const auto report = nlohmann::json::parse(read_file(dir / "eval.json"));
  for (const auto& [name, values] : summary["groups"].items()) {
    SCOPED_TRACE(name);
    EXPECT_NEAR(report["groups"][name]["loss"].get<double>(), values["loss"].get<double>(), 1e-6);
    EXPECT_EQ(report["groups"][name]["exact_match"], values["exact_match"]);
  }
  // --force into a folder that is not lmrun's leaves its own data/ alone.
  lmrun::test::write_file(dir / "mine" / "data" / "keep.txt", "a user's file\n");
  auto into_mine = short_run(experiment("arithmetic"), dir / "mine", 2);
  into_mine.insert(into_mine.end(), {"--set", "data.problems=2000", "--force"});
  const auto mine = run_lmrun(into_mine, lmrun::test::source_dir());
  ASSERT_EQ(mine.exit_code, 0) << mine.output;
  EXPECT_EQ(read_file(dir / "mine" / "data" / "keep.txt"), "a user's file\n");
  EXPECT_FALSE(fs::exists(dir / "mine" / "data" / "train.txt"));
  EXPECT_THAT(mine.output, HasSubstr("is not lmrun's: the dataset's data is not saved there"));
  // A held-out length longer than the model's context is refused with the reason.
  const auto longer =
      run_lmrun({"eval", (dir / "run").string(), "--set", "data.held_out_digits=[4,5,6]"});
  EXPECT_EQ(longer.exit_code, 1);
  EXPECT_THAT(longer.output, HasSubstr("block_size"));
}

namespace {

// Runs lmrun in a pseudo-terminal (so that it sees a terminal, as a user's shell gives it), types
// each of `keys` once the output holds one more prompt ("> ") than before, and returns everything
// the terminal showed. Gives up after 60 s.
std::string run_in_terminal(const std::vector<std::string>& args,
                            const std::vector<std::string>& keys,
                            const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv_text = {LMRUN_TEST_BINARY};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The environment is built before the fork: the child of a threaded process may only exec.
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (env.count(entry.substr(0, entry.find('='))) == 0) env_text.push_back(entry);
  }
  for (const auto& [name, value] : env) env_text.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  int terminal = -1;
  const pid_t child = ::forkpty(&terminal, nullptr, nullptr, nullptr);
  if (child < 0) {
    ADD_FAILURE() << "forkpty failed: no pseudo-terminal for the test";
    return {};
  }
  if (child == 0) {
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  std::string shown;
  std::size_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto prompts = [&] {
    std::size_t count = 0;
    for (std::size_t at = shown.find("> "); at != std::string::npos; at = shown.find("> ", at + 1))
      ++count;
    return count;
  };
  while (std::chrono::steady_clock::now() < deadline) {
    if (sent < keys.size() && prompts() > sent) {
      (void)!::write(terminal, keys[sent].data(), keys[sent].size());
      ++sent;
    }
    pollfd ready{terminal, POLLIN, 0};
    if (::poll(&ready, 1, 100) <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::read(terminal, buffer, sizeof buffer);
    if (n <= 0) break;  // the child has closed the terminal: it has ended
    shown.append(buffer, static_cast<std::size_t>(n));
  }
  ::kill(child, SIGKILL);  // nothing, when it has ended
  ::waitpid(child, nullptr, 0);
  ::close(terminal);
  return shown;
}

}  // namespace

// On a terminal the REPL edits lines with libedit: the arrow keys recall lines of this session
// and of earlier ones, kept in the history file, which is saved on leaving.
TEST(Training, InteractiveGenerationOnATerminalHasHistory) {
  TempDir dir;
  ASSERT_EQ(run_lmrun(short_run(experiment("gpt_tiny"), dir / "run", 2), lmrun::test::source_dir())
                .exit_code,
            0);
  lmrun::test::write_file(dir / "history", "Earlier line\n");
  const std::string shown =
      run_in_terminal({"generate", (dir / "run").string(), "--interactive", "-n", "3"},
                      {"First\r", "\x1b[A\x1b[A\r", "/quit\r"},
                      {{"TERM", "xterm"}, {"LMRUN_HISTORY", (dir / "history").string()}});
  EXPECT_THAT(shown, HasSubstr("lmrun interactive"));
  // "Earlier line" was never typed here: two arrow-ups fetched it from the file.
  EXPECT_EQ(read_file(dir / "history"), "Earlier line\nFirst\nEarlier line\n/quit\n") << shown;
}

TEST(Failures, CorruptOrMismatchedCheckpoints) {
  TempDir dir;
  auto args = short_run(experiment("gpt_tiny"), dir / "run", 2);
  ASSERT_EQ(run_lmrun(args, lmrun::test::source_dir()).exit_code, 0);
  const fs::path last = dir / "run" / "checkpoints" / "last";

  // Another model shape.
  auto other = short_run(experiment("gpt_tiny"), dir / "other", 4);
  other.insert(other.end(),
               {"--set", "model.n_embd=64", "--resume", last.string(), "--resume-changed"});
  auto result = run_lmrun(other, lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("has shape [65, 128], this model's is [65, 64]"));
  EXPECT_THAT(result.output, HasSubstr("hint: the checkpoint comes from a model of another shape"));
  EXPECT_FALSE(fs::exists(dir / "other"));

  // A truncated weights file.
  const std::string bytes = read_file(last / "model.pt");
  lmrun::test::write_file(last / "model.pt", bytes.substr(0, bytes.size() / 3));
  auto resume = short_run(experiment("gpt_tiny"), dir / "again", 4);
  resume.insert(resume.end(), {"--resume", last.string()});
  result = run_lmrun(resume, lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("model.pt is corrupt: its checksum is"));
  EXPECT_THAT(result.output, Not(HasSubstr("terminate called")));
  // A checkpoint without checksums (written before them) still fails cleanly when truncated.
  std::string sums = read_file(last / "state.toml");
  sums.replace(sums.find("[checksums]"), 11, "[unchecked]");
  lmrun::test::write_file(last / "state.toml", sums);
  result = run_lmrun(resume, lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("model.pt is corrupt or truncated"));
  EXPECT_THAT(result.output, Not(HasSubstr("terminate called")));

  // A newer format.
  std::string state = read_file(last / "state.toml");
  state.replace(state.find("format = 1"), 10, "format = 9");
  lmrun::test::write_file(last / "state.toml", state);
  result = run_lmrun(resume, lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("checkpoint format 9"));
  EXPECT_THAT(result.output, HasSubstr("use a newer lmrun"));

  result = run_lmrun({experiment("gpt_tiny").string(), "--resume", (dir / "nowhere").string()},
                     lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("no checkpoint in"));
}

TEST(Failures, MonitorNamingNoMetricRefusesTheRunAndWritesNothing) {
  TempDir dir;
  auto args = short_run(experiment("gpt_tiny"), dir / "run", 4);
  args.insert(args.end(), {"--set", "callbacks.0.monitor=val_acc"});
  const auto result = run_lmrun(args, lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("monitor 'val_acc' is not a metric this run reports"));
  EXPECT_THAT(result.output, HasSubstr("train_loss, val_loss"));
  EXPECT_FALSE(fs::exists(dir / "run"));
}

TEST(Failures, Bf16AutocastOnTheCpuIsRefusedWithAHint) {
  TempDir dir;
  auto args = short_run(experiment("gpt_tiny"), dir / "run", 2);
  args.insert(args.end(), {"--set", "train.precision=\"bf16\"", "--set", "train.device=\"cpu\""});
  const auto result = run_lmrun(args, lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("train.precision = \"bf16\" runs the forward pass under "
                                       "CUDA autocast, but this run trains on the cpu"));
  EXPECT_THAT(result.output, HasSubstr("or train.precision = \"fp32\""));
  EXPECT_FALSE(fs::exists(dir / "run"));
}

TEST(Failures, NonFiniteLossStopsWithAReason) {
  TempDir dir;
  auto args = short_run(experiment("gpt_tiny"), dir / "run", 20);
  args.insert(args.end(),
              {"--set", "optimizer.lr=1e30", "--set", "callbacks.0.check_finite=false"});
  const auto result = run_lmrun(args, lmrun::test::source_dir());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("training diverged: the training loss is not finite"));
  EXPECT_THAT(read_file(dir / "run" / "summary.json"),
              HasSubstr("\"stop_reason\": \"the training loss is not finite"));
}

TEST(Failures, EarlyStoppingEndsTheRunWithItsReason) {
  TempDir dir;
  auto args = short_run(experiment("gpt_tiny"), dir / "run", 40);
  // Any val_loss is above 0.5 after a few steps: "diverging" by this threshold, at the first
  // evaluation.
  args.insert(args.end(), {"--set", "callbacks.0.stop_above=0.5"});
  const auto result = run_lmrun(args, lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("stopped at step 2: early_stopping"));
  EXPECT_THAT(read_file(dir / "run" / "summary.json"),
              HasSubstr("\"stop_reason\": \"early_stopping"));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "last"));
}

TEST(Training, MaxTimeStopsTheRunEvaluatedAndSaved) {
  TempDir dir;
  // 100,000 steps would take hours; two seconds of training stop it, evaluated at its last step
  // (eval_interval 2 would evaluate at even steps only: the stop's step may be odd).
  auto args = short_run(experiment("gpt_tiny"), dir / "run", 100000);
  args.insert(args.end(), {"--set", "train.max_time=2", "--set", "train.eval_interval=0"});
  const auto started = std::chrono::steady_clock::now();
  const auto result = run_lmrun(args, lmrun::test::source_dir());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, testing::ContainsRegex("stopped at step [0-9]+: max_time \\(2 s\\)"));
  EXPECT_THAT(result.output, testing::ContainsRegex("eval step [0-9]+ \\| train_loss"));
  EXPECT_LT(seconds, 60);
  const std::string summary = read_file(dir / "run" / "summary.json");
  EXPECT_THAT(summary, HasSubstr("\"stop_reason\": \"max_time (2 s)\""));
  EXPECT_THAT(summary, HasSubstr("\"val_loss\": "));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "last"));
}

// experiments/chat_tiny.toml end to end: a few steps on the shipped Shakespeare conversations, the
// run folder (the tokenizer with its markers, the dataset's split, the chat format in the
// checkpoint), `lmrun eval` with the conversations' own and with other characters' system
// messages, `lmrun chat` from a pipe and `generate --system`.
TEST(Chat, ChatTinyTrainsEvaluatesAndChats) {
  TempDir dir;
  const fs::path run = dir / "run";
  const auto train =
      run_lmrun(short_run(experiment("chat_tiny"), run, 4), lmrun::test::source_dir());
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_THAT(train.output, HasSubstr("stopped at step 4: max_steps"));
  EXPECT_THAT(train.output, HasSubstr("carry a system message; the model reads it"));
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "last" / "model.pt"));
  // The tokenizer keeps the dataset's markers, one id each; the checkpoint its chat format.
  EXPECT_THAT(read_file(run / "tokenizer" / "char_tokenizer.txt"),
              HasSubstr("markup_tokens 5\n|system|\n|user|\n|assistant|\n|start|\n|end|\n"));
  EXPECT_THAT(read_file(run / "checkpoints" / "last" / "state.toml"), HasSubstr("[chat_format]"));
  EXPECT_THAT(read_file(run / "data" / "splits.json"), HasSubstr("\"val\": ["));

  // The val loss with each conversation's own system message and with another character's: the
  // model reads the context, so they differ (after 4 steps, by little).
  const auto val_loss = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"eval", run.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto result = run_lmrun(args, dir.path());
    EXPECT_EQ(result.exit_code, 0) << result.output;
    const auto at = result.output.find("val_loss");
    return at == std::string::npos ? std::string() : result.output.substr(at, 30);
  };
  const std::string own = val_loss({}), other = val_loss({"--set", "data.system_message=other"});
  EXPECT_THAT(own, testing::ContainsRegex("val_loss +[0-9]+\\.[0-9]{6}"));
  EXPECT_NE(own, other);

  // lmrun chat: two user turns from a pipe, a /system change between them; each answer ends at
  // the end marker or the token limit, and the marker itself is never shown.
  const auto chat = lmrun::test::run_lmrun_with_input(
      {"chat", run.string(), "--system", "You are JULIET.", "-n", "12"},
      "Good morrow.\n/system You are ROMEO.\nWhat news?\n/quit\n", dir.path());
  ASSERT_EQ(chat.exit_code, 0) << chat.output;
  EXPECT_THAT(chat.output, HasSubstr("lmrun chat: "));
  EXPECT_THAT(chat.output, HasSubstr("system: You are JULIET.\n"));
  EXPECT_THAT(chat.output, HasSubstr("system: You are ROMEO. (a new conversation)"));
  EXPECT_THAT(chat.output, Not(HasSubstr("|end|")));
  // generate --system conditions every sample; a run on other data has no system turn to render.
  const auto generated =
      run_lmrun({"generate", run.string(), "--system", "You are JULIET.", "-n", "8"}, dir.path());
  EXPECT_EQ(generated.exit_code, 0) << generated.output;
}

TEST(Chat, ChatAndSystemNeedARunOnConversations) {
  TempDir dir;
  ASSERT_EQ(run_lmrun(short_run(experiment("gpt_tiny"), dir / "run", 2), lmrun::test::source_dir())
                .exit_code,
            0);
  const auto chat =
      lmrun::test::run_lmrun_with_input({"chat", (dir / "run").string()}, "hi\n", dir.path());
  EXPECT_NE(chat.exit_code, 0);
  EXPECT_THAT(chat.output, HasSubstr("was not trained on conversations"));
  const auto generated =
      run_lmrun({"generate", (dir / "run").string(), "--system", "You are JULIET."}, dir.path());
  EXPECT_NE(generated.exit_code, 0);
  EXPECT_THAT(generated.output, HasSubstr("not trained on conversations"));
}

TEST(Chat, CheckRefusesABrokenConversationFileNamingItsLine) {
  TempDir dir;
  lmrun::test::write_file(
      dir / "bad.jsonl",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", "
      "\"content\": \"b\"}]}\n{\"messages\": [{\"role\": \"narrator\", \"content\": \"c\"}]}\n");
  const auto check = run_lmrun({"check", experiment("chat_tiny").string(), "--set",
                                "data.path=" + (dir / "bad.jsonl").string()},
                               lmrun::test::source_dir());
  EXPECT_NE(check.exit_code, 0);
  EXPECT_THAT(check.output, HasSubstr((dir / "bad.jsonl").string() +
                                      ":2: key messages[0].role: unknown role \"narrator\""));
  const auto good =
      run_lmrun({"check", experiment("chat_tiny").string()}, lmrun::test::source_dir());
  EXPECT_EQ(good.exit_code, 0) << good.output;
}
