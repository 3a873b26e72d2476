// The standard callbacks (early_stopping, checkpoint, grad_norm, lr_monitor, lr_finder) through
// the real plugin loader: scripted metric sequences and known gradients against a fake trainer,
// the folders and files on disk, state round trips, error messages.
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lmrun/callback.h"
#include "support/test_support.h"

namespace {

using lmrun::test::error_of;

namespace fs = std::filesystem;

using lmrun::Callback;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// Helpers

// Every declared default, as the host fills them, then the test's overrides.
lmrun::Params params_for(const std::string& name, const lmrun::Params& overrides = {}) {
  return lmrun::test::plugin_params(lmrun::Kind::kCallback, name, overrides.values());
}

lmrun::Params with(std::initializer_list<std::pair<const char*, lmrun::Value>> values) {
  lmrun::Params params;
  for (const auto& [key, value] : values) params.set(key, value);
  return params;
}

std::shared_ptr<Callback> make(const std::string& name, const lmrun::Params& overrides = {},
                               const fs::path& run_dir = {}) {
  return lmrun::test::plugin_registry().create<Callback>(name, params_for(name, overrides),
                                                         lmrun::CallbackContext{run_dir});
}

// The trainer, as far as callbacks can tell: records stop requests, and "writes" a checkpoint by
// creating run_dir/checkpoints/<name> with one file in it. Like the trainer, it stores the
// callback's save_state() inside each checkpoint it writes (when given the callback).
class FakeControl : public lmrun::TrainerControl {
 public:
  explicit FakeControl(fs::path run_dir) : run_dir_(std::move(run_dir)) {}

  void request_stop(const std::string& reason) override { stops.push_back(reason); }

  fs::path save_checkpoint(const std::string& name) override {
    saves.push_back(name);
    const fs::path folder = run_dir_ / "checkpoints" / name;
    fs::remove_all(folder);
    lmrun::test::write_file(folder / "model.pt", name);
    if (watched != nullptr) stored_state[name] = watched->save_state();
    return folder;
  }

  // The trainer removes after the step's writes; here at once, which a test cannot tell apart.
  void remove_checkpoint(const std::string& name) override {
    removals.push_back(name);
    fs::remove_all(run_dir_ / "checkpoints" / name);
  }

  void log_metric(const std::string& name, double value) override { logged[name] = value; }
  void set_next_lr(double lr) override { next_lrs.push_back(lr); }

  std::vector<std::string> stops;
  std::vector<std::string> saves;
  std::vector<std::string> removals;
  std::map<std::string, double> logged;
  std::vector<double> next_lrs;
  const Callback* watched = nullptr;
  std::map<std::string, std::string> stored_state;  // checkpoint name -> callback state in it

 private:
  fs::path run_dir_;
};

const std::vector<std::string> kEvalMetrics = {"train_loss", "val_loss"};

lmrun::TrainState state_at(std::int64_t step, const fs::path& run_dir = {},
                           std::vector<std::string> eval_metrics = kEvalMetrics) {
  lmrun::TrainState state;
  state.step = step;
  state.max_steps = 10000;
  state.eval_metrics = std::move(eval_metrics);
  state.run_dir = run_dir;
  return state;
}

// Feeds one evaluation per 100 steps (steps first_step, first_step + 100, ...) reporting `metric`
// = values[i] (and train_loss). Stops feeding at the first stop request; returns the index of the
// evaluation that asked, or -1.
int feed(Callback& callback, FakeControl& control, const std::vector<double>& values,
         std::int64_t first_step = 100, const std::string& metric = "val_loss",
         const fs::path& run_dir = {}) {
  const std::size_t stops_before = control.stops.size();
  for (std::size_t i = 0; i < values.size(); ++i) {
    const lmrun::TrainState state =
        state_at(first_step + 100 * static_cast<std::int64_t>(i), run_dir);
    callback.on_eval_end(state, {{"train_loss", 9.0}, {metric, values[i]}}, control);
    if (control.stops.size() > stops_before) return static_cast<int>(i);
  }
  return -1;
}

// A fresh early_stopping, started on a run reporting kEvalMetrics (plus val_accuracy).
std::shared_ptr<Callback> early_stopping(const lmrun::Params& overrides = {}) {
  auto callback = make("early_stopping", overrides);
  FakeControl control({});
  callback->check_plan(state_at(0, {}, {"train_loss", "val_loss", "val_accuracy"}));
  return callback;
}

std::vector<std::string> param_names(const std::string& callback) {
  std::vector<std::string> names;
  for (const auto& spec :
       lmrun::test::plugin_registry().find(lmrun::Kind::kCallback, callback)->params) {
    names.push_back(spec.name);
  }
  return names;
}

// The checkpoint folders on disk, by name.
std::set<std::string> folders(const fs::path& run_dir) {
  std::set<std::string> names;
  if (!fs::exists(run_dir / "checkpoints")) return names;
  for (const auto& entry : fs::directory_iterator(run_dir / "checkpoints")) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// early_stopping

TEST(EarlyStopping, RegistersWithItsParametersAndDefaults) {
  ASSERT_NE(lmrun::test::plugin_registry().find(lmrun::Kind::kCallback, "early_stopping"), nullptr);
  EXPECT_THAT(param_names("early_stopping"),
              ElementsAre("monitor", "mode", "patience", "min_delta", "stop_below", "stop_above",
                          "check_finite"));
  const lmrun::Params defaults = params_for("early_stopping");
  EXPECT_EQ(defaults.get<std::string>("monitor"), "val_loss");
  EXPECT_EQ(defaults.get<std::string>("mode"), "min");
  EXPECT_EQ(defaults.get<std::int64_t>("patience"), 3);
  EXPECT_EQ(defaults.get<double>("min_delta"), 0.0);
  EXPECT_EQ(defaults.get<double>("stop_below"), -kInf);
  EXPECT_EQ(defaults.get<double>("stop_above"), kInf);
  EXPECT_TRUE(defaults.get<bool>("check_finite"));
}

TEST(EarlyStopping, StopsExactlyAfterPatienceEvaluationsWithoutImprovement) {
  auto callback = early_stopping(with({{"patience", std::int64_t{3}}}));
  FakeControl control({});
  // improve, improve, then three that are not better than 2.5 (an equal value is no improvement)
  EXPECT_EQ(feed(*callback, control, {3.0, 2.5, 2.6, 2.5, 2.7, 1.0}), 4);
  ASSERT_EQ(control.stops.size(), 1u);
  EXPECT_EQ(control.stops[0],
            "early_stopping: val_loss did not improve by more than 0 for 3 evaluations "
            "(best 2.5 at step 200)");
}

TEST(EarlyStopping, AnImprovementResetsTheCount) {
  auto callback = early_stopping(with({{"patience", std::int64_t{3}}}));
  FakeControl control({});
  EXPECT_EQ(feed(*callback, control, {3.0, 2.9, 3.0, 3.0, 2.8, 2.9, 2.9, 2.9, 2.9}), 7);
  EXPECT_THAT(control.stops.at(0), HasSubstr("(best 2.8 at step 500)"));
}

TEST(EarlyStopping, PatienceZeroStopsAtTheFirstEvaluationWithoutImprovement) {
  auto callback = early_stopping(with({{"patience", std::int64_t{0}}}));
  FakeControl control({});
  EXPECT_EQ(feed(*callback, control, {3.0, 2.0, 1.0, 1.5}), 3);
  EXPECT_THAT(control.stops.at(0), HasSubstr("for 1 evaluation (best 1 at step 300)"));
}

TEST(EarlyStopping, MinDeltaDoesNotCountTinyImprovements) {
  auto callback = early_stopping(with({{"patience", std::int64_t{2}}, {"min_delta", 0.5}}));
  FakeControl control({});
  // 1.5 is exactly min_delta below 2.0: not *more* than min_delta, so no improvement; 1.25 is.
  // Then 0.9 and 0.8 improve on 1.25 by less than 0.5.
  EXPECT_EQ(feed(*callback, control, {2.0, 1.5, 1.25, 0.9, 0.8}), 4);
  EXPECT_EQ(control.stops.at(0),
            "early_stopping: val_loss did not improve by more than 0.5 for 2 evaluations "
            "(best 1.25 at step 300)");
}

TEST(EarlyStopping, ModeMaxWantsHigherValues) {
  auto callback = early_stopping(with({{"monitor", std::string("val_accuracy")},
                                       {"mode", std::string("max")},
                                       {"patience", std::int64_t{2}}}));
  FakeControl control({});
  EXPECT_EQ(feed(*callback, control, {0.5, 0.6, 0.55, 0.6, 0.9}, 100, "val_accuracy"), 3);
  EXPECT_EQ(control.stops.at(0),
            "early_stopping: val_accuracy did not improve by more than 0 for 2 evaluations "
            "(best 0.6 at step 200)");
}

TEST(EarlyStopping, StopAboveEndsADivergingRun) {
  auto callback = early_stopping(with({{"stop_above", 5.0}, {"patience", std::int64_t{100}}}));
  FakeControl control({});
  EXPECT_EQ(feed(*callback, control, {2.0, 1.8, 4.9, 6.0}), 3);
  const std::string& reason = control.stops.at(0);
  EXPECT_THAT(reason, HasSubstr("val_loss 6 is above stop_above = 5 at step 400"));
  EXPECT_THAT(reason, HasSubstr("diverging"));
  EXPECT_THAT(reason, HasSubstr("best 1.8 at step 200"));
}

TEST(EarlyStopping, StopBelowEndsARunThatReachedItsTarget) {
  auto callback = early_stopping(with({{"stop_below", 1.5}}));
  FakeControl control({});
  EXPECT_EQ(feed(*callback, control, {2.0, 1.5, 1.4}), 2);
  EXPECT_THAT(control.stops.at(0), HasSubstr("val_loss 1.4 is below stop_below = 1.5 at step 300"));
  EXPECT_THAT(control.stops.at(0), HasSubstr("target is reached"));
}

TEST(EarlyStopping, InModeMaxFallingBelowStopBelowIsDivergence) {
  auto callback = early_stopping(with({{"monitor", std::string("val_accuracy")},
                                       {"mode", std::string("max")},
                                       {"stop_below", 0.1}}));
  FakeControl control({});
  EXPECT_EQ(feed(*callback, control, {0.5, 0.05}, 100, "val_accuracy"), 1);
  EXPECT_THAT(control.stops.at(0), HasSubstr("diverging; best 0.5 at step 100"));
}

TEST(EarlyStopping, ANonFiniteValueStopsTheRun) {
  for (double bad : {kNan, kInf, -kInf}) {
    auto callback = early_stopping();
    FakeControl control({});
    EXPECT_EQ(feed(*callback, control, {2.0, bad}), 1) << bad;
    EXPECT_THAT(control.stops.at(0), HasSubstr("early_stopping: val_loss is "));
    EXPECT_THAT(control.stops.at(0), HasSubstr(" at step 200 (best 2 at step 100)"));
  }
  auto callback = early_stopping();
  FakeControl control({});
  feed(*callback, control, {kNan});
  EXPECT_THAT(control.stops.at(0), HasSubstr("val_loss is nan at step 100 (no finite value yet)"));
}

TEST(EarlyStopping, WithoutCheckFiniteANanCountsAsNoImprovement) {
  auto callback = early_stopping(with({{"check_finite", false}, {"patience", std::int64_t{2}}}));
  FakeControl control({});
  EXPECT_EQ(feed(*callback, control, {2.0, kNan, kNan}), 2);
  EXPECT_THAT(control.stops.at(0), HasSubstr("did not improve"));
}

TEST(EarlyStopping, AMonitorTheRunDoesNotReportIsAnErrorListingWhatItReports) {
  auto callback = make("early_stopping", with({{"monitor", std::string("val_los")}}));
  FakeControl control({});
  const std::string message = error_of([&] { callback->check_plan(state_at(0)); });
  EXPECT_THAT(message,
              HasSubstr("early_stopping: monitor 'val_los' is not a metric this run "
                        "reports; it reports: train_loss, val_loss (did you mean val_loss?)"));
  EXPECT_THAT(error_of([&] { callback->check_plan(state_at(0, {}, {})); }),
              HasSubstr("its evaluations report no metrics"));
  auto far = make("early_stopping", with({{"monitor", std::string("perplexity")}}));
  EXPECT_THAT(error_of([&] { far->check_plan(state_at(0)); }), Not(HasSubstr("did you mean")));
}

TEST(EarlyStopping, AnEvaluationWithoutTheMetricIsAnError) {
  auto callback = early_stopping();
  FakeControl control({});
  EXPECT_THAT(error_of([&] {
                callback->on_eval_end(state_at(300), {{"train_loss", 1.0}}, control);
              }),
              HasSubstr("the evaluation at step 300 has no 'val_loss'; it has: train_loss"));
}

TEST(EarlyStopping, ResumingFromSavedStateDecidesLikeAnUninterruptedRun) {
  // 0.666668 does not improve on 2/3, but would on 2/3 rounded to 0.66667: the state must be exact.
  const std::vector<double> values = {3.0, 2.0 / 3.0, 0.666668, 0.7, 0.8, 0.9, 0.95, 0.1};
  const lmrun::Params options = with({{"patience", std::int64_t{4}}});

  auto whole = early_stopping(options);
  FakeControl whole_control({});
  const int whole_stop = feed(*whole, whole_control, values);
  ASSERT_EQ(whole_stop, 5);

  for (int cut = 1; cut <= whole_stop; ++cut) {
    auto first = early_stopping(options);
    FakeControl control({});
    ASSERT_EQ(feed(*first, control, {values.begin(), values.begin() + cut}), -1);
    const std::string text = first->save_state();
    auto second = early_stopping(options);
    second->load_state(text);
    EXPECT_EQ(second->save_state(), text);
    const int stop = feed(*second, control, {values.begin() + cut, values.end()}, 100 + 100 * cut);
    EXPECT_EQ(stop + cut, whole_stop) << cut;
    EXPECT_EQ(control.stops, whole_control.stops) << cut;
    EXPECT_EQ(second->save_state(), whole->save_state()) << cut;
  }
}

TEST(EarlyStopping, SavedStateKeepsTheBestValueExactly) {
  auto callback = early_stopping();
  FakeControl control({});
  feed(*callback, control, {0.1 + 0.2});
  const std::string text = callback->save_state();
  EXPECT_THAT(text, HasSubstr("callback=early_stopping\nformat=1\n"));
  EXPECT_THAT(text, HasSubstr("best=0.30000000000000004\n"));
  EXPECT_THAT(text, HasSubstr("best_step=100\n"));
}

TEST(EarlyStopping, CorruptStateIsAnErrorNamingTheProblem) {
  auto callback = early_stopping();
  const std::string good = callback->save_state();
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  auto load = [&](const std::string& text) {
    return error_of([&] { early_stopping()->load_state(text); });
  };
  EXPECT_THAT(load(""),
              HasSubstr("early_stopping: cannot read the saved callback state: it is empty"));
  EXPECT_THAT(load("garbage"), HasSubstr("line 1 is not key=value: 'garbage'"));
  EXPECT_THAT(load(replaced("callback=early_stopping", "callback=checkpoint")),
              HasSubstr("it is the state of 'checkpoint', not of 'early_stopping'"));
  EXPECT_THAT(load(replaced("format=1", "format=2")),
              HasSubstr("it has format 2 and this plugin reads format 1: the state is newer"));
  EXPECT_THAT(load(replaced("wait=0", "wait=two")), HasSubstr("'wait' is not an integer: 'two'"));
  EXPECT_THAT(load(replaced("best=inf", "best=1.5x")), HasSubstr("'best' is not a number: '1.5x'"));
  EXPECT_THAT(load(replaced("wait=0\n", "")), HasSubstr("'wait' is missing"));
  EXPECT_THAT(load(good + "colour=blue\n"), HasSubstr("unknown key 'colour'"));
  EXPECT_THAT(load(replaced("monitor=val_loss", "monitor=train_loss")),
              HasSubstr("the checkpoint's state watches train_loss (min) and this run's options "
                        "watch val_loss (min)"));
  EXPECT_EQ(load(good), "(no error)");
}

TEST(EarlyStopping, TheFactoryRefusesContradictoryOptions) {
  EXPECT_THAT(error_of([] {
                make("early_stopping", with({{"stop_below", 2.0}, {"stop_above", 1.0}}));
              }),
              HasSubstr("callback 'early_stopping': stop_below = 2 is not below stop_above = 1"));
  EXPECT_THAT(error_of([] {
                make("early_stopping", with({{"mode", std::string("median")}}));
              }),
              HasSubstr("callback 'early_stopping': mode: \"median\" is not allowed: expected one "
                        "of min, max"));
  EXPECT_THAT(error_of([] {
                make("early_stopping", with({{"patience", std::int64_t{-1}}}));
              }),
              HasSubstr("patience: -1 is out of range: expected >= 0"));
  EXPECT_THAT(error_of([] {
                make("early_stopping", with({{"stop_above", kNan}}));
              }),
              HasSubstr("stop_above: nan is not a number"));
}

// ---------------------------------------------------------------------------------------------
// checkpoint

// A checkpoint callback on run_dir, started on a run reporting kEvalMetrics.
std::shared_ptr<Callback> checkpoint(const fs::path& run_dir, const lmrun::Params& overrides = {}) {
  auto callback = make("checkpoint", overrides, run_dir);
  FakeControl control(run_dir);
  callback->check_plan(state_at(0, run_dir));
  return callback;
}

void steps(Callback& callback, FakeControl& control, const fs::path& run_dir, std::int64_t from,
           std::int64_t to) {
  for (std::int64_t step = from; step <= to; ++step)
    callback.on_step_end(state_at(step, run_dir), control);
}

TEST(Checkpoint, RegistersWithItsParametersAndDefaults) {
  EXPECT_THAT(param_names("checkpoint"), ElementsAre("every_steps", "monitor", "mode", "keep_best",
                                                     "save_last", "keep_last_periodic"));
  const lmrun::Params defaults = params_for("checkpoint");
  EXPECT_EQ(defaults.get<std::int64_t>("every_steps"), 0);
  EXPECT_EQ(defaults.get<std::string>("monitor"), "");
  EXPECT_EQ(defaults.get<std::int64_t>("keep_best"), 1);
  EXPECT_TRUE(defaults.get<bool>("save_last"));
  EXPECT_EQ(defaults.get<std::int64_t>("keep_last_periodic"), 0);
}

TEST(Checkpoint, SavesPeriodicallyWithZeroPaddedStepNames) {
  lmrun::test::TempDir run;
  auto callback = checkpoint(run.path(), with({{"every_steps", std::int64_t{100}}}));
  FakeControl control(run.path());
  steps(*callback, control, run.path(), 1, 350);
  EXPECT_THAT(control.saves, ElementsAre("step-000100", "step-000200", "step-000300"));
  EXPECT_EQ(folders(run.path()),
            (std::set<std::string>{"step-000100", "step-000200", "step-000300"}));
}

TEST(Checkpoint, ByDefaultSavesOnlyLastAtTheEnd) {
  lmrun::test::TempDir run;
  auto callback = checkpoint(run.path());
  FakeControl control(run.path());
  steps(*callback, control, run.path(), 1, 300);
  feed(*callback, control, {2.0, 1.0}, 100, "val_loss", run.path());
  EXPECT_THAT(control.saves, IsEmpty());
  callback->on_train_end(state_at(300, run.path()), control);
  EXPECT_THAT(control.saves, ElementsAre("last"));

  auto quiet = checkpoint(run.path(), with({{"save_last", false}}));
  FakeControl quiet_control(run.path());
  quiet->on_train_end(state_at(300, run.path()), quiet_control);
  EXPECT_THAT(quiet_control.saves, IsEmpty());
}

TEST(Checkpoint, KeepLastPeriodicDeletesTheOldest) {
  lmrun::test::TempDir run;
  auto callback = checkpoint(run.path(), with({{"every_steps", std::int64_t{100}},
                                               {"keep_last_periodic", std::int64_t{2}}}));
  FakeControl control(run.path());
  steps(*callback, control, run.path(), 1, 450);
  EXPECT_EQ(control.saves.size(), 4u);
  EXPECT_EQ(folders(run.path()), (std::set<std::string>{"step-000300", "step-000400"}));
}

TEST(Checkpoint, KeepsTheBestKAndDeletesTheOnesThatFallOut) {
  lmrun::test::TempDir run;
  auto callback = checkpoint(
      run.path(), with({{"monitor", std::string("val_loss")}, {"keep_best", std::int64_t{2}}}));
  FakeControl control(run.path());
  feed(*callback, control, {3.0, 2.0, 2.5, 1.0, 2.2, 2.0}, 100, "val_loss", run.path());
  // 2.2 is not among the best two (1, 2); 2.0 ties the second best and does not get in.
  EXPECT_THAT(control.saves,
              ElementsAre("best-step-000100-val_loss-3.0000", "best-step-000200-val_loss-2.0000",
                          "best-step-000300-val_loss-2.5000", "best-step-000400-val_loss-1.0000"));
  EXPECT_EQ(folders(run.path()), (std::set<std::string>{"best-step-000200-val_loss-2.0000",
                                                        "best-step-000400-val_loss-1.0000"}));
}

TEST(Checkpoint, ModeMaxKeepsTheHighest) {
  lmrun::test::TempDir run;
  auto callback = make(
      "checkpoint", with({{"monitor", std::string("val_accuracy")}, {"mode", std::string("max")}}),
      run.path());
  FakeControl control(run.path());
  callback->check_plan(state_at(0, run.path(), {"val_accuracy"}));
  feed(*callback, control, {0.5, 0.7, 0.6}, 100, "val_accuracy", run.path());
  EXPECT_EQ(folders(run.path()), (std::set<std::string>{"best-step-000200-val_accuracy-0.7000"}));
}

TEST(Checkpoint, RanksByFullPrecisionNotByTheRoundedName) {
  lmrun::test::TempDir run;
  auto callback = checkpoint(run.path(), with({{"monitor", std::string("val_loss")}}));
  FakeControl control(run.path());
  feed(*callback, control, {1.00004, 1.00001, 1.00003}, 100, "val_loss", run.path());
  EXPECT_THAT(control.saves,
              ElementsAre("best-step-000100-val_loss-1.0000", "best-step-000200-val_loss-1.0000"));
  EXPECT_EQ(folders(run.path()), (std::set<std::string>{"best-step-000200-val_loss-1.0000"}));
}

TEST(Checkpoint, KeepBestZeroKeepsEveryEvaluation) {
  lmrun::test::TempDir run;
  auto callback = checkpoint(
      run.path(), with({{"monitor", std::string("val_loss")}, {"keep_best", std::int64_t{0}}}));
  FakeControl control(run.path());
  feed(*callback, control, {1.0, 2.0, 3.0}, 100, "val_loss", run.path());
  EXPECT_EQ(folders(run.path()).size(), 3u);
}

TEST(Checkpoint, NonFiniteValuesAreNeverBest) {
  lmrun::test::TempDir run;
  auto callback = checkpoint(run.path(), with({{"monitor", std::string("val_loss")}}));
  FakeControl control(run.path());
  feed(*callback, control, {kNan, -kInf, 2.0, kNan}, 100, "val_loss", run.path());
  EXPECT_THAT(control.saves, ElementsAre("best-step-000300-val_loss-2.0000"));
}

TEST(Checkpoint, MetricNamesAreMadeSafeForFolderNames) {
  lmrun::test::TempDir run;
  auto callback = make("checkpoint", with({{"monitor", std::string("val/loss")}}), run.path());
  FakeControl control(run.path());
  callback->check_plan(state_at(0, run.path(), {"val/loss"}));
  feed(*callback, control, {-1.25}, 100, "val/loss", run.path());
  EXPECT_THAT(control.saves, ElementsAre("best-step-000100-val_loss--1.2500"));
}

TEST(Checkpoint, DeletesOnlyFoldersItCreated) {
  lmrun::test::TempDir run;
  lmrun::test::write_file(run / "checkpoints/keep-me/model.pt", "mine");
  lmrun::test::write_file(run / "checkpoints/step-000050/model.pt", "an earlier run's");
  auto callback = checkpoint(run.path(), with({{"every_steps", std::int64_t{100}},
                                               {"keep_last_periodic", std::int64_t{1}},
                                               {"monitor", std::string("val_loss")}}));
  FakeControl control(run.path());
  steps(*callback, control, run.path(), 1, 300);
  feed(*callback, control, {2.0, 1.0}, 100, "val_loss", run.path());
  callback->on_train_end(state_at(300, run.path()), control);
  EXPECT_EQ(folders(run.path()),
            (std::set<std::string>{"keep-me", "step-000050", "step-000300",
                                   "best-step-000200-val_loss-1.0000", "last"}));
}

TEST(Checkpoint, TheStateInsideACheckpointListsItAndNotWhatItEvicted) {
  lmrun::test::TempDir run;
  auto callback = checkpoint(run.path(), with({{"monitor", std::string("val_loss")}}));
  FakeControl control(run.path());
  control.watched = callback.get();
  feed(*callback, control, {2.0, 1.5}, 100, "val_loss", run.path());
  const std::string& stored = control.stored_state.at("best-step-000200-val_loss-1.5000");
  EXPECT_THAT(stored, HasSubstr("best=best-step-000200-val_loss-1.5000 200 1.5\n"));
  EXPECT_THAT(stored, Not(HasSubstr("best-step-000100")));
}

TEST(Checkpoint, ResumingFromACheckpointsStateEndsLikeAnUninterruptedRun) {
  const lmrun::Params options = with({{"every_steps", std::int64_t{100}},
                                      {"keep_last_periodic", std::int64_t{2}},
                                      {"monitor", std::string("val_loss")},
                                      {"keep_best", std::int64_t{2}}});
  const std::vector<double> values = {3.0, 1.0 / 3.0, 2.0, 0.25, 0.3, 0.2};
  // The trainer's loop: step end, then every 100 steps an evaluation; train end unless it crashed.
  auto run_steps = [&](Callback& callback, FakeControl& control, const fs::path& run_dir,
                       std::int64_t from, std::int64_t to, bool crash) {
    for (std::int64_t step = from; step <= to; ++step) {
      const lmrun::TrainState state = state_at(step, run_dir);
      callback.on_step_end(state, control);
      if (step % 100 == 0) {
        callback.on_eval_end(state, {{"val_loss", values.at(step / 100 - 1)}}, control);
      }
    }
    if (!crash) callback.on_train_end(state_at(to, run_dir), control);
  };

  lmrun::test::TempDir whole_dir;
  auto whole = checkpoint(whole_dir.path(), options);
  FakeControl whole_control(whole_dir.path());
  run_steps(*whole, whole_control, whole_dir.path(), 1, 600, false);

  // A crash after step 450, then a resume from the checkpoint written after the evaluation at
  // step 300: by then the first run had already deleted step-000200 and the best of step 300.
  lmrun::test::TempDir dir;
  auto first = checkpoint(dir.path(), options);
  FakeControl control(dir.path());
  control.watched = first.get();
  run_steps(*first, control, dir.path(), 1, 450, true);
  const std::string stored = control.stored_state.at("best-step-000300-val_loss-2.0000");
  // The resumed callback knows its folders only by name, and finds them under the run folder.
  auto second = make("checkpoint", options, dir.path());
  second->check_plan(state_at(300, dir.path()));
  second->load_state(stored);
  EXPECT_EQ(second->save_state(), stored);
  run_steps(*second, control, dir.path(), 301, 600, false);

  EXPECT_EQ(folders(dir.path()), folders(whole_dir.path()));
  EXPECT_EQ(folders(dir.path()),
            (std::set<std::string>{"step-000500", "step-000600", "best-step-000400-val_loss-0.2500",
                                   "best-step-000600-val_loss-0.2000", "last"}));
  EXPECT_EQ(second->save_state(), whole->save_state());
}

TEST(Checkpoint, CorruptOrForeignStateIsAnError) {
  auto load = [](const lmrun::Params& options, const std::string& text) {
    return error_of([&] { make("checkpoint", options)->load_state(text); });
  };
  const lmrun::Params monitored = with({{"monitor", std::string("val_loss")}});
  const std::string head = "callback=checkpoint\nformat=1\nmonitor=val_loss\nmode=min\n";
  EXPECT_EQ(load(monitored, head + "best=best-step-000100-val_loss-1.0000 100 1\n"), "(no error)");
  // A name that could lead remove_all outside the checkpoints folder.
  EXPECT_THAT(load(monitored, head + "best=../../home 100 1\n"),
              HasSubstr("'../../home' is not a checkpoint name"));
  EXPECT_THAT(load(monitored, head + "periodic=step-000100\n"),
              HasSubstr("'periodic=step-000100' does not have 2 fields"));
  EXPECT_THAT(load(monitored, head + "best=b 100 nan\n"), HasSubstr("a best value is not finite"));
  EXPECT_THAT(load(with({{"monitor", std::string("train_loss")}}),
                   head + "best=best-step-000100-val_loss-1.0000 100 1\n"),
              HasSubstr("ranks best checkpoints by val_loss (min) and this run's options by "
                        "train_loss (min)"));
  EXPECT_THAT(load(monitored, "callback=early_stopping\nformat=1\n"),
              HasSubstr("checkpoint: cannot read the saved callback state: it is the state of "
                        "'early_stopping'"));
}

TEST(Checkpoint, AMonitorTheRunDoesNotReportIsAnError) {
  auto callback = make("checkpoint", with({{"monitor", std::string("val_acc")}}));
  FakeControl control({});
  EXPECT_THAT(error_of([&] { callback->check_plan(state_at(0)); }),
              HasSubstr("checkpoint: monitor 'val_acc' is not a metric this run reports; it "
                        "reports: train_loss, val_loss"));
  auto unmonitored = make("checkpoint");
  EXPECT_EQ(error_of([&] { unmonitored->check_plan(state_at(0, {}, {})); }), "(no error)");
}

TEST(Checkpoint, TheSchemaRefusesNegativeCounts) {
  EXPECT_THAT(error_of([] {
                make("checkpoint", with({{"keep_best", std::int64_t{-2}}}));
              }),
              HasSubstr("callback 'checkpoint': keep_best: -2 is out of range: expected >= 0"));
}

// ---------------------------------------------------------------------------------------------
// grad_norm

using ::testing::DoubleEq;
using ::testing::Pair;

// A parameter of `shape` whose gradient holds `grad` (float, as a model's are); none when empty.
lmrun::NamedParameter parameter(const std::string& name, const std::vector<float>& grad,
                                std::vector<std::int64_t> shape) {
  at::Tensor tensor = at::zeros(shape).requires_grad_();
  if (!grad.empty()) tensor.mutable_grad() = at::tensor(grad).reshape(shape);
  return {name, tensor};
}

// Gradients with known norms (L2 / L1 / max):
//   wte [3, 4]: 5 / 7 / 4;  blocks.0's two: 5 / 9 / 4 and 12 / 12 / 12;  ln_f [-6, 8]: 10 / 14 / 8;
//   blocks.1 got no gradient (a frozen or unused layer), or [84, 0] when `blocks1` is set.
std::vector<lmrun::NamedParameter> known_gradients(bool blocks1 = false) {
  return {parameter("wte.weight", {3, 4}, {2}),
          parameter("blocks.0.attn.qkv.weight", {1, 2, 2, 4}, {2, 2}),
          parameter("blocks.0.ln_1.bias", {0, 0, -12}, {3}),
          parameter("blocks.1.mlp.fc.weight",
                    blocks1 ? std::vector<float>{84, 0} : std::vector<float>{}, {2}),
          parameter("ln_f.weight", {-6, 8}, {2})};
}

// The values one logging step of `callback` reports for `parameters`.
std::map<std::string, double> grad_norms(const lmrun::Params& overrides,
                                         const std::vector<lmrun::NamedParameter>& parameters) {
  lmrun::Params options = overrides;
  if (!options.contains("every_steps")) options.set("every_steps", std::int64_t{1});
  auto callback = make("grad_norm", options);
  FakeControl control({});
  callback->on_after_backward(state_at(0), parameters, control);
  return control.logged;
}

TEST(GradNorm, RegistersWithItsParametersAndDefaults) {
  EXPECT_THAT(param_names("grad_norm"),
              ElementsAre("every_steps", "norm_type", "per_layer", "group_depth", "layers"));
  const lmrun::Params defaults = params_for("grad_norm");
  EXPECT_EQ(defaults.get<std::int64_t>("every_steps"), 10);
  EXPECT_EQ(defaults.get<double>("norm_type"), 2.0);
  EXPECT_TRUE(defaults.get<bool>("per_layer"));
  EXPECT_EQ(defaults.get<std::int64_t>("group_depth"), 2);
  EXPECT_THAT(defaults.get<std::vector<std::string>>("layers"), IsEmpty());
}

TEST(GradNorm, LogsTheGlobalAndPerLayerL2NormsOfKnownGradients) {
  // blocks.0: sqrt(5^2 + 12^2) = 13; all: sqrt(5^2 + 5^2 + 12^2 + 10^2). blocks.1 has no
  // gradient, so no norm: it is not reported rather than reported as 0.
  EXPECT_THAT(
      grad_norms({}, known_gradients()),
      ElementsAre(Pair("grad_norm", DoubleEq(std::sqrt(294.0))),
                  Pair("grad_norm/blocks.0", DoubleEq(13.0)),
                  Pair("grad_norm/ln_f", DoubleEq(10.0)), Pair("grad_norm/wte", DoubleEq(5.0))));
}

TEST(GradNorm, InfinityAndOneNormsCarryTheirNameAndCombineAsTheyShould) {
  EXPECT_THAT(grad_norms(with({{"norm_type", kInf}}), known_gradients()),
              ElementsAre(Pair("grad_norm_inf", DoubleEq(12.0)),
                          Pair("grad_norm_inf/blocks.0", DoubleEq(12.0)),
                          Pair("grad_norm_inf/ln_f", DoubleEq(8.0)),
                          Pair("grad_norm_inf/wte", DoubleEq(4.0))));
  EXPECT_THAT(
      grad_norms(with({{"norm_type", 1.0}}), known_gradients()),
      ElementsAre(Pair("grad_norm_1", DoubleEq(42.0)), Pair("grad_norm_1/blocks.0", DoubleEq(21.0)),
                  Pair("grad_norm_1/ln_f", DoubleEq(14.0)),
                  Pair("grad_norm_1/wte", DoubleEq(7.0))));
  // p = 3 on [3, 4] alone: (27 + 64)^(1/3).
  EXPECT_THAT(
      grad_norms(with({{"norm_type", 3.0}, {"per_layer", false}}), {parameter("w", {3, 4}, {2})}),
      ElementsAre(Pair("grad_norm_3", DoubleEq(std::cbrt(91.0)))));
}

TEST(GradNorm, GroupDepthChoosesWhatALayerIs) {
  // Depth 1: blocks.0 and blocks.1 together, sqrt(13^2 + 84^2) = 85.
  EXPECT_THAT(
      grad_norms(with({{"group_depth", std::int64_t{1}}}), known_gradients(true)),
      ElementsAre(Pair("grad_norm", DoubleEq(std::sqrt(294.0 + 84.0 * 84.0))),
                  Pair("grad_norm/blocks", DoubleEq(85.0)), Pair("grad_norm/ln_f", DoubleEq(10.0)),
                  Pair("grad_norm/wte", DoubleEq(5.0))));
  // Depth 0: one norm per tensor, under its full name; a name without a module path is its own.
  auto parameters = known_gradients();
  parameters.push_back(parameter("scale", {-2}, {1}));
  EXPECT_THAT(grad_norms(with({{"group_depth", std::int64_t{0}}}), parameters),
              ElementsAre(Pair("grad_norm", DoubleEq(std::sqrt(298.0))),
                          Pair("grad_norm/blocks.0.attn.qkv.weight", DoubleEq(5.0)),
                          Pair("grad_norm/blocks.0.ln_1.bias", DoubleEq(12.0)),
                          Pair("grad_norm/ln_f.weight", DoubleEq(10.0)),
                          Pair("grad_norm/scale", DoubleEq(2.0)),
                          Pair("grad_norm/wte.weight", DoubleEq(5.0))));
  // A depth beyond the module path stops at the module: ln_f.weight is ln_f.
  EXPECT_EQ(grad_norms(with({{"group_depth", std::int64_t{9}}}), known_gradients())
                .count("grad_norm/blocks.0.attn.qkv"),
            1u);
}

TEST(GradNorm, GradientsFromARealBackwardPass) {
  // loss = sum(w * c): dloss/dw = c, here [5, 12] (13); then [0, 0] (0).
  at::Tensor w = at::zeros({2}).requires_grad_();
  w.mul(at::tensor(std::vector<float>{5, 12})).sum().backward();
  EXPECT_THAT(grad_norms(with({{"per_layer", false}}), {{"head.weight", w}}),
              ElementsAre(Pair("grad_norm", DoubleEq(13.0))));
  w.mutable_grad().zero_();
  EXPECT_THAT(grad_norms(with({{"per_layer", false}}), {{"head.weight", w}}),
              ElementsAre(Pair("grad_norm", DoubleEq(0.0))));
  // Read, never changed: the gradient is still there for clipping and the optimizer.
  EXPECT_TRUE(w.grad().defined());
}

TEST(GradNorm, ANanGradientMakesItsLayerAndTheTotalNan) {
  auto parameters = known_gradients();
  parameters.push_back(parameter("head.weight", {1, kNan}, {2}));
  for (double p : {2.0, kInf}) {
    SCOPED_TRACE(p);
    const auto norms = grad_norms(with({{"norm_type", p}}), parameters);
    const std::string total = p == 2.0 ? "grad_norm" : "grad_norm_inf";
    EXPECT_TRUE(std::isnan(norms.at(total)));
    EXPECT_TRUE(std::isnan(norms.at(total + "/head")));
    EXPECT_FALSE(std::isnan(norms.at(total + "/wte")));
  }
}

TEST(GradNorm, LogsAtEveryStepsAndAtTheLastStep) {
  auto callback = make("grad_norm", with({{"every_steps", std::int64_t{3}}}));
  FakeControl control({});
  std::vector<std::int64_t> logged_at;
  for (std::int64_t before = 0; before < 7; ++before) {
    lmrun::TrainState state = state_at(before);  // in on_after_backward: steps before this one
    state.max_steps = 7;
    control.logged.clear();
    callback->on_after_backward(state, known_gradients(), control);
    if (!control.logged.empty()) logged_at.push_back(before + 1);
  }
  EXPECT_THAT(logged_at, ElementsAre(3, 6, 7));
}

TEST(GradNorm, ListedLayersAreTheOnlyOnesLoggedAndAreDeclared) {
  const lmrun::Params options = with({{"layers", std::vector<std::string>{"blocks.0"}}});
  EXPECT_THAT(make("grad_norm")->metric_names(), ElementsAre("grad_norm"));
  EXPECT_THAT(make("grad_norm", options)->metric_names(),
              ElementsAre("grad_norm", "grad_norm/blocks.0"));
  EXPECT_THAT(grad_norms(options, known_gradients()),
              ElementsAre(Pair("grad_norm", DoubleEq(std::sqrt(294.0))),
                          Pair("grad_norm/blocks.0", DoubleEq(13.0))));
  EXPECT_THAT(grad_norms(with({{"per_layer", false}}), known_gradients()),
              ElementsAre(Pair("grad_norm", DoubleEq(std::sqrt(294.0)))));
  // A listed layer the model does not have: an error at the first logging step, with the list.
  EXPECT_THAT(
      error_of([] {
        grad_norms(with({{"layers", std::vector<std::string>{"blocks.9"}}}), known_gradients());
      }),
      HasSubstr("grad_norm: layers names 'blocks.9', which is no layer of this model at "
                "group_depth = 2; its layers are: wte, blocks.0, blocks.1, ln_f (did you "
                "mean blocks.0?)"));
}

// What `lmrun check` does with a monitor: the run's step metrics are the callbacks' declared names.
TEST(GradNorm, AMonitorMayNameADeclaredNorm) {
  auto norms = make("grad_norm", with({{"layers", std::vector<std::string>{"blocks.0"}}}));
  lmrun::TrainState planned = state_at(0);
  planned.step_metrics = {"loss", "lr"};
  for (const auto& name : norms->metric_names()) planned.step_metrics.push_back(name);
  auto watcher =
      make("early_stopping",
           with({{"monitor", std::string("grad_norm/blocks.0")}, {"mode", std::string("max")}}));
  EXPECT_EQ(error_of([&] { watcher->check_plan(planned); }), "(no error)");
  auto typo = make("early_stopping", with({{"monitor", std::string("grad_norm/block.0")}}));
  EXPECT_THAT(error_of([&] { typo->check_plan(planned); }),
              HasSubstr("(did you mean grad_norm/blocks.0?)"));
}

TEST(GradNorm, TheSchemaRefusesContradictoryOptions) {
  EXPECT_THAT(error_of([] {
                make("grad_norm",
                     with({{"per_layer", false}, {"layers", std::vector<std::string>{"wte"}}}));
              }),
              HasSubstr("callback 'grad_norm': layers is set but per_layer = false"));
  EXPECT_THAT(error_of([] {
                make("grad_norm", with({{"layers", std::vector<std::string>{"wte", "wte"}}}));
              }),
              HasSubstr("layers names 'wte' twice"));
  EXPECT_THAT(error_of([] {
                make("grad_norm", with({{"norm_type", 0.5}}));
              }),
              HasSubstr("norm_type: 0.5 is out of range: expected >= 1"));
  EXPECT_THAT(error_of([] {
                make("grad_norm", with({{"every_steps", std::int64_t{0}}}));
              }),
              HasSubstr("every_steps: 0 is out of range: expected >= 1"));
}

// ---------------------------------------------------------------------------------------------
// lr_monitor

TEST(LrMonitor, LogsEachGroupsLearningRateAtEveryStepsAndTheLast) {
  EXPECT_THAT(param_names("lr_monitor"), ElementsAre("every_steps"));
  auto callback = make("lr_monitor", with({{"every_steps", std::int64_t{2}}}));
  EXPECT_THAT(callback->metric_names(), ElementsAre("lr_group0"));
  FakeControl control({});
  std::vector<std::int64_t> logged_at;
  for (std::int64_t step = 1; step <= 5; ++step) {
    lmrun::TrainState state = state_at(step);
    state.max_steps = 5;
    state.learning_rates = {1e-3 * static_cast<double>(step), 5e-4};
    control.logged.clear();
    callback->on_step_end(state, control);
    if (!control.logged.empty()) logged_at.push_back(step);
  }
  EXPECT_THAT(logged_at, ElementsAre(2, 4, 5));
  EXPECT_THAT(control.logged,
              ElementsAre(Pair("lr_group0", DoubleEq(5e-3)), Pair("lr_group1", DoubleEq(5e-4))));
}

// ---------------------------------------------------------------------------------------------
// lr_finder

// Drives a finder as the trainer does: train start, then one step per loss at the learning rate
// the finder last asked for (state.lr), numbered from `first_step`. Stops at the first stop
// request; returns how many steps ran.
std::size_t sweep(Callback& finder, FakeControl& control, const std::vector<double>& losses,
                  const fs::path& run_dir, std::int64_t first_step = 1) {
  lmrun::TrainState state = state_at(first_step - 1, run_dir);
  finder.on_train_start(state, control);
  const std::size_t stops_before = control.stops.size();
  for (std::size_t i = 0; i < losses.size(); ++i) {
    state.step = first_step + static_cast<std::int64_t>(i);
    state.lr = control.next_lrs.back();
    state.metrics["loss"] = losses[i];
    finder.on_step_end(state, control);
    if (control.stops.size() > stops_before) return i + 1;
  }
  return losses.size();
}

// lr_finder.csv's columns, by name.
std::map<std::string, std::vector<double>> curve(const fs::path& run_dir) {
  std::istringstream in(lmrun::test::read_file(run_dir / "lr_finder.csv"));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "step,lr,loss,smoothed_loss");
  std::map<std::string, std::vector<double>> out;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string field;
    for (const char* column : {"step", "lr", "loss", "smoothed_loss"}) {
      std::getline(fields, field, ',');
      out[column].push_back(std::stod(field));
    }
  }
  return out;
}

nlohmann::json curve_json(const fs::path& run_dir) {
  return nlohmann::json::parse(lmrun::test::read_file(run_dir / "lr_finder.json"));
}

TEST(LrFinder, RegistersWithItsParametersAndDefaults) {
  EXPECT_THAT(param_names("lr_finder"),
              ElementsAre("min_lr", "max_lr", "num_steps", "mode", "smoothing",
                          "divergence_threshold", "skip_begin", "skip_end"));
  const lmrun::Params defaults = params_for("lr_finder");
  EXPECT_EQ(defaults.get<double>("min_lr"), 1e-7);
  EXPECT_EQ(defaults.get<double>("max_lr"), 10.0);
  EXPECT_EQ(defaults.get<std::int64_t>("num_steps"), 100);
  EXPECT_EQ(defaults.get<std::string>("mode"), "exponential");
  EXPECT_EQ(defaults.get<double>("smoothing"), 0.98);
  EXPECT_EQ(defaults.get<double>("divergence_threshold"), 4.0);
  EXPECT_EQ(defaults.get<std::int64_t>("skip_begin"), 10);
  EXPECT_EQ(defaults.get<std::int64_t>("skip_end"), 1);
}

TEST(LrFinder, SweepsExponentiallyFromMinToMaxAndStopsWhenDone) {
  lmrun::test::TempDir run;
  auto finder = make("lr_finder",
                     with({{"min_lr", 1e-4},
                           {"max_lr", 1.0},
                           {"num_steps", std::int64_t{5}},
                           {"skip_begin", std::int64_t{0}}}),
                     run.path());
  FakeControl control(run.path());
  EXPECT_EQ(sweep(*finder, control, {2.0, 2.0, 2.0, 2.0, 2.0, 2.0}, run.path()), 5u);
  // min_lr * (max_lr / min_lr)^(i / (num_steps - 1)): a factor of 10 a step, both ends exact.
  ASSERT_EQ(control.next_lrs.size(), 5u);
  EXPECT_EQ(control.next_lrs[0], 1e-4);
  for (std::size_t i = 1; i < 4; ++i)
    EXPECT_DOUBLE_EQ(control.next_lrs[i], 1e-4 * std::pow(10.0, static_cast<double>(i))) << i;
  EXPECT_EQ(control.next_lrs[4], 1.0);
  ASSERT_EQ(control.stops.size(), 1u);
  EXPECT_THAT(control.stops[0],
              HasSubstr("lr_finder: range test complete: 5 steps from lr 0.0001 to 1; "));
  EXPECT_THAT(control.stops[0],
              HasSubstr("; curve in lr_finder.csv and lr_finder.json of the run folder"));
  EXPECT_EQ(curve(run.path())["lr"], control.next_lrs);
  EXPECT_THAT(curve(run.path())["step"], ElementsAre(1, 2, 3, 4, 5));
  EXPECT_EQ(curve_json(run.path())["status"], "complete");
}

TEST(LrFinder, LinearModeSpacesTheLearningRatesEvenly) {
  auto finder = make("lr_finder", with({{"min_lr", 0.1},
                                        {"max_lr", 0.5},
                                        {"num_steps", std::int64_t{5}},
                                        {"mode", std::string("linear")},
                                        {"skip_begin", std::int64_t{0}}}));
  lmrun::test::TempDir run;
  FakeControl control(run.path());
  sweep(*finder, control, {1, 1, 1, 1, 1}, run.path());
  ASSERT_EQ(control.next_lrs.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i)
    EXPECT_DOUBLE_EQ(control.next_lrs[i], 0.1 + 0.1 * static_cast<double>(i)) << i;
}

TEST(LrFinder, SmoothsTheLossWithABiasCorrectedMovingAverage) {
  lmrun::test::TempDir run;
  auto finder = make("lr_finder",
                     with({{"num_steps", std::int64_t{3}},
                           {"smoothing", 0.5},
                           {"skip_begin", std::int64_t{0}},
                           {"skip_end", std::int64_t{0}}}),
                     run.path());
  FakeControl control(run.path());
  sweep(*finder, control, {4.0, 2.0, 1.0}, run.path());
  // avg_k = 0.5 avg_{k-1} + 0.5 loss_k from 0: 2, 2, 1.5; over (1 - 0.5^k): 4, 8/3, 12/7.
  const auto columns = curve(run.path());
  EXPECT_THAT(columns.at("loss"), ElementsAre(4.0, 2.0, 1.0));
  EXPECT_THAT(columns.at("smoothed_loss"),
              ElementsAre(DoubleEq(4.0), DoubleEq(8.0 / 3.0), DoubleEq(12.0 / 7.0)));
}

TEST(LrFinder, StopsWhenTheSmoothedLossExceedsTheThresholdTimesItsBest) {
  lmrun::test::TempDir run;
  auto finder = make("lr_finder",
                     with({{"min_lr", 1e-4},
                           {"max_lr", 1e5},
                           {"num_steps", std::int64_t{10}},
                           {"smoothing", 0.0},
                           {"skip_begin", std::int64_t{1}},
                           {"skip_end", std::int64_t{1}}}),
                     run.path());
  FakeControl control(run.path());
  // Best 1; 4 is not *above* 4 x 1, 4.5 is. The loss after the stop is never fed.
  EXPECT_EQ(sweep(*finder, control, {2.0, 1.5, 1.0, 3.0, 4.0, 4.5, 1.0}, run.path()), 6u);
  EXPECT_EQ(control.next_lrs.size(), 6u);  // none asked for after the stop
  ASSERT_EQ(control.stops.size(), 1u);
  EXPECT_THAT(control.stops[0],
              HasSubstr("lr_finder: diverged: the smoothed loss 4.5 is above 4 x its best 1 at "
                        "lr 10 (step 6, point 6 of 10); suggested lr 0.001 (steepest descent of "
                        "the smoothed loss against log10(lr), at step 2; lowest smoothed loss 1 "
                        "at lr 0.01)"));
  const nlohmann::json json = curve_json(run.path());
  EXPECT_EQ(json["status"], "diverged");
  EXPECT_EQ(json["points"].size(), 6u);
  EXPECT_EQ(json["best_smoothed_loss"], 1.0);
}

TEST(LrFinder, ANonFiniteLossStopsTheSweep) {
  lmrun::test::TempDir run;
  auto finder = make("lr_finder", with({{"num_steps", std::int64_t{20}}}), run.path());
  FakeControl control(run.path());
  EXPECT_EQ(sweep(*finder, control, {2.0, 1.9, kNan, 1.0}, run.path()), 3u);
  EXPECT_THAT(control.stops.at(0), HasSubstr("lr_finder: diverged: the loss is nan at lr "));
  // Too few points for a suggestion after the default skips: said, in the line and the file.
  EXPECT_THAT(control.stops.at(0),
              HasSubstr("no suggested lr: only 0 finite points of 3 remain after skipping the "
                        "first 10 and the last 1 (2 are needed)"));
  const nlohmann::json json = curve_json(run.path());
  EXPECT_TRUE(json["suggested_lr"].is_null());
  EXPECT_TRUE(json["points"][2]["loss"].is_null());  // JSON has no nan
  EXPECT_TRUE(std::isnan(curve(run.path())["loss"][2]));
}

// A curve with a known steepest descent: evenly spaced in log10(lr) (10x a step), the smoothed
// loss (smoothing 0: the loss) falls fastest around point 5 (slope (1.5 - 4.5) / 2 = -1.5), and
// fastest of all at point 0 (-4), which skip_begin is there to ignore.
TEST(LrFinder, SuggestsTheSteepestDescentOfTheSmoothedLossAfterTheSkips) {
  const std::vector<double> losses = {9, 5, 5, 4.9, 4.5, 3, 1.5, 1.2, 1.1, 1.3, 2, 3};
  auto run_with = [&](std::int64_t skip_begin, const fs::path& run_dir, FakeControl& control) {
    auto finder = make("lr_finder",
                       with({{"min_lr", 1e-6},
                             {"max_lr", 1e5},
                             {"num_steps", std::int64_t{12}},
                             {"smoothing", 0.0},
                             {"skip_begin", skip_begin}}),
                       run_dir);
    return sweep(*finder, control, losses, run_dir);
  };
  lmrun::test::TempDir run;
  FakeControl control(run.path());
  ASSERT_EQ(run_with(2, run.path(), control), 12u);
  const nlohmann::json json = curve_json(run.path());
  EXPECT_EQ(json["suggested_lr"].get<double>(), control.next_lrs[5]);
  EXPECT_NEAR(json["suggested_lr"].get<double>(), 0.1, 1e-12);
  EXPECT_EQ(json["suggested_step"], 6);
  EXPECT_EQ(json["rule"], "steepest descent of the smoothed loss against log10(lr)");
  EXPECT_EQ(json["best_lr"].get<double>(), control.next_lrs[8]);
  EXPECT_EQ(json["format"], 1);
  EXPECT_EQ(json["callback"], "lr_finder");
  EXPECT_THAT(control.stops.at(0), HasSubstr("suggested lr 0.1 (steepest descent"));

  lmrun::test::TempDir unskipped;
  FakeControl control0(unskipped.path());
  run_with(0, unskipped.path(), control0);
  EXPECT_EQ(curve_json(unskipped.path())["suggested_lr"].get<double>(), 1e-6);
}

TEST(LrFinder, ARunEndingBeforeTheSweepStillWritesTheCurve) {
  lmrun::test::TempDir run;
  auto finder = make("lr_finder", with({{"num_steps", std::int64_t{20}}}), run.path());
  FakeControl control(run.path());
  sweep(*finder, control, {3.0, 2.5, 2.0}, run.path());
  EXPECT_FALSE(fs::exists(run / "lr_finder.csv"));
  finder->on_train_end(state_at(3, run.path()), control);  // another callback stopped the run
  EXPECT_THAT(curve(run.path())["loss"], ElementsAre(3.0, 2.5, 2.0));
  EXPECT_EQ(curve_json(run.path())["status"], "interrupted");
  EXPECT_THAT(control.stops, IsEmpty());
}

TEST(LrFinder, TheRunMustBeLongEnoughForTheSweep) {
  auto finder = make("lr_finder");
  lmrun::TrainState planned = state_at(0);
  planned.max_steps = 50;
  EXPECT_THAT(error_of([&] { finder->check_plan(planned); }),
              HasSubstr("lr_finder: the sweep takes num_steps = 100 steps and the run stops at "
                        "train.max_steps = 50"));
  planned.max_steps = 100;
  EXPECT_EQ(error_of([&] { finder->check_plan(planned); }), "(no error)");
}

TEST(LrFinder, TheSchemaRefusesContradictoryOptions) {
  EXPECT_THAT(error_of([] {
                make("lr_finder", with({{"min_lr", 1.0}, {"max_lr", 0.1}}));
              }),
              HasSubstr("callback 'lr_finder': min_lr = 1 is not below max_lr = 0.1"));
  EXPECT_THAT(
      error_of([] {
        make("lr_finder", with({{"num_steps", std::int64_t{5}}, {"skip_begin", std::int64_t{3}}}));
      }),
      HasSubstr("skip_begin = 3 and skip_end = 1 leave fewer than 2 of num_steps = 5 "
                "points for a suggestion"));
  EXPECT_THAT(error_of([] {
                make("lr_finder", with({{"smoothing", 1.0}}));
              }),
              HasSubstr("smoothing: 1.0 is out of range: expected in [0, 1)"));
  EXPECT_THAT(error_of([] {
                make("lr_finder", with({{"divergence_threshold", 1.0}}));
              }),
              HasSubstr("divergence_threshold: 1.0 is out of range: expected > 1"));
  EXPECT_THAT(error_of([] {
                make("lr_finder", with({{"min_lr", 0.0}}));
              }),
              HasSubstr("min_lr: 0.0 is out of range: expected > 0"));
  EXPECT_THAT(error_of([] {
                make("lr_finder", with({{"max_lr", kInf}}));
              }),
              HasSubstr("max_lr = inf is not finite"));
  EXPECT_EQ(error_of([] {
              make("lr_finder", with({{"divergence_threshold", kInf}}));
            }),
            "(no error)");
}

TEST(LrFinder, ResumingFromSavedStateSweepsLikeAnUninterruptedRun) {
  const lmrun::Params options = with({{"min_lr", 1e-3},
                                      {"max_lr", 1.0},
                                      {"num_steps", std::int64_t{8}},
                                      {"smoothing", 0.9},
                                      {"skip_begin", std::int64_t{1}}});
  const std::vector<double> losses = {3.0, 2.9, 2.7, 2.2, 1.9, 2.0, 2.6, 3.3};
  lmrun::test::TempDir run;
  auto whole = make("lr_finder", options, run.path());
  FakeControl whole_control(run.path());
  ASSERT_EQ(sweep(*whole, whole_control, losses, run.path()), 8u);
  const std::string whole_csv = lmrun::test::read_file(run / "lr_finder.csv");
  const std::string whole_json = lmrun::test::read_file(run / "lr_finder.json");

  for (std::size_t cut = 1; cut < losses.size(); ++cut) {
    SCOPED_TRACE(cut);
    auto first = make("lr_finder", options, run.path());
    FakeControl control(run.path());
    sweep(*first, control, {losses.begin(), losses.begin() + static_cast<long>(cut)}, run.path());
    const std::string text = first->save_state();
    auto second = make("lr_finder", options, run.path());
    second->load_state(text);
    EXPECT_EQ(second->save_state(), text);
    FakeControl resumed(run.path());
    sweep(*second, resumed, {losses.begin() + static_cast<long>(cut), losses.end()}, run.path(),
          static_cast<std::int64_t>(cut) + 1);
    EXPECT_EQ(resumed.next_lrs.front(), whole_control.next_lrs[cut]);  // picks up where it was
    EXPECT_EQ(resumed.stops, whole_control.stops);
    EXPECT_EQ(lmrun::test::read_file(run / "lr_finder.csv"), whole_csv);
    EXPECT_EQ(lmrun::test::read_file(run / "lr_finder.json"), whole_json);
    EXPECT_EQ(second->save_state(), whole->save_state());
  }

  // Resumed from the checkpoint of the step the sweep ended at: nothing left, the run stops.
  auto after = make("lr_finder", options, run.path());
  after->load_state(whole->save_state());
  FakeControl control(run.path());
  after->on_train_start(state_at(8, run.path()), control);
  EXPECT_THAT(control.stops,
              ElementsAre("lr_finder: the range test already ended at step 8; nothing is left "
                          "to sweep"));
  EXPECT_THAT(control.next_lrs, IsEmpty());
}

TEST(LrFinder, CorruptOrForeignStateIsAnError) {
  const lmrun::Params options =
      with({{"num_steps", std::int64_t{4}}, {"smoothing", 0.0}, {"skip_begin", std::int64_t{0}}});
  auto finder = make("lr_finder", options);
  lmrun::test::TempDir run;
  FakeControl control(run.path());
  sweep(*finder, control, {1.0, 1.0, 1.0, 1.0}, run.path());
  const std::string done = finder->save_state();
  auto load = [&](const lmrun::Params& with_options, const std::string& text) {
    return error_of([&] { make("lr_finder", with_options)->load_state(text); });
  };
  EXPECT_EQ(load(options, done), "(no error)");
  EXPECT_THAT(load(with({{"num_steps", std::int64_t{5}},
                         {"smoothing", 0.0},
                         {"skip_begin", std::int64_t{0}}}),
                   done),
              HasSubstr("lr_finder: the checkpoint's sweep (min_lr 1e-07, max_lr 10, num_steps "
                        "4, exponential, smoothing 0, divergence_threshold 4) differs from this "
                        "run's options"));
  EXPECT_THAT(load(options, done + "point=5 10 1\n"), HasSubstr("5 points for a sweep of 4"));
  const std::string head = done.substr(0, done.find("point="));
  EXPECT_THAT(load(options, head + "point=1 0.1\n"),
              HasSubstr("'point=1 0.1' does not have 3 fields"));
  EXPECT_THAT(load(options, head + "point=1 0.1 x\n"), HasSubstr("'point' is not a number: 'x'"));
  // A loss of nan ends the sweep: a point after it cannot be.
  EXPECT_THAT(load(options, head + "point=1 0.1 nan\npoint=2 0.2 1\n"),
              HasSubstr("'point=2 0.2 1' comes after the sweep ended"));
  EXPECT_THAT(load(options, "callback=grad_norm\nformat=1\n"),
              HasSubstr("lr_finder: cannot read the saved callback state: it is the state of "
                        "'grad_norm'"));
}

}  // namespace
