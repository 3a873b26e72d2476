// What a run reports as it goes: one line per log step and per evaluation on the console (a
// progress line that rewrites itself on a terminal, plain lines in a log), and the same records
// appended to <run>/metrics.jsonl and <run>/metrics.csv.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "lmrun/common.h"

namespace lmrun::host {

class MetricsLog {
 public:
  // `columns`: every metric name the CSV will hold, in order, after "step".
  // `enabled` false (a data-parallel rank other than 0): writes and prints nothing.
  MetricsLog(const std::filesystem::path& run_dir, std::vector<std::string> columns,
             std::ostream& console, bool enabled = true);

  // Drops records after `step` (resume), keeping the files' earlier lines.
  void truncate_after(std::int64_t step);

  void record(std::int64_t step, const Metrics& values);
  // A console line: rewritten in place on a terminal when `progress`, else printed as a line.
  void print(const std::string& line, bool progress);
  void finish_line();

 private:
  std::filesystem::path jsonl_path_;
  std::filesystem::path csv_path_;
  std::vector<std::string> columns_;
  std::ostream& console_;
  bool terminal_ = false;
  bool line_open_ = false;
  bool enabled_ = true;
};

}  // namespace lmrun::host
