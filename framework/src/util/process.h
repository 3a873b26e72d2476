// Facts about this process that lmrun reports: how long it has been running (start-up cost) and
// its peak resident memory. Linux; elsewhere both report -1.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace lmrun::host {

// Seconds since the kernel started this process (exec included, before any library loaded), at
// the kernel's clock-tick resolution (10 ms); -1 when unknown.
double seconds_since_process_start();

// Peak resident set size so far, in MiB (getrusage's ru_maxrss); -1 when unknown.
double peak_rss_mib();

// This process's environment without the variables named in `remove`, with `extra` ("K=V")
// appended.
std::vector<std::string> environment_with(const std::vector<std::string>& extra,
                                          const std::vector<std::string>& remove = {});

// Starts argv[0] (a path) with `argv` and `env`; stdin from /dev/null and stdout and stderr
// appended to `output` when it is not empty, else inherited. Sets `pid`; returns 0 or an errno.
int spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  const std::filesystem::path& output, pid_t& pid);

}  // namespace lmrun::host
