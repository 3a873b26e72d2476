// What a sweep folder holds and what is read back from it: the sweep's own record (spec.toml),
// each trial's status, its metric curve and summary, the median rule, and the ranked tables.
//
//   <sweep>/spec.toml               fingerprint, metric, mode, and every trial's parameters
//   <sweep>/trial-0007/experiment.toml   the trial's resolved experiment (runnable by hand)
//   <sweep>/trial-0007/status.toml  status, reason, exit code, host, times (the sweep writes it)
//   <sweep>/trial-0007/log.txt      the trial's console output
//   <sweep>/trial-0007/...          the run's own files: metrics.jsonl, summary.json, checkpoints
//   <sweep>/sweep.csv, sweep.json   one row per trial, ranked by the metric
//
// Every file is written atomically, so shards of one sweep on several machines can share the
// folder: each trial belongs to one shard, and the tables are rewritten whole.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sweep/spec.h"

namespace lmrun::host::sweep {

// A trial's state. Finished ones (completed, diverged, pruned) are skipped when the sweep is run
// again; the others run again.
enum class Status { kPending, kRunning, kCompleted, kDiverged, kPruned, kFailed, kKilled };
const char* status_name(Status status);
bool is_finished(Status status);

// The sweep as recorded in spec.toml: enough to report on it without the experiment file.
struct SweepRecord {
  std::string fingerprint;  // of the base experiment and the trial list
  std::string name;
  std::string metric;
  bool maximize = false;
  std::vector<Trial> trials;
};
std::string to_toml(const SweepRecord& record);
SweepRecord read_sweep_record(const std::filesystem::path& sweep_dir);  // throws Error

struct TrialStatus {
  Status status = Status::kPending;
  std::string reason;  // why it failed, diverged, was pruned or killed
  int exit_code = -1;
  std::string host;
  std::int64_t pid = 0;
  std::string started;  // UTC, ISO 8601
  double wall_seconds = -1;
  std::vector<Assignment> params;  // the trial's values, so that its folder says what it ran
};
std::string to_toml(const TrialStatus& status);
// Pending when the folder has no status.toml; throws Error when it has one that is unreadable.
TrialStatus read_trial_status(const std::filesystem::path& trial_dir);

// A metric at each evaluation: step -> value.
using Curve = std::map<std::int64_t, double>;
// The `metric` values of a run's metrics.jsonl (an unfinished last line is ignored).
Curve read_curve(const std::filesystem::path& run_dir, const std::string& metric);

// Why a running trial should stop at its latest evaluation, or "" to let it go on: its value at
// that step is worse than the median of the finished trials' values at the same step, the step
// is past the grace period, and at least min_trials finished trials have a value there.
std::string median_rule_verdict(const Curve& running, const std::vector<Curve>& finished,
                                const MedianRule& rule, const std::string& metric, bool maximize);

// One row of the results.
struct TrialRow {
  Trial trial;
  TrialStatus status;
  std::optional<double> best;  // the best value of the sweep's metric over the evaluations
  std::int64_t best_step = -1;
  std::optional<double> last;  // the final metric of summary.json, else the last evaluation
  std::int64_t steps = -1;
  std::map<std::string, double> final_metrics;  // summary.json's "final"
};

std::vector<TrialRow> collect_rows(const std::filesystem::path& sweep_dir,
                                   const SweepRecord& record);
// Completed trials first, by their best metric (mode decides the direction), then the others
// with a metric, then those without; ties by index.
void rank(std::vector<TrialRow>& rows, bool maximize);

std::string results_csv(const std::vector<TrialRow>& rows, const SweepRecord& record);
std::string results_json(const std::vector<TrialRow>& rows, const SweepRecord& record);
// The console table and the best trial's line.
std::string results_table(const std::vector<TrialRow>& rows, const SweepRecord& record,
                          const std::filesystem::path& sweep_dir);

// Writes sweep.csv and sweep.json (atomically) and returns the console table.
std::string write_results(const std::filesystem::path& sweep_dir, const SweepRecord& record);

}  // namespace lmrun::host::sweep
