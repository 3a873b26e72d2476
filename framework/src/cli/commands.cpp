// lmrun's subcommands: run, check, plugins, describe. Thin layers over registry and config.
#include "cli/commands.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "cli/line_editor.h"
#include "cli/loaded_registry.h"
#include "cli/repl.h"
#include "cli/run_dir.h"
#include "cli/run_folder.h"
#include "config/emit.h"
#include "config/experiment.h"
#include "config/toml_document.h"
#include "generate/generate.h"
#include "lmrun/util/suggest.h"
#include "lmrun/util/utf8.h"
#include "lmrun/version.h"
#include "registry/plugin_loader.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/interrupt.h"
#include "train/pipeline.h"
#include "train/plan.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/json.h"

namespace fs = std::filesystem;
namespace pt = boost::property_tree;

namespace lmrun::host {
namespace {

// ---------------------------------------------------------------------------------------------
// The plugin path: the build's or install's folder, LMRUN_PLUGIN_PATH, [plugins] paths,
// --plugin-dir, in that order.

void warn(const std::string& message) { std::cerr << "lmrun: warning: " << message << "\n"; }

}  // namespace

std::vector<std::string> LoadedRegistry::failure_messages() const {
  std::vector<std::string> out;
  for (const auto& failure : failures) out.push_back(failure.message);
  return out;
}

std::unique_ptr<LoadedRegistry> load_registry(const CommonArgs& common,
                                              const std::vector<fs::path>& experiment_dirs,
                                              bool missing_ok) {
  auto result = std::make_unique<LoadedRegistry>();
  PluginLoader loader(result->registry);
  auto record = [&](const fs::path& dir) {
    const fs::path absolute = fs::absolute(dir).lexically_normal();
    if (std::find(result->dirs.begin(), result->dirs.end(), absolute) == result->dirs.end())
      result->dirs.push_back(absolute);
  };
  const fs::path builtin = builtin_plugin_dir();
  std::error_code ec;
  if (!builtin.empty() && fs::is_directory(builtin, ec)) {
    loader.load_directory(builtin);
  } else {
    warn("no built-in plugin folder at " + builtin.string() +
         "; only LMRUN_PLUGIN_PATH and --plugin-dir are searched");
  }
  for (const auto& dir : env_plugin_dirs()) {
    if (fs::is_directory(dir, ec)) {
      loader.load_directory(dir);
      record(dir);
    } else {
      warn("LMRUN_PLUGIN_PATH names " + dir.string() + ", which is not a folder");
    }
  }
  for (const auto& dir : experiment_dirs) {
    if (missing_ok && !fs::is_directory(dir, ec)) {
      warn("the run loaded plugins from " + dir.string() + ", which is no longer a folder");
      continue;
    }
    try {
      loader.load_directory(dir);
      record(dir);
    } catch (const Error& e) {
      throw e.with_context("[plugins] paths");
    }
  }
  for (const auto& dir : common.plugin_dirs) {
    try {
      loader.load_directory(dir);
      record(dir);
    } catch (const Error& e) {
      throw e.with_context("--plugin-dir");
    }
  }
  result->loaded = loader.loaded();
  result->failures = loader.failures();
  // A file that crashed or hung while loading is skipped; whatever the command, say so.
  for (const auto& failure : result->failures) {
    if (failure.crashed) warn(failure.message);
  }
  if (common.verbose) {
    for (const auto& plugin : result->loaded) {
      std::cerr << "lmrun: loaded plugin " << plugin.name << " " << plugin.version << " from "
                << plugin.file.string() << "\n";
    }
  }
  return result;
}

void apply_overrides(const TomlDocument& doc, LoadedRegistry& plugins) {
  for (const auto& [kind, name] : plugin_overrides_of(doc)) {
    plugins.overrides.push_back(plugins.registry.override_with_latest(kind, name));
  }
}

void warn_conflicts(const LoadedRegistry& plugins) {
  for (const Conflict& conflict : plugins.registry.conflicts()) {
    warn(plugins.registry.conflict_message(conflict) +
         "; an experiment that uses it is refused until one file is removed, or it is settled "
         "with [plugins] override");
  }
}

Resolved resolve(const CommonArgs& common, const ExperimentArgs& args,
                 const std::vector<Kind>& needed, bool from_run_folder) {
  TomlDocument doc = load_document(args.file, args.overrides);
  Resolved resolved;
  resolved.plugins = load_registry(common, plugin_dirs_of(doc), from_run_folder);
  apply_overrides(doc, *resolved.plugins);
  resolved.experiment = resolve_experiment(doc, resolved.plugins->registry,
                                           resolved.plugins->failure_messages(), {needed});
  for (const std::string& note : resolved.experiment.notes)
    std::cerr << "lmrun: note: " << note << "\n";
  warn_conflicts(*resolved.plugins);
  // The folders the plugins came from (LMRUN_PLUGIN_PATH and --plugin-dir too), for the run's
  // config.toml.
  resolved.experiment.plugin_dirs = resolved.plugins->dirs;
  return resolved;
}

namespace {

std::string one_line(const PluginSpec& spec, const PluginRegistry& registry) {
  std::string out = spec.type;
  const Registration* registration = registry.find(spec.kind, spec.type);
  if (registration == nullptr) return out;
  std::string params;
  for (const auto& p : registration->params) {
    if (spec.params.contains(p.name))
      params += (params.empty() ? "" : ", ") + p.name + "=" + format_value(spec.params.at(p.name));
  }
  return params.empty() ? out : out + " (" + params + ")";
}

}  // namespace

// -----------------------------------------------------------------------------------------------

int exit_code_of(const Error& error) {
  if (dynamic_cast<const UsageError*>(&error) != nullptr) return kExitUsage;
  const auto* config = dynamic_cast<const ConfigError*>(&error);
  if (config == nullptr || config->problems().empty()) return kExitError;
  for (const Problem& problem : config->problems()) {
    // "--set KEY=VALUE", "--tokenizer NAME": an option's; anything else is the file's own.
    if (problem.location.rfind("--", 0) != 0) return kExitError;
  }
  return kExitUsage;
}

int command_check(const CommonArgs& common, const ExperimentArgs& args) {
  Resolved resolved = resolve(common, args);
  check_plan(resolved.experiment, resolved.plugins->registry);
  std::cout << resolved_toml(resolved.experiment, resolved.plugins->registry);
  std::cerr << "lmrun: " << args.file.string() << " is valid\n";
  return kExitOk;
}

namespace {

// `e`: the experiment as the run uses it (its objective filled in).
CheckpointProvenance provenance_of(const Resolved& resolved, const Experiment& e,
                                   const std::string& config_toml) {
  CheckpointProvenance provenance;
  provenance.config_toml = config_toml;
  provenance.config_hash = hash_text(config_toml);
  std::vector<const PluginSpec*> specs = {&e.data, &e.tokenizer, &e.model, &e.optimizer};
  if (e.objective) specs.push_back(&*e.objective);
  if (e.scheduler) specs.push_back(&*e.scheduler);
  for (const auto& spec : e.callbacks) specs.push_back(&spec);
  for (const auto& spec : e.metrics) specs.push_back(&spec);
  for (const auto& spec : e.samplers) specs.push_back(&spec);
  for (const PluginSpec* spec : specs) {
    const RegistryEntry* entry = resolved.plugins->registry.find_entry(spec->kind, spec->type);
    provenance.plugins.push_back(
        std::string(kind_name(spec->kind)) + " " + spec->type + " (" +
        (entry ? entry->origin.plugin_name + " " + entry->origin.plugin_version : "?") + ")");
  }
  for (const auto& applied : resolved.plugins->overrides) {
    provenance.overrides.push_back(applied.key + " from " + applied.by.describe() + ", replacing " +
                                   applied.replaced.describe());
  }
  return provenance;
}

std::string thousands(std::int64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Draws [generate] num_samples samples, streaming them to stdout; returns them joined.
// `system`: the system message they are conditioned on, or undefined.
std::string draw_samples(Pipeline& p, const GenerateOptions& g, std::int64_t experiment_seed,
                         const Conditioning& system) {
  std::string all;
  for (std::int64_t i = 0; i < g.num_samples; ++i) {
    TextRequest request;
    request.prompt = g.prompt;
    request.max_new_tokens = g.max_new_tokens;
    request.seed = static_cast<std::uint64_t>((g.seed >= 0 ? g.seed : experiment_seed) + i);
    request.stop = g.stop;
    request.stop_tokens = g.stop_tokens;
    request.beam_width = g.beam_width;
    request.length_penalty = g.length_penalty;
    request.context = system;
    std::cout << "---- sample " << i + 1 << "/" << g.num_samples << " (seed " << request.seed
              << ")\n"
              << g.prompt << std::flush;
    const TextResult result =
        generate_text(p.scoring_model(), *p.tokenizer, p.samplers, request,
                      [](const std::string& piece) { std::cout << piece << std::flush; });
    std::cout << "\n";
    if (result.stop_reason != "max_new_tokens") std::cerr << "(" << result.stop_reason << ")\n";
    all += g.prompt + result.text + "\n";
  }
  return all;
}

// What the dataset keeps of its data (arithmetic: its problems), for reproducibility, in
// run_dir/data: written to a hidden folder first and renamed into place when it holds anything. A
// resumed run's data is the same, and is written again. A data/ folder in a folder that is not
// lmrun's is the user's: it is left alone, and the dataset's data is not saved.
void save_dataset(const Dataset& data, const fs::path& run_dir, bool run_folder,
                  std::ostream& out) {
  std::error_code ec;
  const fs::path final_dir = run_dir / "data", partial = run_dir / ".data.partial";
  fs::remove_all(partial, ec);
  fs::create_directories(partial);
  data.save(partial);
  if (fs::is_empty(partial, ec)) {
    fs::remove(partial, ec);
    return;
  }
  if (fs::exists(final_dir, ec) && !run_folder) {
    fs::remove_all(partial, ec);
    out << "  note       " << final_dir.string()
        << " is not lmrun's: the dataset's data is not saved there\n";
    return;
  }
  fs::remove_all(final_dir, ec);
  fs::rename(partial, final_dir, ec);
  if (ec) throw Error("cannot write " + final_dir.string() + ": " + ec.message());
}

}  // namespace

int command_run(const CommonArgs& common, const ExperimentArgs& args) {
  Resolved resolved = resolve(common, args);
  const Experiment& e = resolved.experiment;
  const PluginRegistry& registry = resolved.plugins->registry;
  if (const FoldParams folds = fold_params(e, registry); !args.single_run && folds.count >= 2)
    return command_cross_validate(common, args, e, folds);
  const fs::path& run_dir = e.experiment.out_dir;

  // Data-parallel: every rank runs this; rank 0 alone writes the run folder and prints.
  const WorldInfo world = world_from_environment();
  const bool writer = world.is_writer();
  std::ostream silent(nullptr);
  std::ostream& out = writer ? std::cout : silent;
  // The other ranks' plugins and callbacks see a folder of their own that is never created, so
  // that nothing they do (a checkpoint callback evicting old checkpoints) touches rank 0's.
  const fs::path rank_dir =
      writer ? run_dir
             : fs::temp_directory_path() /
                   ("lmrun-rank-" + std::to_string(world.rank) + "-" + std::to_string(::getpid()));

  std::error_code ec;
  // The folder is made (atomically: of two runs started together on one new folder, one makes
  // it) and locked before anything is read or decided about it; while this process trains it, no
  // other lmrun starts, resumes or --forces it. A folder whose lock another process took between
  // this one's mkdir and flock is that process's: it is left alone.
  bool created = false;
  std::optional<RunLock> lock;
  if (writer) {
    created = create_run_folder(run_dir);
    lock.emplace(run_dir);
  }
  // Anything refused from here on, before the first step, leaves no folder this run made.
  struct RemoveUnlessKept {
    const fs::path& dir;
    bool remove;
    ~RemoveUnlessKept() {
      std::error_code ignored;
      if (remove) fs::remove_all(dir, ignored);
    }
  } made{run_dir, created};
  fs::path checkpoint;
  if (!args.resume.empty()) {
    checkpoint = find_checkpoint(args.resume);
    verify_checkpoint(checkpoint);
  }
  const fs::path checkpoint_run = checkpoint.empty() ? fs::path() : run_of_checkpoint(checkpoint);
  const bool resuming_here =
      writer && !created && !checkpoint_run.empty() && fs::equivalent(checkpoint_run, run_dir, ec);
  if (writer && !created) {
    if (checkpoint.empty() && !args.force) {
      throw Error("run folder " + run_dir.string() + " already exists",
                  "pass --force to start the run over in it, --resume " + run_dir.string() +
                      " to continue it, or choose another with --set experiment.out_dir=...");
    }
    if (!checkpoint.empty() && !resuming_here && !args.force) {
      throw Error("--resume " + args.resume.string() + " is a checkpoint of " +
                      (checkpoint_run.empty() ? std::string("no run folder")
                                              : "run " + checkpoint_run.string()) +
                      ", but experiment.out_dir " + run_dir.string() +
                      " is another run's folder, which the resume would overwrite",
                  "continue the run in its own folder (--set experiment.out_dir=" +
                      (checkpoint_run.empty() ? std::string("...") : checkpoint_run.string()) +
                      "), or in a new folder, or pass --force to replace " + run_dir.string());
    }
    if (const int removed = remove_interrupted_writes(run_dir); removed > 0) {
      out << "lmrun: note: removed " << removed << " leftover(s) of interrupted writes in "
          << run_dir.string() << "\n";
    }
  }
  configure_runtime(e.train.threads);
  const auto build_start = std::chrono::steady_clock::now();
  Pipeline p = build_pipeline(
      e, registry,
      PipelineOptions{rank_dir, checkpoint.empty() ? fs::path() : checkpoint / "tokenizer", true});
  std::unique_ptr<DataParallel> data_parallel;
  if (world.distributed()) data_parallel = std::make_unique<DataParallel>(world, p.device);
  // A folder lmrun made, or one holding lmrun's config.toml: only there may lmrun clear things.
  const bool run_folder = created || fs::exists(run_dir / "config.toml", ec);
  if (writer && !created && !resuming_here && run_folder) {
    // --force starts an earlier run over: its records would otherwise mix with this one's
    // (metrics are appended) or outlive it (checkpoints that --resume would pick). Only a run
    // folder (one with lmrun's config.toml) is cleared, and only of what a run writes.
    for (const char* name : {"metrics.jsonl", "metrics.csv", "summary.json", "samples.txt",
                             "checkpoints", "tokenizer", "data"}) {
      fs::remove_all(run_dir / name, ec);
    }
  }
  // The objective as the run uses it: the dataset's default made explicit, so the run folder
  // names it (generate and eval read it from there).
  Experiment written = e;
  written.objective = p.objective_spec;
  const std::string config_toml = resolved_toml(written, registry);
  if (!checkpoint.empty()) {
    // A resume continues the experiment the checkpoint was made by: another batch size, seed or
    // learning rate would give a run no single experiment describes.
    const std::string saved = read_file(checkpoint / "config.toml");
    const std::vector<std::string> changes = experiment_changes(saved, config_toml);
    if (!changes.empty() && !args.resume_changed) {
      std::string list;
      for (std::size_t i = 0; i < changes.size() && i < 12; ++i) list += "\n    " + changes[i];
      if (changes.size() > 12)
        list += "\n    ... and " + std::to_string(changes.size() - 12) + " more";
      throw Error("the experiment differs from the one checkpoint " + checkpoint.string() +
                      " was made by:" + list,
                  "resume with the same experiment (only train.max_steps, max_time, threads, "
                  "log_interval and [generate] may change), or pass --resume-changed to continue "
                  "with these changes");
    }
    if (!changes.empty()) {
      out << "lmrun: note: resuming with " << changes.size() << " change(s) (--resume-changed):";
      for (const auto& change : changes) out << "\n    " << change;
      out << "\n";
    }
    if (resuming_here) {
      const std::string finished = finished_run(run_dir, read_checkpoint_step(checkpoint), saved,
                                                e.train.max_steps, e.train.max_time);
      if (!finished.empty()) {
        out << "lmrun: " << run_dir.string() << ": " << finished
            << "; nothing to do, nothing changed (raise train.max_steps to train further)\n";
        return kExitOk;
      }
    }
  }
  if (writer) {
    write_file_atomic(run_dir / "config.toml", config_toml);
    save_dataset(*p.data, run_dir, run_folder, out);
  }
  out << "lmrun " << kVersion << ": " << e.experiment.name << " -> " << run_dir.string() << "\n"
      << "  data       " << one_line(e.data, registry) << ": "
      << thousands(p.data->num_examples(Split::kTrain)) << " train windows, vocabulary "
      << p.tokenizer->vocab_size() << "\n"
      << "  model      " << one_line(e.model, registry) << ": " << thousands(p.parameter_count)
      << " parameters\n";
  {
    std::istringstream summary(p.model->summary());
    for (std::string line; std::getline(summary, line);) out << "             " << line << "\n";
  }
  for (const std::string& line : p.init_lines) out << "             " << line << "\n";
  if (!p.frozen.frozen.empty()) {
    out << "             frozen: " << p.frozen.frozen.size() << " tensors, "
        << thousands(p.frozen.frozen_parameters) << " parameters (model.freeze)\n";
  }
  out << "  objective  " << one_line(p.objective_spec, registry) << "\n";
  if (p.data->num_examples(Split::kTrain) > 0 &&
      p.data->slice(Split::kTrain, 0, 1).context.defined()) {
    out << "  context    the data's examples carry a system message; "
        << (p.model->uses_context() ? "the model reads it\n"
                                    : "lmrun: note: model '" + e.model.type +
                                          "' ignores it (it sees only the turns)\n");
  }
  out << "  optimizer  " << one_line(e.optimizer, registry) << "\n";
  if (e.scheduler) out << "  scheduler  " << one_line(*e.scheduler, registry) << "\n";
  for (const auto& callback : e.callbacks)
    out << "  callback   " << one_line(callback, registry) << "\n";
  for (const auto& metric : e.metrics) out << "  metric     " << one_line(metric, registry) << "\n";
  for (const auto& applied : resolved.plugins->overrides) {
    out << "  override   " << applied.key << " from " << applied.by.describe() << ", replacing "
        << applied.replaced.describe() << "\n";
  }
  out << "  device     " << p.device.str() << ", " << at::get_num_threads()
      << " threads; set up in "
      << static_cast<int>(std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - build_start)
                              .count())
      << " ms\n"
      << std::flush;

  if (data_parallel) {
    out << "  world      " << world.world_size << " ranks (c10d Gloo at " << world.master_addr
        << ":" << world.master_port << "), batch " << e.train.batch_size << " per rank, "
        << e.train.batch_size * world.world_size << " in all\n"
        << std::flush;
  }
  Trainer trainer(e, p, rank_dir, provenance_of(resolved, written, config_toml), out,
                  data_parallel.get());
  if (!checkpoint.empty()) trainer.resume(checkpoint);
  TrainResult result;
  {
    InterruptGuard interrupts;
    try {
      result = trainer.run();
    } catch (...) {
      // Refused before any step (a callback's check at train start): leave no half-made folder.
      made.remove = created && !trainer.trained();
      throw;
    }
  }
  made.remove = false;

  if (data_parallel) data_parallel->barrier();
  if (!writer) return result.diverged ? kExitError : kExitOk;

  const fs::path tokenizer_dir = run_dir / "tokenizer";
  fs::remove_all(tokenizer_dir, ec);
  fs::create_directories(tokenizer_dir);
  p.tokenizer->save(tokenizer_dir);

  if (result.interrupted_by != 0) {
    out << "interrupted by " << interrupt_name(result.interrupted_by) << " at step " << result.steps
        << ": checkpoint " << (run_dir / "checkpoints" / "last").string()
        << "; continue with --resume " << run_dir.string() << "\n";
    return 128 + result.interrupted_by;
  }
  if (result.diverged) {
    throw Error("training diverged: " + result.stop_reason +
                    "; summary.json and the checkpoints are in " + run_dir.string(),
                "lower optimizer.lr, raise scheduler.warmup_steps, or set train.grad_clip");
  }
  if (e.generate)
    write_file_atomic(run_dir / "samples.txt", draw_samples(p, *e.generate, e.experiment.seed, {}));
  out << "done: " << result.steps << " steps in " << static_cast<int>(result.wall_seconds) << " s";
  for (const auto& [name, value] : result.final_metrics) out << ", " << name << " " << value;
  out << "\nrun folder: " << run_dir.string() << "\n";
  return kExitOk;
}

RunDir open_run_dir(const CommonArgs& common, const RunDirArgs& args,
                    const std::vector<Kind>& needed) {
  const fs::path config = args.run_dir / "config.toml";
  const std::string problem = regular_file_problem(config);
  if (problem == "does not exist") {
    throw Error(args.run_dir.string() + " is not a run folder: it has no config.toml",
                "name the out_dir of a run");
  }
  if (!problem.empty()) throw Error("run folder's " + config.string() + " " + problem);
  ExperimentArgs experiment;
  experiment.file = config;
  experiment.overrides = args.overrides;
  RunDir run;
  run.resolved = resolve(common, experiment, needed, /*from_run_folder=*/true);
  run.checkpoint = args.checkpoint.empty() ? find_checkpoint(args.run_dir)
                                           : args.run_dir / "checkpoints" / args.checkpoint;
  if (!fs::is_directory(run.checkpoint)) {
    throw Error("no checkpoint '" + args.checkpoint + "' in " + args.run_dir.string(),
                "see the folder names in " + (args.run_dir / "checkpoints").string());
  }
  return run;
}

namespace {

// generate --prompts: a text file, one prompt a line (blank lines skipped; CR of CRLF dropped),
// or a .jsonl file of {"prompt": "..."} objects, whose strings may hold newlines. "-": stdin.
std::vector<std::string> read_prompts(const fs::path& file) {
  const bool jsonl = file.extension() == ".jsonl";
  std::vector<std::string> prompts;
  std::int64_t number = 0;
  for (const std::string& line : lines_of(read_input(file, "--prompts"))) {
    ++number;
    if (line.empty()) continue;
    if (!jsonl) {
      prompts.push_back(line);
      continue;
    }
    try {
      pt::ptree object;
      std::istringstream text(line);
      pt::read_json(text, object);
      prompts.push_back(object.get<std::string>("prompt"));
    } catch (const pt::ptree_error&) {
      throw Error(file.string() + ":" + std::to_string(number) +
                      ": expected a JSON object with a \"prompt\" string",
                  "a .jsonl prompts file holds one {\"prompt\": \"...\"} a line; any other "
                  "extension is read as one prompt a line");
    }
  }
  if (prompts.empty()) throw Error("--prompts " + file.string() + " holds no prompts");
  return prompts;
}

}  // namespace

int command_generate(const CommonArgs& common, const RunDirArgs& args) {
  RunDir run = open_run_dir(common, args, kGenerateKinds);
  const Experiment& e = run.resolved.experiment;
  GenerateOptions g = e.generate.value_or(GenerateOptions{});
  if (args.prompt) g.prompt = *args.prompt;
  if (args.max_new_tokens) g.max_new_tokens = *args.max_new_tokens;
  if (args.num_samples) g.num_samples = *args.num_samples;
  if (args.seed) g.seed = *args.seed;
  if (g.max_new_tokens < 0 || g.max_new_tokens > kMaxNewTokens || g.num_samples < 1) {
    throw UsageError("--max-new-tokens must be in [0, " + std::to_string(kMaxNewTokens) +
                     "] and --num-samples >= 1");
  }
  if (!args.prompts.empty() && args.prompt)
    throw UsageError("give --prompt or --prompts, not both");
  const std::vector<std::string> prompts =
      args.prompts.empty() ? std::vector<std::string>{} : read_prompts(args.prompts);
  if (!args.output.empty()) check_output_file(args.output, "--output");
  configure_runtime(e.train.threads);
  Pipeline p = build_inference_pipeline(e, run.resolved.plugins->registry, run.checkpoint);
  apply_quantize(p, args);
  if (!args.chat) std::cerr << "lmrun: generating from " << run.checkpoint.string() << "\n";
  Conditioning system;
  if (args.system && !args.chat) {
    system = system_context(p, *args.system);
    if (!p.model->uses_context()) {
      std::cerr << "lmrun: note: model '" << e.model.type
                << "' ignores system messages; --system changes nothing\n";
    }
  }
  if (args.interactive || args.chat) {
    if (!args.prompts.empty()) throw UsageError("give --prompts or --interactive, not both");
    ReplSettings settings;
    settings.checkpoint = run.checkpoint.string();
    settings.samplers = e.samplers;
    settings.seed = g.seed >= 0 ? g.seed : e.experiment.seed;
    settings.max_new_tokens = g.max_new_tokens;
    settings.stop = g.stop;
    settings.stop_tokens = g.stop_tokens;
    settings.beam_width = g.beam_width;
    settings.length_penalty = g.length_penalty;
    settings.chat = args.chat;
    settings.system = args.system.value_or("");
    if (args.chat) {
      if (!p.chat_format.defined()) {
        throw Error(args.run_dir.string() +
                        " was not trained on conversations: its data renders "
                        "no chat turns",
                    "lmrun chat takes a run on the conversations dataset; lmrun generate "
                    "--interactive continues any text");
      }
      if (!args.prompts.empty() || args.prompt)
        throw UsageError("lmrun chat reads its turns from the input, not --prompt");
    }
    // A terminal gets line editing and the history of earlier sessions; a pipe is read as is.
    if (!::isatty(STDIN_FILENO))
      return generate_repl(p, settings, run.resolved.plugins->registry, std::cin, std::cout);
    LineEditor editor(LineEditor::default_history_file());
    const ReadLine edited = [&](const std::string& prompt, std::string& line) {
      std::cout << std::flush;
      return editor.read(prompt, line);
    };
    return generate_repl(p, settings, run.resolved.plugins->registry, edited, std::cout);
  }
  if (args.prompts.empty()) {
    draw_samples(p, g, e.experiment.seed, system);
    return kExitOk;
  }
  // One JSON line per prompt and sample, the seeds as `--prompt` would use them, so that a line
  // can be reproduced alone.
  std::string out;
  std::int64_t tokens = 0;
  double seconds = 0;
  for (std::size_t k = 0; k < prompts.size(); ++k) {
    for (std::int64_t i = 0; i < g.num_samples; ++i) {
      TextRequest request;
      request.prompt = prompts[k];
      request.max_new_tokens = g.max_new_tokens;
      request.seed = static_cast<std::uint64_t>((g.seed >= 0 ? g.seed : e.experiment.seed) + i);
      request.stop = g.stop;
      request.stop_tokens = g.stop_tokens;
      request.beam_width = g.beam_width;
      request.length_penalty = g.length_penalty;
      request.context = system;
      const TextResult result = generate_text(p.scoring_model(), *p.tokenizer, p.samplers, request);
      JsonObject line;
      line.add("prompt", utf8::replace_invalid(prompts[k]))
          .add("sample", i + 1)
          .add("seed", static_cast<std::int64_t>(request.seed))
          .add("text", utf8::replace_invalid(result.text))
          .add("tokens", result.tokens)
          .add("stop_reason", result.stop_reason);
      out += line.str() + "\n";
      tokens += result.tokens;
      if (result.tokens_per_second > 0)
        seconds += static_cast<double>(result.tokens) / result.tokens_per_second;
    }
    std::cerr << "\rlmrun: " << k + 1 << "/" << prompts.size() << " prompts" << std::flush;
  }
  if (args.output.empty()) {
    std::cout << out << std::flush;
  } else {
    write_file_atomic(args.output, out);
  }
  std::cerr << "\rlmrun: " << prompts.size() << " prompts x " << g.num_samples << " samples, "
            << tokens << " tokens"
            << (seconds > 0 ? ", " + std::to_string(static_cast<std::int64_t>(tokens / seconds)) +
                                  " tokens/s"
                            : std::string())
            << (args.output.empty() ? "" : " -> " + args.output.string()) << "\n";
  return kExitOk;
}

int command_plugins(const CommonArgs& common) {
  auto plugins = load_registry(common, {});
  for (Kind kind : kAllKinds) {
    std::cout << kind_name(kind) << "\n";
    const auto entries = plugins->registry.entries(kind);
    if (entries.empty()) std::cout << "  (none)\n";
    for (const RegistryEntry* entry : entries) {
      char line[512];
      std::snprintf(line, sizeof line, "  %-16s %-24s %s", entry->registration.name.c_str(),
                    (entry->origin.plugin_name + " " + entry->origin.plugin_version).c_str(),
                    entry->origin.file.string().c_str());
      std::cout << line << "\n";
    }
  }
  for (const auto& failure : plugins->failures) {
    if (!failure.crashed) warn(failure.message);  // load_registry warned of the crashes
  }
  warn_conflicts(*plugins);
  return kExitOk;
}

namespace {

void print_params(const std::vector<ParamSpec>& specs) {
  if (specs.empty()) {
    std::cout << "  (no parameters)\n";
    return;
  }
  std::size_t width = 4;
  for (const auto& spec : specs) width = std::max(width, spec.name.size());
  for (const auto& spec : specs) {
    std::string line = "  " + spec.name + std::string(width - spec.name.size() + 2, ' ');
    std::string type = type_name(spec.type);
    line += type + std::string(type.size() < 12 ? 12 - type.size() : 1, ' ');
    line += spec.default_value ? "= " + format_value(*spec.default_value) : "(required)";
    std::cout << line << "\n      " << spec.doc;
    const std::string constraint = spec.constraint();
    if (!constraint.empty()) std::cout << " [" << constraint << "]";
    std::cout << "\n";
  }
}

}  // namespace

int command_describe(const CommonArgs& common, const std::string& name) {
  // Host sections first: `lmrun describe train`.
  const std::map<std::string, const std::vector<ParamSpec>*> host = {
      {"experiment", &experiment_schema().specs()},
      {"train", &train_schema().specs()},
      {"generate", &generate_schema().specs()},
      {"plugins", &plugins_schema().specs()}};
  if (auto it = host.find(name); it != host.end()) {
    std::cout << "[" << name << "] (lmrun " << kVersion << ")\n";
    print_params(*it->second);
    return kExitOk;
  }

  auto plugins = load_registry(common, {});
  std::string kind_word, plain = name;
  if (const auto dot = name.find('.'); dot != std::string::npos) {
    kind_word = name.substr(0, dot);
    plain = name.substr(dot + 1);
    if (!parse_kind(kind_word)) {
      std::vector<std::string> kinds;
      for (Kind k : kAllKinds) kinds.push_back(kind_name(k));
      throw Error("unknown plugin kind '" + kind_word + "'" + did_you_mean(kind_word, kinds) +
                  "; kinds: " + join(kinds));
    }
  }
  std::vector<const RegistryEntry*> matches;
  std::vector<std::string> all;
  for (Kind kind : kAllKinds) {
    for (const RegistryEntry* entry : plugins->registry.entries(kind)) {
      all.push_back(std::string(kind_name(kind)) + "." + entry->registration.name);
      if (entry->registration.name == plain &&
          (kind_word.empty() || kind_word == kind_name(kind))) {
        matches.push_back(entry);
      }
    }
  }
  if (matches.empty()) {
    std::vector<std::string> plain_names;
    for (const auto& full : all) plain_names.push_back(full.substr(full.find('.') + 1));
    std::string hint = did_you_mean(plain, plain_names);
    throw Error("no plugin named '" + name + "'" + hint,
                "`lmrun plugins` lists every registered name");
  }
  if (matches.size() > 1) {
    std::vector<std::string> options;
    for (const auto* entry : matches)
      options.push_back(std::string(kind_name(entry->registration.kind)) + "." + plain);
    throw Error("'" + name + "' names several plugins: " + join(options),
                "name one of them as KIND.NAME");
  }
  const RegistryEntry& entry = *matches.front();
  std::cout << kind_name(entry.registration.kind) << "." << entry.registration.name << ": "
            << entry.registration.doc << "\n  from " << entry.origin.describe() << "\n\n";
  print_params(entry.registration.params);
  return kExitOk;
}

}  // namespace lmrun::host
