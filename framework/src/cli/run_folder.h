// A run folder's ownership, and the rules for continuing a run in one: one process trains a folder
// at a time; a resume goes into the checkpoint's own run (or a new folder), with the experiment it
// was made by; a finished run stays as it is; leftovers of interrupted writes are never read.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace lmrun::host {

// The run's lock: an flock on <run>/.run.lock holding the owner's pid, released when the process
// ends however it ends (the kernel drops flocks of a dead process). A sweep's trial lock is the
// folder's .lock, held by the sweep process; this one is the run's own.
class RunLock {
 public:
  // Throws lmrun::Error naming the pid of the process that holds it.
  explicit RunLock(const std::filesystem::path& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// Creates `dir` (its parents too) when it does not exist: true when this process made it, false
// when it was there. Of several processes racing to create it, exactly one gets true.
bool create_run_folder(const std::filesystem::path& dir);

// Removes what interrupted writes left in a run folder (checkpoints/.tmp-*, .old-*, .removing-*,
// .data.partial): never trusted, never read. Returns how many it removed.
int remove_interrupted_writes(const std::filesystem::path& run_dir);

// The run folder a checkpoint belongs to: <run> for <run>/checkpoints/<name>; empty for a
// checkpoint folder elsewhere.
std::filesystem::path run_of_checkpoint(const std::filesystem::path& checkpoint);

// How two resolved experiments (config.toml texts) differ, one line per key ("train.batch_size:
// 12 -> 16"), leaving out the keys a resume may change: where the run goes and how long it runs
// (experiment.name and out_dir, train.max_steps, max_time, threads, log_interval) and what it
// generates when done ([generate]).
std::vector<std::string> experiment_changes(const std::string& saved, const std::string& now);

// Why a resume from `checkpoint_step` has nothing to do: the run folder's summary.json says the
// run ended there (not interrupted) and the experiment asks for no more steps or time than the
// checkpoint's. Empty when there is more to train.
std::string finished_run(const std::filesystem::path& run_dir, std::int64_t checkpoint_step,
                         const std::string& saved_config, std::int64_t max_steps, double max_time);

}  // namespace lmrun::host
