// Validating an experiment: every section against its schema, every problem collected, nothing run.
#include "config/experiment.h"

#include <cmath>
#include <set>

#include "lmrun/util/files.h"
#include "lmrun/util/suggest.h"

namespace fs = std::filesystem;

namespace lmrun::host {

// ---------------------------------------------------------------------------------------------
// Host schemas

const Schema<ExperimentOptions>& experiment_schema() {
  static const Schema<ExperimentOptions> schema = [] {
    Schema<ExperimentOptions> s;
    s.add("name", &ExperimentOptions::name, "the experiment's name; default: the file's stem");
    s.add("seed", &ExperimentOptions::seed, "master seed of every random generator").min(0);
    s.add("out_dir", &ExperimentOptions::out_dir, "run folder; default runs/<name>");
    return s;
  }();
  return schema;
}

const Schema<TrainOptions>& train_schema() {
  static const Schema<TrainOptions> schema = [] {
    Schema<TrainOptions> s;
    s.add("batch_size", &TrainOptions::batch_size, "sequences per micro-batch").min(1);
    s.add("grad_accum_steps", &TrainOptions::grad_accum_steps, "micro-batches per optimizer step")
        .min(1);
    s.add("max_steps", &TrainOptions::max_steps,
          "optimizer steps to run; 0: none, the model as built is evaluated and saved (a readout "
          "fitted in closed form)")
        .min(0);
    s.add("max_time", &TrainOptions::max_time,
          "seconds of training after which the run stops at the end of its step, evaluated and "
          "saved as at max_steps (a resumed run counts its earlier segments); 0: no limit. For "
          "comparisons at equal wall time")
        .min(0);
    s.add("eval_interval", &TrainOptions::eval_interval,
          "steps between evaluations; 0: only at the end")
        .min(0);
    s.add("eval_batches", &TrainOptions::eval_batches, "batches per split in each loss estimate")
        .min(1);
    s.add("grad_clip", &TrainOptions::grad_clip, "max global gradient norm; 0 disables clipping")
        .min(0);
    s.add("log_interval", &TrainOptions::log_interval, "steps between log lines").min(1);
    s.add("device", &TrainOptions::device, "where to train").choices({"cpu", "cuda", "auto"});
    s.add("threads", &TrainOptions::threads,
          "intra-op (OpenMP) threads; 0: auto (1: BLAS brings its own threads)")
        .min(0);
    s.add("peak_gflops", &TrainOptions::peak_gflops,
          "the device's peak in GFLOP/s in the run's precision, the MFU's denominator; 0: "
          "measure a matrix product (fp32, or bf16 under bf16 precision) at the first log line")
        .min(0);
    s.add("precision", &TrainOptions::precision,
          "fp32 everywhere, or bf16: the forward pass and loss under CUDA autocast (weights, "
          "gradients and optimizer stay fp32; CUDA only)")
        .choices({"fp32", "bf16"});
    return s;
  }();
  return schema;
}

const Schema<GenerateOptions>& generate_schema() {
  static const Schema<GenerateOptions> schema = [] {
    Schema<GenerateOptions> s;
    s.add("prompt", &GenerateOptions::prompt, "text the samples continue");
    s.add("max_new_tokens", &GenerateOptions::max_new_tokens, "tokens to generate per sample")
        .range(0, static_cast<double>(kMaxNewTokens));
    s.add("num_samples", &GenerateOptions::num_samples, "samples to draw").min(1);
    s.add("seed", &GenerateOptions::seed, "sampling seed; -1: the experiment's seed").min(-1);
    s.add("stop", &GenerateOptions::stop,
          "stop strings: a sample ends where one first appears, and is cut before it");
    s.add("stop_tokens", &GenerateOptions::stop_tokens,
          "token ids after which a sample ends (the token's text is kept)");
    s.add("beam_width", &GenerateOptions::beam_width,
          "beam search with this many hypotheses instead of the sampler chain; 0 or 1: sampling")
        .min(0);
    s.add("length_penalty", &GenerateOptions::length_penalty,
          "beam search: a hypothesis scores log p / length^this (> 0 favours longer ones)");
    s.check([](const GenerateOptions& o) {
      for (const auto& stop : o.stop) {
        if (stop.empty()) throw Error("stop: an empty stop string would end every sample at once");
      }
      for (std::int64_t id : o.stop_tokens) {
        if (id < 0) throw Error("stop_tokens: " + std::to_string(id) + " is not a token id");
      }
    });
    return s;
  }();
  return schema;
}

const Schema<PluginsOptions>& plugins_schema() {
  static const Schema<PluginsOptions> schema = [] {
    Schema<PluginsOptions> s;
    s.add("paths", &PluginsOptions::paths, "extra plugin folders, relative to this file");
    s.add("override", &PluginsOptions::overrides,
          "KIND.NAMEs that two plugin files register, given to the file loaded last (an explicit "
          "replacement of a built-in, recorded in summary.json)");
    return s;
  }();
  return schema;
}

const Schema<ModelInitOptions>& model_init_schema() {
  static const Schema<ModelInitOptions> schema = [] {
    Schema<ModelInitOptions> s;
    s.add("init_from", &ModelInitOptions::init_from,
          "start from these weights (fine-tuning, fresh optimizer, step 0): a .safetensors file "
          "or export folder, a nanoGPT ckpt.pt, or an lmrun run or checkpoint folder");
    s.add("init_strict", &ModelInitOptions::init_strict,
          "init_from: every tensor must match the model in name and shape; false loads what "
          "matches and lists the rest");
    s.add("freeze", &ModelInitOptions::freeze,
          "parameters kept fixed in training, by name pattern: \"wte\", \"blocks.0.*\"");
    return s;
  }();
  return schema;
}

// ---------------------------------------------------------------------------------------------
// Values

namespace {

std::string describe_node(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "the string " + quote(abbreviate(node.as_string()->get()));
    case toml::node_type::integer:
      return "the integer " + std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point:
      return "the float " + format_double(node.as_floating_point()->get());
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::array:
      return "a list";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

ParamType element_type(ParamType list) {
  switch (list) {
    case ParamType::kIntList:
      return ParamType::kInt;
    case ParamType::kFloatList:
      return ParamType::kFloat;
    default:
      return ParamType::kString;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The validator: walks the document once, collecting every problem.

namespace {

const std::vector<std::string> kSections = {"experiment", "data",      "tokenizer", "model",
                                            "objective",  "optimizer", "scheduler", "train",
                                            "callbacks",  "metrics",   "generate",  "plugins"};

class Validator {
 public:
  Validator(const TomlDocument& doc, const PluginRegistry& registry,
            const std::vector<std::string>& failures, ResolveOptions options = {})
      : doc_(doc), registry_(registry), failures_(failures), options_(std::move(options)) {}

  Experiment run();

  // One plugin section of the document, validated alone.
  PluginSpec section(const std::string& key, Kind kind) {
    const toml::node* node = doc_.root.get(key);
    if (node == nullptr) {
      diagnostics_.add(
          location_of_file(), key,
          "missing section [" + key + "] with a `type`, one of: " + join(registry_.names(kind)));
    }
    std::optional<PluginSpec> spec = node ? plugin_section(node, kind, key) : std::nullopt;
    diagnostics_.throw_if_any();
    return *spec;
  }

 private:
  std::string where(const toml::node* node) const {
    std::string location = node ? location_of(*node) : "";
    return location.empty() ? location_of_file() : location;
  }
  std::string location_of_file() const { return doc_.file.filename().string(); }

  std::optional<Value> convert(const toml::node& node, const ParamSpec& spec,
                               const std::string& key);
  std::optional<Value> convert_scalar(const toml::node& node, ParamType type,
                                      const std::string& key, std::string& problem);
  Params check_params(const toml::table& table, const std::vector<ParamSpec>& specs,
                      const std::string& section, const std::string& owner,
                      const std::set<std::string>& extra_keys);

  template <class Options>
  Options host_section(const std::string& name, const Schema<Options>& schema,
                       const std::set<std::string>& extra_keys = {}) {
    const toml::node* node = doc_.root.get(name);
    if (node == nullptr) return Options{};
    if (!node->is_table()) {
      diagnostics_.add(where(node), name,
                       "expected a section ([" + name + "]), got " + describe_node(*node));
      return Options{};
    }
    Params params =
        check_params(*node->as_table(), schema.specs(), name, "[" + name + "]", extra_keys);
    try {
      return schema.parse(params);
    } catch (const Error&) {
      return Options{};  // already reported as a missing or invalid key
    }
  }

  std::optional<PluginSpec> plugin_section(const toml::node* node, Kind kind,
                                           const std::string& key);
  std::vector<PluginSpec> plugin_list(const toml::node* node, Kind kind, const std::string& key);
  // The keys of section `key` that check_params skips: `type`, and those that came with a type
  // the section no longer has and that its plugin does not take (each drop noted).
  std::set<std::string> retyped_keys(const std::string& key, const Registration& registration);

  const TomlDocument& doc_;
  const PluginRegistry& registry_;
  bool needed(Kind kind) const {
    return options_.needed.empty() ||
           std::find(options_.needed.begin(), options_.needed.end(), kind) != options_.needed.end();
  }

  const std::vector<std::string>& failures_;
  ResolveOptions options_;
  Diagnostics diagnostics_;
  std::vector<std::string> notes_;
};

std::optional<Value> Validator::convert_scalar(const toml::node& node, ParamType type,
                                               const std::string& key, std::string& problem) {
  switch (type) {
    case ParamType::kBool:
      if (auto v = node.value_exact<bool>()) return Value(*v);
      problem = "expected true or false, got " + describe_node(node);
      return std::nullopt;
    case ParamType::kInt:
      if (auto v = node.value_exact<std::int64_t>()) return Value(*v);
      problem = "expected an integer, got " + describe_node(node);
      return std::nullopt;
    case ParamType::kFloat:
      if (auto v = node.value_exact<double>()) return Value(*v);
      if (auto v = node.value_exact<std::int64_t>()) return Value(static_cast<double>(*v));
      problem = "expected a number, got " + describe_node(node);
      return std::nullopt;
    case ParamType::kString:
    case ParamType::kPath: {
      std::string text;
      if (auto v = node.value_exact<std::string>()) {
        text = *v;
      } else if (auto raw = doc_.raw_overrides.find(key);
                 raw != doc_.raw_overrides.end() && !node.is_array()) {
        text = raw->second;  // --set experiment.name=123: the text as typed
      } else {
        problem = "expected a string, got " + describe_node(node);
        return std::nullopt;
      }
      if (type == ParamType::kPath && !text.empty())
        text = fs::absolute(text).lexically_normal().string();
      return Value(text);
    }
    default:
      problem = "internal: not a scalar type";
      return std::nullopt;
  }
}

std::optional<Value> Validator::convert(const toml::node& node, const ParamSpec& spec,
                                        const std::string& key) {
  std::string problem;
  std::optional<Value> value;
  if (is_list(spec.type)) {
    const toml::array* array = node.as_array();
    if (array == nullptr) {
      problem = "expected a list of " + std::string(type_name(element_type(spec.type))) +
                "s, got " + describe_node(node);
    } else {
      std::vector<std::int64_t> ints;
      std::vector<double> floats;
      std::vector<std::string> strings;
      for (std::size_t i = 0; i < array->size() && problem.empty(); ++i) {
        std::optional<Value> element =
            convert_scalar(*array->get(i), element_type(spec.type), key, problem);
        if (!element) {
          problem = "element " + std::to_string(i) + ": " + problem;
        } else if (auto* v = std::get_if<std::int64_t>(&*element)) {
          ints.push_back(*v);
        } else if (auto* v = std::get_if<double>(&*element)) {
          floats.push_back(*v);
        } else {
          strings.push_back(std::get<std::string>(*element));
        }
      }
      if (problem.empty()) {
        if (spec.type == ParamType::kIntList) value = ints;
        if (spec.type == ParamType::kFloatList) value = floats;
        if (spec.type == ParamType::kStringList) value = strings;
      }
    }
  } else {
    value = convert_scalar(node, spec.type, key, problem);
  }
  if (value && problem.empty()) problem = check_value(*value, spec);
  if (value && problem.empty() && spec.role == ParamRole::kInputFile) {
    // A file the plugin reads: missing, a folder or a FIFO is found now, not after training.
    const std::string& path = std::get<std::string>(*value);
    const std::string why = path.empty() ? "" : regular_file_problem(path);
    if (why == "does not exist")
      problem = path + " " + why + " (a relative path resolves against the working directory)";
    else if (!why.empty())
      problem = path + " " + why;
  }
  if (!problem.empty()) {
    diagnostics_.add(where(&node), key, problem);
    return std::nullopt;
  }
  return value;
}

Params Validator::check_params(const toml::table& table, const std::vector<ParamSpec>& specs,
                               const std::string& section, const std::string& owner,
                               const std::set<std::string>& extra_keys) {
  std::vector<std::string> names;
  for (const auto& spec : specs) names.push_back(spec.name);
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (extra_keys.count(name)) continue;
    bool known = false;
    for (const auto& spec : specs) known = known || spec.name == name;
    if (!known) {
      const std::string hint = did_you_mean(name, names);
      const std::string at = location_of(key.source());
      diagnostics_.add(at.empty() ? where(&node) : at, section + "." + name,
                       "unknown key" + (hint.empty() ? " in " + owner : hint) +
                           (names.empty() ? "; it takes no parameters"
                                          : "; " + owner + " takes: " + join(names)));
    }
  }
  Params params;
  for (const auto& spec : specs) {
    const std::string key = section + "." + spec.name;
    if (const toml::node* node = table.get(spec.name)) {
      if (auto value = convert(*node, spec, key)) params.set(spec.name, *value);
    } else if (spec.default_value) {
      Value value = *spec.default_value;
      if (auto* text = std::get_if<std::string>(&value);
          text && spec.type == ParamType::kPath && !text->empty()) {
        *text = fs::absolute(*text).lexically_normal().string();
      }
      params.set(spec.name, value);
    } else {
      diagnostics_.add(where(&table), key, "missing required key (" + spec.doc + ")");
    }
  }
  return params;
}

std::optional<PluginSpec> Validator::plugin_section(const toml::node* node, Kind kind,
                                                    const std::string& key) {
  const std::string kind_word = kind_name(kind);
  if (!node->is_table()) {
    diagnostics_.add(where(node), key,
                     "expected a section with a `type`, got " + describe_node(*node));
    return std::nullopt;
  }
  const toml::table& table = *node->as_table();
  const std::vector<std::string> known = registry_.names(kind);
  const toml::node* type_node = table.get("type");
  if (type_node == nullptr || !type_node->is_string()) {
    diagnostics_.add(where(type_node ? type_node : node), key + ".type",
                     (type_node ? "expected a string" : std::string("missing")) + ": the " +
                         kind_word +
                         " to use, one of: " + (known.empty() ? "(none registered)" : join(known)));
    return std::nullopt;
  }
  const std::string type = type_node->as_string()->get();
  const Registration* registration = registry_.find(kind, type);
  if (registration == nullptr && !needed(kind)) return std::nullopt;  // this command needs none
  if (const Conflict* conflict = registry_.conflict(kind, type)) {
    diagnostics_.add(where(type_node), key + ".type",
                     registry_.conflict_message(*conflict) +
                         " (hint: remove all but one of the files from the plugin path, or, to "
                         "replace the first deliberately, add [plugins] override = [\"" +
                         kind_word + "." + type + "\"], which gives it to the file loaded last)");
    return std::nullopt;
  }
  if (registration == nullptr) {
    std::string message = "unknown " + kind_word + " '" + type + "'" + did_you_mean(type, known) +
                          "; registered " + kind_word +
                          "s: " + (known.empty() ? "(none)" : join(known));
    if (!failures_.empty()) {
      message += "; " + std::to_string(failures_.size()) +
                 " plugin file(s) failed to load: " + join(failures_, "; ");
    }
    diagnostics_.add(where(type_node), key + ".type", message);
    return std::nullopt;
  }
  PluginSpec spec;
  spec.kind = kind;
  spec.key = key;
  spec.type = type;
  const std::size_t problems_before = diagnostics_.problems().size();
  std::set<std::string> skipped = retyped_keys(key, *registration);
  if (kind == Kind::kModel) skipped.insert(kModelHostKeys.begin(), kModelHostKeys.end());
  spec.params =
      check_params(table, registration->params, key, kind_word + " '" + type + "'", skipped);
  if (registration->check && diagnostics_.problems().size() == problems_before) {
    try {
      registration->check(spec.params);
    } catch (const Error& e) {
      diagnostics_.add(
          where(node), key,
          e.what() + (e.hint().empty() ? "" : std::string(" (hint: ") + e.hint() + ")"));
    } catch (const std::exception& e) {
      diagnostics_.add(where(node), key, e.what());
    }
  }
  return spec;
}

std::set<std::string> Validator::retyped_keys(const std::string& key,
                                              const Registration& registration) {
  std::set<std::string> skipped = {"type"};
  const auto it = doc_.retyped.find(key);
  if (it == doc_.retyped.end()) return skipped;
  const TomlDocument::Retyped& retyped = it->second;
  std::vector<std::string> dropped;
  for (const std::string& name : retyped.keys) {
    const bool taken = std::any_of(registration.params.begin(), registration.params.end(),
                                   [&](const ParamSpec& spec) { return spec.name == name; });
    if (!taken) dropped.push_back(name);
  }
  if (dropped.empty()) return skipped;
  skipped.insert(dropped.begin(), dropped.end());
  notes_.push_back(key + ".type changed from " + quote(retyped.from) + " to " +
                   quote(registration.name) + " (" + retyped.where + "): dropped " + join(dropped) +
                   ", which " + registration.name + " does not take");
  return skipped;
}

std::vector<PluginSpec> Validator::plugin_list(const toml::node* node, Kind kind,
                                               const std::string& key) {
  std::vector<PluginSpec> out;
  if (node == nullptr) return out;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    diagnostics_.add(where(node), key,
                     std::string("expected a list of ") + kind_name(kind) + " sections: write [[" +
                         key + "]] for each");
    return out;
  }
  for (std::size_t i = 0; i < array->size(); ++i) {
    if (auto spec = plugin_section(array->get(i), kind, key + "." + std::to_string(i)))
      out.push_back(std::move(*spec));
  }
  return out;
}

Experiment Validator::run() {
  Experiment experiment;
  experiment.file = doc_.file;

  for (const auto& [key, node] : doc_.root) {
    const std::string name(key.str());
    if (std::find(kSections.begin(), kSections.end(), name) != kSections.end()) continue;
    if (name == "sweep") {
      diagnostics_.add(where(&node), name,
                       "a [sweep] section belongs to a sweep file, run with `lmrun sweep`");
      continue;
    }
    const std::string at = location_of(key.source());
    diagnostics_.add(
        at.empty() ? where(&node) : at, name,
        "unknown section" + did_you_mean(name, kSections) + "; sections: " + join(kSections));
  }

  experiment.experiment = host_section("experiment", experiment_schema());
  if (experiment.experiment.name.empty()) experiment.experiment.name = doc_.file.stem().string();
  if (experiment.experiment.out_dir.empty()) {
    experiment.experiment.out_dir =
        fs::absolute(fs::path("runs") / experiment.experiment.name).lexically_normal();
  }
  experiment.train = host_section("train", train_schema());
  if (doc_.root.get("generate") != nullptr) {
    experiment.generate = host_section("generate", generate_schema(), {"samplers"});
    if (const toml::table* generate = doc_.root.get_as<toml::table>("generate")) {
      experiment.samplers =
          plugin_list(generate->get("samplers"), Kind::kSampler, "generate.samplers");
    }
  }
  experiment.plugin_overrides = host_section("plugins", plugins_schema()).overrides;

  struct Required {
    const char* key;
    Kind kind;
    PluginSpec* target;
  };
  for (const Required& section : {Required{"data", Kind::kDataset, &experiment.data},
                                  Required{"tokenizer", Kind::kTokenizer, &experiment.tokenizer},
                                  Required{"model", Kind::kModel, &experiment.model},
                                  Required{"optimizer", Kind::kOptimizer, &experiment.optimizer}}) {
    const toml::node* node = doc_.root.get(section.key);
    if (node == nullptr && !needed(section.kind)) continue;
    if (node == nullptr) {
      const std::vector<std::string> known = registry_.names(section.kind);
      diagnostics_.add(
          location_of_file(), section.key,
          std::string("missing section [") + section.key +
              "] with a `type`, one of: " + (known.empty() ? "(none registered)" : join(known)));
    } else if (auto spec = plugin_section(node, section.kind, section.key)) {
      *section.target = std::move(*spec);
    }
  }
  if (const toml::table* model = doc_.root.get_as<toml::table>("model")) {
    toml::table own;
    for (const std::string& name : kModelHostKeys)
      if (const toml::node* node = model->get(name)) own.insert(name, *node);
    Params params = check_params(own, model_init_schema().specs(), "model", "[model]", {});
    try {
      experiment.model_init = model_init_schema().parse(params);
    } catch (const Error&) {
      // already reported
    }
    ModelInitOptions& init = experiment.model_init;
    if (!init.init_from.empty()) {
      init.init_from = fs::absolute(init.init_from).lexically_normal().string();
      if (!fs::exists(init.init_from)) {
        diagnostics_.add(where(model->get("init_from")), "model.init_from",
                         init.init_from +
                             " does not exist (a .safetensors file or export folder, "
                             "a nanoGPT ckpt.pt, or an lmrun run or checkpoint folder)");
      }
    }
  }
  if (const toml::node* node = doc_.root.get("objective"))
    experiment.objective = plugin_section(node, Kind::kObjective, "objective");
  if (const toml::node* node = doc_.root.get("scheduler"))
    experiment.scheduler = plugin_section(node, Kind::kScheduler, "scheduler");
  experiment.callbacks = plugin_list(doc_.root.get("callbacks"), Kind::kCallback, "callbacks");
  experiment.metrics = plugin_list(doc_.root.get("metrics"), Kind::kMetric, "metrics");

  diagnostics_.throw_if_any();
  experiment.plugin_dirs = plugin_dirs_of(doc_);
  experiment.notes = std::move(notes_);
  return experiment;
}

}  // namespace

std::vector<fs::path> plugin_dirs_of(const TomlDocument& doc) {
  std::vector<fs::path> dirs;
  const toml::table* plugins = doc.root.get_as<toml::table>("plugins");
  const toml::node* paths = plugins ? plugins->get("paths") : nullptr;
  if (paths == nullptr) return dirs;
  Diagnostics diagnostics;
  const toml::array* array = paths->as_array();
  if (array == nullptr) {
    diagnostics.add(location_of(*paths), "plugins.paths", "expected a list of folder names");
  } else {
    for (const toml::node& item : *array) {
      if (!item.is_string()) {
        diagnostics.add(location_of(item), "plugins.paths",
                        "expected a folder name (string), got " + describe_node(item));
        continue;
      }
      // Relative to the file that names it; a --set value is relative to the working directory.
      const auto& source = item.source().path;
      const fs::path base = source && source->rfind('/', 0) == 0 ? fs::path(*source).parent_path()
                                                                 : fs::current_path();
      dirs.push_back((base / item.as_string()->get()).lexically_normal());
    }
  }
  diagnostics.throw_if_any();
  return dirs;
}

Experiment resolve_experiment(const TomlDocument& doc, const PluginRegistry& registry,
                              const std::vector<std::string>& load_failures,
                              const ResolveOptions& options) {
  return Validator(doc, registry, load_failures, options).run();
}

std::vector<std::pair<Kind, std::string>> plugin_overrides_of(const TomlDocument& doc) {
  std::vector<std::pair<Kind, std::string>> out;
  const toml::table* plugins = doc.root.get_as<toml::table>("plugins");
  const toml::node* list = plugins ? plugins->get("override") : nullptr;
  if (list == nullptr) return out;
  Diagnostics diagnostics;
  const toml::array* array = list->as_array();
  if (array == nullptr) {
    diagnostics.add(location_of(*list), "plugins.override",
                    "expected a list of KIND.NAME strings, e.g. [\"model.transformer\"]");
  } else {
    std::vector<std::string> kinds;
    for (Kind kind : kAllKinds) kinds.push_back(kind_name(kind));
    for (const toml::node& item : *array) {
      const std::string text = item.is_string() ? item.as_string()->get() : "";
      const auto dot = text.find('.');
      const auto kind = dot == std::string::npos ? std::nullopt : parse_kind(text.substr(0, dot));
      if (!kind || dot + 1 >= text.size()) {
        diagnostics.add(
            location_of(item), "plugins.override",
            "expected KIND.NAME (a kind of: " + join(kinds) + "), got " + describe_node(item));
        continue;
      }
      out.emplace_back(*kind, text.substr(dot + 1));
    }
  }
  diagnostics.throw_if_any();
  return out;
}

PluginSpec default_plugin_section(const std::string& key, Kind kind, const std::string& type,
                                  const PluginRegistry& registry) {
  TomlDocument doc;
  toml::table section;
  section.insert("type", type);
  doc.root.insert(key, std::move(section));
  return Validator(doc, registry, {}).section(key, kind);
}

PluginSpec resolve_plugin_section(const TomlDocument& doc, const std::string& key, Kind kind,
                                  const PluginRegistry& registry,
                                  const std::vector<std::string>& load_failures) {
  return Validator(doc, registry, load_failures).section(key, kind);
}

}  // namespace lmrun::host
