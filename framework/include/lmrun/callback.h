// Callback plugins: code that watches the training loop and steers it.
//
//   class StopAtLoss : public lmrun::Callback {
//     void on_eval_end(const lmrun::TrainState& state, const lmrun::Metrics& eval,
//                      lmrun::TrainerControl& control) override {
//       if (eval.at("val_loss") < 1.5) control.request_stop("val_loss below 1.5");
//     }
//   };
//
// Early stopping and checkpointing are callbacks, not trainer code. Events arrive in this order:
// train start, then per step: after backward (gradients computed, not yet clipped or applied),
// step end, eval end (on evaluation steps, after step end; the evaluation itself runs before
// both), checkpoint (for each checkpoint written); finally train end, then checkpoint for any
// asked for at train end. Callbacks run in the order the experiment lists them. LibTorch appears
// only in on_after_backward's parameters.
//
// A callback may log values of its own (TrainerControl::log_metric): they go to metrics.jsonl and
// metrics.csv with the step, and into TrainState::metrics, where monitors find them. Declare their
// names in metric_names() so that `lmrun check` accepts a monitor naming one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "lmrun/common.h"
#include "lmrun/parameter.h"
#include "lmrun/registry.h"

namespace lmrun {

struct CallbackContext {
  std::filesystem::path run_dir;  // the run's folder
};

// The trainer's progress, as callbacks see it.
struct TrainState {
  std::int64_t step = 0;  // optimizer steps completed (in on_after_backward: before this one)
  std::int64_t max_steps = 0;
  double lr = 0.0;                           // learning rate of the last step
  std::vector<double> learning_rates;        // of the last step, one per optimizer group
  // Global L2 norm of the last step's gradients before clipping; NaN when train.grad_clip = 0
  // (nothing computes it then: a callback that needs it computes it in on_after_backward).
  double grad_norm = std::numeric_limits<double>::quiet_NaN();
  // The latest value of every metric so far, by name: "loss" (the last step's training loss,
  // the mean over its tokens), "lr", each evaluation's values ("train_loss", "val_loss",
  // "val_perplexity", "val_<metric>" of [[metrics]]), and whatever callbacks log_metric().
  // Restored on resume.
  Metrics metrics;
  std::vector<std::string> eval_metrics;  // names each evaluation reports ("val_loss", ...)
  // Names logged at steps: "loss", "lr", and every callback's metric_names().
  std::vector<std::string> step_metrics;
  std::filesystem::path run_dir;
};

// What a callback may ask of the trainer. Owned by the trainer.
class LMRUN_API TrainerControl {
 public:
  virtual ~TrainerControl() = default;
  // Ends the run after the current event; `reason` goes to the log and summary.json.
  virtual void request_stop(const std::string& reason) = 0;
  // Asks for a checkpoint of the state after this step in run_dir/checkpoints/<name> (returned).
  // The trainer writes it, atomically, once every callback has handled this step's events, so
  // it holds their state after the step and a resume from it misses no event; then it calls
  // on_checkpoint on every callback. Two requests for one name in one step write it once.
  virtual std::filesystem::path save_checkpoint(const std::string& name) = 0;
  // Deletes run_dir/checkpoints/<name> (a checkpoint this callback asked for), after every
  // checkpoint of this step is written, so that a crash in between leaves the old one whole; the
  // folder is renamed aside first, so a crash during the deletion leaves no half checkpoint
  // under its name. No-op for a name that is not there.
  virtual void remove_checkpoint(const std::string& name) = 0;
  // Adds `value` under `name` to this step's record: metrics.jsonl and metrics.csv (a column of
  // its own), and TrainState::metrics for monitors. The trainer's own names ("loss", "lr",
  // evaluation values) are refused; a name logged twice in a step keeps the last value.
  virtual void log_metric(const std::string& name, double value) = 0;
  // The learning rate of the next optimizer step instead of the scheduler's (a learning-rate
  // range test). Holds for one step: call it again at each step_end it should apply after.
  virtual void set_next_lr(double lr) = 0;
};

class LMRUN_API Callback {
 public:
  virtual ~Callback() = default;

  // Optional: refuses a run before any work by throwing lmrun::Error, judging from what it will
  // report (`planned`: eval_metrics, step_metrics, max_steps, run_dir; step 0, no metrics yet),
  // e.g. a monitor that names no metric of the run. `lmrun check` and `lmrun sweep` call it too,
  // so that the mistake shows before anything runs; the trainer calls it before on_train_start.
  virtual void check_plan(const TrainState& /*planned*/) const {}

  // May throw lmrun::Error to refuse the run before any step.
  virtual void on_train_start(const TrainState& /*state*/, TrainerControl& /*control*/) {}
  // After the step's backward pass (every micro-batch; data-parallel: with the gradients already
  // averaged across ranks), before clipping and the optimizer step. `parameters`: the model's
  // trainable tensors, each with its gradient in tensor.grad() (undefined for one that got
  // none). Read them; do not change them.
  virtual void on_after_backward(const TrainState& /*state*/,
                                 const std::vector<NamedParameter>& /*parameters*/,
                                 TrainerControl& /*control*/) {}
  virtual void on_step_end(const TrainState& /*state*/, TrainerControl& /*control*/) {}
  virtual void on_eval_end(const TrainState& /*state*/, const Metrics& /*eval*/,
                           TrainerControl& /*control*/) {}
  virtual void on_checkpoint(const TrainState& /*state*/, const std::filesystem::path& /*folder*/) {
  }
  virtual void on_train_end(const TrainState& /*state*/, TrainerControl& /*control*/) {}

  // Optional: the names this callback logs with log_metric, known before training.
  virtual std::vector<std::string> metric_names() const { return {}; }

  // Optional: state for exact resume (patience counter, best value), as text it reads back.
  virtual std::string save_state() const { return {}; }
  virtual void load_state(const std::string& /*state*/) {}
};

template <>
struct KindTraits<Callback> {
  static constexpr Kind kKind = Kind::kCallback;
  using Context = CallbackContext;
};

}  // namespace lmrun
