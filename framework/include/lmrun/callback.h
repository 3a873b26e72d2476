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
// train start, then per step: step end, eval end (on evaluation steps, after step end; the
// evaluation itself runs before both), checkpoint (for each checkpoint written); finally train
// end, then checkpoint for any asked for at train end. Callbacks run in the order the experiment
// lists them. No LibTorch here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "lmrun/common.h"
#include "lmrun/registry.h"

namespace lmrun {

struct CallbackContext {
  std::filesystem::path run_dir;  // the run's folder
};

// The trainer's progress, as callbacks see it.
struct TrainState {
  std::int64_t step = 0;  // optimizer steps completed
  std::int64_t max_steps = 0;
  double lr = 0.0;                        // learning rate of the last step
  Metrics metrics;                        // the latest value of every metric logged so far
  std::vector<std::string> eval_metrics;  // names each evaluation reports ("val_loss", ...)
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
};

class LMRUN_API Callback {
 public:
  virtual ~Callback() = default;

  // May throw lmrun::Error to refuse the run before any step (a monitor naming no metric).
  virtual void on_train_start(const TrainState& /*state*/, TrainerControl& /*control*/) {}
  virtual void on_step_end(const TrainState& /*state*/, TrainerControl& /*control*/) {}
  virtual void on_eval_end(const TrainState& /*state*/, const Metrics& /*eval*/,
                           TrainerControl& /*control*/) {}
  virtual void on_checkpoint(const TrainState& /*state*/, const std::filesystem::path& /*folder*/) {
  }
  virtual void on_train_end(const TrainState& /*state*/, TrainerControl& /*control*/) {}

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
