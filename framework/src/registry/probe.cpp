// The plugin probe: fork, run the load steps in the child, read its phases and its fate.
#include "registry/probe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "lmrun/util/files.h"
#include "lmrun/version.h"
#include "registry/guard.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace lmrun::host {
namespace {

// The cache's first line: a file from another lmrun, or another format, is not read.
std::string cache_header() {
  return std::string("lmrun-plugin-probes 1 ") + kVersion + " " + std::to_string(kApiVersion);
}

std::string signal_text(int signal) {
  const std::string words = signal_words(signal);
  return words == "a fatal signal" ? "signal " + std::to_string(signal) : words;
}

// The last non-empty line of what the child printed, at most 200 characters.
std::string last_line(const std::string& text) {
  std::istringstream lines(text);
  std::string line, last;
  while (std::getline(lines, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) last = line;
  }
  if (last.size() > 200) last = last.substr(0, 197) + "...";
  return last;
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Tabs and newlines cannot appear in a cache field.
std::string one_field(std::string text) {
  for (char& c : text) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

[[noreturn]] void child_main(int phase_fd, int err_fd,
                             const std::function<void(const PhaseSink&)>& steps) {
  // The child dies by its own signals: lmrun's crash report would only confuse the warning.
  for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(signal, SIG_DFL);
  ::dup2(err_fd, STDERR_FILENO);
  const int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDIN_FILENO);
  }
  const auto report = [phase_fd](LoadPhase phase) {
    const char tag = static_cast<char>(phase);
    (void)!::write(phase_fd, &tag, 1);
  };
  try {
    steps(report);
  } catch (...) {
    // An error (a wrong API version, a register function that throws) is the real load's to
    // report, with its own message; the probe only looks for crashes and hangs.
  }
  report(LoadPhase::kDone);
  ::_exit(0);
}

}  // namespace

const char* phase_words(LoadPhase phase) {
  switch (phase) {
    case LoadPhase::kOpen:
      return "while loading (its static initialisers, or a library it needs)";
    case LoadPhase::kEntry:
      return "in its entry point lmrun_plugin()";
    case LoadPhase::kRegister:
      return "in its register function";
    case LoadPhase::kDone:
      return "after registering";
  }
  return "while loading";
}

PluginProbe::PluginProbe(fs::path cache, std::chrono::milliseconds timeout)
    : cache_(std::move(cache)), timeout_(timeout) {}

void PluginProbe::read_cache() {
  cache_read_ = true;
  if (cache_.empty()) return;
  std::ifstream in(cache_);
  std::string line;
  if (!std::getline(in, line) || line != cache_header()) return;
  while (std::getline(in, line)) {
    // size \t mtime_ns \t path \t problem
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (int i = 0; i < 3; ++i) {
      const std::size_t tab = line.find('\t', start);
      if (tab == std::string::npos) break;
      fields.push_back(line.substr(start, tab - start));
      start = tab + 1;
    }
    if (fields.size() != 3) continue;
    Verdict verdict;
    try {
      verdict.size = std::stoull(fields[0]);
      verdict.mtime_ns = std::stoll(fields[1]);
    } catch (const std::exception&) {
      continue;  // a damaged line: that file is probed again
    }
    verdict.problem = line.substr(start);
    verdicts_[fields[2]] = verdict;
  }
}

void PluginProbe::write_cache() const {
  if (cache_.empty()) return;
  std::string text = cache_header() + "\n";
  for (const auto& [path, verdict] : verdicts_) {
    text += std::to_string(verdict.size) + "\t" + std::to_string(verdict.mtime_ns) + "\t" +
            one_field(path) + "\t" + one_field(verdict.problem) + "\n";
  }
  try {
    std::error_code ec;
    fs::create_directories(cache_.parent_path(), ec);
    write_file_atomic(cache_, text);
  } catch (const Error&) {
    // A cache that cannot be written only costs the next start its probes.
  }
}

std::optional<std::string> PluginProbe::check(const fs::path& file,
                                              const std::function<void(const PhaseSink&)>& steps) {
  if (!cache_read_) read_cache();
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return std::nullopt;  // the real load names the problem
  const std::string key = file.string();
  if (auto it = verdicts_.find(key); it != verdicts_.end() &&
                                     it->second.size == static_cast<std::uintmax_t>(st.st_size) &&
                                     it->second.mtime_ns == mtime_ns(st)) {
    if (it->second.problem.empty()) return std::nullopt;
    return it->second.problem + " (remembered from an earlier try; the file is tried again when "
                                "it changes)";
  }
  ++children_;
  Verdict verdict{static_cast<std::uintmax_t>(st.st_size), mtime_ns(st), run_child(steps)};
  // Merge with what other processes wrote since: each writes the union it knows.
  verdicts_.clear();
  read_cache();
  verdicts_[key] = verdict;
  write_cache();
  if (verdict.problem.empty()) return std::nullopt;
  return verdict.problem;
}

std::string PluginProbe::run_child(const std::function<void(const PhaseSink&)>& steps) const {
  int phases[2], errors[2];
  if (::pipe2(phases, O_CLOEXEC) != 0) return "";
  if (::pipe2(errors, O_CLOEXEC) != 0) {
    ::close(phases[0]);
    ::close(phases[1]);
    return "";
  }
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(phases[0]);
    ::close(errors[0]);
    child_main(phases[1], errors[1], steps);
  }
  ::close(phases[1]);
  ::close(errors[1]);
  if (pid < 0) {  // no child to try it in: load it for real, as lmrun did before probes
    ::close(phases[0]);
    ::close(errors[0]);
    return "";
  }

  LoadPhase last = LoadPhase::kOpen;
  std::string printed;
  bool timed_out = false;
  const auto deadline = Clock::now() + timeout_;
  pollfd fds[2] = {{phases[0], POLLIN, 0}, {errors[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    const int ready = ::poll(fds, 2, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    for (pollfd& fd : fds) {
      if (fd.fd < 0 || fd.revents == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(fd.fd, buffer, sizeof buffer);
      if (n <= 0) {
        ::close(fd.fd);
        fd.fd = -1;
        --open_fds;
        continue;
      }
      if (fd.fd == phases[0]) {
        last = static_cast<LoadPhase>(buffer[n - 1]);
      } else {
        printed.append(buffer, static_cast<std::size_t>(n));
        if (printed.size() > 16384) printed.erase(0, printed.size() - 16384);
      }
    }
  }
  for (pollfd& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }

  const std::string said = last_line(printed);
  const std::string quote = said.empty() ? "" : "; it printed: " + said;
  if (timed_out) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", static_cast<double>(timeout_.count()) / 1000.0);
    return std::string("hung ") + phase_words(last) + " (stopped after " + seconds + " s)" + quote;
  }
  if (WIFSIGNALED(status)) {
    return "crashed with " + signal_text(WTERMSIG(status)) + " " + phase_words(last) + quote;
  }
  if (WIFEXITED(status) && (WEXITSTATUS(status) != 0 || last != LoadPhase::kDone)) {
    return "ended the process (exit status " + std::to_string(WEXITSTATUS(status)) + ") " +
           phase_words(last) + quote;
  }
  return "";
}

fs::path default_probe_cache() {
  if (const char* value = std::getenv("LMRUN_PLUGIN_CACHE"); value != nullptr && value[0]) {
    if (std::strcmp(value, "off") == 0) return {};
    return fs::absolute(value);
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/')
    return fs::path(xdg) / "lmrun" / "plugin-probes.tsv";
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/')
    return fs::path(home) / ".cache" / "lmrun" / "plugin-probes.tsv";
  return {};
}

std::chrono::milliseconds default_probe_timeout() {
  if (const char* value = std::getenv("LMRUN_PLUGIN_PROBE_TIMEOUT"); value != nullptr && value[0]) {
    char* end = nullptr;
    const double seconds = std::strtod(value, &end);
    if (end != value && *end == '\0' && seconds > 0)
      return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
  }
  return std::chrono::seconds(30);
}

}  // namespace lmrun::host
