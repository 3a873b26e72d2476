// Building a run's plugin objects from a validated experiment.
#include "train/pipeline.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <optional>
#include <set>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/cuda.h>
#include <torch/utils.h>
#include <cmath>

#include "registry/guarded.h"
#include "train/checkpoint.h"
#include "train/loss.h"
#include "train/model_checks.h"
#include "train/plan.h"

namespace fs = std::filesystem;

namespace lmrun::host {

c10::Device resolve_device(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  const bool cuda = torch::cuda::is_available();
  if (name == "cuda") {
    if (!cuda)
      throw Error("train.device = \"cuda\", but no CUDA device is available",
                  "use \"cpu\" or \"auto\"");
    return c10::Device(c10::kCUDA);
  }
  return cuda ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
}

void configure_runtime(std::int64_t threads) {
  // Auto: one intra-op (OpenMP) thread. Matrix products, most of a step, run in OpenBLAS, whose
  // pthread build already uses every core; OpenMP threads on top oversubscribe them. Measured on
  // this project's 2-core machines, gpt_tiny: 75 ms/step with 1 OpenMP thread, 165 with 2 (README,
  // "Performance").
  at::set_num_threads(static_cast<int>(threads > 0 ? threads : 1));
#ifdef __GLIBC__
  // A training step allocates and frees activations of 0.1-2 MB each. Above glibc's mmap threshold
  // (128 KiB, raised on the fly only up to the largest size freed so far) each one is a fresh
  // mmap whose pages fault in zeroed, and heap tops above the trim threshold go back to the kernel
  // and fault in again: gpt_tiny spent a third of its step there (70 -> 48 ms/step with this).
  // Keeping such blocks in the heap reuses their pages. MALLOC_MMAP_THRESHOLD_ and
  // MALLOC_TRIM_THRESHOLD_ in the environment still win.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 32 << 20);
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

namespace {

// Each tensor once, even when a module registers a shared tensor under two names.
void collect_parameters(Pipeline& p) {
  std::set<const void*> seen;
  for (const auto& item : p.model->module().named_parameters(/*recurse=*/true)) {
    const at::Tensor& tensor = item.value();
    if (!tensor.requires_grad() || !seen.insert(tensor.unsafeGetTensorImpl()).second) continue;
    p.parameters.push_back(NamedParameter{item.key(), tensor});
    p.parameter_count += tensor.numel();
  }
}

std::vector<std::shared_ptr<Sampler>> make_chain(const Experiment& e,
                                                 const PluginRegistry& registry,
                                                 std::int64_t vocab) {
  std::vector<std::shared_ptr<Sampler>> chain;
  for (const auto& spec : e.samplers) {
    try {
      chain.push_back(
          make_plugin<Sampler>(registry, spec.type, spec.params, SamplerContext{vocab}));
    } catch (const Error& error) {
      throw error.with_context(spec.key);
    }
  }
  return chain;
}

// [objective] of the experiment, or the dataset's declared one with its defaults.
PluginSpec objective_spec(const Experiment& e, const Dataset& data,
                          const PluginRegistry& registry) {
  if (e.objective) return *e.objective;
  const std::string type = data.objective();
  try {
    return default_plugin_section("objective", Kind::kObjective, type, registry);
  } catch (const ConfigError& error) {
    throw Error("dataset '" + e.data.type + "' trains with objective '" + type +
                    "' when [objective] names none, which cannot be used: " + error.what(),
                "name one in the experiment: [objective] type = ...");
  }
}

std::shared_ptr<Objective> make_objective(const PluginSpec& spec, const PluginRegistry& registry,
                                          const ObjectiveContext& context) {
  try {
    return make_plugin<Objective>(registry, spec.type, spec.params, context);
  } catch (const Error& error) {
    throw error.with_context("objective");
  }
}

// The objective takes the model (it may refuse it), then the model's outputs are checked, and
// generation gets their scores.
void attach_objective(Pipeline& p) {
  if (p.objective) {
    try {
      p.objective->attach(*p.model);
    } catch (const Error& error) {
      throw error.with_context("objective");
    }
  }
  check_model_outputs(*p.model, p.model_context, p.device);
  p.washout = p.model->washout();
  p.scored = scored_model(p.model, p.objective);
}

// The model; an allocation failure while building it is one line with the size it needed
// (LibTorch's message carries a backtrace of dozens of frames, issue 21).
std::shared_ptr<Model> make_model(const Experiment& e, const PluginRegistry& registry,
                                  const ModelContext& context) {
  try {
    return make_plugin<Model>(registry, e.model.type, e.model.params, context);
  } catch (const std::exception& error) {
    const std::string what = error.what();
    if (dynamic_cast<const std::bad_alloc*>(&error) == nullptr &&
        what.find("can't allocate memory") == std::string::npos &&
        what.find("bad_alloc") == std::string::npos)
      throw;
    std::string size;
    const Registration* registration = registry.find(Kind::kModel, e.model.type);
    if (registration != nullptr && registration->estimate) {
      try {
        const double parameters = registration->estimate(e.model.params, &context).parameters;
        char text[96];
        std::snprintf(text, sizeof text, " (%.3g parameters: %.3g GB of fp32 weights)", parameters,
                      4.0 * parameters / 1e9);
        size = text;
      } catch (...) {
        // No size then: the allocation failure is what to report.
      }
    }
    const std::size_t tried = what.find("you tried to allocate ");
    const std::string detail =
        tried == std::string::npos ? "" : "; " + what.substr(tried, what.find('.', tried) - tried);
    throw Error("model '" + e.model.type + "' does not fit in memory" + size + detail,
                "make the model smaller (its layers and widths)");
  }
}

}  // namespace

Pipeline build_pipeline(const Experiment& e, const PluginRegistry& registry,
                        const PipelineOptions& options) {
  Pipeline p;
  p.device = resolve_device(e.train.device);
  if (e.train.precision == "bf16" && !p.device.is_cuda()) {
    // CPU autocast exists, but lmrun keeps the CPU path exact fp32.
    throw Error(
        "train.precision = \"bf16\" runs the forward pass under CUDA autocast, but this run "
        "trains on the " +
            p.device.str(),
        "set train.device = \"cuda\" on a machine with a GPU, or train.precision = \"fp32\"");
  }

  p.data = make_plugin<Dataset>(registry, e.data.type, e.data.params,
                                DatasetContext{static_cast<std::uint64_t>(e.experiment.seed)});
  p.tokenizer = make_plugin<Tokenizer>(registry, e.tokenizer.type, e.tokenizer.params,
                                       TokenizerContext{p.data->special_tokens()});
  // Fine-tuning: the weights are read before anything is fitted, so that a bad file fails first,
  // and the tokenizer saved beside them is taken when it is the experiment's type (its ids are
  // what the weights mean; one fitted on this data would number the tokens otherwise).
  std::optional<WeightsSource> init_source;
  const bool fine_tuning =
      options.for_training && options.tokenizer_dir.empty() && !e.model_init.init_from.empty();
  if (fine_tuning) {
    try {
      init_source = read_weights(e.model_init.init_from);
    } catch (const Error& error) {
      throw error.with_context("model.init_from");
    }
  }
  if (init_source && !init_source->tokenizer_dir.empty() &&
      init_source->tokenizer_type == e.tokenizer.type) {
    try {
      p.tokenizer->load(init_source->tokenizer_dir);
    } catch (const Error& error) {
      throw error.with_context("model.init_from's tokenizer " +
                               init_source->tokenizer_dir.string());
    }
    p.init_lines.push_back("tokenizer from " + init_source->tokenizer_dir.string() +
                           " (the weights' own), not fitted");
  } else if (!options.tokenizer_dir.empty()) {
    try {
      p.tokenizer->load(options.tokenizer_dir);
    } catch (const Error& error) {
      throw error.with_context("tokenizer '" + e.tokenizer.type + "'");
    }
  } else {
    p.tokenizer->fit(p.data->training_text());
  }
  try {
    p.data->prepare(*p.tokenizer);
  } catch (const Error& error) {
    throw error.with_context("dataset '" + e.data.type + "'");
  }
  // The run samples from [generate] prompt at its end: a prompt the tokenizer cannot encode is
  // refused now, before training, not after (issue 21).
  if (options.for_training && e.generate) {
    try {
      p.tokenizer->encode(e.generate->prompt);
    } catch (const Error& error) {
      throw Error("generate.prompt: " + std::string(error.what()),
                  "change [generate] prompt to text the tokenizer knows");
    }
  }

  p.objective_spec = objective_spec(e, *p.data, registry);
  p.objective =
      make_objective(p.objective_spec, registry,
                     ObjectiveContext{p.data->task(), p.tokenizer->vocab_size(),
                                      p.data->num_classes(), p.tokenizer->special_id("<pad>")});

  torch::manual_seed(static_cast<std::uint64_t>(e.experiment.seed));
  ModelContext& model_context = p.model_context;
  model_context.vocab_size = p.tokenizer->vocab_size();
  model_context.sequence_length = p.data->sequence_length();
  model_context.num_classes = p.data->num_classes();
  model_context.pad_id = p.tokenizer->special_id("<pad>");
  model_context.output = p.objective->output();
  model_context.tokenizer = p.tokenizer.get();
  model_context.weights_from_checkpoint = !options.tokenizer_dir.empty();
  const std::string training_text =
      model_context.weights_from_checkpoint ? std::string() : p.data->training_text();
  model_context.training_text = training_text;
  p.class_names = p.data->class_names();
  p.chat_format = p.data->chat_format();
  if (options.for_training) check_model_size(e, registry, model_context, p.device);
  p.model = make_model(e, registry, model_context);
  model_context.tokenizer = nullptr;  // the context outlives construction, the pointers need not
  model_context.training_text = {};
  if (init_source) {
    try {
      const InitReport report = load_weights(*p.model, *init_source, e.model_init.init_strict);
      for (std::string& line : describe(report, *init_source)) p.init_lines.push_back(line);
    } catch (const Error& error) {
      throw error.with_context("model.init_from");
    }
  }
  if (options.for_training && !e.model_init.freeze.empty())
    p.frozen = freeze_parameters(*p.model, e.model_init.freeze);
  p.model->module().to(p.device);
  attach_objective(p);

  collect_parameters(p);
  p.samplers = make_chain(e, registry, p.tokenizer->vocab_size());
  const MetricContext metric_context{p.data->num_classes(), p.data->class_names()};
  for (const auto& spec : e.metrics) {
    try {
      p.metrics.push_back(make_plugin<Metric>(registry, spec.type, spec.params, metric_context));
    } catch (const Error& error) {
      throw error.with_context(spec.key);
    }
  }
  if (!options.for_training) {
    p.model->module().eval();
    return p;
  }

  p.optimizer = make_plugin<Optimizer>(registry, e.optimizer.type, e.optimizer.params,
                                       OptimizerContext{p.parameters});
  if (e.scheduler) {
    p.scheduler =
        make_plugin<Scheduler>(registry, e.scheduler->type, e.scheduler->params,
                               SchedulerContext{p.optimizer->base_lr(), e.train.max_steps});
  }
  for (const auto& spec : e.callbacks) {
    p.callbacks.push_back(
        make_plugin<Callback>(registry, spec.type, spec.params, CallbackContext{options.run_dir}));
  }
  return p;
}

}  // namespace lmrun::host

namespace lmrun::host {

Pipeline build_inference_pipeline(const Experiment& e, const PluginRegistry& registry,
                                  const fs::path& checkpoint) {
  Pipeline p;
  p.device = resolve_device(e.train.device);
  p.tokenizer =
      make_plugin<Tokenizer>(registry, e.tokenizer.type, e.tokenizer.params, TokenizerContext{});
  try {
    p.tokenizer->load(checkpoint / "tokenizer");
  } catch (const Error& error) {
    throw error.with_context("checkpoint " + checkpoint.string());
  }
  p.model_context = read_model_context(checkpoint);
  p.class_names = read_class_names(checkpoint);
  p.chat_format = read_chat_format(checkpoint);
  p.model_context.tokenizer = p.tokenizer.get();
  p.model_context.weights_from_checkpoint = true;
  p.model = make_model(e, registry, p.model_context);
  p.model_context.tokenizer = nullptr;
  p.model->module().to(p.device);
  load_model_weights(checkpoint, *p.model);
  if (e.objective) {
    p.objective_spec = *e.objective;
    const Task task =
        p.model_context.num_classes > 0 ? Task::kClassification : Task::kLanguageModel;
    p.objective =
        make_objective(p.objective_spec, registry,
                       ObjectiveContext{task, p.model_context.vocab_size,
                                        p.model_context.num_classes, p.model_context.pad_id});
    if (p.objective->output() != p.model_context.output) {
      throw Error("checkpoint " + checkpoint.string() + " holds a model built for " +
                      (p.model_context.output == ModelOutput::kVectors ? "vector" : "score") +
                      " outputs, but the run's objective '" + p.objective_spec.type +
                      "' asks for the other",
                  "the run's config.toml and its checkpoint disagree: was [objective] changed?");
    }
  } else if (p.model_context.output == ModelOutput::kVectors) {
    throw Error("checkpoint " + checkpoint.string() +
                    " holds a model with vector outputs, but the run's config.toml names no "
                    "[objective] to turn them into scores",
                "add the [objective] the run trained with to its config.toml");
  }
  attach_objective(p);
  p.model->module().eval();
  collect_parameters(p);
  p.samplers = make_chain(e, registry, p.tokenizer->vocab_size());
  return p;
}

namespace {

// Loss and every [[metrics]] value over `n` examples that `read(begin, end)` gives in order.
Metrics evaluate_examples(Pipeline& p, std::int64_t n,
                          const std::function<Batch(std::int64_t, std::int64_t)>& read,
                          std::int64_t batch_size, const BatchObserver& observe) {
  torch::NoGradGuard no_grad;
  const bool was_training = p.model->module().is_training();
  p.model->module().eval();
  double loss = 0.0;
  std::int64_t tokens = 0;
  for (auto& metric : p.metrics) metric->reset();
  for (std::int64_t begin = 0; begin < n; begin += batch_size) {
    const Batch batch =
        objective_batch(read(begin, std::min(n, begin + batch_size)), p.washout, p.device);
    const at::Tensor outputs = model_outputs(*p.model, batch);
    loss += p.objective->loss(outputs, batch).item<double>();
    tokens += p.objective->count(batch);
    if (p.metrics.empty() && !observe) continue;
    const at::Tensor scores = p.objective->scores(outputs);
    for (auto& metric : p.metrics) metric->update(scores, batch.targets);
    if (observe) observe(scores, batch.targets);
  }
  p.model->module().train(was_training);
  Metrics metrics;
  for (const auto& metric : p.metrics) {
    for (const auto& [key, value] : metric->compute()) metrics[key] = value;
  }
  metrics["loss"] = loss / static_cast<double>(std::max<std::int64_t>(tokens, 1));
  metrics["examples"] = static_cast<double>(n);
  if (p.data->task() == Task::kLanguageModel && p.objective->loss_is_nll())
    metrics["perplexity"] = std::exp(metrics["loss"]);
  return metrics;
}

}  // namespace

Metrics evaluate_split(Pipeline& p, Split split, std::int64_t batch_size,
                       const BatchObserver& observe) {
  if (!p.data->has_split(split))
    throw Error(std::string("the dataset has no ") + split_name(split) + " split");
  const Metrics values = evaluate_examples(
      p, p.data->num_examples(split),
      [&](std::int64_t begin, std::int64_t end) { return p.data->slice(split, begin, end); },
      batch_size, observe);
  Metrics metrics;
  for (const auto& [name, value] : values) metrics[split_name(split) + ("_" + name)] = value;
  return metrics;
}

std::vector<GroupMetrics> evaluate_groups(Pipeline& p, std::int64_t batch_size) {
  std::vector<GroupMetrics> results;
  const std::vector<ExampleGroup> groups = p.data->groups();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto read = [&](std::int64_t begin, std::int64_t end) {
      return p.data->group_slice(g, begin, end);
    };
    results.push_back({groups[g].name, evaluate_examples(p, groups[g].size, read, batch_size, {})});
  }
  return results;
}

JsonObject group_json(const std::vector<GroupMetrics>& groups) {
  JsonObject all;
  for (const auto& group : groups) {
    JsonObject values;
    for (const auto& [name, value] : group.metrics) values.add(name, value);
    all.add(group.name, values);
  }
  return all;
}

std::string group_table(const std::vector<GroupMetrics>& groups) {
  if (groups.empty()) return "";
  std::vector<std::string> columns = {"examples"};
  for (const auto& [name, value] : groups.front().metrics) {
    if (name != "examples" && name != "perplexity") columns.push_back(name);
  }
  std::size_t name_width = 5;
  for (const auto& group : groups) name_width = std::max(name_width, group.name.size());
  auto width = [](const std::string& column) {
    return static_cast<int>(std::max<std::size_t>(column.size(), 8));
  };
  char cell[64];
  std::string table = "  group" + std::string(name_width - 5, ' ');
  for (const auto& column : columns) {
    std::snprintf(cell, sizeof cell, "  %*s", width(column), column.c_str());
    table += cell;
  }
  table += "\n";
  for (const auto& group : groups) {
    table += "  " + group.name + std::string(name_width - group.name.size(), ' ');
    for (const auto& column : columns) {
      const auto it = group.metrics.find(column);
      if (it == group.metrics.end()) {
        std::snprintf(cell, sizeof cell, "  %*s", width(column), "-");
      } else {
        std::snprintf(cell, sizeof cell, column == "examples" ? "  %*.0f" : "  %*.4f",
                      width(column), it->second);
      }
      table += cell;
    }
    table += "\n";
  }
  return table;
}

}  // namespace lmrun::host
