// Callback `checkpoint`: asks the trainer for checkpoints every N steps, for the best K evaluations
// of a metric, and at the end, and has the trainer delete the ones of its own that fall out of
// what it keeps (after the new ones are written).
// The rules follow Lightning's ModelCheckpoint (save_top_k, every_n_train_steps, save_last).
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "callbacks.h"
#include "lmrun/callback.h"
#include "lmrun/schema.h"
#include "monitor.h"
#include "state_text.h"

namespace lmrun::callbacks {
namespace {


constexpr const char* kName = "checkpoint";
constexpr int kStateFormat = 1;

// ---------------------------------------------------------------------------------------------
// Options

struct CheckpointOptions {
  std::int64_t every_steps = 0;         // > 0: save step-NNNNNN every N optimizer steps; 0: never
  std::string monitor;                  // evaluation metric ranking best-* checkpoints; "": none
  std::string mode = "min";             // "min": lower is better; "max": higher is better
  std::int64_t keep_best = 1;           // best-* checkpoints kept; 0: keep every one
  bool save_last = true;                // save `last` when training ends
  std::int64_t keep_last_periodic = 0;  // newest step-* checkpoints kept; 0: keep every one
};

Schema<CheckpointOptions> checkpoint_schema() {
  Schema<CheckpointOptions> schema;
  schema
      .add("every_steps", &CheckpointOptions::every_steps,
           "save step-NNNNNN every this many optimizer steps; 0: no periodic checkpoints")
      .min(0);
  schema.add("monitor", &CheckpointOptions::monitor,
             "evaluation metric for best-step-NNNNNN-METRIC-VALUE checkpoints; empty: none");
  schema.add("mode", &CheckpointOptions::mode, "min: lower is better; max: higher is better")
      .choices({"min", "max"});
  schema
      .add("keep_best", &CheckpointOptions::keep_best,
           "how many best checkpoints to keep (the others are deleted); 0: keep all")
      .min(0);
  schema.add("save_last", &CheckpointOptions::save_last,
             "save `last` when training ends, replacing the previous one");
  schema
      .add("keep_last_periodic", &CheckpointOptions::keep_last_periodic,
           "how many of the newest periodic checkpoints to keep; 0: keep all")
      .min(0);
  return schema;
}

// One checkpoint this callback asked for and still keeps.
struct Saved {
  std::string name;  // the folder's name under run_dir/checkpoints
  std::int64_t step = 0;
  double value = 0.0;  // the monitored value, full precision (best-* only)
};

std::string periodic_name(std::int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "step-%06" PRId64, step);
  return buffer;
}

// best-step-001500-val_loss-1.8861: the value rounded for reading; ranking uses Saved::value.
std::string best_name(std::int64_t step, const std::string& metric, double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4f", value);
  return "best-" + periodic_name(step) + "-" + safe_name(metric) + "-" + buffer;
}

// ---------------------------------------------------------------------------------------------
// The callback

class CheckpointCallback final : public Callback {
 public:
  CheckpointCallback(const CheckpointOptions& options, const CallbackContext& /*context*/)
      : every_steps_(options.every_steps),
        keep_best_(static_cast<std::size_t>(options.keep_best)),
        save_last_(options.save_last),
        keep_last_periodic_(static_cast<std::size_t>(options.keep_last_periodic)),
        mode_(parse_mode(options.mode)) {
    if (!options.monitor.empty()) monitor_.emplace(kName, options.monitor, mode_);
  }

  void check_plan(const TrainState& planned) const override {
    if (monitor_) monitor_->check_reported(planned);
  }

  void on_step_end(const TrainState& state, TrainerControl& control) override {
    if (every_steps_ <= 0 || state.step <= 0 || state.step % every_steps_ != 0) return;
    periodic_.push_back(Saved{periodic_name(state.step), state.step, 0.0});
    std::vector<Saved> evicted;
    while (keep_last_periodic_ > 0 && periodic_.size() > keep_last_periodic_) {
      evicted.push_back(periodic_.front());
      periodic_.erase(periodic_.begin());
    }
    commit(control, periodic_.back(), evicted);
  }

  void on_eval_end(const TrainState& state, const Metrics& eval, TrainerControl& control) override {
    if (!monitor_) return;
    const std::optional<double> value = monitor_->find(eval, state.metrics);
    if (!value || !std::isfinite(*value)) return;  // a NaN model is nobody's best
    for (const Saved& saved : best_) {
      if (saved.step == state.step) return;  // one best checkpoint per step
    }
    // Best first; a tie goes after the values it ties with, so when full it does not get in.
    const auto position = std::find_if(best_.begin(), best_.end(), [&](const Saved& saved) {
      return monitor_->improves(*value, saved.value);
    });
    const std::size_t index = static_cast<std::size_t>(position - best_.begin());
    if (keep_best_ > 0 && index >= keep_best_) return;
    best_.insert(position,
                 Saved{best_name(state.step, monitor_->metric(), *value), state.step, *value});
    std::vector<Saved> evicted;
    while (keep_best_ > 0 && best_.size() > keep_best_) {
      evicted.push_back(best_.back());
      best_.pop_back();
    }
    commit(control, best_[index], evicted);
  }

  void on_train_end(const TrainState& /*state*/, TrainerControl& control) override {
    if (save_last_) control.save_checkpoint("last");
  }

  std::string save_state() const override {
    StateWriter out(kName, kStateFormat);
    out.add("monitor", monitor_ ? monitor_->metric() : std::string());
    out.add("mode", mode_name(mode_));
    for (const Saved& saved : best_) {
      out.add("best",
              saved.name + " " + std::to_string(saved.step) + " " + format_exact(saved.value));
    }
    for (const Saved& saved : periodic_) {
      out.add("periodic", saved.name + " " + std::to_string(saved.step));
    }
    return out.text();
  }

  void load_state(const std::string& text) override;

 private:
  // Asks for `entry`'s checkpoint and for the removal of what fell out, which the trainer does
  // once this step's checkpoints are written. The lists are updated before the save, because the
  // trainer stores save_state() inside the checkpoint it writes: resuming from it must find it
  // kept and the evicted ones gone.
  void commit(TrainerControl& control, const Saved& entry, const std::vector<Saved>& evicted) {
    control.save_checkpoint(entry.name);
    for (const Saved& old : evicted) control.remove_checkpoint(old.name);
  }

  std::int64_t every_steps_;
  std::size_t keep_best_;  // 0: all
  bool save_last_;
  std::size_t keep_last_periodic_;  // 0: all
  Mode mode_;
  std::optional<Monitor> monitor_;  // empty: no best-* checkpoints

  // Resumable state (save_state): the checkpoints this callback made and still keeps.
  std::vector<Saved> best_;      // best first
  std::vector<Saved> periodic_;  // oldest first
};

void CheckpointCallback::load_state(const std::string& text) {
  StateReader in(text, kName, kStateFormat);
  const std::string monitor = in.text("monitor");
  const std::string mode = in.text("mode");
  // Names come back from a file and lead to remove_all: only names this callback could have made.
  auto checked_name = [&](const std::string& name) {
    if (name.empty() || name == "." || name == ".." || safe_name(name) != name) {
      in.fail("'" + name + "' is not a checkpoint name");
    }
    return name;
  };
  auto split = [&](const std::string& line, std::size_t fields, const char* key) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= line.size()) {
      std::size_t end = line.find(' ', start);
      if (end == std::string::npos) end = line.size();
      parts.push_back(line.substr(start, end - start));
      start = end + 1;
    }
    if (parts.size() != fields) {
      in.fail("'" + std::string(key) + "=" + line + "' does not have " + std::to_string(fields) +
              " fields");
    }
    return parts;
  };
  std::vector<Saved> best;
  for (const std::string& line : in.all("best")) {
    const auto parts = split(line, 3, "best");
    best.push_back(Saved{checked_name(parts[0]),
                         in.to_integer(parts[1], "best"),
                         in.to_number(parts[2], "best")});
    if (!std::isfinite(best.back().value)) in.fail("a best value is not finite: '" + line + "'");
  }
  std::vector<Saved> periodic;
  for (const std::string& line : in.all("periodic")) {
    const auto parts = split(line, 2, "periodic");
    periodic.push_back(Saved{checked_name(parts[0]), in.to_integer(parts[1], "periodic"), 0.0});
  }
  in.finish();
  const std::string own_monitor = monitor_ ? monitor_->metric() : std::string();
  if (!best.empty() && (monitor != own_monitor || mode != mode_name(mode_))) {
    throw Error(std::string(kName) + ": the checkpoint's state ranks best checkpoints by " +
                    (monitor.empty() ? "nothing" : monitor) + " (" + mode +
                    ") and this run's options by " +
                    (own_monitor.empty() ? "nothing" : own_monitor) + " (" + mode_name(mode_) + ")",
                "resume with the monitor and mode the run started with, or start afresh");
  }
  best_ = std::move(best);
  periodic_ = std::move(periodic);
}

// ---------------------------------------------------------------------------------------------
// Factory

std::shared_ptr<Callback> make_checkpoint(const CheckpointOptions& options,
                                          const CallbackContext& context) {
  return std::make_shared<CheckpointCallback>(options, context);  // the schema checked them
}

}  // namespace

void register_checkpoint(Registry& registry) {
  registry.add<Callback>(kName,
                         "save checkpoints periodically, for the best values of a metric, and at "
                         "the end",
                         checkpoint_schema(), make_checkpoint);
}

}  // namespace lmrun::callbacks
