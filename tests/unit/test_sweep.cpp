// Sweeps without running anything: the [sweep] table's validation, grid and random expansion,
// shards, the median rule on scripted curves, and the results read back from a scripted folder.
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <toml++/toml.h>

#include "config/diagnostics.h"
#include "support/test_support.h"
#include "sweep/spec.h"
#include "sweep/trials.h"

namespace {

namespace sweep = lmrun::host::sweep;
using lmrun::test::TempDir;
using lmrun::test::write_file;
using ::testing::HasSubstr;

sweep::SweepSpec parse(const std::string& text) {
  const toml::table root = toml::parse(text, std::string_view("/sweep.toml"));
  return sweep::parse_sweep(*root["sweep"].as_table());
}

std::string parse_error(const std::string& text) {
  try {
    parse(text);
  } catch (const lmrun::host::ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string value_of(const sweep::Trial& trial, const std::string& key) {
  for (const auto& a : trial.assignments) {
    if (a.key == key) return a.value;
  }
  return "";
}

const char* kRandom = R"(
[sweep]
method = "random"
trials = 50
seed = 3
[sweep.parameters]
"optimizer.lr" = { distribution = "loguniform", min = 1e-4, max = 1e-2 }
"model.dropout" = { distribution = "uniform", min = 0.0, max = 0.2 }
"model.n_embd" = { distribution = "int", min = 32, max = 128, step = 32 }
"model.activation" = { distribution = "choice", values = ["gelu", "relu"] }
)";

// ---------------------------------------------------------------------------------------------
// Grid

TEST(SweepGrid, IsTheCartesianProductWithTheLastKeyFastest) {
  const auto trials = sweep::expand(parse(R"(
[sweep]
[sweep.parameters]
"optimizer.lr" = [1e-3, 3e-3, 1e-2]
"model.n_layer" = [2, 4]
)"));
  ASSERT_EQ(trials.size(), 6u);
  // Keys in sorted order: model.n_layer, optimizer.lr.
  EXPECT_EQ(trials[0].label(), "model.n_layer=2 optimizer.lr=0.001");
  EXPECT_EQ(trials[1].label(), "model.n_layer=2 optimizer.lr=0.003");
  EXPECT_EQ(trials[3].label(), "model.n_layer=4 optimizer.lr=0.001");
  EXPECT_EQ(trials[5].label(), "model.n_layer=4 optimizer.lr=0.01");
  std::set<std::string> labels;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ(trials[i].index, static_cast<std::int64_t>(i));
    labels.insert(trials[i].label());
  }
  EXPECT_EQ(labels.size(), 6u);
  EXPECT_EQ(trials[5].name(), "trial-0005");
}

TEST(SweepGrid, IntRangesEnumerateAndValuesKeepTheirTomlType) {
  const auto trials = sweep::expand(parse(R"(
[sweep]
[sweep.parameters]
"model.n_embd" = { distribution = "int", min = 64, max = 200, step = 64 }
"model.activation" = { values = ["gelu", "relu"] }
"train.grad_clip" = [1, 0.5]
)"));
  ASSERT_EQ(trials.size(), 3u * 2u * 2u);
  EXPECT_EQ(value_of(trials[0], "model.n_embd"), "64");
  EXPECT_EQ(value_of(trials[11], "model.n_embd"), "192");
  EXPECT_EQ(value_of(trials[0], "model.activation"), "\"gelu\"");
  EXPECT_EQ(value_of(trials[0], "train.grad_clip"), "1");  // an integer stays one
  EXPECT_EQ(value_of(trials[1], "train.grad_clip"), "0.5");
}

// ---------------------------------------------------------------------------------------------
// Random

TEST(SweepRandom, DrawsStayInTheirRangesAndCoverThem) {
  const auto trials = sweep::expand(parse(kRandom));
  ASSERT_EQ(trials.size(), 50u);
  std::set<std::string> widths, activations;
  double low_lr = 1, high_lr = 0;
  for (const auto& trial : trials) {
    const double lr = std::stod(value_of(trial, "optimizer.lr"));
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1e-2);
    low_lr = std::min(low_lr, lr);
    high_lr = std::max(high_lr, lr);
    const double dropout = std::stod(value_of(trial, "model.dropout"));
    EXPECT_GE(dropout, 0.0);
    EXPECT_LE(dropout, 0.2);
    const std::string width = value_of(trial, "model.n_embd");
    EXPECT_EQ(std::stoi(width) % 32, 0) << width;
    widths.insert(width);
    activations.insert(value_of(trial, "model.activation"));
  }
  EXPECT_EQ(widths, (std::set<std::string>{"32", "64", "96", "128"}));
  EXPECT_EQ(activations, (std::set<std::string>{"\"gelu\"", "\"relu\""}));
  // Log-uniform over two decades: 50 draws reach both ends' decades.
  EXPECT_LT(low_lr, 1e-3);
  EXPECT_GT(high_lr, 1e-3);
}

TEST(SweepRandom, IsAPureFunctionOfTheSpecAndATrialKeepsItsValuesAsTrialsGrow) {
  const auto a = sweep::expand(parse(kRandom));
  const auto b = sweep::expand(parse(kRandom));
  std::string more = kRandom;
  more.replace(more.find("trials = 50"), 11, "trials = 80");
  const auto c = sweep::expand(parse(more));
  ASSERT_EQ(c.size(), 80u);
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].label(), b[i].label());
    EXPECT_EQ(a[i].label(), c[i].label());
  }
  std::string other_seed = kRandom;
  other_seed.replace(other_seed.find("seed = 3"), 8, "seed = 4");
  const auto d = sweep::expand(parse(other_seed));
  int same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i].label() == d[i].label();
  EXPECT_LT(same, 3);
}

TEST(SweepRandom, DrawnRealsAreValidTomlFloats) {
  for (const auto& trial : sweep::expand(parse(kRandom))) {
    for (const char* key : {"optimizer.lr", "model.dropout"}) {
      const std::string text = value_of(trial, key);
      const toml::table t = toml::parse("v = " + text);
      EXPECT_TRUE(t["v"].is_floating_point()) << key << " = " << text;
    }
  }
  EXPECT_EQ(sweep::format_float(3.0), "3.0");
  EXPECT_EQ(sweep::format_float(1e-7), "1e-07");
  EXPECT_EQ(sweep::format_float(0.1), "0.1");
}

// ---------------------------------------------------------------------------------------------
// Shards

TEST(SweepShards, CoverEveryTrialExactlyOnce) {
  const auto trials = sweep::expand(parse(kRandom));
  for (std::int64_t n : {1, 2, 3, 7, 50, 64}) {
    std::vector<int> seen(trials.size(), 0);
    for (std::int64_t i = 0; i < n; ++i) {
      const sweep::Shard shard = sweep::parse_shard(std::to_string(i) + "/" + std::to_string(n));
      for (const auto& trial : trials)
        seen[static_cast<std::size_t>(trial.index)] += shard.contains(trial);
    }
    for (std::size_t t = 0; t < seen.size(); ++t)
      EXPECT_EQ(seen[t], 1) << "n " << n << " trial " << t;
  }
}

TEST(SweepShards, BadShardsAreRefused) {
  for (const char* text : {"2/2", "-1/2", "0/0", "1", "a/b", "1/2x", "/2", "1/"}) {
    const std::string error = lmrun::test::error_of([&] { sweep::parse_shard(text); });
    EXPECT_THAT(error, HasSubstr("expected I/N with 0 <= I < N")) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// Validation: every problem, with its key and location

TEST(SweepValidation, NamesEachProblemWithItsKey) {
  const std::string error = parse_error(R"(
[sweep]
method = "random"
trials = 4
metrc = "val_loss"
[sweep.parameters]
"optimizer.lr" = { distribution = "loguniform", min = 1e-2, max = 1e-4 }
"model.n_layer" = []
"model.dropout" = { distribution = "choice", values = [] }
"model.n_embd" = { distribution = "normal", min = 1, max = 2 }
"train.max_steps" = { distribution = "int", min = 10, max = 100, step = 0 }
"experiment.out_dir" = ["a", "b"]
"optimizer.eps" = { distribution = "loguniform", min = 0.0, max = 1.0 }
)");
  EXPECT_THAT(error, HasSubstr("sweep.metrc: unknown key (did you mean metric?)"));
  EXPECT_THAT(error, HasSubstr("min 0.01 is greater than max 0.0001"));
  EXPECT_THAT(error, HasSubstr("\"model.n_layer\": the list of values is empty"));
  EXPECT_THAT(error, HasSubstr("\"model.dropout\".values: the list of values is empty"));
  EXPECT_THAT(error, HasSubstr("unknown distribution \"normal\""));
  EXPECT_THAT(error, HasSubstr("\"train.max_steps\".step: must be >= 1"));
  EXPECT_THAT(error, HasSubstr("the sweep sets this key for each trial"));
  EXPECT_THAT(error, HasSubstr("loguniform needs min > 0"));
  EXPECT_THAT(error, HasSubstr("sweep.toml:7:"));  // the location of the lr line
}

TEST(SweepValidation, MethodSpecificRules) {
  EXPECT_THAT(parse_error("[sweep]\nmethod = \"random\"\n[sweep.parameters]\n\"a.b\" = [1]\n"),
              HasSubstr("a random sweep needs trials = N"));
  EXPECT_THAT(parse_error("[sweep]\ntrials = 3\n[sweep.parameters]\n\"a.b\" = [1]\n"),
              HasSubstr("applies to method = \"random\" only"));
  EXPECT_THAT(parse_error("[sweep]\n[sweep.parameters]\n\"a.b\" = { distribution = \"uniform\", "
                          "min = 0, max = 1 }\n"),
              HasSubstr("use method = \"random\""));
  EXPECT_THAT(parse_error("[sweep]\nmethod = \"bayes\"\n[sweep.parameters]\n\"a.b\" = [1]\n"),
              HasSubstr("must be \"grid\" or \"random\""));
  EXPECT_THAT(parse_error("[sweep]\nmode = \"lowest\"\n[sweep.parameters]\n\"a.b\" = [1]\n"),
              HasSubstr("must be \"min\" or \"max\""));
  EXPECT_THAT(parse_error("[sweep]\nmethod = \"grid\"\n"),
              HasSubstr("a sweep needs [sweep.parameters]"));
  EXPECT_THAT(parse_error("[sweep]\n[sweep.parameters]\nlr = [1]\n"),
              HasSubstr("expected a dotted experiment key"));
  EXPECT_THAT(parse_error("[sweep]\n[sweep.parameters]\n\"a.b\" = [1]\n[sweep.early_termination]\n"
                          "rule = \"median\"\nmin_trials = 0\n"),
              HasSubstr("min_trials: must be >= 1"));
  EXPECT_THAT(parse_error("[sweep]\n[sweep.parameters]\n\"a.b\" = { distribution = \"int\", min = "
                          "0, max = 1000000 }\n\"c.d\" = { distribution = \"int\", min = 0, max = "
                          "1000 }\n"),
              HasSubstr("use method = \"random\""));
}

TEST(SweepValidation, EarlyTerminationIsOffUnlessAsked) {
  EXPECT_FALSE(parse("[sweep]\n[sweep.parameters]\n\"a.b\" = [1]\n").median_rule);
  const auto spec = parse(
      "[sweep]\nmode = \"max\"\n[sweep.parameters]\n\"a.b\" = [1]\n[sweep.early_termination]\n"
      "rule = \"median\"\ngrace_steps = 100\n");
  ASSERT_TRUE(spec.median_rule);
  EXPECT_EQ(spec.median_rule->grace_steps, 100);
  EXPECT_EQ(spec.median_rule->min_trials, 3);
  EXPECT_TRUE(spec.maximize);
}

// ---------------------------------------------------------------------------------------------
// The median rule on scripted curves

TEST(SweepMedianRule, StopsOnlyATrialWorseThanTheMedianAfterGrace) {
  const std::vector<sweep::Curve> finished = {
      {{100, 3.0}, {200, 2.5}, {300, 2.2}},
      {{100, 3.2}, {200, 2.7}, {300, 2.4}},
      {{100, 2.9}, {200, 2.4}, {300, 2.1}},
  };
  const sweep::MedianRule rule{200, 3};
  // Median at step 200: 2.5.
  EXPECT_EQ(sweep::median_rule_verdict({{100, 9.0}}, finished, rule, "val_loss", false), "")
      << "within the grace period";
  EXPECT_EQ(sweep::median_rule_verdict({{100, 3.0}, {200, 2.5}}, finished, rule, "val_loss", false),
            "")
      << "equal to the median is not worse";
  EXPECT_EQ(
      sweep::median_rule_verdict({{100, 3.0}, {200, 2.45}}, finished, rule, "val_loss", false), "");
  EXPECT_EQ(sweep::median_rule_verdict({{100, 3.0}, {200, 2.6}}, finished, rule, "val_loss", false),
            "val_loss 2.6000 at step 200 is worse than the median 2.5000 of 3 finished trials");
  // Higher is better: 2.45 is below the median 2.5.
  EXPECT_THAT(sweep::median_rule_verdict({{200, 2.45}}, finished, rule, "accuracy", true),
              HasSubstr("accuracy 2.4500 at step 200 is worse"));
  // A non-finite value is the worst of all.
  EXPECT_THAT(sweep::median_rule_verdict({{200, std::nan("")}}, finished, rule, "val_loss", false),
              HasSubstr("worse"));
}

TEST(SweepMedianRule, NeedsEnoughFinishedTrialsAtThatVeryStep) {
  const std::vector<sweep::Curve> finished = {
      {{100, 1.0}, {200, 1.0}}, {{100, 1.0}, {200, 1.0}}, {{100, 1.0}}};
  const sweep::MedianRule rule{0, 3};
  EXPECT_NE(sweep::median_rule_verdict({{100, 2.0}}, finished, rule, "val_loss", false), "");
  EXPECT_EQ(sweep::median_rule_verdict({{200, 2.0}}, finished, rule, "val_loss", false), "")
      << "two finished trials at step 200";
  EXPECT_EQ(sweep::median_rule_verdict({{150, 2.0}}, finished, rule, "val_loss", false), "")
      << "no finished trial evaluated at step 150";
  EXPECT_EQ(sweep::median_rule_verdict({}, finished, rule, "val_loss", false), "");
  // Even count: the median is the mean of the middle two.
  const std::vector<sweep::Curve> four = {{{10, 1.0}}, {{10, 2.0}}, {{10, 3.0}}, {{10, 4.0}}};
  EXPECT_EQ(sweep::median_rule_verdict({{10, 2.5}}, four, rule, "m", false), "");
  EXPECT_NE(sweep::median_rule_verdict({{10, 2.51}}, four, rule, "m", false), "");
}

// ---------------------------------------------------------------------------------------------
// Results read back from a scripted folder

sweep::SweepRecord scripted_sweep(const TempDir& dir) {
  sweep::SweepRecord record;
  record.fingerprint = "0123456789abcdef";
  record.name = "scripted";
  record.metric = "val_loss";
  for (int i = 0; i < 4; ++i) {
    sweep::Trial trial;
    trial.index = i;
    trial.assignments = {{"model.activation", i % 2 ? "\"relu\"" : "\"gelu\""},
                         {"optimizer.lr", sweep::format_float(0.001 * (i + 1))}};
    record.trials.push_back(trial);
  }
  write_file(dir / "spec.toml", sweep::to_toml(record));
  auto trial_dir = [&](int i) {
    return dir.path() / record.trials[static_cast<std::size_t>(i)].name();
  };
  auto status = [&](int i, sweep::Status s, const std::string& reason) {
    sweep::TrialStatus t;
    t.status = s;
    t.reason = reason;
    t.wall_seconds = 10.0 + i;
    write_file(trial_dir(i) / "status.toml", sweep::to_toml(t));
  };
  // trial 0: completed, best 2.0 at step 200, then worse (early stopping's patience).
  status(0, sweep::Status::kCompleted, "");
  write_file(trial_dir(0) / "metrics.jsonl",
             "{\"step\": 10, \"loss\": 4.0}\n{\"step\": 100, \"val_loss\": 2.5}\n"
             "{\"step\": 200, \"val_loss\": 2.0}\n{\"step\": 300, \"val_loss\": 2.1}\n");
  write_file(trial_dir(0) / "summary.json",
             "{\"steps\": 300, \"final\": {\"val_loss\": 2.1, \"train_loss\": 1.9}}\n");
  // trial 1: completed, best 1.8.
  status(1, sweep::Status::kCompleted, "");
  write_file(trial_dir(1) / "metrics.jsonl", "{\"step\": 100, \"val_loss\": 1.8}\n");
  write_file(trial_dir(1) / "summary.json", "{\"steps\": 100, \"final\": {\"val_loss\": 1.8}}\n");
  // trial 2: pruned, though its one value (1.5) is the lowest; trial 3: failed, nothing logged.
  status(2, sweep::Status::kPruned, "val_loss 1.5 at step 100 is worse than the median");
  write_file(trial_dir(2) / "metrics.jsonl", "{\"step\": 100, \"val_loss\": 1.5}\n{\"step\": 2");
  status(3, sweep::Status::kFailed, "crashed: signal 6 (Aborted)");
  return record;
}

TEST(SweepResults, RankCompletedTrialsByTheirBestThenTheRest) {
  TempDir dir;
  const sweep::SweepRecord written = scripted_sweep(dir);
  const sweep::SweepRecord record = sweep::read_sweep_record(dir.path());
  EXPECT_EQ(record.fingerprint, written.fingerprint);
  ASSERT_EQ(record.trials.size(), 4u);
  EXPECT_EQ(record.trials[2].label(), written.trials[2].label());

  auto rows = sweep::collect_rows(dir.path(), record);
  sweep::rank(rows, record.maximize);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].trial.index, 1);
  EXPECT_EQ(rows[1].trial.index, 0);
  EXPECT_DOUBLE_EQ(*rows[1].best, 2.0);
  EXPECT_EQ(rows[1].best_step, 200);
  EXPECT_DOUBLE_EQ(*rows[1].last, 2.1);
  EXPECT_EQ(rows[1].steps, 300);
  EXPECT_EQ(rows[2].trial.index, 2);  // pruned: after the completed ones
  EXPECT_EQ(rows[2].steps, 100);      // from its curve (a half-written last line is skipped)
  EXPECT_EQ(rows[3].trial.index, 3);
  EXPECT_FALSE(rows[3].best);

  const std::string csv = sweep::results_csv(rows, record);
  EXPECT_THAT(csv, HasSubstr("rank,trial,status,model.activation,optimizer.lr,best_val_loss,"
                             "best_step,final_val_loss,final.train_loss,final.val_loss,steps,"
                             "wall_seconds,reason\n"));
  EXPECT_THAT(csv, HasSubstr("1,trial-0001,completed,relu,0.002,1.8,100,1.8,,1.8,100,11.0,\n"));
  EXPECT_THAT(csv,
              HasSubstr("4,trial-0003,failed,relu,0.004,,,,,,,13.0,crashed: signal 6 (Aborted)"));
  const std::string json = sweep::results_json(rows, record);
  EXPECT_THAT(json, HasSubstr("\"optimizer.lr\": 0.002"));
  EXPECT_THAT(json, HasSubstr("\"model.activation\": \"relu\""));
  const std::string table = sweep::results_table(rows, record, dir.path());
  EXPECT_THAT(table, HasSubstr("4 trials (2 completed, 1 pruned, 1 failed)"));
  EXPECT_THAT(table, HasSubstr("best: trial-0001 (model.activation=\"relu\" optimizer.lr=0.002): "
                               "val_loss 1.8000 at step 100"));
  EXPECT_THAT(table, HasSubstr("trial-0003 failed: crashed: signal 6 (Aborted)"));

  sweep::write_results(dir.path(), record);
  EXPECT_EQ(lmrun::test::read_file(dir / "sweep.csv"), csv);
}

TEST(SweepResults, ModeMaxTakesTheHighestValueAndRanksItFirst) {
  TempDir dir;
  sweep::SweepRecord record = scripted_sweep(dir);
  record.maximize = true;
  auto rows = sweep::collect_rows(dir.path(), record);
  sweep::rank(rows, record.maximize);
  EXPECT_EQ(rows[0].trial.index, 0);  // its highest value, 2.5 at step 100, beats trial 1's 1.8
  EXPECT_DOUBLE_EQ(*rows[0].best, 2.5);
  EXPECT_EQ(rows[0].best_step, 100);
  EXPECT_EQ(rows[1].trial.index, 1);
}

TEST(SweepResults, AMetricNoTrialLogsIsNamedWithTheOnesTheyDo) {
  TempDir dir;
  sweep::SweepRecord record = scripted_sweep(dir);
  record.metric = "val_los";
  auto rows = sweep::collect_rows(dir.path(), record);
  sweep::rank(rows, record.maximize);
  EXPECT_THAT(sweep::results_table(rows, record, dir.path()),
              HasSubstr("warning: trial-0000 completed without logging val_los; its metrics are "
                        "loss, val_loss (set [sweep] metric to one of them)"));
}

TEST(SweepResults, ATrialWithOnlyASummaryIsRankedByItsFinalValue) {
  // A cross-validated trial logs no curve of its own: its summary.json holds the folds' means.
  TempDir dir;
  sweep::SweepRecord record = scripted_sweep(dir);
  sweep::TrialStatus completed;
  completed.status = sweep::Status::kCompleted;
  write_file(dir / "trial-0003" / "status.toml", sweep::to_toml(completed));
  write_file(dir / "trial-0003" / "summary.json",
             "{\"folds\": 5, \"final\": {\"val_loss\": 1.7, \"test_loss\": 1.9}}\n");
  auto rows = sweep::collect_rows(dir.path(), record);
  sweep::rank(rows, record.maximize);
  EXPECT_EQ(rows[0].trial.index, 3);
  EXPECT_DOUBLE_EQ(*rows[0].best, 1.7);
  EXPECT_EQ(rows[0].best_step, -1);
  EXPECT_DOUBLE_EQ(*rows[0].last, 1.7);
  EXPECT_THAT(sweep::results_table(rows, record, dir.path()),
              HasSubstr("best: trial-0003 (model.activation=\"relu\" optimizer.lr=0.004): "
                        "val_loss 1.7000 (final)"));
}

TEST(SweepResults, AStatusFileThatIsNotOneIsAnErrorNamingIt) {
  TempDir dir;
  write_file(dir / "trial-0000" / "status.toml", "status = \"exploded\"\n");
  EXPECT_THAT(lmrun::test::error_of([&] { sweep::read_trial_status(dir / "trial-0000"); }),
              HasSubstr("unknown status 'exploded'"));
  EXPECT_EQ(sweep::read_trial_status(dir / "trial-0001").status, sweep::Status::kPending);
  EXPECT_THAT(lmrun::test::error_of([&] { sweep::read_sweep_record(dir.path()); }),
              HasSubstr("is not a sweep folder: it has no spec.toml"));
}

}  // namespace
