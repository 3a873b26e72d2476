// The callback suite: callback.h's contracts on every callback registration under test
// (conformance.h), against a fake trainer that plays a scripted run in the trainer's order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ATen/core/Tensor.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>

#include "lmrun/callback.h"
#include "lmrun/testing/conformance.h"
#include "support.h"

namespace lmrun::testing {
namespace fs = std::filesystem;
namespace {

// ---------------------------------------------------------------------------------------------
// The script: 24 steps, an evaluation every 2. The validation loss falls to its best at step 8,
// then wanders without improving, so a patience-style callback stops mid-run.

constexpr std::int64_t kMaxSteps = 24;
constexpr std::int64_t kEvalInterval = 2;

double train_loss(std::int64_t step) {
  return 3.0 / std::sqrt(static_cast<double>(step)) + 0.05 * static_cast<double>(step % 3);
}

double val_loss(std::int64_t step) {
  static const double values[] = {2.6, 2.2, 2.0, 1.8, 1.9, 2.1, 1.85, 2.2, 2.4, 2.3, 2.5, 2.6};
  return values[(step / kEvalInterval - 1) % 12];
}

// The learning rate the scheduler would give: a short warmup, then a slow decay.
double scheduled_lr(std::int64_t step) {
  return step < 4 ? 1e-3 * static_cast<double>(step + 1) / 4.0 : 1e-3 * std::pow(0.9, step - 4);
}

const std::vector<std::string> kEvalMetrics = {"train_loss", "val_loss", "val_perplexity"};

// ---------------------------------------------------------------------------------------------
// The fake trainer: calls events as Trainer::run does, writes the checkpoints asked for (a
// folder holding the callback's saved state, as a real checkpoint does) after each step's
// events, then removes what was asked to go, and records every request by step.

class FakeTrainer final : public TrainerControl {
 public:
  FakeTrainer(Callback& callback, fs::path run_dir) : callback_(callback) {
    state_.max_steps = kMaxSteps;
    state_.run_dir = std::move(run_dir);
    state_.eval_metrics = kEvalMetrics;
    state_.step_metrics = {"loss", "lr"};
    for (const std::string& name : callback.metric_names()) state_.step_metrics.push_back(name);
    weight_ = at::ones({4, 3});
    weight_.set_requires_grad(true);
    bias_ = at::ones({3});
    bias_.set_requires_grad(true);  // gets no gradient: its grad() stays undefined
  }

  // The state after `step` steps, as a resumed trainer holds it.
  void resume_at(std::int64_t step, const Metrics& metrics) {
    state_.step = step;
    state_.metrics = metrics;
  }

  // Trainer::run: check_plan, train start, steps up to `last` (or a stop), train end when the
  // run ends there. Returns false when the callback asked to stop.
  bool run(std::int64_t last) {
    current_ = state_.step;
    callback_.check_plan(state_);
    callback_.on_train_start(state_, *this);
    while (state_.step < last && !stopped_) step();
    if (stopped_ || last == kMaxSteps) {
      callback_.on_train_end(state_, *this);
      write_pending();
    }
    return !stopped_;
  }

  // TrainerControl
  void request_stop(const std::string& reason) override {
    record("stop (" + reason + ")");
    stopped_ = true;
  }
  fs::path save_checkpoint(const std::string& name) override {
    record("save_checkpoint " + name);
    if (std::find(pending_.begin(), pending_.end(), name) == pending_.end())
      pending_.push_back(name);
    return state_.run_dir / "checkpoints" / name;
  }
  void remove_checkpoint(const std::string& name) override {
    record("remove_checkpoint " + name);
    removals_.push_back(name);
  }
  void log_metric(const std::string& name, double value) override {
    const bool trainer_owns =
        name == "loss" || name == "lr" || name == "tokens_per_second" || name == "mfu" ||
        name == "step" ||
        std::find(kEvalMetrics.begin(), kEvalMetrics.end(), name) != kEvalMetrics.end();
    if (name.empty() || trainer_owns) {
      throw Error("log_metric: '" + name + "' is the trainer's own metric (or empty)");
    }
    record("log_metric " + name + " = " + format_value(value));
    state_.metrics[name] = value;
  }
  void set_next_lr(double lr) override {
    if (!std::isfinite(lr) || lr < 0) throw Error("set_next_lr: " + format_value(lr));
    record("set_next_lr " + format_value(lr));
    next_lr_ = lr;
  }

  const TrainState& state() const { return state_; }
  // "step 6: save_checkpoint step-000006", in order, by the step being trained when asked
  // (train start: the step it starts from).
  const std::vector<std::string>& requests() const { return requests_; }

 private:
  void record(const std::string& what) {
    requests_.push_back("step " + std::to_string(current_) + ": " + what);
  }

  void step() {
    const std::int64_t next = state_.step + 1;
    current_ = next;
    const double lr = next_lr_ >= 0 ? next_lr_ : scheduled_lr(state_.step);
    next_lr_ = -1;
    // After backward: the gradients of this step, the state still at the previous step.
    weight_.mutable_grad() = at::full({4, 3}, 0.01 * static_cast<double>(next));
    callback_.on_after_backward(state_, {{"layer.weight", weight_}, {"layer.bias", bias_}}, *this);
    state_.step = next;
    state_.lr = lr;
    state_.learning_rates = {lr};
    state_.grad_norm = std::sqrt(12.0) * 0.01 * static_cast<double>(next);
    state_.metrics["loss"] = train_loss(next);
    state_.metrics["lr"] = lr;
    callback_.on_step_end(state_, *this);
    if (next % kEvalInterval == 0 || next == kMaxSteps) {
      const Metrics eval = {{"train_loss", train_loss(next) - 0.1},
                            {"val_loss", val_loss(next)},
                            {"val_perplexity", std::exp(val_loss(next))}};
      for (const auto& [name, value] : eval) state_.metrics[name] = value;
      callback_.on_eval_end(state_, eval, *this);
    }
    write_pending();
  }

  void write_pending() {
    for (const std::string& name : pending_) {
      const fs::path folder = state_.run_dir / "checkpoints" / name;
      fs::remove_all(folder);
      fs::create_directories(folder);
      std::ofstream(folder / "callback_state.txt") << callback_.save_state();
      callback_.on_checkpoint(state_, folder);
    }
    pending_.clear();
    for (const std::string& name : removals_) fs::remove_all(state_.run_dir / "checkpoints" / name);
    removals_.clear();
  }

  Callback& callback_;
  TrainState state_;
  at::Tensor weight_, bias_;
  std::int64_t current_ = 0;  // the step being trained, for record()
  bool stopped_ = false;
  double next_lr_ = -1;
  std::vector<std::string> pending_, removals_;
  std::vector<std::string> requests_;
};

// The requests made while training steps `first` to `last`.
std::vector<std::string> between(const std::vector<std::string>& requests, std::int64_t first,
                                 std::int64_t last) {
  std::vector<std::string> out;
  for (const std::string& r : requests) {
    const std::int64_t step = std::stoll(r.substr(5, r.find(':') - 5));  // "step N: ..."
    if (step >= first && step <= last) out.push_back(r);
  }
  return out;
}

class CallbackConformance : public ::testing::TestWithParam<Subject> {
 protected:
  std::shared_ptr<Callback> make(const fs::path& run_dir) const {
    return GetParam().create<Callback>(CallbackContext{run_dir});
  }
};

TEST_P(CallbackConformance, StateRoundTrip) {
  // The uninterrupted run.
  TempFolder whole_dir;
  auto whole = make(whole_dir.path());
  FakeTrainer whole_trainer(*whole, whole_dir.path());
  whole_trainer.run(kMaxSteps);
  const std::int64_t last_step = whole_trainer.state().step;

  std::int64_t cuts = 0;
  for (std::int64_t cut : {1, 3, 6, 9, 14}) {
    if (cut >= last_step) continue;  // the whole run stopped before
    ++cuts;
    SCOPED_TRACE("resumed after step " + std::to_string(cut));
    TempFolder run_dir;
    auto first = make(run_dir.path());
    FakeTrainer first_trainer(*first, run_dir.path());
    ASSERT_TRUE(first_trainer.run(cut)) << "the first part asked to stop, the whole run did not";
    EXPECT_EQ(first_trainer.requests(), between(whole_trainer.requests(), 0, cut))
        << "two instances of the same parameters ask different things of the same run";

    const std::string saved = first->save_state();
    auto resumed = make(run_dir.path());
    resumed->load_state(saved);
    EXPECT_EQ(resumed->save_state(), saved)
        << "a fresh instance given load_state(s) saves a different state than s";
    FakeTrainer resumed_trainer(*resumed, run_dir.path());
    resumed_trainer.resume_at(cut, first_trainer.state().metrics);
    resumed_trainer.run(kMaxSteps);
    EXPECT_EQ(between(resumed_trainer.requests(), cut + 1, kMaxSteps),
              between(whole_trainer.requests(), cut + 1, kMaxSteps))
        << "after load_state the callback asks the trainer for other things than an "
           "uninterrupted run";
    EXPECT_EQ(resumed_trainer.state().step, last_step) << "the resumed run ends at another step";
    EXPECT_EQ(resumed->save_state(), whole->save_state())
        << "the resumed run ends in another state than the uninterrupted run";
  }
  EXPECT_GT(cuts, 0) << "the callback stopped the run at step " << last_step
                     << ", before any resume could be tried";
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CallbackConformance);
INSTANTIATE_TEST_SUITE_P(Plugin, CallbackConformance,
                         ::testing::ValuesIn(subjects_of(Kind::kCallback)),
                         [](const auto& info) { return test_name(info.param); });

}  // namespace
}  // namespace lmrun::testing
