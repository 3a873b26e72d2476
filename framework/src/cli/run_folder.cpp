// Run folder ownership (flock), leftovers of interrupted writes, and what a resume may change.
#include "cli/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>

#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include "lmrun/error.h"
#include "util/fs.h"

namespace fs = std::filesystem;

namespace lmrun::host {

RunLock::RunLock(const fs::path& run_dir) {
  const fs::path path = run_dir / ".run.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw Error("cannot open " + path.string() + ": " + std::strerror(errno),
                "check the permissions of the run folder");
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char buffer[32] = {};
    const ssize_t n = ::pread(fd_, buffer, sizeof buffer - 1, 0);
    ::close(fd_);
    fd_ = -1;
    const std::string pid = n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "?";
    throw Error("run folder " + run_dir.string() + " is in use by another lmrun (pid " +
                    pid.substr(0, pid.find('\n')) + ")",
                "wait for it to finish, or stop it (kill PID: it stops at the next step with a "
                "checkpoint), "
                "or choose another folder with --set experiment.out_dir=...");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The pid is for messages only; the lock holds without it.
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

bool create_run_folder(const fs::path& dir) {
  std::error_code ec;
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0755) == 0) return true;
  if (errno == EEXIST && fs::is_directory(dir, ec)) return false;
  if (errno == EEXIST) throw Error("run folder " + dir.string() + " exists and is not a folder");
  throw Error("cannot create run folder " + dir.string() + ": " + std::strerror(errno),
              "check the permissions of its parent folder");
}

int remove_interrupted_writes(const fs::path& run_dir) {
  int removed = 0;
  std::error_code ec;
  auto is_leftover = [](const std::string& name) {
    for (const char* prefix : {".tmp-", ".old-", ".removing-"}) {
      if (name.rfind(prefix, 0) == 0) return true;
    }
    return false;
  };
  for (const auto& entry : fs::directory_iterator(run_dir / "checkpoints", ec)) {
    if (!is_leftover(entry.path().filename().string())) continue;
    fs::remove_all(entry.path(), ec);
    ++removed;
  }
  if (fs::exists(run_dir / ".data.partial", ec)) {
    fs::remove_all(run_dir / ".data.partial", ec);
    ++removed;
  }
  return removed;
}

fs::path run_of_checkpoint(const fs::path& checkpoint) {
  const fs::path folder = fs::absolute(checkpoint).lexically_normal();
  const fs::path parent = (folder.has_filename() ? folder : folder.parent_path()).parent_path();
  if (parent.filename() != "checkpoints") return {};
  return parent.parent_path();
}

namespace {

// The shortest text that reads back as `value` (0.1, not 0.10000000000000001).
std::string shortest(double value) {
  char buffer[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

// Every value of a TOML document by its dotted key; arrays of tables by index
// ("callbacks.1.every_steps"), other arrays as one value.
void flatten(const toml::node& node, const std::string& key,
             std::map<std::string, std::string>& out) {
  if (const toml::table* table = node.as_table()) {
    for (const auto& [name, value] : *table)
      flatten(value, key.empty() ? std::string(name.str()) : key + "." + std::string(name.str()),
              out);
    return;
  }
  if (const toml::array* array = node.as_array(); array && array->is_array_of_tables()) {
    for (std::size_t i = 0; i < array->size(); ++i)
      flatten(*array->get(i), key + "." + std::to_string(i), out);
    return;
  }
  if (const auto* number = node.as_floating_point()) {
    out[key] = shortest(number->get());
    return;
  }
  std::ostringstream text;
  node.visit([&text](const auto& value) { text << value; });
  out[key] = text.str();
}

std::map<std::string, std::string> flat(const std::string& text) {
  std::map<std::string, std::string> out;
  flatten(toml::parse(text), "", out);
  return out;
}

bool may_change(const std::string& key) {
  for (const char* allowed : {"experiment.name", "experiment.out_dir", "train.max_steps",
                              "train.max_time", "train.threads", "train.log_interval"}) {
    if (key == allowed) return true;
  }
  return key == "generate" || key.rfind("generate.", 0) == 0;
}

std::string shown(const std::string& value) {
  return value.size() > 60 ? value.substr(0, 57) + "..." : value;
}

}  // namespace

std::vector<std::string> experiment_changes(const std::string& saved, const std::string& now) {
  std::map<std::string, std::string> before, after;
  try {
    before = flat(saved);
    after = flat(now);
  } catch (const toml::parse_error& e) {
    return {"the checkpoint's config.toml does not parse: " + std::string(e.description())};
  }
  std::vector<std::string> changes;
  for (const auto& [key, value] : before) {
    if (may_change(key)) continue;
    const auto it = after.find(key);
    if (it == after.end()) {
      changes.push_back(key + ": " + shown(value) + " -> (none)");
    } else if (it->second != value) {
      changes.push_back(key + ": " + shown(value) + " -> " + shown(it->second));
    }
  }
  for (const auto& [key, value] : after) {
    if (!may_change(key) && before.count(key) == 0)
      changes.push_back(key + ": (none) -> " + shown(value));
  }
  return changes;
}

std::string finished_run(const fs::path& run_dir, std::int64_t checkpoint_step,
                         const std::string& saved_config, std::int64_t max_steps, double max_time) {
  std::error_code ec;
  const fs::path summary_path = run_dir / "summary.json";
  if (!fs::is_regular_file(summary_path, ec)) return {};
  nlohmann::json summary;
  try {
    summary = nlohmann::json::parse(read_file(summary_path));
  } catch (const nlohmann::json::exception&) {
    return {};  // a damaged summary: the checkpoint decides, and the run rewrites it
  }
  const auto steps = summary.find("steps");
  const auto reason = summary.find("stop_reason");
  if (steps == summary.end() || !steps->is_number_integer() || reason == summary.end() ||
      !reason->is_string()) {
    return {};
  }
  const std::string stop_reason = reason->get<std::string>();
  if (steps->get<std::int64_t>() != checkpoint_step || stop_reason == "interrupted") return {};
  std::int64_t saved_steps = checkpoint_step;
  double saved_time = 0;
  try {
    const toml::table saved = toml::parse(saved_config);
    saved_steps = saved["train"]["max_steps"].value_or(checkpoint_step);
    saved_time = saved["train"]["max_time"].value_or(0.0);
  } catch (const toml::parse_error&) {
  }
  if (max_steps > saved_steps && max_steps > checkpoint_step) return {};
  if (saved_time > 0 && (max_time <= 0 || max_time > saved_time)) return {};
  return "the run finished at step " + std::to_string(checkpoint_step) + " (" + stop_reason + ")";
}

}  // namespace lmrun::host
