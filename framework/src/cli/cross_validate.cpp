// k-fold cross-validation: an experiment whose dataset declares a fold count (ParamRole::kFolds,
// `folds` in text_classification) of K >= 2 runs K times, the run for fold k with the fold
// parameter (ParamRole::kFold) = k in <out_dir>/fold-k, and each fold's last checkpoint is
// evaluated over the whole held-out fold (and the test split, when there is one). Every metric's
// per-fold values, mean and sample standard deviation go to <out_dir>/cross_validation.{json,csv}
// and a table; the means to <out_dir>/summary.json's "final", as a run's, for sweeps.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "cli/run_dir.h"
#include "lmrun/version.h"
#include "train/distributed.h"
#include "util/fs.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace lmrun::host {

FoldParams fold_params(const Experiment& e, const PluginRegistry& registry) {
  FoldParams out;
  const Registration* registration = registry.find(Kind::kDataset, e.data.type);
  if (registration == nullptr) return out;
  for (const ParamSpec& spec : registration->params) {
    if (spec.role == ParamRole::kFolds) out.folds = spec.name;
    if (spec.role == ParamRole::kFold) out.fold = spec.name;
  }
  if (out.folds.empty() || out.fold.empty() || !e.data.params.contains(out.folds)) return {};
  const auto* count = std::get_if<std::int64_t>(&e.data.params.at(out.folds));
  out.count = count ? *count : 0;
  return out;
}

FoldStatistic fold_statistic(const std::vector<double>& values) {
  FoldStatistic stat;
  double sum = 0;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    sum += v;
    ++stat.count;
  }
  const auto n = static_cast<double>(stat.count);
  if (stat.count > 0) stat.mean = sum / n;
  if (stat.count < 2) return stat;
  double squares = 0;
  for (double v : values) {
    if (std::isfinite(v)) squares += (v - stat.mean) * (v - stat.mean);
  }
  stat.sd = std::sqrt(squares / (n - 1));
  return stat;
}

namespace {

std::string fixed(double v) {
  if (!std::isfinite(v)) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", v);
  return text;
}

}  // namespace

int command_cross_validate(const CommonArgs& common, const ExperimentArgs& args,
                           const Experiment& e, const FoldParams& fold_params) {
  const std::int64_t folds = fold_params.count;
  const std::string folds_key = "data." + fold_params.folds;
  if (!args.resume.empty()) {
    throw Error("--resume continues one run, and a cross-validation is " + std::to_string(folds),
                "resume a fold's run with --set " + folds_key + "=0 is not it either: rerun with "
                "--force, or set " + folds_key + " = 0 and resume a plain run");
  }
  if (world_from_environment().distributed())
    throw Error("cross-validation (" + folds_key + ") does not run data-parallel",
                "run it without --nproc / WORLD_SIZE");
  const fs::path out_dir = e.experiment.out_dir;
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !args.force) {
    throw Error("run folder " + out_dir.string() + " already exists",
                "pass --force to run the cross-validation over in it, or choose another with "
                "--set experiment.out_dir=...");
  }
  fs::create_directories(out_dir, ec);
  if (ec) throw Error("cannot create " + out_dir.string() + ": " + ec.message());

  const auto start = std::chrono::steady_clock::now();
  std::vector<Metrics> results;
  for (std::int64_t k = 0; k < folds; ++k) {
    const fs::path fold_dir = out_dir / ("fold-" + std::to_string(k));
    std::cout << "==== fold " << k + 1 << "/" << folds << ": val is fold " << k << " -> "
              << fold_dir.string() << "\n"
              << std::flush;
    ExperimentArgs run = args;
    run.single_run = true;
    run.overrides.push_back("data." + fold_params.fold + "=" + std::to_string(k));
    run.overrides.push_back("experiment.out_dir=" + fold_dir.string());
    if (command_run(common, run) != kExitOk) throw Error("fold " + std::to_string(k) + " failed");
    RunDirArgs evaluation;
    evaluation.run_dir = fold_dir;
    results.push_back(evaluate_run(common, evaluation, {Split::kVal, Split::kTest}));
  }

  // Every fold must report the same metrics (the [[metrics]] and losses of val and test): a
  // fold without one would bias its mean without a word.
  std::set<std::string> names;
  for (const auto& fold : results) {
    for (const auto& entry : fold) {
      if (entry.first.find("_examples") == std::string::npos) names.insert(entry.first);
    }
  }
  for (std::int64_t k = 0; k < folds; ++k) {
    for (const auto& name : names) {
      if (!results[static_cast<std::size_t>(k)].count(name)) {
        throw Error("fold " + std::to_string(k) + " reports no " + name + " while another does",
                    "check " + (out_dir / ("fold-" + std::to_string(k))).string() +
                        ": its val or test split may be empty");
      }
    }
  }
  std::size_t width = 6;
  for (const auto& name : names) width = std::max(width, name.size());
  auto column = [](const std::string& text) {
    char cell[32];
    std::snprintf(cell, sizeof cell, "%9s", text.c_str());
    return std::string(cell);
  };
  // JSON has no NaN: null stands for it (the CSV says nan, as pandas reads it).
  auto number = [](double v) { return std::isfinite(v) ? format_double(v) : "null"; };
  std::string table = "cross-validation, " + std::to_string(folds) +
                      " folds (whole held-out fold as val, each fold's last checkpoint)\n  " +
                      "metric" + std::string(width - 6, ' ') + column("mean") + column("std");
  for (std::int64_t k = 0; k < folds; ++k) table += column("fold " + std::to_string(k));
  table += "\n";
  std::string csv = "metric,mean,std,count";
  for (std::int64_t k = 0; k < folds; ++k) csv += ",fold_" + std::to_string(k);
  csv += "\n";
  JsonObject metrics_json, means;
  bool not_finite = false;
  for (const auto& name : names) {
    std::vector<double> values;
    for (const auto& fold : results) values.push_back(fold.at(name));
    const FoldStatistic stat = fold_statistic(values);
    const double mean = stat.mean, sd = stat.sd;
    not_finite = not_finite || stat.count < results.size();
    table += "  " + name + std::string(width - name.size(), ' ') + column(fixed(mean)) +
             column(fixed(sd));
    csv += name + "," + format_double(mean) + "," + format_double(sd) + "," +
           std::to_string(stat.count);
    std::string per_fold = "[";
    for (std::int64_t k = 0; k < folds; ++k) {
      const double v = results[static_cast<std::size_t>(k)].at(name);
      table += column(fixed(v));
      csv += "," + format_double(v);
      per_fold += (k ? ", " : "") + number(v);
    }
    table += "\n";
    csv += "\n";
    JsonObject entry;
    entry.add("mean", mean)
        .add("std", sd)
        .add("count", static_cast<std::int64_t>(stat.count))
        .add_raw("folds", per_fold + "]");
    metrics_json.add(name, std::move(entry));
    means.add(name, mean);
  }
  if (not_finite)
    table += "  (a fold's NaN or infinite value is left out of its metric's mean and std)\n";
  JsonObject report;
  report.add("folds", folds).add("experiment", e.file.string()).add("metrics", metrics_json);
  write_file_atomic(out_dir / "cross_validation.json", report.str(2) + "\n");
  write_file_atomic(out_dir / "cross_validation.csv", csv);
  // A run's summary.json, so that a sweep over a cross-validated experiment ranks its trials by
  // the fold means.
  JsonObject summary;
  summary.add("format", std::int64_t{1})
      .add("lmrun_version", kVersion)
      .add("experiment", e.experiment.name)
      .add("folds", folds)
      .add("wall_seconds",
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count())
      .add("final", means);
  write_file_atomic(out_dir / "summary.json", summary.str(2) + "\n");
  std::cout << table << "written: " << (out_dir / "cross_validation.json").string() << ", "
            << (out_dir / "cross_validation.csv").string() << "\n";
  return kExitOk;
}

}  // namespace lmrun::host
