// A run's objects, built from a validated experiment in DESIGN.md's order: dataset, tokenizer
// (fitted on the training text, or loaded), the dataset's token streams, objective, model (built
// for the objective's outputs), optimizer, scheduler, callbacks, samplers.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "config/experiment.h"
#include "export/weights.h"
#include "lmrun/callback.h"
#include "lmrun/dataset.h"
#include "lmrun/metric.h"
#include "lmrun/model.h"
#include "lmrun/objective.h"
#include "lmrun/optimizer.h"
#include "lmrun/sampler.h"
#include "lmrun/scheduler.h"
#include "lmrun/tokenizer.h"
#include "registry/plugin_registry.h"
#include "util/json.h"

namespace lmrun::host {

struct Pipeline {
  std::shared_ptr<Dataset> data;
  std::shared_ptr<Tokenizer> tokenizer;
  std::shared_ptr<Model> model;
  // The loss; null only in an inference pipeline of a run whose config names none (from before
  // objectives: its model outputs scores).
  std::shared_ptr<Objective> objective;
  PluginSpec objective_spec;  // [objective] as resolved, the dataset's default filled in
  // The model with outputs as scores (model_checks.h), for generation; null when the model's
  // outputs are scores already. Use scoring_model().
  std::shared_ptr<Model> scored;
  std::int64_t washout = 0;  // the model's washout(): leading positions the loss leaves out
  std::shared_ptr<Optimizer> optimizer;  // null when built for inference only
  std::shared_ptr<Scheduler> scheduler;  // null: the optimizer's lr throughout
  std::vector<std::shared_ptr<Callback>> callbacks;
  std::vector<std::shared_ptr<Metric>> metrics;  // [[metrics]], run at every evaluation
  std::vector<std::shared_ptr<Sampler>> samplers;
  std::vector<NamedParameter> parameters;  // trainable, each tensor once
  c10::Device device = c10::Device(c10::kCPU);
  ModelContext model_context;            // what the model was built for (saved in checkpoints)
  std::vector<std::string> class_names;  // classification: label names in id order (saved too)
  ChatFormat chat_format;                // conversations: how a message is rendered (saved too)
  std::int64_t parameter_count = 0;      // trainable ones, each tensor once
  // [model] init_from and freeze as applied to a run being trained: the banner's lines on where the
  // weights came from (empty without init_from or when resuming), and what stays fixed.
  std::vector<std::string> init_lines;
  FreezeReport frozen;

  // The model generation and prediction read scores (B, V) or (B, C) from.
  Model& scoring_model() const { return scored ? *scored : *model; }
};

struct PipelineOptions {
  std::filesystem::path run_dir;
  std::filesystem::path tokenizer_dir;  // load the tokenizer from here instead of fitting it
  bool for_training = true;             // false: no optimizer, scheduler or callbacks
};

// Seeds LibTorch's global generator with the experiment's seed before the model is built, so
// initial weights are a function of the seed. Throws lmrun::Error naming the section at fault.
Pipeline build_pipeline(const Experiment& experiment, const PluginRegistry& registry,
                        const PipelineOptions& options);

// For generation: the tokenizer loaded from <checkpoint>/tokenizer and the model built for the
// checkpoint's saved ModelContext, its weights loaded, in eval mode, with the experiment's
// samplers. Needs no dataset. Throws lmrun::Error naming the checkpoint.
Pipeline build_inference_pipeline(const Experiment& experiment, const PluginRegistry& registry,
                                  const std::filesystem::path& checkpoint);

// Loss over every example of a split, in order (num_examples / slice), in eval mode without
// gradients: "<split>_loss", "<split>_examples", "<split>_perplexity" when the objective's loss is
// a log-likelihood, and every [[metrics]] value as "<split>_<name>". `observe`, when given, sees
// each batch's scores and targets (padding as kIgnoreTarget) too.
using BatchObserver = std::function<void(const at::Tensor& scores, const at::Tensor& targets)>;
Metrics evaluate_split(Pipeline& pipeline, Split split, std::int64_t batch_size,
                       const BatchObserver& observe = {});

// Every group of the dataset's groups(), evaluated as evaluate_split evaluates a split, with
// unprefixed names ("loss", "examples", "exact_match"), in the dataset's order.
struct GroupMetrics {
  std::string name;
  Metrics metrics;
};
std::vector<GroupMetrics> evaluate_groups(Pipeline& pipeline, std::int64_t batch_size);

// The groups as a table, a row each, one column per value, indented by two spaces.
std::string group_table(const std::vector<GroupMetrics>& groups);
// The groups as summary.json and `eval -o` hold them: {"NAME": {"examples": N, "loss": ...}}.
JsonObject group_json(const std::vector<GroupMetrics>& groups);

// "cpu", "cuda", "auto" -> a device; throws when cuda is asked for and absent.
c10::Device resolve_device(const std::string& name);

// Sets up the process for training or inference: [train] threads (0: auto, one thread, since
// OpenBLAS brings its own) for LibTorch, and glibc's allocator to keep large blocks for reuse.
void configure_runtime(std::int64_t threads);

}  // namespace lmrun::host
