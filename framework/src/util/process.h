// Facts about this process that lmrun reports: how long it has been running (start-up cost) and
// its peak resident memory. Linux; elsewhere both report -1.
#pragma once

namespace lmrun::host {

// Seconds since the kernel started this process (exec included, before any library loaded), at
// the kernel's clock-tick resolution (10 ms); -1 when unknown.
double seconds_since_process_start();

// Peak resident set size so far, in MiB (getrusage's ru_maxrss); -1 when unknown.
double peak_rss_mib();

}  // namespace lmrun::host
