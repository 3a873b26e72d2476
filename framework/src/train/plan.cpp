// The plan of a run: its cheap objects built early, and the rules between sections checked on them.
#include "train/plan.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <ATen/ops/zeros.h>

#include "config/diagnostics.h"
#include "lmrun/optimizer.h"
#include "lmrun/scheduler.h"
#include "registry/guarded.h"
#include "train/pipeline.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

std::string bytes_text(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 6) {
    bytes /= 1024;
    ++unit;
  }
  char text[48];
  if (bytes >= 1e4) {
    std::snprintf(text, sizeof text, "%.3g %s", bytes, units[unit]);  // beyond exbibytes
  } else {
    std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  }
  return text;
}

double physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<double>(pages) * static_cast<double>(size) : 0.0;
}

}  // namespace

TrainState planned_state(const Dataset& data, const Objective& objective,
                         const std::vector<std::shared_ptr<Metric>>& metrics,
                         const std::vector<std::shared_ptr<Callback>>& callbacks,
                         std::int64_t max_steps, const fs::path& run_dir) {
  TrainState state;
  state.max_steps = max_steps;
  state.run_dir = run_dir;
  for (Split split : {Split::kTrain, Split::kVal, Split::kTest}) {
    if (data.has_split(split))
      state.eval_metrics.push_back(std::string(split_name(split)) + "_loss");
  }
  if (data.task() == Task::kLanguageModel && data.has_split(Split::kVal) && objective.loss_is_nll())
    state.eval_metrics.push_back("val_perplexity");
  for (Split split : {Split::kTrain, Split::kVal, Split::kTest}) {
    if (!data.has_split(split)) continue;
    for (const auto& metric : metrics) {
      for (const auto& name : metric->names())
        state.eval_metrics.push_back(std::string(split_name(split)) + "_" + name);
    }
  }
  state.step_metrics = {"loss", "lr"};
  for (const auto& callback : callbacks) {
    for (const auto& name : callback->metric_names()) state.step_metrics.push_back(name);
  }
  return state;
}

void check_model_size(const Experiment& e, const PluginRegistry& registry,
                      const ModelContext& context, c10::Device device) {
  const Registration* registration = registry.find(Kind::kModel, e.model.type);
  if (registration == nullptr || !registration->estimate || !device.is_cpu()) return;
  const WhoPtr who = plugin_who(registry, Kind::kModel, e.model.type);
  const SizeEstimate size =
      guarded(*who, "estimate", [&] { return registration->estimate(e.model.params, &context); });
  const double tokens = static_cast<double>(e.train.batch_size) *
                        static_cast<double>(std::max<std::int64_t>(context.sequence_length, 1));
  // fp32: the weights, their gradients and an Adam-like optimizer's two moments; the activations
  // a micro-batch keeps for the backward pass.
  const double weights = 4.0 * 4.0 * size.parameters;
  const double activations = 4.0 * size.activations_per_token * tokens;
  const double available = physical_memory_bytes();
  if (available <= 0 || !(weights + activations > available)) return;
  char parameters[32];
  std::snprintf(parameters, sizeof parameters, "%.3g", size.parameters);
  throw Error(who->name + " would need about " + bytes_text(weights + activations) + " to train (" +
                  parameters + " parameters: their weights, gradients and optimizer state take " +
                  bytes_text(weights) + ", a batch of " + std::to_string(e.train.batch_size) +
                  " x " + std::to_string(std::max<std::int64_t>(context.sequence_length, 1)) +
                  " tokens " + bytes_text(activations) + "); this machine has " +
                  bytes_text(available),
              "make the model smaller (its layers and widths) or the batch");
}

void check_plan(const Experiment& e, const PluginRegistry& registry) {
  Diagnostics problems;
  const std::string file = e.file.filename().string();
  // One check: its problem goes under `key`, and the next checks go on.
  auto attempt = [&](const std::string& key, const auto& check) {
    try {
      check();
      return true;
    } catch (const Error& error) {
      problems.add(file, key,
                   std::string(error.what()) +
                       (error.hint().empty() ? "" : " (hint: " + error.hint() + ")"));
    } catch (const std::exception& error) {
      problems.add(file, key, error.what());
    }
    return false;
  };

  std::shared_ptr<Dataset> data;
  attempt("data", [&] {
    data = make_plugin<Dataset>(registry, e.data.type, e.data.params,
                                DatasetContext{static_cast<std::uint64_t>(e.experiment.seed)});
  });
  std::shared_ptr<Objective> objective;
  if (data) {
    attempt("objective", [&] {
      const PluginSpec spec = e.objective ? *e.objective
                                          : default_plugin_section("objective", Kind::kObjective,
                                                                   data->objective(), registry);
      objective =
          make_plugin<Objective>(registry, spec.type, spec.params,
                                 ObjectiveContext{data->task(), 0, data->num_classes(), -1});
    });
  }
  std::vector<std::shared_ptr<Metric>> metrics;
  if (data) {
    const MetricContext context{data->num_classes(), data->class_names()};
    for (const auto& spec : e.metrics) {
      attempt(spec.key, [&] {
        metrics.push_back(make_plugin<Metric>(registry, spec.type, spec.params, context));
      });
    }
  }

  // The optimizer over a stand-in parameter: what the scheduler scales is its learning rate.
  double base_lr = 0;
  const bool have_lr = attempt("optimizer", [&] {
    OptimizerContext context;
    context.parameters.push_back(NamedParameter{"plan.weight", at::zeros({1}).requires_grad_()});
    base_lr =
        make_plugin<Optimizer>(registry, e.optimizer.type, e.optimizer.params, context)->base_lr();
  });
  if (e.scheduler && have_lr) {
    attempt("scheduler", [&] {
      make_plugin<Scheduler>(registry, e.scheduler->type, e.scheduler->params,
                             SchedulerContext{base_lr, e.train.max_steps});
    });
  }

  std::vector<std::shared_ptr<Callback>> callbacks;
  std::vector<std::string> callback_keys;
  for (const auto& spec : e.callbacks) {
    attempt(spec.key, [&] {
      callbacks.push_back(make_plugin<Callback>(registry, spec.type, spec.params,
                                                CallbackContext{e.experiment.out_dir}));
      callback_keys.push_back(spec.key);
    });
  }
  if (data && objective) {
    const TrainState planned = planned_state(*data, *objective, metrics, callbacks,
                                             e.train.max_steps, e.experiment.out_dir);
    for (std::size_t i = 0; i < callbacks.size(); ++i)
      attempt(callback_keys[i], [&] { callbacks[i]->check_plan(planned); });

    ModelContext context;
    context.sequence_length = data->sequence_length();
    context.num_classes = data->num_classes();
    attempt("model",
            [&] { check_model_size(e, registry, context, resolve_device(e.train.device)); });
  }
  problems.throw_if_any();
}

}  // namespace lmrun::host
