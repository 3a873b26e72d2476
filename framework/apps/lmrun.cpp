// lmrun: the command line. Parses arguments, dispatches to a subcommand, prints any error once.
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "cli/commands.h"
#include "cli/launch.h"
#include "lmrun/error.h"
#include "lmrun/version.h"
#include "registry/guard.h"

namespace po = boost::program_options;
using namespace lmrun::host;

namespace {

constexpr const char* kUsage = R"(usage:
  lmrun FILE.toml [--set KEY=VALUE]... [--force]   run an experiment
  lmrun FILE.toml --resume RUN_DIR|CHECKPOINT      continue a run from its checkpoint (the same
                                                   experiment; --resume-changed to allow changes)
  lmrun --nproc N FILE.toml ...                    data-parallel on N local processes
  lmrun check FILE.toml [--set KEY=VALUE]...       validate it and print the resolved config
  lmrun sweep FILE.toml [--jobs N] [--shard I/N]   run a sweep's trials (--dry-run: list them)
  lmrun sweep --report SWEEP_DIR                   merge and print a sweep's results
  lmrun generate RUN_DIR [--prompt TEXT] ...       sample from a trained run
  lmrun generate RUN_DIR --prompts FILE [-o OUT]   one prompt a line -> JSONL of samples
  lmrun generate RUN_DIR --interactive             a REPL: text in, continuation out; /temp,
                                                   /top_k, /top_p, /seed, /max, /reset, /help
  lmrun chat RUN_DIR [--system TEXT]               talk to a run trained on conversations: a
                                                   line is a user's turn, the model answers;
                                                   /system changes the system message
  lmrun generate|eval|predict RUN_DIR --quantize int8   INT8 weights for the linear layers
  lmrun eval RUN_DIR [--split val|train|test]      every metric over a split (and the
                                                   confusion matrix of a classifier)
  lmrun predict RUN_DIR --text TEXT | --input FILE label texts with a classifier (JSONL)
  lmrun inspect RUN_DIR [--split val]              layers, memory, weight and activation
                                                   statistics of a trained model
  lmrun tokenize [RUN_DIR] [--text T | --input F]  text -> ids as JSON arrays, one per line
                                                   (--whole: the input as one text; --decode:
                                                   ids -> text); RUN_DIR's tokenizer, or
                                                   --tokenizer TYPE [--set tokenizer.K=V]...
                                                   [--fit FILE] (fit it on a text first)
  lmrun export RUN_DIR --format FORMAT [-o OUT]   the model for other tools, into a new
        [--layout lmrun|gpt2] [--force]            folder (default RUN_DIR/export/FORMAT):
        [--dtype fp32|bf16|fp16] [--prune F]       safetensors (Hugging Face GPT-2 names and
                                                   config.json when the model matches),
                                                   nanogpt (ckpt.pt), onnx (model, decode)
  lmrun plugins                                    list registered plugins and their files
  lmrun describe NAME | KIND.NAME | SECTION        a plugin's (or host section's) parameters

Plugins load from the build's or install's plugin folder, then LMRUN_PLUGIN_PATH (colon-
separated), then the experiment's [plugins] paths, then each --plugin-dir.
)";

// "/ro/run: Permission denied (cannot create directories)" from libstdc++'s "filesystem error:
// cannot create directories: Permission denied [/ro/run]".
std::string filesystem_message(const std::filesystem::filesystem_error& e) {
  std::string what = e.what();
  const std::string prefix = "filesystem error: ";
  if (what.rfind(prefix, 0) == 0) what.erase(0, prefix.size());
  what = what.substr(0, what.find(" ["));
  const std::size_t colon = what.rfind(": ");
  const std::string operation = colon == std::string::npos ? what : what.substr(0, colon);
  std::string out = e.path1().string();
  if (!e.path2().empty()) out += " and " + e.path2().string();
  out += ": " + e.code().message();
  // "cannot create directories" says what was tried; a bare function name ("status") does not.
  return operation.find(' ') == std::string::npos ? out : out + " (" + operation + ")";
}

int usage_error(const std::string& message) {
  std::cerr << "lmrun: error: " << message << "\n(see lmrun --help)\n";
  return kExitUsage;
}

int run(int argc, char** argv) {
  po::options_description options("options");
  options.add_options()("help,h", "show this help")("version", "print the version")(
      "set,s", po::value<std::vector<std::string>>()->composing(),
      "override a config key: KEY=VALUE")(
      "plugin-dir,p", po::value<std::vector<std::string>>()->composing(),
      "load plugins from this folder too")("force,f", "reuse an existing run folder")(
      "resume,r", po::value<std::string>(),
      "continue from a run folder's (or a checkpoint folder's) checkpoint")(
      "resume-changed", "resume even though the experiment differs from the checkpoint's")(
      "prompt", po::value<std::string>(), "generate: the text to continue")(
      "interactive", "generate: a REPL that keeps the model loaded (/help inside)")(
      "system", po::value<std::string>(),
      "generate, chat: the system message the model is conditioned on")(
      "prompts", po::value<std::string>(),
      "generate: a file of prompts, one a line (or JSONL {\"prompt\": ...}); - for stdin; "
      "writes JSONL")("max-new-tokens,n", po::value<std::int64_t>(), "generate: tokens per sample")(
      "num-samples", po::value<std::int64_t>(), "generate: samples to draw")(
      "seed", po::value<std::int64_t>(), "generate: sampling seed")(
      "checkpoint,c", po::value<std::string>(),
      "generate, eval, predict, inspect: checkpoint name (default: last, else the newest)")(
      "split", po::value<std::string>()->default_value("val"), "eval, inspect: train, val or test")(
      "text", po::value<std::vector<std::string>>()->composing(),
      "predict: a text to label (repeatable)")(
      "input,i", po::value<std::string>(),
      "predict, tokenize: a file of texts, one per line (- for stdin)")(
      "tokenizer", po::value<std::string>(), "tokenize: a tokenizer plugin, instead of RUN_DIR")(
      "fit", po::value<std::string>(), "tokenize: fit the --tokenizer on this file's text")(
      "whole", "tokenize: the whole input is one text")(
      "decode", "tokenize: ids in (a JSON array or spaced, one text a line), text out")(
      "output,o", po::value<std::string>(),
      "predict, generate --prompts, tokenize: write here instead of stdout; eval: a JSON "
      "report")("jobs,j", po::value<std::int64_t>()->default_value(1),
                "sweep: trials to run at once")(
      "shard", po::value<std::string>(),
      "sweep: run the trials whose index is I modulo N (I/N, e.g. a Slurm array's task)")(
      "dry-run", "sweep: validate every trial and list them, run nothing")(
      "report", po::value<std::string>(), "sweep: merge and print the results in SWEEP_DIR")(
      "format", po::value<std::string>(), "export: safetensors, nanogpt or onnx")(
      "layout", po::value<std::string>(),
      "export: the tensor names, lmrun (the model's own) or gpt2 (Hugging Face); default gpt2 "
      "when the model has that architecture")(
      "dtype", po::value<std::string>()->default_value("fp32"),
      "export: safetensors' floating-point type, fp32, bf16 or fp16")(
      "quantize", po::value<std::string>(),
      "generate, chat, eval, predict, export (onnx): quantized inference, int8 (the model's "
      "linear weights)")(
      "prune", po::value<double>(),
      "export: zero this fraction of each linear layer's weights by magnitude (e.g. 0.5)")(
      "prune-mode", po::value<std::string>()->default_value("unstructured"),
      "export --prune: unstructured (per layer) or rows (per output row)")(
      "verbose,v", "log each plugin file loaded")(
      "nproc", po::value<int>(),
      "run: train data-parallel on N local processes (as torchrun --nproc_per_node)");
  po::options_description hidden;
  hidden.add_options()("args", po::value<std::vector<std::string>>(), "command and its arguments");
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("args", -1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(e.what());
  }
  if (vm.count("help")) {
    std::cout << kUsage << "\n" << options;
    return kExitOk;
  }
  if (vm.count("version")) {
    std::cout << "lmrun " << lmrun::kVersion << " (plugin API " << lmrun::kApiVersionMajor << "."
              << lmrun::kApiVersionMinor << ")\n";
    return kExitOk;
  }

  std::vector<std::string> args =
      vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (args.empty()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  CommonArgs common;
  if (vm.count("plugin-dir")) {
    for (const auto& dir : vm["plugin-dir"].as<std::vector<std::string>>())
      common.plugin_dirs.emplace_back(dir);
  }
  common.verbose = vm.count("verbose") > 0;
  ExperimentArgs experiment;
  if (vm.count("set")) experiment.overrides = vm["set"].as<std::vector<std::string>>();
  experiment.force = vm.count("force") > 0;
  if (vm.count("resume")) experiment.resume = vm["resume"].as<std::string>();
  experiment.resume_changed = vm.count("resume-changed") > 0;
  RunDirArgs run_dir;
  run_dir.overrides = experiment.overrides;
  if (vm.count("checkpoint")) run_dir.checkpoint = vm["checkpoint"].as<std::string>();
  if (vm.count("prompt")) run_dir.prompt = vm["prompt"].as<std::string>();
  if (vm.count("prompts")) run_dir.prompts = vm["prompts"].as<std::string>();
  run_dir.interactive = vm.count("interactive") > 0;
  if (vm.count("system")) run_dir.system = vm["system"].as<std::string>();
  if (vm.count("max-new-tokens")) run_dir.max_new_tokens = vm["max-new-tokens"].as<std::int64_t>();
  if (vm.count("num-samples")) run_dir.num_samples = vm["num-samples"].as<std::int64_t>();
  if (vm.count("seed")) run_dir.seed = vm["seed"].as<std::int64_t>();
  run_dir.split = vm["split"].as<std::string>();
  run_dir.split_given = !vm["split"].defaulted();
  if (vm.count("text")) run_dir.texts = vm["text"].as<std::vector<std::string>>();
  if (vm.count("input")) run_dir.input = vm["input"].as<std::string>();
  if (vm.count("output")) run_dir.output = vm["output"].as<std::string>();
  if (vm.count("quantize")) run_dir.quantize = vm["quantize"].as<std::string>();

  const std::string& command = args[0];
  if (vm.count("nproc")) {
    const bool is_run =
        args.size() == 1 && command.size() > 5 && command.substr(command.size() - 5) == ".toml";
    if (!is_run) return usage_error("--nproc applies to a run: lmrun --nproc N FILE.toml");
    // The same command line in each worker, without --nproc.
    std::vector<std::string> worker_args;
    for (int i = 0; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--nproc") {
        ++i;
        continue;
      }
      if (a.rfind("--nproc=", 0) == 0) continue;
      worker_args.push_back(a);
    }
    worker_args[0] = std::filesystem::read_symlink("/proc/self/exe").string();
    return launch_local_workers(vm["nproc"].as<int>(), worker_args);
  }
  if (vm.count("quantize") && command != "generate" && command != "chat" && command != "eval" &&
      command != "predict" && command != "export") {
    return usage_error("--quantize applies to generate, chat, eval, predict and export");
  }
  auto expect_args = [&](std::size_t n, const char* shape) {
    if (args.size() != n) throw po::error(std::string("expected: lmrun ") + shape);
  };
  try {
    if (command == "check") {
      expect_args(2, "check FILE.toml");
      experiment.file = args[1];
      return command_check(common, experiment);
    }
    if (command == "sweep") {
      SweepArgs sweep;
      sweep.experiment = experiment;
      sweep.jobs = vm["jobs"].as<std::int64_t>();
      if (vm.count("shard")) sweep.shard = vm["shard"].as<std::string>();
      sweep.dry_run = vm.count("dry-run") > 0;
      if (vm.count("report")) {
        expect_args(1, "sweep --report SWEEP_DIR");
        sweep.report = vm["report"].as<std::string>();
      } else {
        expect_args(2, "sweep FILE.toml");
        sweep.experiment.file = args[1];
      }
      return command_sweep(common, sweep);
    }
    if (command == "generate" || command == "chat" || command == "eval" || command == "predict" ||
        command == "inspect") {
      expect_args(2, (command + " RUN_DIR").c_str());
      run_dir.run_dir = args[1];
      run_dir.chat = command == "chat";
      if (command == "generate" || command == "chat") return command_generate(common, run_dir);
      if (command == "inspect") return command_inspect(common, run_dir);
      return command == "eval" ? command_eval(common, run_dir) : command_predict(common, run_dir);
    }
    if (command == "tokenize") {
      if (args.size() > 2) throw po::error("expected: lmrun tokenize [RUN_DIR]");
      TokenizeArgs tokenize;
      if (args.size() == 2) tokenize.run_dir = args[1];
      tokenize.checkpoint = run_dir.checkpoint;
      tokenize.overrides = experiment.overrides;
      if (vm.count("tokenizer")) tokenize.tokenizer = vm["tokenizer"].as<std::string>();
      if (vm.count("fit")) tokenize.fit = vm["fit"].as<std::string>();
      tokenize.texts = run_dir.texts;
      tokenize.input = run_dir.input;
      tokenize.output = run_dir.output;
      tokenize.whole = vm.count("whole") > 0;
      tokenize.decode = vm.count("decode") > 0;
      return command_tokenize(common, tokenize);
    }
    if (command == "export") {
      expect_args(2, "export RUN_DIR --format FORMAT");
      ExportArgs export_args;
      export_args.run_dir = args[1];
      export_args.checkpoint = run_dir.checkpoint;
      if (vm.count("format")) export_args.format = vm["format"].as<std::string>();
      if (vm.count("layout")) export_args.layout = vm["layout"].as<std::string>();
      export_args.dtype = vm["dtype"].as<std::string>();
      export_args.out = run_dir.output;
      export_args.force = experiment.force;
      if (vm.count("prune")) export_args.prune = vm["prune"].as<double>();
      export_args.prune_mode = vm["prune-mode"].as<std::string>();
      export_args.quantize = run_dir.quantize;
      return command_export(common, export_args);
    }
    if (command == "plugins") {
      expect_args(1, "plugins");
      return command_plugins(common);
    }
    if (command == "describe") {
      expect_args(2, "describe NAME");
      return command_describe(common, args[1]);
    }
    if (args.size() == 1 && command.size() > 5 && command.substr(command.size() - 5) == ".toml") {
      experiment.file = command;
      return command_run(common, experiment);
    }
  } catch (const po::error& e) {
    return usage_error(e.what());
  }
  return usage_error(
      "unknown command '" + command +
      "': expected FILE.toml, check, sweep, generate, chat, eval, predict, inspect, export, "
      "tokenize, plugins or describe");
}

}  // namespace

int main(int argc, char** argv) {
  install_crash_handler();
  try {
    return run(argc, argv);
  } catch (const lmrun::Error& e) {
    std::cerr << "lmrun: error: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "  hint: " << e.hint() << "\n";
    return exit_code_of(e);
  } catch (const std::filesystem::filesystem_error& e) {
    // A std::filesystem call without an error_code (permissions, a read-only file system): what
    // failed and on which path, without the library's "filesystem error: " wording.
    std::cerr << "lmrun: error: " << filesystem_message(e) << "\n";
  } catch (const std::exception& e) {
    // LibTorch's errors without their C++ backtrace (LMRUN_DEBUG=1 keeps it).
    std::cerr << "lmrun: error: " << exception_message(e) << "\n";
  } catch (...) {
    std::cerr << "lmrun: error: an exception of an unknown type reached the command line\n";
  }
  return kExitError;
}
