// Console lines and the metrics.jsonl / metrics.csv files of a run.
#include "train/metrics_log.h"

#include <unistd.h>

#include <iostream>
#include <sstream>

#include "lmrun/params.h"
#include "lmrun/suggest.h"
#include "util/fs.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace lmrun::host {

MetricsLog::MetricsLog(const fs::path& run_dir, std::vector<std::string> columns,
                       std::ostream& console, bool enabled)
    : jsonl_path_(run_dir / "metrics.jsonl"),
      csv_path_(run_dir / "metrics.csv"),
      columns_(std::move(columns)),
      console_(console),
      terminal_(&console == &std::cout && ::isatty(STDOUT_FILENO)),
      enabled_(enabled) {
  if (!enabled_) return;
  if (!fs::exists(csv_path_)) write_file_atomic(csv_path_, "step," + join(columns_, ",") + "\n");
  if (!fs::exists(jsonl_path_)) write_file_atomic(jsonl_path_, "");
}

namespace {
// Lines whose step (first CSV field, or "step" in JSON) is at most `step`; headers kept.
std::string keep_until(const std::string& text, std::int64_t step, bool json) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    std::int64_t line_step = -1;
    try {
      const std::size_t at = json ? line.find("\"step\": ") : 0;
      if (at != std::string::npos) line_step = std::stoll(line.substr(json ? at + 8 : 0));
    } catch (...) {
      line_step = -1;  // the CSV header
    }
    if (line_step <= step) out += line + "\n";
  }
  return out;
}
}  // namespace

void MetricsLog::truncate_after(std::int64_t step) {
  if (!enabled_) return;
  write_file_atomic(jsonl_path_, keep_until(read_file(jsonl_path_), step, true));
  write_file_atomic(csv_path_, keep_until(read_file(csv_path_), step, false));
}

void MetricsLog::record(std::int64_t step, const Metrics& values) {
  if (!enabled_) return;
  JsonObject json;
  json.add("step", step);
  for (const auto& [name, value] : values) json.add(name, value);
  std::ofstream(jsonl_path_, std::ios::app) << json.str() << "\n";

  std::string csv = std::to_string(step);
  for (const auto& column : columns_) {
    auto it = values.find(column);
    csv += ",";
    if (it != values.end()) csv += detail::format_double(it->second);
  }
  std::ofstream(csv_path_, std::ios::app) << csv << "\n";
}

void MetricsLog::print(const std::string& line, bool progress) {
  if (!enabled_) return;
  if (terminal_ && progress) {
    console_ << "\r\033[K" << line << std::flush;
    line_open_ = true;
    return;
  }
  if (line_open_) console_ << "\r\033[K";
  console_ << line << std::endl;
  line_open_ = false;
}

void MetricsLog::finish_line() {
  if (!enabled_) return;
  if (line_open_) console_ << "\n";
  line_open_ = false;
}

}  // namespace lmrun::host
