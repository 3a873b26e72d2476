// The training loop (see trainer.h for the contract).
#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/utils.h>

#include "lmrun/version.h"
#include "registry/guarded.h"
#include "train/clip.h"
#include "train/interrupt.h"
#include "train/loss.h"
#include "train/peak.h"
#include "train/plan.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/process.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace lmrun::host {
namespace {

// "<split>_<name>" of every [[metrics]] name, for each split the dataset has.
std::vector<std::string> metric_columns(const Pipeline& p) {
  std::vector<std::string> out;
  for (Split split : {Split::kTrain, Split::kVal, Split::kTest}) {
    if (!p.data->has_split(split)) continue;
    for (const auto& metric : p.metrics) {
      for (const auto& name : metric->names())
        out.push_back(std::string(split_name(split)) + "_" + name);
    }
  }
  return out;
}

std::vector<std::string> csv_columns(const Pipeline& p) {
  std::vector<std::string> columns = {"loss",       "lr",       "tokens_per_second", "mfu",
                                      "train_loss", "val_loss", "val_perplexity"};
  for (const auto& name : metric_columns(p)) columns.push_back(name);
  return columns;
}

std::string format_duration(double seconds) {
  char buffer[32];
  const auto s = static_cast<long long>(std::max(0.0, seconds));
  if (s >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lldm%02llds", s / 60, s % 60);
  }
  return buffer;
}

// CUDA autocast to bf16 for the guard's life when `on` (train.precision = "bf16"): matrix products
// run in bf16, reductions such as softmax and the loss in fp32, as torch.autocast does.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool on) : on_(on) {
    if (!on_) return;
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  }
  ~AutocastGuard() {
    if (!on_) return;
    at::autocast::set_enabled(false);
    at::autocast::clear_cache();
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_;
};

}  // namespace

Trainer::Trainer(const Experiment& experiment, Pipeline& pipeline, fs::path run_dir,
                 CheckpointProvenance provenance, std::ostream& log, DataParallel* data_parallel)
    : experiment_(experiment),
      p_(pipeline),
      dp_(data_parallel),
      writer_(data_parallel == nullptr || data_parallel->world().is_writer()),
      run_dir_(std::move(run_dir)),
      provenance_(std::move(provenance)),
      log_(log),
      metrics_(run_dir_, csv_columns(pipeline), log, writer_),
      data_generator_(
          at::detail::createCPUGenerator(static_cast<std::uint64_t>(experiment.experiment.seed))),
      eval_generator_(at::detail::createCPUGenerator(
          static_cast<std::uint64_t>(experiment.experiment.seed) + 1)) {
  state_.max_steps = experiment.train.max_steps;
  state_.run_dir = run_dir_;
  state_.lr = p_.optimizer->base_lr();
  const TrainState planned = planned_state(*p_.data, *p_.objective, p_.metrics, p_.callbacks,
                                           experiment.train.max_steps, run_dir_);
  state_.eval_metrics = planned.eval_metrics;
  state_.step_metrics = planned.step_metrics;
  flops_per_token_ = p_.model->flops_per_token(p_.model_context.sequence_length);
  peak_gflops_ = experiment.train.peak_gflops;
  bf16_ = experiment.train.precision == "bf16";
  for (const auto& named : p_.parameters) parameter_tensors_.push_back(named.tensor);
  if (dp_ != nullptr) {
    std::vector<at::Tensor> state = parameter_tensors_;
    for (const at::Tensor& buffer : p_.model->module().buffers()) state.push_back(buffer);
    dp_->broadcast_from_rank0(state);
  }
}

// -----------------------------------------------------------------------------------------------
// Steps and evaluation

Batch Trainer::sample_slice(Split split, at::Generator& generator) {
  const std::int64_t batch_size = experiment_.train.batch_size;
  if (dp_ == nullptr) return p_.data->sample(split, batch_size, generator);
  // Every rank draws the same global batch and keeps its own slice of it: the ranks see
  // different data, and together exactly what one process with world x batch_size would.
  const Batch batch = p_.data->sample(split, batch_size * dp_->world().world_size, generator);
  return batch_rows(batch, dp_->world().rank * batch_size, batch_size);
}

double Trainer::train_step(double lr) {
  p_.optimizer->set_lr(lr);
  p_.optimizer->zero_grad();
  p_.model->module().train();

  // Draw the step's micro-batches first: the loss is normalised by the items the objective
  // counts in all of them (the real target tokens, for cross-entropy).
  std::vector<Batch> batches;
  std::int64_t tokens = 0;
  const std::int64_t world = dp_ ? dp_->world().world_size : 1;
  for (std::int64_t i = 0; i < experiment_.train.grad_accum_steps; ++i) {
    batches.push_back(
        objective_batch(sample_slice(Split::kTrain, data_generator_), p_.washout, p_.device));
    tokens += p_.objective->count(batches.back());
  }
  // Data-parallel: each rank divides by every rank's tokens, and the gradients are summed, so
  // the step is the global batch's token mean even when ranks hold different numbers of them.
  if (dp_ != nullptr) tokens = std::llround(dp_->sum(static_cast<double>(tokens)));
  double loss_sum = 0.0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const Batch& batch = batches[i];
    at::Tensor loss;
    {
      AutocastGuard autocast(bf16_);
      const at::Tensor outputs = model_outputs(*p_.model, batch);
      loss = p_.objective->loss(outputs, batch) /
             static_cast<double>(std::max<std::int64_t>(tokens, 1));
    }
    {
      // The backward pass runs the model's autograd code outside any of its calls: name it.
      const PluginWho* model = who_of(*p_.model);
      ActiveCall crumb(model ? model->full.c_str() : "the model", "backward");
      loss.backward();
    }
    loss_sum += loss.item<double>();
  }
  if (dp_ != nullptr) {
    dp_->sum_gradients(parameter_tensors_);
    loss_sum = dp_->sum(loss_sum);
  }
  for (auto& callback : p_.callbacks) callback->on_after_backward(state_, p_.parameters, *this);
  state_.grad_norm = std::numeric_limits<double>::quiet_NaN();
  if (experiment_.train.grad_clip > 0) {
    state_.grad_norm = clip_grad_norm(p_.parameters, experiment_.train.grad_clip, clip_buffer_);
  }
  p_.optimizer->step();
  tokens_seen_ +=
      world * static_cast<std::int64_t>(batches.size()) * batches.front().inputs.numel();
  return loss_sum;
}

Metrics Trainer::evaluate() {
  torch::NoGradGuard no_grad;
  p_.model->module().eval();
  Metrics metrics;
  // Metrics need every prediction in one place. Under data parallelism with [[metrics]], each
  // rank therefore evaluates the whole global batches (the same draws as its slices would come
  // from), in chunks of batch_size so that memory stays that of a training micro-batch, and
  // every rank holds exactly what one process would. The values are then averaged over the
  // ranks, which makes them bitwise the same everywhere: a callback deciding on them (early
  // stopping, plateau) decides alike on every rank. Without metrics, each rank evaluates its
  // slice and the losses are summed.
  const bool whole = dp_ != nullptr && !p_.metrics.empty();
  const std::int64_t chunk = experiment_.train.batch_size;
  for (Split split : {Split::kTrain, Split::kVal, Split::kTest}) {
    if (!p_.data->has_split(split)) continue;
    double loss = 0.0;
    std::int64_t tokens = 0;
    for (auto& metric : p_.metrics) metric->reset();
    for (std::int64_t i = 0; i < experiment_.train.eval_batches; ++i) {
      const Batch batch =
          whole ? p_.data->sample(split, chunk * dp_->world().world_size, eval_generator_)
                : sample_slice(split, eval_generator_);
      const std::int64_t rows = batch.inputs.size(0);
      for (std::int64_t begin = 0; begin < rows; begin += chunk) {
        const std::int64_t n = std::min(chunk, rows - begin);
        const Batch part = objective_batch(batch_rows(batch, begin, n), p_.washout, p_.device);
        AutocastGuard autocast(bf16_);
        const at::Tensor outputs = model_outputs(*p_.model, part);
        loss += p_.objective->loss(outputs, part).item<double>();
        tokens += p_.objective->count(part);
        if (p_.metrics.empty()) continue;
        const at::Tensor scores = p_.objective->scores(outputs);
        for (auto& metric : p_.metrics) metric->update(scores, part.targets);
      }
    }
    const std::string prefix = std::string(split_name(split)) + "_";
    for (const auto& metric : p_.metrics) {
      const Metrics values = metric->compute();
      for (const auto& name : metric->names()) {
        const auto it = values.find(name);
        double value = it == values.end() ? std::nan("") : it->second;
        if (whole) value = dp_->sum(value) / static_cast<double>(dp_->world().world_size);
        metrics[prefix + name] = value;
      }
    }
    if (dp_ != nullptr && !whole) {  // the ranks' sums: the global batches' loss, as one has it
      loss = dp_->sum(loss);
      tokens = std::llround(dp_->sum(static_cast<double>(tokens)));
    }
    double mean_loss = loss / static_cast<double>(std::max<std::int64_t>(tokens, 1));
    if (whole) mean_loss = dp_->sum(mean_loss) / static_cast<double>(dp_->world().world_size);
    metrics[prefix + "loss"] = mean_loss;
  }
  if (metrics.count("val_loss") && p_.data->task() == Task::kLanguageModel &&
      p_.objective->loss_is_nll())
    metrics["val_perplexity"] = std::exp(metrics["val_loss"]);
  p_.model->module().train();
  return metrics;
}

// -----------------------------------------------------------------------------------------------
// The loop

TrainResult Trainer::run() {
  try {
    return run_steps();
  } catch (const Error& e) {
    // A failed write (a full disk) or a plugin's error mid-run: the summary says so if it can.
    if (writer_ && trained_) {
      TrainResult failed;
      failed.steps = state_.step;
      failed.stop_reason = std::string("failed: ") + e.what();
      try {
        write_summary(failed);
      } catch (const Error&) {
        // the disk is full: the error being thrown says what matters
      }
    }
    throw;
  }
}

TrainResult Trainer::run_steps() {
  started_ = last_log_ = Clock::now();
  tokens_at_start_ = tokens_seen_;
  tokens_at_last_log_ = tokens_seen_;
  steps_at_last_log_ = state_.step;
  for (auto& callback : p_.callbacks) callback->check_plan(state_);
  for (auto& callback : p_.callbacks) callback->on_train_start(state_, *this);

  const TrainOptions& train = experiment_.train;
  Metrics last_eval;
  while (state_.step < train.max_steps && stop_reason_.empty()) {
    double lr = p_.scheduler ? p_.scheduler->lr(state_.step) : p_.optimizer->base_lr();
    if (next_lr_) lr = *next_lr_;  // a callback's, for this step only
    next_lr_.reset();
    if (startup_seconds_ < 0) startup_seconds_ = seconds_since_process_start();
    logged_.clear();
    const double loss = train_step(lr);
    ++state_.step;
    trained_ = true;
    state_.lr = lr;
    state_.learning_rates = p_.optimizer->learning_rates();
    if (state_.learning_rates.empty()) state_.learning_rates = {lr};
    state_.metrics["loss"] = loss;
    state_.metrics["lr"] = lr;
    Metrics record;  // this step's line of metrics.jsonl: the log's values, the callbacks'
    if (state_.step % train.log_interval == 0 || state_.step == train.max_steps)
      record = log_step(loss, lr);

    // The wall-clock limit is decided before the step's evaluation, so the last step evaluates;
    // data-parallel ranks decide together (rank 0's clock may run ahead of the others').
    bool out_of_time =
        train.max_time > 0 &&
        elapsed_before_ + std::chrono::duration<double>(Clock::now() - started_).count() >=
            train.max_time;
    if (train.max_time > 0 && dp_ != nullptr) out_of_time = dp_->sum(out_of_time ? 1.0 : 0.0) > 0;
    const bool evaluate_now = (train.eval_interval > 0 && state_.step % train.eval_interval == 0) ||
                              state_.step == train.max_steps || out_of_time;
    Metrics eval;
    if (evaluate_now) {
      eval = evaluate();
      last_eval = eval;
      for (const auto& [name, value] : eval) state_.metrics[name] = value;
      std::string line = "eval step " + std::to_string(state_.step);
      for (const auto& name : state_.eval_metrics) {
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, " | %s %.4f", name.c_str(), eval[name]);
        line += buffer;
      }
      metrics_.print(line, false);
      metrics_.record(state_.step, eval);
    }
    if (out_of_time && stop_reason_.empty()) {
      char limit[64];
      std::snprintf(limit, sizeof limit, "max_time (%g s)", train.max_time);
      stop_reason_ = limit;
    }
    end_of_step(evaluate_now, eval);
    for (const auto& [name, value] : logged_) record[name] = value;
    if (!record.empty()) metrics_.record(state_.step, record);
    // Only once the step's records are on disk: a checkpoint of this step must not outlive a kill
    // that loses its line (a resume from it would never write the line again).
    write_pending_checkpoints();
    if (interrupt_signal() != 0 && stop_reason_.empty()) {
      interrupted_by_ = interrupt_signal();
      stop_reason_ = "interrupted";
    }
    // Data-parallel ranks stop together: a callback that stops one rank (a wall-clock limit)
    // must not leave the others waiting in the next step's collectives.
    if (dp_ != nullptr && dp_->sum(stop_reason_.empty() ? 0.0 : 1.0) > 0) {
      // Every rank is here together (the sum is the same on each): a signal that reached some
      // ranks first stops them all as interrupted.
      const double interrupted = dp_->sum(interrupted_by_ != 0 ? 1.0 : 0.0);
      const double signals = dp_->sum(static_cast<double>(interrupted_by_));
      if (interrupted > 0 && interrupted_by_ == 0) {
        interrupted_by_ = static_cast<int>(std::lround(signals / interrupted));
        stop_reason_ = "interrupted";
      }
      if (stop_reason_.empty()) stop_reason_ = "another rank stopped";
    }
    if (!std::isfinite(loss)) {
      diverged_ = true;
      if (stop_reason_.empty()) {
        stop_reason_ = "the training loss is not finite (" + format_value(loss) + ") at step " +
                       std::to_string(state_.step);
      }
    }
  }
  if (stop_reason_.empty()) stop_reason_ = "max_steps";
  if (interrupted_by_ == 0 && (last_eval.empty() || state_.metrics.count("val_loss") == 0)) {
    last_eval = evaluate();  // a stop between evaluations: report the model as it ends
    for (const auto& [name, value] : last_eval) state_.metrics[name] = value;
  }
  metrics_.finish_line();

  checkpoint_at_last_step_ = false;
  for (auto& callback : p_.callbacks) callback->on_train_end(state_, *this);
  if (pending_checkpoints_.empty() && !checkpoint_at_last_step_)
    pending_checkpoints_.push_back("last");
  write_pending_checkpoints();

  TrainResult result;
  // The dataset's groups (arithmetic: by operand length), each whole, with the model as it ends.
  if (writer_ && interrupted_by_ == 0 && !p_.data->groups().empty()) {
    result.groups = evaluate_groups(p_, experiment_.train.batch_size);
    std::string table = group_table(result.groups);
    table.pop_back();  // the log adds the last newline
    metrics_.print("by group, the model at step " + std::to_string(state_.step) + ":\n" + table,
                   false);
  }
  result.steps = state_.step;
  result.stop_reason = stop_reason_;
  result.final_metrics = last_eval;
  result.wall_seconds =
      elapsed_before_ + std::chrono::duration<double>(Clock::now() - started_).count();
  // The whole run's average in this process, evaluation and checkpoints included.
  const double seconds =
      std::chrono::duration<double>(Clock::now() - started_ - probe_time_).count();
  result.tokens_per_second =
      seconds > 0 ? static_cast<double>(tokens_seen_ - tokens_at_start_) / seconds : 0.0;
  result.diverged = diverged_;
  result.interrupted_by = interrupted_by_;
  char resources[96] = "";
  if (startup_seconds_ >= 0) {
    std::snprintf(resources, sizeof resources,
                  " (first step %.2f s after start, peak RSS %.0f MiB)", startup_seconds_,
                  peak_rss_mib());
  }
  metrics_.print(
      "stopped at step " + std::to_string(state_.step) + ": " + stop_reason_ +
          (interrupted_by_ ? std::string(" by ") + interrupt_name(interrupted_by_) : "") +
          resources,
      false);
  write_summary(result);
  return result;
}

void Trainer::end_of_step(bool evaluated, const Metrics& eval) {
  checkpoint_at_last_step_ = false;
  for (auto& callback : p_.callbacks) callback->on_step_end(state_, *this);
  if (evaluated) {
    if (p_.scheduler) p_.scheduler->on_evaluation(state_.step, eval);
    for (auto& callback : p_.callbacks) callback->on_eval_end(state_, eval, *this);
  }
}

double Trainer::mfu(double tokens_per_second) const {
  if (flops_per_token_ <= 0 || peak_gflops_ <= 0) return -1.0;
  // Data-parallel: the tokens of every rank, over the peak of every rank's device.
  const double devices = dp_ ? static_cast<double>(dp_->world().world_size) : 1.0;
  const double utilisation = flops_per_token_ * tokens_per_second / (peak_gflops_ * 1e9 * devices);
  return peak_measured_ && utilisation > 1.0 ? -1.0 : utilisation;
}

void Trainer::probe_peak() {
  const auto probe_start = Clock::now();
  // bf16 autocast runs the products in bf16, so that is the peak to compare with. A GPU needs
  // products large enough to fill it (and to outweigh the launch and the synchronisation).
  const std::int64_t size = p_.device.is_cuda() ? 4096 : 512;
  const double measured =
      measure_matmul_peak(p_.device, bf16_ ? at::kBFloat16 : at::kFloat, size, 5, 0.05);
  peak_gflops_ = std::max(peak_gflops_, measured);
  peak_measured_ = true;
  const auto probe = Clock::now() - probe_start;
  last_log_ += probe;
  probe_time_ += probe;
}

Metrics Trainer::log_step(double loss, double lr) {
  // Measured after the first steps have warmed the caches.
  if (peak_gflops_ <= 0 && flops_per_token_ > 0) probe_peak();
  const auto now = Clock::now();
  const double seconds = std::chrono::duration<double>(now - last_log_).count();
  const std::int64_t steps = state_.step - steps_at_last_log_;
  tokens_per_second_ =
      seconds > 0 ? static_cast<double>(tokens_seen_ - tokens_at_last_log_) / seconds : 0.0;
  const double ms_per_step = steps > 0 ? 1000.0 * seconds / static_cast<double>(steps) : 0.0;
  const double eta = ms_per_step * static_cast<double>(state_.max_steps - state_.step) / 1000.0;
  last_log_ = now;
  tokens_at_last_log_ = tokens_seen_;
  steps_at_last_log_ = state_.step;

  double utilisation = mfu(tokens_per_second_);
  if (utilisation < 0 && peak_measured_ && reprobes_ < 2) {
    // The model ran faster than the probe's products: a busy machine slowed the probe. Again, a
    // couple of times at most; after that the figure is left out.
    ++reprobes_;
    probe_peak();
    utilisation = mfu(tokens_per_second_);
  }
  char mfu_text[24] = "";
  if (utilisation >= 0)
    std::snprintf(mfu_text, sizeof mfu_text, " | mfu %4.1f%%", 100 * utilisation);
  char line[224];
  std::snprintf(line, sizeof line,
                "step %6lld/%lld | loss %.4f | lr %.3e | %8.0f tok/s | %7.1f ms/step%s | eta %s",
                static_cast<long long>(state_.step), static_cast<long long>(state_.max_steps), loss,
                lr, tokens_per_second_, ms_per_step, mfu_text, format_duration(eta).c_str());
  metrics_.print(line, true);
  Metrics record{{"loss", loss}, {"lr", lr}, {"tokens_per_second", tokens_per_second_}};
  if (utilisation >= 0) record["mfu"] = utilisation;
  return record;
}

// -----------------------------------------------------------------------------------------------
// TrainerControl, checkpoints, resume

namespace {

void check_checkpoint_name(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    throw Error("checkpoint name '" + name + "' is not a plain folder name");
  }
}

// Renamed aside first, so that no half-deleted checkpoint is ever found under its name (a resume
// picks folders by name); then removed. A leftover .removing-* folder is never read.
void remove_checkpoint_folder(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return;
  const fs::path aside = folder.parent_path() / (".removing-" + folder.filename().string());
  fs::remove_all(aside, ec);
  fs::rename(folder, aside, ec);
  if (ec) {
    throw Error("cannot remove checkpoint " + folder.string() + ": " + ec.message(),
                "check the permissions of the run folder");
  }
  files_detail::sync_folder(folder.parent_path());
  fs::remove_all(aside, ec);
}

}  // namespace

void Trainer::request_stop(const std::string& reason) {
  if (stop_reason_.empty()) stop_reason_ = reason.empty() ? "a callback asked to stop" : reason;
}

fs::path Trainer::save_checkpoint(const std::string& name) {
  check_checkpoint_name(name);
  if (std::find(pending_checkpoints_.begin(), pending_checkpoints_.end(), name) ==
      pending_checkpoints_.end()) {
    pending_checkpoints_.push_back(name);
  }
  return run_dir_ / "checkpoints" / name;
}

void Trainer::remove_checkpoint(const std::string& name) {
  check_checkpoint_name(name);
  if (std::find(pending_removals_.begin(), pending_removals_.end(), name) ==
      pending_removals_.end()) {
    pending_removals_.push_back(name);
  }
}

void Trainer::log_metric(const std::string& name, double value) {
  if (name.empty()) throw Error("log_metric: a metric needs a name");
  const bool trainer_owns = name == "loss" || name == "lr" || name == "tokens_per_second" ||
                            name == "mfu" || name == "step" ||
                            std::find(state_.eval_metrics.begin(), state_.eval_metrics.end(),
                                      name) != state_.eval_metrics.end();
  if (trainer_owns) {
    throw Error("log_metric: '" + name + "' is the trainer's own metric",
                "give the callback's value a name of its own, e.g. with its callback's name first");
  }
  logged_[name] = value;
  state_.metrics[name] = value;
}

void Trainer::set_next_lr(double lr) {
  if (!std::isfinite(lr) || lr < 0) {
    throw Error("set_next_lr: " + format_value(lr) + " is not a learning rate",
                "a learning rate is a finite number >= 0");
  }
  next_lr_ = lr;
}

void Trainer::write_pending_checkpoints() {
  std::vector<std::string> names;
  names.swap(pending_checkpoints_);
  for (const auto& name : names) write_checkpoint_now(name);
  // Only now, with this step's checkpoints whole on disk, do the old ones go.
  std::vector<std::string> removals;
  removals.swap(pending_removals_);
  for (const auto& name : removals) {
    if (writer_) remove_checkpoint_folder(run_dir_ / "checkpoints" / name);
  }
}

TrainerSnapshot Trainer::snapshot() const {
  TrainerSnapshot s;
  s.step = state_.step;
  s.tokens_seen = tokens_seen_;
  s.elapsed_seconds =
      elapsed_before_ + std::chrono::duration<double>(Clock::now() - started_).count();
  if (p_.scheduler) s.scheduler_state = p_.scheduler->save_state();
  for (const auto& callback : p_.callbacks) s.callback_states.push_back(callback->save_state());
  s.metrics = state_.metrics;
  return s;
}

void Trainer::write_checkpoint_now(const std::string& name) {
  if (!writer_) return;  // rank 0 writes; its callbacks keep the folder in order
  const fs::path dir = run_dir_ / "checkpoints" / name;
  fs::create_directories(dir.parent_path());
  at::Generator global = at::detail::getDefaultCPUGenerator();
  write_checkpoint(
      dir, p_, snapshot(),
      {{"data_rng", &data_generator_}, {"eval_rng", &eval_generator_}, {"torch_rng", &global}},
      provenance_);
  checkpoint_at_last_step_ = true;
  for (auto& callback : p_.callbacks) callback->on_checkpoint(state_, dir);
}

void Trainer::resume(const fs::path& checkpoint) {
  at::Generator global = at::detail::getDefaultCPUGenerator();
  TrainerSnapshot s = read_checkpoint(
      checkpoint, p_,
      {{"data_rng", &data_generator_}, {"eval_rng", &eval_generator_}, {"torch_rng", &global}});
  if (s.callback_states.size() != p_.callbacks.size()) {
    throw Error("checkpoint " + checkpoint.string() + " holds the state of " +
                    std::to_string(s.callback_states.size()) + " callbacks, this experiment has " +
                    std::to_string(p_.callbacks.size()),
                "resume with the experiment the checkpoint was made by");
  }
  for (std::size_t i = 0; i < p_.callbacks.size(); ++i) {
    try {
      p_.callbacks[i]->load_state(s.callback_states[i]);
    } catch (const Error& e) {
      throw e.with_context("checkpoint " + checkpoint.string() + ": callbacks." +
                           std::to_string(i));
    }
  }
  if (p_.scheduler) p_.scheduler->load_state(s.scheduler_state);
  state_.step = s.step;
  state_.metrics = s.metrics;
  tokens_seen_ = s.tokens_seen;
  elapsed_before_ = s.elapsed_seconds;
  metrics_.truncate_after(s.step);
  metrics_.print("resumed from " + checkpoint.string() + " at step " + std::to_string(s.step),
                 false);
}

// -----------------------------------------------------------------------------------------------
// summary.json

void Trainer::write_summary(const TrainResult& result) const {
  if (!writer_) return;
  JsonObject summary;
  summary.add("format", std::int64_t{1});
  summary.add("lmrun_version", kVersion);
  summary.add("experiment", experiment_.experiment.name);
  summary.add("config_hash", provenance_.config_hash);
  summary.add("steps", result.steps);
  summary.add("stop_reason", result.stop_reason);
  if (result.interrupted_by != 0) summary.add("signal", interrupt_name(result.interrupted_by));
  summary.add("wall_seconds", result.wall_seconds);
  summary.add("tokens_seen", tokens_seen_);
  summary.add("tokens_per_second", result.tokens_per_second);
  summary.add("parameters", p_.parameter_count);
  if (!experiment_.model_init.init_from.empty())
    summary.add("init_from", experiment_.model_init.init_from);
  if (!p_.frozen.frozen.empty()) {
    summary.add("frozen_parameters", p_.frozen.frozen_parameters);
    summary.add("frozen", p_.frozen.frozen);
  }
  // Model-FLOPs utilisation over the run, nanoGPT's estimate_mfu against the peak used for the log.
  if (flops_per_token_ > 0) {
    summary.add("model_flops_per_token", flops_per_token_);
    summary.add("model_gflops_per_second", flops_per_token_ * result.tokens_per_second / 1e9);
  }
  if (peak_gflops_ > 0) summary.add("peak_gflops", peak_gflops_);
  if (mfu(result.tokens_per_second) >= 0) summary.add("mfu", mfu(result.tokens_per_second));
  // From process start (library loading included) to the first training step of this process.
  if (startup_seconds_ >= 0) summary.add("startup_seconds", startup_seconds_);
  if (peak_rss_mib() >= 0) summary.add("peak_rss_mib", peak_rss_mib());
  JsonObject final_metrics;
  for (const auto& [name, value] : result.final_metrics) final_metrics.add(name, value);
  if (result.final_metrics.count("val_loss")) {
    // Nats per token -> bits per token; per character when the tokenizer has one token per
    // character.
    final_metrics.add("val_bits_per_token", result.final_metrics.at("val_loss") / std::log(2.0));
  }
  summary.add("final", final_metrics);
  if (!result.groups.empty()) summary.add("groups", group_json(result.groups));
  summary.add("plugins", provenance_.plugins);
  if (!provenance_.overrides.empty()) summary.add("plugin_overrides", provenance_.overrides);
  write_file_atomic(run_dir_ / "summary.json", summary.str(2) + "\n");
}

}  // namespace lmrun::host
