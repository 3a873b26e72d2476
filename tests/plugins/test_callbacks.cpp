// The standard callbacks (early_stopping, checkpoint) through the real plugin loader: scripted
// metric sequences against a fake trainer, the folders on disk, state round trips, error messages.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
  EXPECT_THAT(error_of([&] { far->check_plan(state_at(0)); }),
              Not(HasSubstr("did you mean")));
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
  EXPECT_EQ(error_of([&] { unmonitored->check_plan(state_at(0, {}, {})); }),
            "(no error)");
}

TEST(Checkpoint, TheSchemaRefusesNegativeCounts) {
  EXPECT_THAT(error_of([] {
                make("checkpoint", with({{"keep_best", std::int64_t{-2}}}));
              }),
              HasSubstr("callback 'checkpoint': keep_best: -2 is out of range: expected >= 0"));
}

}  // namespace
