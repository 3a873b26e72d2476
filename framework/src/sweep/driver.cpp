// The trial processes of driver.h: posix_spawn, a waitpid loop, the median rule, signals.
#include "sweep/driver.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <thread>

#include "lmrun/error.h"
#include "util/fs.h"
#include "util/process.h"

namespace fs = std::filesystem;

namespace lmrun::host::sweep {
namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_signal(int signal) { g_signal = signal; }

// SIGINT and SIGTERM set g_signal while this lives; the previous handlers come back after.
class SignalGuard {
 public:
  SignalGuard() {
    g_signal = 0;
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
    // An ignored SIGCHLD (inherited across exec) would make the kernel reap the trials itself
    // and lose their exit statuses.
    struct sigaction child {};
    child.sa_handler = SIG_DFL;
    sigemptyset(&child.sa_mask);
    sigaction(SIGCHLD, &child, &old_child_);
  }
  ~SignalGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGCHLD, &old_child_, nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  struct sigaction old_child_ {};
};

std::string hostname() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) return "?";
  return buffer;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

bool has_checkpoint(const fs::path& run_dir) {
  std::error_code ec;
  const fs::path dir = run_dir / "checkpoints";
  if (!fs::is_directory(dir, ec)) return false;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    // A dot-folder is a checkpoint being written (or left half-written by a kill): not one.
    if (entry.path().filename().string().rfind(".", 0) == 0) continue;
    if (fs::is_regular_file(entry.path() / "state.toml", ec)) return true;
  }
  return false;
}

// A fresh start: everything of an earlier attempt goes but the trial's experiment.
void clear_for_fresh_start(const fs::path& trial_dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(trial_dir, ec)) {
    const auto name = entry.path().filename();
    if (name != "experiment.toml" && name != ".lock") fs::remove_all(entry.path(), ec);
  }
}

// The last "lmrun: error:" line of a log after byte `from` (this attempt's part), with its hint;
// else its last non-empty line.
std::string error_of_log(const fs::path& log, std::uintmax_t from) {
  std::ifstream in(log);
  in.seekg(static_cast<std::streamoff>(from));
  std::string line, error, last;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("lmrun: error: ", 0) == 0) {
      error = line.substr(14);
    } else if (!error.empty() && line.rfind("  hint: ", 0) == 0) {
      error += " (hint: " + line.substr(8) + ")";
    }
    last = line;
  }
  return error.empty() ? last : error;
}

std::string signal_text(int signal) {
  const char* name = strsignal(signal);
  return "signal " + std::to_string(signal) + (name ? std::string(" (") + name + ")" : "");
}

struct Running {
  Trial trial;
  fs::path dir;
  Clock::time_point started;
  TrialStatus status;
  std::string prune_reason;     // set when the median rule stopped it
  std::uintmax_t log_from = 0;  // log.txt's size when this attempt started
  int lock = -1;                // the trial's .lock, held while it runs
};

// The trial's lock (an flock on <trial>/.lock): held by the sweep process running it, so that a
// second sweep process (a shard started twice, a requeued job) leaves a running trial alone.
// -1 when another process holds it.
int lock_trial(const fs::path& dir) {
  const int fd = ::open((dir / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot open " + (dir / ".lock").string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class Driver {
 public:
  Driver(const SweepRecord& record, const DriverOptions& options)
      : record_(record), options_(options), out_(*options.out) {}

  DriverOutcome run(const std::vector<Trial>& trials) {
    SignalGuard guard;
    try {
      return loop(trials);
    } catch (...) {
      stop_all("the sweep failed");  // no trial outlives its sweep unrecorded
      throw;
    }
  }

 private:
  DriverOutcome loop(const std::vector<Trial>& trials) {
    std::deque<Trial> queue(trials.begin(), trials.end());
    DriverOutcome outcome;
    auto last_check = Clock::now();
    while (!queue.empty() || !running_.empty()) {
      while (g_signal == 0 && !queue.empty() &&
             static_cast<std::int64_t>(running_.size()) < options_.jobs) {
        if (start(queue.front())) ++outcome.ran;
        queue.pop_front();
      }
      reap();
      if (g_signal != 0) {
        outcome.interrupted = true;
        stop_all("interrupted by " + signal_text(g_signal));
        break;
      }
      if (options_.median_rule && Clock::now() - last_check > std::chrono::seconds(1)) {
        apply_median_rule();
        last_check = Clock::now();
      }
      if (!running_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return outcome;
  }

  // Starts a trial; false when another sweep process is running it.
  bool start(const Trial& trial) {
    const fs::path dir = options_.sweep_dir / trial.name();
    const int lock = lock_trial(dir);
    if (lock < 0) {
      out_ << "[sweep] " << trial.name()
           << " is being run by another sweep process (its .lock is held): left to it\n"
           << std::flush;
      return false;
    }
    const fs::path experiment = dir / "experiment.toml";
    std::vector<std::string> args = {options_.lmrun.string(), experiment.string()};
    const bool resume = has_checkpoint(dir);
    if (resume) {
      args.insert(args.end(), {"--resume", dir.string()});
    } else {
      clear_for_fresh_start(dir);
      args.push_back("--force");
    }
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());

    // Several trials at once share the cores: each gets its share of BLAS threads, unless the
    // user chose a number.
    std::vector<std::string> extra;
    if (options_.jobs > 1 && std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
      const auto share =
          std::max<std::int64_t>(1, static_cast<std::int64_t>(cores) / options_.jobs);
      extra.push_back("OPENBLAS_NUM_THREADS=" + std::to_string(share));
    }
    const fs::path log = dir / "log.txt";
    std::error_code ec;
    const std::uintmax_t log_size = fs::exists(log, ec) ? fs::file_size(log, ec) : 0;
    pid_t pid = 0;
    // A sweep started inside a distributed job (srun, torchrun) must not make each trial a rank.
    const int error = spawn_process(
        args,
        environment_with(extra, {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}),
        log, pid);

    Running r{trial, dir, Clock::now(), {}, {}, ec ? 0 : log_size, lock};
    r.status.host = hostname();
    r.status.params = trial.assignments;
    r.status.started = utc_now();
    if (error != 0) {
      r.status.status = Status::kFailed;
      r.status.reason = "cannot start " + options_.lmrun.string() + ": " + std::strerror(error);
      write_file_atomic(dir / "status.toml", to_toml(r.status));
      ::close(lock);
      out_ << "[sweep] " << trial.name() << " failed to start: " << r.status.reason << "\n";
      return true;
    }
    r.status.status = Status::kRunning;
    r.status.pid = pid;
    write_file_atomic(dir / "status.toml", to_toml(r.status));
    out_ << "[sweep] " << trial.name() << (resume ? " resumed" : " started") << ": "
         << trial.label() << "  (log: " << log.string() << ")\n"
         << std::flush;
    running_.emplace(pid, std::move(r));
    return true;
  }

  // Collects every trial that has exited, each by its own pid. `stopped_why`: the sweep is
  // stopping them, so one that ends unfinished is recorded as killed for that reason.
  void reap(const std::string* stopped_why = nullptr) {
    for (auto it = running_.begin(); it != running_.end();) {
      int wait_status = 0;
      const pid_t pid = waitpid(it->first, &wait_status, WNOHANG);
      if (pid == 0 || (pid < 0 && errno == EINTR)) {
        ++it;
        continue;
      }
      Running& r = it->second;
      if (pid < 0) {  // reaped by someone else: its exit status is lost
        r.prune_reason.clear();
        r.status.reason = "its exit status was lost (reaped elsewhere)";
      }
      finish(r, pid < 0 ? -1 : wait_status);
      if (stopped_why != nullptr && !is_finished(r.status.status) &&
          r.status.status != Status::kKilled) {
        r.status.status = Status::kKilled;
        r.status.reason = "the sweep was stopped: " + *stopped_why;
        write_file_atomic(r.dir / "status.toml", to_toml(r.status));
      }
      it = running_.erase(it);
    }
  }

  // Records how a trial ended; `wait_status` -1 when unknown.
  void finish(Running& r, int wait_status) {
    TrialStatus& s = r.status;
    s.wall_seconds = std::chrono::duration<double>(Clock::now() - r.started).count();
    s.pid = 0;
    const bool exited_ok =
        wait_status >= 0 && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
    if (wait_status < 0) {
      s.status = Status::kFailed;
    } else if (!r.prune_reason.empty() && !exited_ok) {  // it may have finished first
      s.status = Status::kPruned;
      s.reason = r.prune_reason;
    } else if (WIFSIGNALED(wait_status)) {
      const int signal = WTERMSIG(wait_status);
      const bool killed = signal == SIGKILL || signal == SIGTERM || signal == SIGINT;
      s.status = killed ? Status::kKilled : Status::kFailed;
      s.reason = (killed ? "killed by " : "crashed: ") + signal_text(signal);
    } else {
      s.exit_code = WEXITSTATUS(wait_status);
      if (s.exit_code == 0) {
        s.status = Status::kCompleted;
      } else if (s.exit_code == 128 + SIGINT || s.exit_code == 128 + SIGTERM) {
        // Stopped by the signal at a step's end, with its `last` checkpoint: resumable.
        s.status = Status::kKilled;
        s.reason = "stopped by " + signal_text(s.exit_code - 128) + " (checkpoint saved)";
      } else {
        s.reason = error_of_log(r.dir / "log.txt", r.log_from);
        const bool diverged = s.reason.rfind("training diverged", 0) == 0;
        s.status = diverged ? Status::kDiverged : Status::kFailed;
        if (s.reason.empty()) s.reason = "exit code " + std::to_string(s.exit_code);
      }
    }
    write_file_atomic(r.dir / "status.toml", to_toml(s));
    if (r.lock >= 0) ::close(r.lock);
    r.lock = -1;
    out_ << "[sweep] " << r.trial.name() << " " << status_name(s.status) << " after "
         << static_cast<long long>(s.wall_seconds) << " s";
    const Curve curve = read_curve(r.dir, record_.metric);
    if (!curve.empty()) {
      char value[32];
      std::snprintf(value, sizeof value, "%.4f", curve.rbegin()->second);
      out_ << ": " << record_.metric << " " << value << " at step " << curve.rbegin()->first;
    }
    if (!s.reason.empty() && s.status != Status::kPruned) out_ << " (" << s.reason << ")";
    out_ << "\n" << std::flush;
  }

  void apply_median_rule() {
    std::vector<Curve> finished;
    for (const Trial& trial : record_.trials) {
      const fs::path dir = options_.sweep_dir / trial.name();
      try {
        if (read_trial_status(dir).status == Status::kCompleted)
          finished.push_back(read_curve(dir, record_.metric));
      } catch (const Error&) {
        // an unreadable status: not a finished trial
      }
    }
    for (auto& [pid, r] : running_) {
      if (!r.prune_reason.empty()) continue;
      const std::string verdict =
          median_rule_verdict(read_curve(r.dir, record_.metric), finished, *options_.median_rule,
                              record_.metric, record_.maximize);
      if (verdict.empty()) continue;
      r.prune_reason = verdict;
      out_ << "[sweep] " << r.trial.name() << ": stopping it by the median rule: " << verdict
           << "\n"
           << std::flush;
      kill(pid, SIGTERM);
    }
  }

  // The trials still running are stopped (SIGTERM, then SIGKILL after a grace period) and
  // recorded as killed.
  void stop_all(const std::string& why) {
    if (running_.empty()) return;
    out_ << "[sweep] " << why << ": stopping " << running_.size() << " running trial(s)\n"
         << std::flush;
    for (auto& [pid, r] : running_) {
      r.prune_reason.clear();
      kill(pid, SIGTERM);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    bool killed = false;
    while (!running_.empty()) {
      if (!killed && Clock::now() > deadline) {
        for (auto& [pid, r] : running_) kill(pid, SIGKILL);
        killed = true;
      }
      reap(&why);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  const SweepRecord& record_;
  const DriverOptions& options_;
  std::ostream& out_;
  std::map<pid_t, Running> running_;
};

}  // namespace

DriverOutcome run_trials(const std::vector<Trial>& trials, const SweepRecord& record,
                         const DriverOptions& options) {
  return Driver(record, options).run(trials);
}

}  // namespace lmrun::host::sweep
