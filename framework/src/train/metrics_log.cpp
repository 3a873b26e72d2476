// Console lines and the metrics.jsonl / metrics.csv files of a run.
#include "train/metrics_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <sstream>

#include "lmrun/params.h"
#include "lmrun/util/suggest.h"
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
  if (!fs::exists(jsonl_path_)) write_file_atomic(jsonl_path_, "");
  if (!fs::exists(csv_path_)) {
    write_file_atomic(csv_path_, "step," + join(columns_, ",") + "\n");
    return;
  }
  // A resumed run: the file's columns first, as they are, then any this run adds.
  std::vector<std::string> wanted;
  wanted.swap(columns_);
  std::istringstream text(read_file(csv_path_));
  std::string header;
  std::getline(text, header);
  std::istringstream fields(header);
  for (std::string field; std::getline(fields, field, ',');) {
    if (field != "step") columns_.push_back(field);
  }
  add_columns(wanted);
}

void MetricsLog::add_columns(const std::vector<std::string>& names) {
  std::size_t added = 0;
  for (const auto& name : names) {
    if (name == "step" || std::find(columns_.begin(), columns_.end(), name) != columns_.end())
      continue;
    columns_.push_back(name);
    ++added;
  }
  if (added == 0) return;
  // The header gains the columns and every earlier row empty cells for them, so that each row
  // has as many fields as the header.
  std::istringstream in(read_file(csv_path_));
  std::string line, out = "step," + join(columns_, ",") + "\n";
  std::getline(in, line);  // the old header
  while (std::getline(in, line)) out += line + std::string(added, ',') + "\n";
  write_file_atomic(csv_path_, out);
}

namespace {

// Appends `line` to `path`, checked: a full disk is an error naming the file, not a lost record.
void append_line(const fs::path& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
  const std::string text = line + "\n";
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string reason = n < 0 ? std::strerror(errno) : "nothing written";
      ::close(fd);
      throw Error("cannot write " + path.string() + ": " + reason,
                  "free space on the disk, then resume the run from its last checkpoint");
    }
    written += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
}

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
  append_line(jsonl_path_, json.str());

  std::vector<std::string> names;
  for (const auto& [name, value] : values) names.push_back(name);
  add_columns(names);
  std::string csv = std::to_string(step);
  for (const auto& column : columns_) {
    auto it = values.find(column);
    csv += ",";
    if (it != values.end()) csv += format_double(it->second);
  }
  append_line(csv_path_, csv);
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
