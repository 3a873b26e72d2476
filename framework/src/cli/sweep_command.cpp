// lmrun sweep: every trial validated before the first one runs, the sweep folder's record
// checked against this spec, this shard's unfinished trials run, the results table written.
#include <unistd.h>

#include <iostream>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "cli/loaded_registry.h"
#include "config/diagnostics.h"
#include "config/emit.h"
#include "config/experiment.h"
#include "config/toml_document.h"
#include "sweep/driver.h"
#include "sweep/spec.h"
#include "sweep/trials.h"
#include "train/plan.h"
#include "util/fs.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

using sweep::SweepRecord;
using sweep::Trial;

constexpr std::size_t kProblemsShown = 12;

std::string join_keys(const sweep::SweepSpec& spec) {
  std::string out;
  for (const auto& p : spec.parameters) out += (out.empty() ? "" : ", ") + p.key;
  return out;
}

// One trial's experiment: the base document with the trial's values, its own folder and name.
TomlDocument trial_document(const TomlDocument& base, const sweep::SweepSpec& spec,
                            const Trial& trial, const fs::path& sweep_dir,
                            const std::string& name) {
  TomlDocument doc = base;
  for (std::size_t k = 0; k < trial.assignments.size(); ++k) {
    const auto& a = trial.assignments[k];
    set_key(doc, a.key, a.value,
            spec.parameters[k].where + ": [sweep.parameters] " + a.key + " = " + a.value + " (" +
                trial.name() + ")");
  }
  set_key(doc, "experiment.out_dir", sweep::toml_string((sweep_dir / trial.name()).string()),
          "the sweep");
  set_key(doc, "experiment.name", sweep::toml_string(name + "-" + trial.name()), "the sweep");
  return doc;
}

// Of the experiment after `base` and --set, the [sweep] table, and the trial list.
std::string fingerprint(const TomlDocument& base, const toml::table& sweep_table,
                        const std::vector<Trial>& trials) {
  std::ostringstream text;
  text << base.root << "\n" << sweep_table << "\n";
  for (const Trial& trial : trials) text << trial.name() << " " << trial.label() << "\n";
  return hash_text(text.str());
}

int report(const SweepArgs& args) {
  const SweepRecord record = sweep::read_sweep_record(args.report);
  std::cout << sweep::write_results(args.report, record);
  return kExitOk;
}

}  // namespace

int command_sweep(const CommonArgs& common, const SweepArgs& args) {
  if (!args.report.empty()) return report(args);
  if (args.jobs < 1) throw UsageError("--jobs must be at least 1");
  const sweep::Shard shard = args.shard.empty() ? sweep::Shard{} : sweep::parse_shard(args.shard);

  // The spec and the base experiment.
  TomlDocument base = load_document(args.experiment.file, args.experiment.overrides);
  const toml::node* sweep_node = base.root.get("sweep");
  if (sweep_node == nullptr || !sweep_node->is_table()) {
    throw Error(args.experiment.file.string() + " has no [sweep] section",
                "add [sweep] with [sweep.parameters], or run a single experiment with `lmrun " +
                    args.experiment.file.string() + "`");
  }
  const sweep::SweepSpec spec = sweep::parse_sweep(*sweep_node->as_table());
  const toml::table sweep_table = *sweep_node->as_table();
  base.root.erase("sweep");
  auto plugins = load_registry(common, plugin_dirs_of(base));
  apply_overrides(base, *plugins);
  const std::vector<std::string> failures = plugins->failure_messages();
  const Experiment base_experiment = resolve_experiment(base, plugins->registry, failures);
  const fs::path sweep_dir = base_experiment.experiment.out_dir;
  const std::string name = base_experiment.experiment.name;

  // Every trial resolved before any runs: a bad value in trial 37 fails now, not in an hour.
  const std::vector<Trial> trials = sweep::expand(spec);
  std::vector<std::string> configs(trials.size());
  std::vector<std::string> problems;
  std::set<std::string> notes;  // each once, though many trials change a type alike
  std::size_t invalid = 0;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    try {
      const TomlDocument doc = trial_document(base, spec, trials[i], sweep_dir, name);
      const Experiment trial = resolve_experiment(doc, plugins->registry, failures);
      for (const std::string& note : trial.notes) {
        std::string alike = note;  // the same note for every trial that changes the type alike
        if (auto at = alike.find(" (" + trials[i].name() + ")"); at != std::string::npos)
          alike.erase(at, trials[i].name().size() + 3);
        if (notes.insert(alike).second) std::cerr << "lmrun: note: " << note << "\n";
      }
      check_plan(trial, plugins->registry);  // warmup past the run, a monitor that is not there
      configs[i] = resolved_toml(trial, plugins->registry);
    } catch (const ConfigError& e) {
      ++invalid;
      for (const Problem& p : e.problems()) {
        const std::string line = trials[i].name() + " (" + trials[i].label() + "): " + p.text();
        if (problems.size() < kProblemsShown) problems.push_back(line);
      }
    }
  }
  if (invalid > 0) {
    std::string message = std::to_string(invalid) + " of " + std::to_string(trials.size()) +
                          " trials of " + args.experiment.file.string() +
                          " are invalid; nothing was run:";
    for (const auto& line : problems) message += "\n  " + line;
    throw Error(message, "fix [sweep.parameters] (or the experiment) and run the sweep again");
  }

  SweepRecord record;
  record.fingerprint = fingerprint(base, sweep_table, trials);
  record.name = name;
  record.metric = spec.metric;
  record.maximize = spec.maximize;
  record.trials = trials;

  std::vector<Trial> mine;
  for (const Trial& trial : trials) {
    if (shard.contains(trial)) mine.push_back(trial);
  }
  std::cout << "lmrun sweep " << name << ": " << trials.size() << " trials ("
            << (spec.method == sweep::Method::kGrid ? "grid" : "random") << " over "
            << join_keys(spec) << "), ranked by " << (spec.maximize ? "highest " : "lowest ")
            << spec.metric << " -> " << sweep_dir.string() << "\n";
  if (args.dry_run) {
    for (const Trial& trial : mine)
      std::cout << "  " << trial.name() << "  " << trial.label() << "\n";
    std::cout << "all " << trials.size() << " trials are valid (--dry-run: nothing was run)\n";
    return kExitOk;
  }

  // The folder: new, or this same sweep; never a mix of two. Shards starting together on a new
  // folder race to create spec.toml: one does, the others read it back and compare.
  std::error_code ec;
  const fs::path spec_file = sweep_dir / "spec.toml";
  if (!fs::exists(spec_file, ec) && fs::exists(sweep_dir, ec)) {
    for (const auto& entry : fs::directory_iterator(sweep_dir, ec)) {
      const std::string file = entry.path().filename().string();
      if (file.rfind(".", 0) == 0 || file.rfind("trial-", 0) == 0) continue;  // a sweep's own
      throw Error(sweep_dir.string() +
                      " exists and is not a sweep folder (it has no spec.toml, "
                      "and holds " +
                      file + ")",
                  "choose another folder with --set experiment.out_dir=...");
    }
  }
  fs::create_directories(sweep_dir, ec);
  if (ec) throw Error("cannot create sweep folder " + sweep_dir.string() + ": " + ec.message());
  if (!write_file_exclusive(spec_file, sweep::to_toml(record))) {
    const SweepRecord existing = sweep::read_sweep_record(sweep_dir);
    if (existing.fingerprint != record.fingerprint) {
      throw Error(sweep_dir.string() + " holds a different sweep (fingerprint " +
                      existing.fingerprint + "; this spec's is " + record.fingerprint +
                      "): the experiment, the overrides or the [sweep] table changed",
                  "give this sweep its own folder with --set experiment.out_dir=..., or delete " +
                      sweep_dir.string() + " to start over");
    }
  }

  std::vector<Trial> to_run;
  std::size_t finished = 0;
  for (const Trial& trial : mine) {
    const fs::path dir = sweep_dir / trial.name();
    if (sweep::is_finished(sweep::read_trial_status(dir).status)) {
      ++finished;
      continue;
    }
    fs::create_directories(dir, ec);
    if (ec) throw Error("cannot create trial folder " + dir.string() + ": " + ec.message());
    write_file_atomic(dir / "experiment.toml", configs[static_cast<std::size_t>(trial.index)]);
    to_run.push_back(trial);
  }
  std::cout << "  " << (shard.count > 1 ? "shard " + args.shard + ": " : "") << mine.size()
            << " trials, " << finished << " already finished, " << to_run.size() << " to run, "
            << args.jobs << " at a time"
            << (spec.median_rule ? "; the median rule stops trials that fall behind" : "") << "\n"
            << std::flush;

  sweep::DriverOptions options;
  options.sweep_dir = sweep_dir;
  options.lmrun = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find the lmrun executable (/proc/self/exe): " + ec.message());
  for (const auto& dir : common.plugin_dirs) {
    options.extra_args.push_back("--plugin-dir");
    options.extra_args.push_back(fs::absolute(dir).string());
  }
  if (common.verbose) options.extra_args.push_back("-v");
  options.jobs = args.jobs;
  options.median_rule = spec.median_rule;
  options.out = &std::cout;
  const sweep::DriverOutcome outcome = sweep::run_trials(to_run, record, options);

  std::cout << sweep::write_results(sweep_dir, record)
            << "results: " << (sweep_dir / "sweep.csv").string() << ", "
            << (sweep_dir / "sweep.json").string() << "\n";
  if (outcome.interrupted) {
    throw Error("the sweep was interrupted; its running trials are recorded as killed",
                "run the same command again to run them and the rest");
  }
  std::size_t unfinished = 0, elsewhere = 0;
  for (const Trial& trial : mine) {
    const sweep::Status status = sweep::read_trial_status(sweep_dir / trial.name()).status;
    if (status == sweep::Status::kRunning) {
      ++elsewhere;
    } else if (!sweep::is_finished(status)) {
      ++unfinished;
    }
  }
  if (unfinished > 0) {
    throw Error(std::to_string(unfinished) +
                    " trial(s) failed or were killed; the table above "
                    "gives each reason and its log.txt the details",
                "run the same command again to retry them (finished trials are skipped)");
  }
  if (elsewhere > 0) {
    throw Error(std::to_string(elsewhere) + " trial(s) are still running in another sweep process",
                "`lmrun sweep --report " + sweep_dir.string() + "` shows the table once they end");
  }
  return kExitOk;
}

}  // namespace lmrun::host
