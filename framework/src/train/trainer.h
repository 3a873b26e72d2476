// The training loop: steps, evaluation, callbacks, checkpoints, logs, summary.
//
//   Pipeline pipeline = build_pipeline(experiment, registry, {run_dir});
//   Trainer trainer(experiment, pipeline, run_dir, provenance, std::cout);
//   if (resuming) trainer.resume(find_checkpoint(dir));
//   TrainResult result = trainer.run();
//
// One step: draw grad_accum_steps micro-batches from the data generator, forward, cross-entropy
// summed over the step's real tokens and divided by their count (so accumulation is exact with
// padding too), backward, clip, optimizer step at the scheduler's lr. Evaluation (every
// eval_interval steps and at the end) estimates each split's loss over eval_batches batches drawn
// from a separate generator, in eval mode without gradients. The trainer is the callbacks'
// TrainerControl: it stops when asked and writes the checkpoints they request once every callback
// has handled the step.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>

#include "config/experiment.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/metrics_log.h"
#include "train/pipeline.h"

namespace lmrun::host {

struct TrainResult {
  std::int64_t steps = 0;
  std::string stop_reason;  // "max_steps", "interrupted", or what a callback said
  Metrics final_metrics;    // the last evaluation's
  double wall_seconds = 0.0;
  double tokens_per_second = 0.0;    // training tokens / wall time of this run, evaluation included
  bool diverged = false;             // the training loss became NaN or infinite
  std::vector<GroupMetrics> groups;  // the dataset's groups, each evaluated whole at the end
  int interrupted_by = 0;            // SIGINT or SIGTERM that stopped it (train/interrupt.h); 0
};

class Trainer final : public TrainerControl {
 public:
  // With `data_parallel` (a world of several ranks), each rank trains on its slice of every
  // global batch (batch_size per rank, drawn from one shared stream), gradients are averaged
  // across ranks, and only rank 0 writes logs, metrics, checkpoints and the summary. The model's
  // weights are broadcast from rank 0 here.
  Trainer(const Experiment& experiment, Pipeline& pipeline, std::filesystem::path run_dir,
          CheckpointProvenance provenance, std::ostream& log,
          DataParallel* data_parallel = nullptr);

  // Continues from a checkpoint: weights, optimizer, generators, scheduler and callback state,
  // and the metrics files cut back to its step.
  void resume(const std::filesystem::path& checkpoint);

  // Trains until max_steps, max_time, a callback's stop, divergence, or SIGINT/SIGTERM under an
  // InterruptGuard (then at the step's end, without the final evaluation). A failed write (a full
  // disk) throws after writing what summary.json it can.
  TrainResult run();

  // Whether run() completed at least one optimizer step.
  bool trained() const { return trained_; }

  // Losses over eval_batches batches per split, in eval mode without gradients.
  Metrics evaluate();

  // One optimizer step at `lr` (micro-batches, backward, clip, step); returns the step's loss.
  // run() calls it; benchmarks time it alone. Advances the data generator, not the step count.
  double train_step(double lr);

  // TrainerControl
  void request_stop(const std::string& reason) override;
  std::filesystem::path save_checkpoint(const std::string& name) override;
  void remove_checkpoint(const std::string& name) override;
  void log_metric(const std::string& name, double value) override;
  void set_next_lr(double lr) override;

 private:
  // batch_size sequences of `split`; data-parallel: this rank's slice of the global batch.
  Batch sample_slice(Split split, at::Generator& generator);
  // The callbacks' part of a step's end; the checkpoints they ask for are written by the caller.
  void end_of_step(bool evaluated, const Metrics& eval);
  void write_pending_checkpoints();
  void write_checkpoint_now(const std::string& name);
  TrainerSnapshot snapshot() const;
  // Prints the step's log line; returns its record for metrics.jsonl.
  Metrics log_step(double loss, double lr);
  // Model FLOPs per second as a share of peak_gflops_ (0..1), or -1 when unknown. A measured
  // peak the model's own rate exceeds was disturbed, and gives no figure (-1).
  double mfu(double tokens_per_second) const;
  // Measures peak_gflops_ (again), keeping the best reading, with the time it took left out of
  // every rate.
  void probe_peak();
  void write_summary(const TrainResult& result) const;

  const Experiment& experiment_;
  Pipeline& p_;
  DataParallel* dp_ = nullptr;  // several ranks; null: one process
  bool writer_ = true;          // rank 0, or the only process
  std::vector<at::Tensor> parameter_tensors_;
  std::filesystem::path run_dir_;
  CheckpointProvenance provenance_;
  std::ostream& log_;
  MetricsLog metrics_;

  at::Generator data_generator_;
  at::Generator eval_generator_;
  TrainState state_;
  std::int64_t tokens_seen_ = 0;
  std::int64_t tokens_at_start_ =
      0;                         // tokens_seen_ when run() began (after a resume: the checkpoint's)
  double elapsed_before_ = 0.0;  // seconds of earlier runs of this training (resume)
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_log_;
  std::int64_t tokens_at_last_log_ = 0;
  std::int64_t steps_at_last_log_ = 0;
  double tokens_per_second_ = 0.0;
  double flops_per_token_ = 0.0;  // the model's; 0: unknown, no MFU
  double peak_gflops_ = 0.0;      // [train] peak_gflops, or measured at the first log line
  bool peak_measured_ = false;    // peak_gflops_ is this process's probe, not the config's
  int reprobes_ = 0;              // probes again after the first, at most 2
  std::chrono::steady_clock::duration probe_time_{};  // the probes', left out of tokens/s
  std::vector<at::Tensor> clip_buffer_;               // clip_grad_norm's scratch, reused every step
  bool bf16_ = false;            // train.precision = "bf16": CUDA autocast around forward
  double startup_seconds_ = -1;  // process start to this process's first step; -1: not yet

  std::string stop_reason_;
  int interrupted_by_ = 0;  // the signal that stopped the run
  std::vector<std::string> pending_checkpoints_;
  std::vector<std::string> pending_removals_;  // remove_checkpoint: after the step's writes
  Metrics logged_;                             // log_metric's values of this step
  std::optional<double> next_lr_;              // set_next_lr: the next step's, once
  bool checkpoint_at_last_step_ = false;
  bool trained_ = false;

  TrainResult run_steps();
  bool diverged_ = false;
};

}  // namespace lmrun::host
