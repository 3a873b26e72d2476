// k-fold cross-validation: an experiment whose dataset has `folds = K` (K >= 2) runs K times, the
// run for fold k with data.fold = k in <out_dir>/fold-k, and each fold's last checkpoint is
// evaluated over the whole held-out fold (and the test split, when there is one). Every metric's
// per-fold values, mean and sample standard deviation go to <out_dir>/cross_validation.{json,csv}
// and a table.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "cli/run_dir.h"
#include "train/distributed.h"
#include "util/fs.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace lmrun::host {

std::int64_t folds_of(const Experiment& e) {
  if (!e.data.params.contains("folds")) return 0;
  const Value& value = e.data.params.at("folds");
  const auto* folds = std::get_if<std::int64_t>(&value);
  return folds ? *folds : 0;
}

namespace {

std::string fixed(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", v);
  return text;
}

}  // namespace

int command_cross_validate(const CommonArgs& common, const ExperimentArgs& args,
                           const Experiment& e) {
  const std::int64_t folds = folds_of(e);
  if (!args.resume.empty()) {
    throw Error("--resume continues one run, and a cross-validation is " + std::to_string(folds),
                "resume a fold's run with --set data.folds=0 is not it either: rerun with --force, "
                "or set data.folds = 0 and resume a plain run");
  }
  if (world_from_environment().distributed())
    throw Error("cross-validation (data.folds) does not run data-parallel",
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

  std::vector<Metrics> results;
  for (std::int64_t k = 0; k < folds; ++k) {
    const fs::path fold_dir = out_dir / ("fold-" + std::to_string(k));
    std::cout << "==== fold " << k + 1 << "/" << folds << ": val is fold " << k << " -> "
              << fold_dir.string() << "\n"
              << std::flush;
    ExperimentArgs run = args;
    run.single_run = true;
    run.overrides.push_back("data.fold=" + std::to_string(k));
    run.overrides.push_back("experiment.out_dir=" + fold_dir.string());
    if (command_run(common, run) != kExitOk) throw Error("fold " + std::to_string(k) + " failed");
    RunDirArgs evaluation;
    evaluation.run_dir = fold_dir;
    results.push_back(evaluate_run(common, evaluation, {Split::kVal, Split::kTest}));
  }

  // Metrics every fold reports (the [[metrics]] and losses), in name order.
  std::set<std::string> names;
  for (const auto& [name, value] : results.front()) {
    bool everywhere = true;
    for (const auto& fold : results) everywhere = everywhere && fold.count(name);
    if (everywhere && name.find("_examples") == std::string::npos) names.insert(name);
  }
  std::size_t width = 6;
  for (const auto& name : names) width = std::max(width, name.size());
  auto column = [](const std::string& text) {
    char cell[32];
    std::snprintf(cell, sizeof cell, "%9s", text.c_str());
    return std::string(cell);
  };
  std::string table = "cross-validation, " + std::to_string(folds) +
                      " folds (whole held-out fold as val, each fold's last checkpoint)\n  " +
                      "metric" + std::string(width - 6, ' ') + column("mean") + column("std");
  for (std::int64_t k = 0; k < folds; ++k) table += column("fold " + std::to_string(k));
  table += "\n";
  std::string csv = "metric,mean,std";
  for (std::int64_t k = 0; k < folds; ++k) csv += ",fold_" + std::to_string(k);
  csv += "\n";
  JsonObject metrics_json;
  for (const auto& name : names) {
    double sum = 0;
    for (const auto& fold : results) sum += fold.at(name);
    const double mean = sum / static_cast<double>(folds);
    double squares = 0;
    for (const auto& fold : results) squares += (fold.at(name) - mean) * (fold.at(name) - mean);
    const double sd = std::sqrt(squares / static_cast<double>(folds - 1));  // sample std
    table += "  " + name + std::string(width - name.size(), ' ') + column(fixed(mean)) +
             column(fixed(sd));
    csv += name + "," + detail::format_double(mean) + "," + detail::format_double(sd);
    std::vector<JsonObject> per_fold;
    std::string values = "[";
    for (std::int64_t k = 0; k < folds; ++k) {
      const double v = results[static_cast<std::size_t>(k)].at(name);
      table += column(fixed(v));
      csv += "," + detail::format_double(v);
      values += (k ? ", " : "") + detail::format_double(v);
    }
    table += "\n";
    csv += "\n";
    JsonObject entry;
    entry.add("mean", mean).add("std", sd).add_raw("folds", values + "]");
    metrics_json.add(name, std::move(entry));
  }
  JsonObject report;
  report.add("folds", folds).add("experiment", e.file.string()).add("metrics", metrics_json);
  write_file_atomic(out_dir / "cross_validation.json", report.str(2) + "\n");
  write_file_atomic(out_dir / "cross_validation.csv", csv);
  std::cout << table << "written: " << (out_dir / "cross_validation.json").string() << ", "
            << (out_dir / "cross_validation.csv").string() << "\n";
  return kExitOk;
}

}  // namespace lmrun::host
