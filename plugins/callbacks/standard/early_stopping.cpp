// Callback `early_stopping`: ends the run when the monitored metric stops improving, reaches a
// target, diverges or turns non-finite. The rules follow Lightning's EarlyStopping
// (https://lightning.ai/docs/pytorch/stable/api/lightning.pytorch.callbacks.EarlyStopping.html).
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "callbacks.h"
#include "lmrun/callback.h"
#include "lmrun/schema.h"
#include "monitor.h"
#include "state_text.h"

namespace lmrun::callbacks {
namespace {

constexpr const char* kName = "early_stopping";
constexpr int kStateFormat = 1;
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// Options

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";  // an evaluation metric (TrainState::eval_metrics)
  std::string mode = "min";          // "min": lower is better; "max": higher is better
  std::int64_t patience = 3;         // evaluations without improvement before stopping
  double min_delta = 0.0;            // an improvement must beat the best by more than this
  double stop_below = -kInf;         // stop once the metric is < this; -inf: never
  double stop_above = kInf;          // stop once the metric is > this; inf: never
  bool check_finite = true;          // stop on a NaN or infinite metric
};

Schema<EarlyStoppingOptions> early_stopping_schema() {
  Schema<EarlyStoppingOptions> schema;
  schema.add(
      "monitor", &EarlyStoppingOptions::monitor,
      "evaluation metric to watch, e.g. val_loss (checked against the run's metrics at start)");
  schema.add("mode", &EarlyStoppingOptions::mode, "min: lower is better; max: higher is better")
      .choices({"min", "max"});
  schema
      .add("patience", &EarlyStoppingOptions::patience,
           "evaluations without improvement before stopping (0 and 1 both stop at the first)")
      .min(0);
  schema
      .add("min_delta", &EarlyStoppingOptions::min_delta,
           "an improvement must beat the best by more than this (absolute)")
      .min(0);
  schema.add("stop_below", &EarlyStoppingOptions::stop_below,
             "stop as soon as the metric is below this (a target for min, divergence for max); "
             "-inf: off");
  schema.add("stop_above", &EarlyStoppingOptions::stop_above,
             "stop as soon as the metric is above this (divergence for min, a target for max); "
             "inf: off");
  schema.add("check_finite", &EarlyStoppingOptions::check_finite,
             "stop when the metric is NaN or infinite");
  // What no single range expresses, run by the host at `lmrun check` and by parse().
  schema.check([](const EarlyStoppingOptions& o) {
    if (o.monitor.empty()) {
      throw Error("monitor is empty", "name an evaluation metric, e.g. monitor = \"val_loss\"");
    }
    if (!std::isfinite(o.min_delta)) {
      throw Error("min_delta = " + format_number(o.min_delta) + " is not finite",
                  "set min_delta >= 0 (0: any improvement counts)");
    }
    if (!(o.stop_below < o.stop_above)) {
      throw Error("stop_below = " + format_number(o.stop_below) + " is not below stop_above = " +
                      format_number(o.stop_above) + ": every value would stop the run",
                  "stop_below must be less than stop_above");
    }
  });
  return schema;
}

std::string plural(std::int64_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// ---------------------------------------------------------------------------------------------
// The callback

class EarlyStopping final : public Callback {
 public:
  explicit EarlyStopping(const EarlyStoppingOptions& options)
      : monitor_(kName, options.monitor, parse_mode(options.mode), options.min_delta),
        patience_(options.patience),
        stop_below_(options.stop_below),
        stop_above_(options.stop_above),
        check_finite_(options.check_finite),
        best_(monitor_.worst()) {}

  void check_plan(const TrainState& planned) const override { monitor_.check_reported(planned); }

  void on_eval_end(const TrainState& state, const Metrics& eval, TrainerControl& control) override {
    const std::optional<double> value = monitor_.find(eval, state.metrics);
    if (!value) {
      std::string reported;
      for (const auto& [name, v] : eval) reported += (reported.empty() ? "" : ", ") + name;
      throw Error(std::string(kName) + ": the evaluation at step " + std::to_string(state.step) +
                  " has no '" + monitor_.metric() +
                  "'; it has: " + (reported.empty() ? "nothing" : reported));
    }
    const std::string reason = update(*value, state.step);
    if (!reason.empty()) {
      stopped_step_ = state.step;
      control.request_stop(reason);
    }
  }

  std::string save_state() const override {
    StateWriter out(kName, kStateFormat);
    out.add("monitor", monitor_.metric());
    out.add("mode", mode_name(monitor_.mode()));
    out.add("best", best_);
    out.add("best_step", best_step_);
    out.add("wait", wait_);
    out.add("stopped_step", stopped_step_);
    return out.text();
  }

  void load_state(const std::string& text) override {
    StateReader in(text, kName, kStateFormat);
    const std::string monitor = in.text("monitor");
    const std::string mode = in.text("mode");
    const double best = in.number("best");
    const std::int64_t best_step = in.integer("best_step");
    const std::int64_t wait = in.integer("wait");
    const std::int64_t stopped_step = in.integer("stopped_step");
    in.finish();
    if (monitor != monitor_.metric() || mode != mode_name(monitor_.mode())) {
      throw Error(std::string(kName) + ": the checkpoint's state watches " + monitor + " (" + mode +
                      ") and this run's options watch " + monitor_.metric() + " (" +
                      mode_name(monitor_.mode()) + ")",
                  "resume with the monitor and mode the run started with, or start afresh");
    }
    if (std::isnan(best)) in.fail("'best' is nan");
    if (best_step < -1 || wait < 0 || stopped_step < -1) in.fail("a step or count is negative");
    best_ = best;
    best_step_ = best_step;
    wait_ = wait;
    stopped_step_ = stopped_step;
  }

 private:
  // Takes one evaluation's value into account; returns the reason to stop, or "".
  // Order as Lightning: non-finite, then improvement bookkeeping, thresholds, patience.
  std::string update(double value, std::int64_t step) {
    const std::string metric = monitor_.metric();
    const std::string at_step = " at step " + std::to_string(step);
    if (check_finite_ && !std::isfinite(value)) {
      return std::string(kName) + ": " + metric + " is " + format_number(value) + at_step + " (" +
             best_so_far() + ")";
    }
    const bool improved = monitor_.improves(value, best_);
    if (improved) {
      best_ = value;
      best_step_ = step;
      wait_ = 0;
    } else {
      ++wait_;
    }
    if (value < stop_below_ || value > stop_above_) {
      const bool below = value < stop_below_;
      const bool target = below == (monitor_.mode() == Mode::kMin);
      return std::string(kName) + ": " + metric + " " + format_number(value) +
             (below ? " is below stop_below = " + format_number(stop_below_)
                    : " is above stop_above = " + format_number(stop_above_)) +
             at_step +
             (target ? " (the target is reached)" : " (diverging; " + best_so_far() + ")");
    }
    if (!improved && wait_ >= patience_) {
      return std::string(kName) + ": " + metric + " did not improve by more than " +
             format_number(monitor_.min_delta()) + " for " + plural(wait_, "evaluation") + " (" +
             best_so_far() + ")";
    }
    return "";
  }

  std::string best_so_far() const {
    if (best_step_ < 0) return "no finite value yet";
    return "best " + format_number(best_) + " at step " + std::to_string(best_step_);
  }

  Monitor monitor_;
  std::int64_t patience_;
  double stop_below_;
  double stop_above_;
  bool check_finite_;

  // Resumable state (save_state): the best value and when it was seen, the evaluations since.
  double best_;
  std::int64_t best_step_ = -1;     // -1: no evaluation has improved on worst() yet
  std::int64_t wait_ = 0;           // evaluations since the last improvement
  std::int64_t stopped_step_ = -1;  // the step this callback asked to stop at; -1: never
};

// ---------------------------------------------------------------------------------------------
// Factory: the schema has checked the options (ranges, and the rules above).

std::shared_ptr<Callback> make_early_stopping(const EarlyStoppingOptions& options,
                                              const CallbackContext& /*context*/) {
  return std::make_shared<EarlyStopping>(options);
}

}  // namespace

void register_early_stopping(Registry& registry) {
  registry.add<Callback>(kName,
                         "stop when a metric stops improving (patience), reaches a target, "
                         "diverges or is not finite",
                         early_stopping_schema(), make_early_stopping);
}

}  // namespace lmrun::callbacks
