// What a run will be, worked out before any work: the rules across sections that `lmrun check`,
// `lmrun sweep` (every trial, --dry-run too) and the run itself apply.
//
//   check_plan(experiment, registry);   // throws ConfigError listing every problem
//
// The plan builds only what is cheap to build: the dataset (its files are read, nothing is
// tokenized), the objective (with the vocabulary unknown: 0), the metrics, the optimizer over a
// one-element stand-in parameter (for its learning rate), the scheduler (its factory checks warmup
// and min_lr against the run) and the callbacks (their check_plan sees what the run will report: a
// monitor naming no metric, or a validation metric without a validation split). Then the model's
// size estimate against this machine's memory. No model is built and no tokenizer fitted.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include <c10/core/Device.h>

#include "config/experiment.h"
#include "lmrun/callback.h"
#include "lmrun/dataset.h"
#include "lmrun/metric.h"
#include "lmrun/model.h"
#include "lmrun/objective.h"
#include "registry/plugin_registry.h"

namespace lmrun::host {

// The TrainState a run starts from: eval_metrics as each evaluation reports them (each split's
// loss, val_perplexity for a language model with a val split and a log-likelihood loss, every
// [[metrics]] name for each split), step_metrics ("loss", "lr", then each callback's
// metric_names()), max_steps, run_dir.
TrainState planned_state(const Dataset& data, const Objective& objective,
                         const std::vector<std::shared_ptr<Metric>>& metrics,
                         const std::vector<std::shared_ptr<Callback>>& callbacks,
                         std::int64_t max_steps, const std::filesystem::path& run_dir);

// Throws lmrun::Error when the model's size estimate (Registration::estimate) for a training step
// of `train` does not fit in this machine's memory (checked for the CPU only). `context` may lack
// what is not known yet (vocab_size 0 before the tokenizer is fitted): the estimate is then a
// lower bound.
void check_model_size(const Experiment& e, const PluginRegistry& registry,
                      const ModelContext& context, c10::Device device);

// Every cross-section rule above; throws ConfigError listing each problem with its section.
void check_plan(const Experiment& e, const PluginRegistry& registry);

}  // namespace lmrun::host
