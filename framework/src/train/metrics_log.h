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
  // `columns`: the metric names the CSV starts with, in order, after "step". A record with a name
  // the CSV lacks adds the column (callbacks' own metrics); a resumed run keeps the file's.
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
  void add_columns(const std::vector<std::string>& names);

  std::filesystem::path jsonl_path_;
  std::filesystem::path csv_path_;
  std::vector<std::string> columns_;
  std::ostream& console_;
  bool terminal_ = false;
  bool line_open_ = false;
  bool enabled_ = true;
};

}  // namespace lmrun::host
