// The standard schedules (constant, linear, cosine) through the real plugin loader: values at
// chosen steps of gpt_tiny's setting against nanoGPT's get_lr written out here, and the creation
// errors.
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lmrun/scheduler.h"
#include "support/test_support.h"

namespace {

using lmrun::test::error_of;

using lmrun::Scheduler;
using lmrun::SchedulerContext;

// gpt_tiny: optimizer.lr = 1e-3, scheduler = cosine with warmup_steps = 100 and min_lr = 1e-4,
// train.max_steps = 2000.
constexpr double kBase = 1e-3;
constexpr double kMin = 1e-4;
constexpr std::int64_t kWarmup = 100;
constexpr std::int64_t kMaxSteps = 2000;
constexpr double kTolerance = 1e-15;  // absolute; the values are ~1e-3, doubles carry ~1e-19
const double kPi = std::acos(-1.0);

// ---------------------------------------------------------------------------------------------
// Helpers

lmrun::Params params_for(const std::string& name,
                         std::initializer_list<std::pair<const char*, lmrun::Value>> overrides) {
  return lmrun::test::plugin_params(lmrun::Kind::kScheduler, name,
                                    {overrides.begin(), overrides.end()});
}

std::shared_ptr<Scheduler> make(
    const std::string& name, std::initializer_list<std::pair<const char*, lmrun::Value>> overrides,
    SchedulerContext context = {kBase, kMaxSteps}) {
  return lmrun::test::plugin_registry().create<Scheduler>(name, params_for(name, overrides),
                                                          context);
}

std::shared_ptr<Scheduler> gpt_tiny(const std::string& name) {
  return make(name, {{"warmup_steps", kWarmup}, {"min_lr", kMin}});
}

// nanoGPT's get_lr (train.py), transcribed: the reference the plugin is checked against.
double nanogpt_lr(std::int64_t it, double learning_rate, double min_lr, std::int64_t warmup_iters,
                  std::int64_t lr_decay_iters) {
  if (it < warmup_iters) return learning_rate * (it + 1) / (warmup_iters + 1);
  if (it > lr_decay_iters) return min_lr;
  const double decay_ratio =
      static_cast<double>(it - warmup_iters) / static_cast<double>(lr_decay_iters - warmup_iters);
  const double coeff = 0.5 * (1.0 + std::cos(kPi * decay_ratio));
  return min_lr + coeff * (learning_rate - min_lr);
}

// ---------------------------------------------------------------------------------------------
// Registration

TEST(Schedulers, RegistersConstantLinearCosineWithTheirParameters) {
  const auto& registry = lmrun::test::plugin_registry();
  for (const char* name : {"constant", "linear", "cosine"}) {
    EXPECT_NE(registry.find(lmrun::Kind::kScheduler, name), nullptr) << name;
  }
  auto names_of = [&](const char* name) {
    std::vector<std::string> names;
    for (const auto& spec : registry.find(lmrun::Kind::kScheduler, name)->params) {
      names.push_back(spec.name);
    }
    return names;
  };
  EXPECT_EQ(names_of("constant"), (std::vector<std::string>{"warmup_steps"}));
  EXPECT_EQ(names_of("cosine"),
            (std::vector<std::string>{"warmup_steps", "min_lr", "decay_steps"}));
  EXPECT_EQ(names_of("linear"),
            (std::vector<std::string>{"warmup_steps", "min_lr", "decay_steps"}));
  const lmrun::Params defaults = params_for("cosine", {});
  EXPECT_EQ(defaults.get<std::int64_t>("warmup_steps"), 0);
  EXPECT_EQ(defaults.get<double>("min_lr"), 0.0);
  EXPECT_EQ(defaults.get<std::int64_t>("decay_steps"), 0);
}

// ---------------------------------------------------------------------------------------------
// cosine, gpt_tiny's setting

TEST(Schedulers, CosineWarmupIsLinearFromZero) {
  auto scheduler = gpt_tiny("cosine");
  EXPECT_NEAR(scheduler->lr(0), kBase * 1.0 / 101.0, kTolerance);     // 9.90e-6, never 0
  EXPECT_NEAR(scheduler->lr(49), kBase * 50.0 / 101.0, kTolerance);   // mid-warmup
  EXPECT_NEAR(scheduler->lr(99), kBase * 100.0 / 101.0, kTolerance);  // last warmup step
  EXPECT_NEAR(scheduler->lr(100), kBase, kTolerance);                 // end of warmup: the peak
}

TEST(Schedulers, CosineDecaysToMinLrAndStaysThere) {
  auto scheduler = gpt_tiny("cosine");
  // The middle of [100, 2000] is step 1050, where cos(pi / 2) = 0 leaves the mean.
  EXPECT_NEAR(scheduler->lr(1050), (kBase + kMin) / 2.0, kTolerance);
  // A quarter in: coeff = (1 + cos(pi / 4)) / 2.
  EXPECT_NEAR(scheduler->lr(575), kMin + 0.5 * (1.0 + std::sqrt(0.5)) * (kBase - kMin), kTolerance);
  EXPECT_NEAR(scheduler->lr(2000), kMin, kTolerance);
  EXPECT_EQ(scheduler->lr(2001), kMin);
  EXPECT_EQ(scheduler->lr(1000000), kMin);
}

TEST(Schedulers, CosineMatchesNanoGptAtEveryStep) {
  auto scheduler = gpt_tiny("cosine");
  double previous = kBase;
  for (std::int64_t step = 0; step <= 2100; ++step) {
    const double lr = scheduler->lr(step);
    ASSERT_NEAR(lr, nanogpt_lr(step, kBase, kMin, kWarmup, kMaxSteps), kTolerance) << step;
    if (step > kWarmup) {  // rising to the peak at kWarmup, falling after it
      ASSERT_LE(lr, previous + kTolerance) << "not monotone at step " << step;
    }
    previous = lr;
  }
}

TEST(Schedulers, LrIsAPureFunctionOfTheStep) {
  auto scheduler = gpt_tiny("cosine");
  const double at_1050 = scheduler->lr(1050);
  scheduler->lr(2000);
  scheduler->lr(3);
  EXPECT_EQ(scheduler->lr(1050), at_1050);
  auto other = gpt_tiny("cosine");  // a resumed run sees the same value without replaying steps
  EXPECT_EQ(other->lr(1050), at_1050);
}

TEST(Schedulers, DecayStepsOverridesMaxSteps) {
  auto scheduler = make(
      "cosine", {{"warmup_steps", kWarmup}, {"min_lr", kMin}, {"decay_steps", std::int64_t{1100}}});
  EXPECT_NEAR(scheduler->lr(600), (kBase + kMin) / 2.0, kTolerance);  // middle of [100, 1100]
  EXPECT_EQ(scheduler->lr(1100), kMin);
  EXPECT_EQ(scheduler->lr(1500), kMin);  // still inside max_steps = 2000
}

TEST(Schedulers, NoWarmupStartsAtTheBaseLr) {
  auto scheduler = make("cosine", {});
  EXPECT_NEAR(scheduler->lr(0), kBase, kTolerance);
  EXPECT_NEAR(scheduler->lr(1000), kBase / 2.0, kTolerance);  // min_lr defaults to 0
  EXPECT_EQ(scheduler->lr(2000), 0.0);
}

// ---------------------------------------------------------------------------------------------
// linear and constant

TEST(Schedulers, LinearHasTheSameShapeWithAStraightDecay) {
  auto scheduler = gpt_tiny("linear");
  EXPECT_NEAR(scheduler->lr(0), kBase / 101.0, kTolerance);
  EXPECT_NEAR(scheduler->lr(100), kBase, kTolerance);
  EXPECT_NEAR(scheduler->lr(575), kMin + 0.75 * (kBase - kMin), kTolerance);  // a quarter in
  EXPECT_NEAR(scheduler->lr(1050), (kBase + kMin) / 2.0, kTolerance);
  EXPECT_NEAR(scheduler->lr(1525), kMin + 0.25 * (kBase - kMin), kTolerance);
  EXPECT_NEAR(scheduler->lr(2000), kMin, kTolerance);
  EXPECT_EQ(scheduler->lr(2500), kMin);
}

TEST(Schedulers, ConstantIsTheBaseLrAfterWarmup) {
  auto scheduler = make("constant", {{"warmup_steps", std::int64_t{4}}});
  EXPECT_NEAR(scheduler->lr(0), kBase / 5.0, kTolerance);
  EXPECT_NEAR(scheduler->lr(3), kBase * 4.0 / 5.0, kTolerance);
  EXPECT_EQ(scheduler->lr(4), kBase);
  EXPECT_EQ(scheduler->lr(2000), kBase);
  EXPECT_EQ(scheduler->lr(100000), kBase);  // no decay, whatever max_steps says
  EXPECT_EQ(make("constant", {})->lr(0), kBase);
}

// ---------------------------------------------------------------------------------------------
// Errors, at creation

TEST(Schedulers, WarmupLongerThanTheDecayIsAnError) {
  const std::string message = error_of([] {
    make("cosine", {{"warmup_steps", std::int64_t{3000}}});
  });
  EXPECT_EQ(message.rfind("scheduler 'cosine': ", 0), 0u) << message;
  EXPECT_NE(message.find("warmup_steps = 3000"), std::string::npos) << message;
  EXPECT_NE(message.find("max_steps = 2000"), std::string::npos) << message;

  const std::string with_decay = error_of([] {
    make("linear", {{"warmup_steps", std::int64_t{500}}, {"decay_steps", std::int64_t{400}}});
  });
  EXPECT_NE(with_decay.find("warmup_steps = 500"), std::string::npos) << with_decay;
  EXPECT_NE(with_decay.find("decay_steps = 400"), std::string::npos) << with_decay;

  // Equal is allowed: no decay phase, min_lr from the end of warmup on.
  auto edge = make("cosine", {{"warmup_steps", kMaxSteps}, {"min_lr", kMin}});
  EXPECT_NEAR(edge->lr(kMaxSteps - 1), kBase * 2000.0 / 2001.0, kTolerance);
  EXPECT_EQ(edge->lr(kMaxSteps), kMin);
}

TEST(Schedulers, MinLrAboveTheBaseLrIsAnError) {
  const std::string message = error_of([] { make("cosine", {{"min_lr", 1e-2}}); });
  EXPECT_EQ(message.rfind("scheduler 'cosine': ", 0), 0u) << message;
  EXPECT_NE(message.find("min_lr = 0.01 is above the optimizer's lr = 0.001"), std::string::npos)
      << message;
  EXPECT_NO_THROW(make("linear", {{"min_lr", kBase}}));  // equal: a flat line after warmup
}

TEST(Schedulers, ADecayWithoutLengthIsAnError) {
  const std::string message = error_of([] {
    make("cosine", {}, SchedulerContext{kBase, /*max_steps=*/0});
  });
  EXPECT_NE(message.find("decay_steps = 0 and max_steps = 0"), std::string::npos) << message;
  EXPECT_NO_THROW(make("constant", {}, SchedulerContext{kBase, 0}));  // constant needs no length
}

TEST(Schedulers, ANonPositiveBaseLrIsAnError) {
  const std::string message = error_of([] { make("constant", {}, SchedulerContext{0.0, 100}); });
  EXPECT_NE(message.find("the optimizer's learning rate is 0.0"), std::string::npos) << message;
}

TEST(Schedulers, ANegativeStepIsAnError) { EXPECT_THROW(gpt_tiny("cosine")->lr(-1), lmrun::Error); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// step and plateau

namespace {

TEST(Schedulers, StepMultipliesByGammaEveryStepSize) {
  auto step =
      make("step",
           {{"warmup_steps", std::int64_t{10}}, {"step_size", std::int64_t{100}}, {"gamma", 0.5}});
  EXPECT_NEAR(step->lr(0), kBase / 11, kTolerance);
  EXPECT_NEAR(step->lr(10), kBase, kTolerance);
  EXPECT_NEAR(step->lr(109), kBase, kTolerance);
  EXPECT_NEAR(step->lr(110), kBase * 0.5, kTolerance);
  EXPECT_NEAR(step->lr(310), kBase * 0.125, kTolerance);
  EXPECT_THAT(error_of([] {
                make("step", {{"gamma", 1.5}});
              }),
              ::testing::HasSubstr("gamma = 1.5 is not in (0, 1]"));
}

TEST(Schedulers, PlateauReducesAfterPatienceEvaluationsWithoutImprovement) {
  auto plateau = make("plateau", {{"patience", std::int64_t{1}},
                                  {"factor", 0.5},
                                  {"cooldown", std::int64_t{1}},
                                  {"min_lr", 2e-4}});
  auto eval = [&](double loss) { plateau->on_evaluation(0, {{"val_loss", loss}}); };
  EXPECT_DOUBLE_EQ(plateau->lr(0), kBase);
  eval(2.0);  // best
  eval(2.0);  // not better: 1 bad, within patience
  EXPECT_DOUBLE_EQ(plateau->lr(5), kBase);
  eval(2.1);  // 2 bad > patience 1: halve, cooldown 1
  EXPECT_DOUBLE_EQ(plateau->lr(5), kBase * 0.5);
  eval(2.2);  // cooldown: not counted
  eval(2.2);  // 1 bad
  EXPECT_DOUBLE_EQ(plateau->lr(5), kBase * 0.5);
  eval(1.0);  // better: reset
  eval(1.0);
  eval(1.0);  // 2 bad: halve again
  EXPECT_DOUBLE_EQ(plateau->lr(5), kBase * 0.25);
  eval(1.0);  // cooldown
  eval(1.0);
  eval(1.0);  // would be 1.25e-4: held at min_lr
  EXPECT_DOUBLE_EQ(plateau->lr(5), 2e-4);
  // The state resumes exactly.
  auto resumed = make("plateau", {{"patience", std::int64_t{1}}, {"factor", 0.5}});
  resumed->load_state(plateau->save_state());
  EXPECT_DOUBLE_EQ(resumed->lr(0), 2e-4);
  EXPECT_EQ(resumed->save_state(), plateau->save_state());
  EXPECT_THAT(error_of([&] { resumed->load_state("cosine 3"); }),
              ::testing::HasSubstr("is not one this version reads"));
}

TEST(Schedulers, PlateauWithModeMaxAndAMonitorItCannotFind) {
  auto plateau = make("plateau", {{"monitor", std::string("val_f1_macro")},
                                  {"mode", std::string("max")},
                                  {"patience", std::int64_t{0}}});
  plateau->on_evaluation(0, {{"val_f1_macro", 0.5}});
  plateau->on_evaluation(0, {{"val_f1_macro", 0.6}});
  EXPECT_DOUBLE_EQ(plateau->lr(0), kBase);
  plateau->on_evaluation(0, {{"val_f1_macro", 0.55}});  // worse, patience 0: reduce
  EXPECT_DOUBLE_EQ(plateau->lr(0), kBase * 0.1);
  auto typo = make("plateau", {{"monitor", std::string("val_los")}});
  EXPECT_THAT(error_of([&] {
                typo->on_evaluation(0, {{"val_loss", 1.0}, {"train_loss", 1.0}});
              }),
              ::testing::HasSubstr("monitor 'val_los' is not a metric of this run's evaluations "
                                   "(did you mean val_loss?); they report: train_loss, val_loss"));
}

}  // namespace
