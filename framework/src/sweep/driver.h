// Running a sweep's trials: each one a separate `lmrun` process on its trial's experiment.toml,
// up to `jobs` at once, with its console output in the trial's log.txt. A trial that fails,
// diverges, crashes or is killed is recorded with its reason and the others go on; the median
// rule, when on, stops trials that fall behind. SIGINT or SIGTERM (Ctrl-C, a scheduler's time
// limit) stops the running trials, records them as killed, and returns.
//
//   DriverOptions options{...};
//   const DriverOutcome outcome = run_trials(trials_of_this_shard, record, options);
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "sweep/spec.h"
#include "sweep/trials.h"

namespace lmrun::host::sweep {

struct DriverOptions {
  std::filesystem::path sweep_dir;
  std::filesystem::path lmrun;          // the executable each trial runs
  std::vector<std::string> extra_args;  // passed to each trial: --plugin-dir ..., -v
  std::int64_t jobs = 1;
  std::optional<MedianRule> median_rule;
  std::ostream* out = nullptr;  // progress lines
};

struct DriverOutcome {
  std::int64_t ran = 0;
  bool interrupted = false;  // SIGINT or SIGTERM arrived
};

// Runs `trials` (a subset of record.trials) in index order. Finished trials of the whole sweep,
// other shards' included, feed the median rule.
DriverOutcome run_trials(const std::vector<Trial>& trials, const SweepRecord& record,
                         const DriverOptions& options);

}  // namespace lmrun::host::sweep
