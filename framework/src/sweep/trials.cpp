// Sweep folders of trials.h: records, statuses, curves, the median rule, ranked tables.
#include "sweep/trials.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>

#include "lmrun/error.h"
#include "util/fs.h"
#include "util/json.h"

namespace fs = std::filesystem;
namespace pt = boost::property_tree;

namespace lmrun::host::sweep {
namespace {

constexpr std::int64_t kFormat = 1;

struct StatusName {
  Status status;
  const char* name;
};
constexpr StatusName kStatusNames[] = {
    {Status::kPending, "pending"},     {Status::kRunning, "running"},
    {Status::kCompleted, "completed"}, {Status::kDiverged, "diverged"},
    {Status::kPruned, "pruned"},       {Status::kFailed, "failed"},
    {Status::kKilled, "killed"}};

toml::table parse_toml(const fs::path& file) {
  try {
    return toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw Error(file.string() + ": " + std::string(e.description()),
                "the sweep writes this file; delete it to let the sweep write it again");
  }
}

// A number from a JSON node ("1.5"; "null" for a value that was not finite).
std::optional<double> number(const pt::ptree& node) {
  const std::string text = node.get_value<std::string>();
  if (text.empty() || text == "null") return std::nullopt;
  try {
    std::size_t used = 0;
    const double value = std::stod(text, &used);
    if (used != text.size()) return std::nullopt;
    return value;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool better(double a, double b, bool maximize) { return maximize ? a > b : a < b; }

std::string fixed(double value, int digits = 4) {
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// A parameter's TOML text as it reads in a table: strings without their quotes.
std::string plain(const std::string& toml_text) {
  if (toml_text.size() >= 2 && toml_text.front() == '"' && toml_text.back() == '"')
    return toml_text.substr(1, toml_text.size() - 2);
  return toml_text;
}

// The TOML text of a parameter as JSON: numbers, booleans and strings carry over; TOML's own
// nan and inf do not exist in JSON.
std::string json_value(const std::string& toml_text) {
  if (toml_text == "nan" || toml_text == "inf" || toml_text == "-inf")
    return json_string(toml_text);
  return toml_text;
}

}  // namespace

const char* status_name(Status status) {
  for (const auto& entry : kStatusNames) {
    if (entry.status == status) return entry.name;
  }
  return "?";
}

bool is_finished(Status status) {
  return status == Status::kCompleted || status == Status::kDiverged || status == Status::kPruned;
}

// ---------------------------------------------------------------------------------------------
// spec.toml and status.toml

std::string to_toml(const SweepRecord& record) {
  toml::table root;
  root.insert("format", kFormat);
  root.insert("fingerprint", record.fingerprint);
  root.insert("name", record.name);
  root.insert("metric", record.metric);
  root.insert("mode", record.maximize ? "max" : "min");
  toml::array trials;
  for (const Trial& trial : record.trials) {
    toml::table params;
    for (const auto& a : trial.assignments) params.insert(a.key, a.value);
    trials.push_back(toml::table{{"index", trial.index}, {"params", std::move(params)}});
  }
  root.insert("trials", std::move(trials));
  std::ostringstream out;
  out << "# The sweep's record, written by `lmrun sweep`: a re-run compares its fingerprint, and\n"
         "# `lmrun sweep --report` reads the trials from here. Parameters are in TOML syntax.\n"
      << root << "\n";
  return out.str();
}

SweepRecord read_sweep_record(const fs::path& sweep_dir) {
  const fs::path file = sweep_dir / "spec.toml";
  if (!fs::is_regular_file(file)) {
    throw Error(sweep_dir.string() + " is not a sweep folder: it has no spec.toml",
                "name the out_dir of a sweep that `lmrun sweep` has started");
  }
  const toml::table root = parse_toml(file);
  SweepRecord record;
  record.fingerprint = root["fingerprint"].value_or(std::string());
  record.name = root["name"].value_or(std::string());
  record.metric = root["metric"].value_or(std::string("val_loss"));
  record.maximize = root["mode"].value_or(std::string("min")) == "max";
  if (root["format"].value_or(std::int64_t{0}) != kFormat || record.fingerprint.empty()) {
    throw Error(file.string() + " is not a sweep record this lmrun reads (format " +
                std::to_string(kFormat) + ")");
  }
  if (const toml::array* trials = root["trials"].as_array()) {
    for (const auto& node : *trials) {
      const toml::table* t = node.as_table();
      if (t == nullptr) continue;
      Trial trial;
      trial.index = (*t)["index"].value_or(std::int64_t{-1});
      if (const toml::table* params = (*t)["params"].as_table()) {
        for (const auto& [key, value] : *params)
          trial.assignments.push_back({std::string(key.str()), value.value_or(std::string())});
      }
      record.trials.push_back(std::move(trial));
    }
  }
  return record;
}

std::string to_toml(const TrialStatus& s) {
  toml::table root;
  root.insert("status", status_name(s.status));
  root.insert("reason", s.reason);
  root.insert("exit_code", std::int64_t{s.exit_code});
  root.insert("host", s.host);
  root.insert("pid", s.pid);
  root.insert("started", s.started);
  root.insert("wall_seconds", s.wall_seconds);
  toml::table params;
  for (const auto& a : s.params) params.insert(a.key, a.value);
  root.insert("params", std::move(params));
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

TrialStatus read_trial_status(const fs::path& trial_dir) {
  TrialStatus s;
  const fs::path file = trial_dir / "status.toml";
  if (!fs::is_regular_file(file)) return s;
  const toml::table root = parse_toml(file);
  const std::string name = root["status"].value_or(std::string());
  bool known = false;
  for (const auto& entry : kStatusNames) {
    if (name == entry.name) {
      s.status = entry.status;
      known = true;
    }
  }
  if (!known) throw Error(file.string() + ": unknown status '" + name + "'");
  s.reason = root["reason"].value_or(std::string());
  s.exit_code = static_cast<int>(root["exit_code"].value_or(std::int64_t{-1}));
  s.host = root["host"].value_or(std::string());
  s.pid = root["pid"].value_or(std::int64_t{0});
  s.started = root["started"].value_or(std::string());
  s.wall_seconds = root["wall_seconds"].value_or(-1.0);
  if (const toml::table* params = root["params"].as_table()) {
    for (const auto& [key, value] : *params)
      s.params.push_back({std::string(key.str()), value.value_or(std::string())});
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Curves and the median rule

Curve read_curve(const fs::path& run_dir, const std::string& metric) {
  Curve curve;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"" + metric + "\"") == std::string::npos) continue;
    pt::ptree record;
    try {
      std::istringstream text(line);
      pt::read_json(text, record);
    } catch (const pt::json_parser_error&) {
      continue;  // a line being written
    }
    const auto step = record.get_optional<std::int64_t>("step");
    // The name as one key: a metric's name may hold a dot, property_tree's path separator.
    const auto value = record.get_child_optional(pt::ptree::path_type(metric, '\0'));
    if (!step || !value) continue;
    // A value that was not finite is written as null: the worst value there is.
    curve[*step] = number(*value).value_or(std::nan(""));
  }
  return curve;
}

std::string median_rule_verdict(const Curve& running, const std::vector<Curve>& finished,
                                const MedianRule& rule, const std::string& metric, bool maximize) {
  if (running.empty()) return "";
  const auto [step, value] = *running.rbegin();
  if (step < rule.grace_steps) return "";
  std::vector<double> others;
  for (const Curve& curve : finished) {
    const auto it = curve.find(step);
    if (it != curve.end() && !std::isnan(it->second)) others.push_back(it->second);
  }
  if (static_cast<std::int64_t>(others.size()) < rule.min_trials || others.empty()) return "";
  std::sort(others.begin(), others.end());
  const std::size_t n = others.size();
  const double median = n % 2 ? others[n / 2] : (others[n / 2 - 1] + others[n / 2]) / 2;
  if (!std::isnan(value) && !better(median, value, maximize)) return "";
  return metric + " " + fixed(value) + " at step " + std::to_string(step) +
         " is worse than the median " + fixed(median) + " of " + std::to_string(n) +
         " finished trials";
}

// ---------------------------------------------------------------------------------------------
// Rows and tables

namespace {

// Every metric name in a run's metrics.jsonl.
std::set<std::string> logged_metrics(const fs::path& run_dir) {
  std::set<std::string> names;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    pt::ptree record;
    try {
      std::istringstream text(line);
      pt::read_json(text, record);
    } catch (const pt::json_parser_error&) {
      continue;
    }
    for (const auto& [name, value] : record) {
      if (name != "step") names.insert(name);
    }
  }
  return names;
}

}  // namespace

std::vector<TrialRow> collect_rows(const fs::path& sweep_dir, const SweepRecord& record) {
  std::vector<TrialRow> rows;
  for (const Trial& trial : record.trials) {
    TrialRow row;
    row.trial = trial;
    const fs::path dir = sweep_dir / trial.name();
    row.status = read_trial_status(dir);
    const Curve curve = read_curve(dir, record.metric);
    for (const auto& [step, value] : curve) {
      if (std::isnan(value)) continue;
      if (!row.best || better(value, *row.best, record.maximize)) {
        row.best = value;
        row.best_step = step;
      }
    }
    if (!curve.empty()) row.last = curve.rbegin()->second;
    const fs::path summary = dir / "summary.json";
    if (row.status.status != Status::kRunning && fs::is_regular_file(summary)) {
      try {
        pt::ptree tree;
        pt::read_json(summary.string(), tree);
        row.steps = tree.get<std::int64_t>("steps", -1);
        if (const auto final_metrics = tree.get_child_optional("final")) {
          for (const auto& [name, node] : *final_metrics) {
            if (const auto value = number(node)) row.final_metrics[name] = *value;
          }
        }
        if (row.final_metrics.count(record.metric)) {
          row.last = row.final_metrics[record.metric];
          // A trial without evaluations of its own (a cross-validation: its folds' means)
          // is ranked by the final value.
          if (!row.best && !std::isnan(*row.last)) row.best = row.last;
        }
      } catch (const pt::ptree_error&) {
        // an unreadable summary: the row keeps what the curve gave
      }
    }
    if (row.steps < 0 && !curve.empty()) row.steps = curve.rbegin()->first;
    rows.push_back(std::move(row));
  }
  return rows;
}

void rank(std::vector<TrialRow>& rows, bool maximize) {
  auto group = [](const TrialRow& row) {
    if (row.status.status == Status::kCompleted && row.best) return 0;
    return row.best ? 1 : 2;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const TrialRow& a, const TrialRow& b) {
    if (group(a) != group(b)) return group(a) < group(b);
    if (a.best && b.best && *a.best != *b.best) return better(*a.best, *b.best, maximize);
    return a.trial.index < b.trial.index;
  });
}

namespace {

std::vector<std::string> parameter_keys(const SweepRecord& record) {
  std::vector<std::string> keys;
  if (!record.trials.empty()) {
    for (const auto& a : record.trials.front().assignments) keys.push_back(a.key);
  }
  return keys;
}

std::vector<std::string> final_keys(const std::vector<TrialRow>& rows) {
  std::set<std::string> keys;
  for (const auto& row : rows) {
    for (const auto& [name, value] : row.final_metrics) keys.insert(name);
  }
  return {keys.begin(), keys.end()};
}

}  // namespace

std::string results_csv(const std::vector<TrialRow>& rows, const SweepRecord& record) {
  const auto params = parameter_keys(record);
  const auto finals = final_keys(rows);
  std::string out = "rank,trial,status";
  for (const auto& key : params) out += "," + csv_field(key);
  out += ",best_" + record.metric + ",best_step,final_" + record.metric;
  for (const auto& key : finals) out += ",final." + csv_field(key);
  out += ",steps,wall_seconds,reason\n";
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const TrialRow& row = rows[r];
    out += std::to_string(r + 1) + "," + row.trial.name() + "," + status_name(row.status.status);
    for (const auto& a : row.trial.assignments) out += "," + csv_field(plain(a.value));
    out += "," + (row.best ? format_float(*row.best) : "") + "," +
           (row.best_step >= 0 ? std::to_string(row.best_step) : "") + "," +
           (row.last ? format_float(*row.last) : "");
    for (const auto& key : finals) {
      const auto it = row.final_metrics.find(key);
      out += "," + (it == row.final_metrics.end() ? "" : format_float(it->second));
    }
    out += "," + (row.steps >= 0 ? std::to_string(row.steps) : "") + "," +
           (row.status.wall_seconds >= 0 ? fixed(row.status.wall_seconds, 1) : "") + "," +
           csv_field(row.status.reason) + "\n";
  }
  return out;
}

std::string results_json(const std::vector<TrialRow>& rows, const SweepRecord& record) {
  std::vector<JsonObject> trials;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const TrialRow& row = rows[r];
    JsonObject params;
    for (const auto& a : row.trial.assignments) params.add_raw(a.key, json_value(a.value));
    JsonObject finals;
    for (const auto& [name, value] : row.final_metrics) finals.add(name, value);
    JsonObject o;
    o.add("rank", static_cast<std::int64_t>(r + 1))
        .add("trial", row.trial.name())
        .add("status", status_name(row.status.status))
        .add("params", std::move(params));
    if (row.best) o.add("best", *row.best).add("best_step", row.best_step);
    if (row.last) o.add("final", *row.last);
    o.add("final_metrics", std::move(finals));
    if (row.steps >= 0) o.add("steps", row.steps);
    if (row.status.wall_seconds >= 0) o.add("wall_seconds", row.status.wall_seconds);
    if (!row.status.reason.empty()) o.add("reason", row.status.reason);
    if (!row.status.host.empty()) o.add("host", row.status.host);
    trials.push_back(std::move(o));
  }
  JsonObject root;
  root.add("format", kFormat)
      .add("name", record.name)
      .add("fingerprint", record.fingerprint)
      .add("metric", record.metric)
      .add("mode", record.maximize ? "max" : "min")
      .add("trials", std::move(trials));
  return root.str(2) + "\n";
}

std::string results_table(const std::vector<TrialRow>& rows, const SweepRecord& record,
                          const fs::path& sweep_dir) {
  const auto params = parameter_keys(record);
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> header = {"rank", "trial", "status"};
  header.insert(header.end(), params.begin(), params.end());
  for (const char* h : {"best", "step", "final", "steps", "time"}) header.push_back(h);
  cells.push_back(header);
  std::map<Status, int> counts;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const TrialRow& row = rows[r];
    ++counts[row.status.status];
    std::vector<std::string> line = {std::to_string(r + 1), row.trial.name(),
                                     status_name(row.status.status)};
    for (const auto& a : row.trial.assignments) line.push_back(plain(a.value));
    line.push_back(row.best ? fixed(*row.best) : "-");
    line.push_back(row.best_step >= 0 ? std::to_string(row.best_step) : "-");
    line.push_back(row.last ? fixed(*row.last) : "-");
    line.push_back(row.steps >= 0 ? std::to_string(row.steps) : "-");
    line.push_back(row.status.wall_seconds >= 0 ? fixed(row.status.wall_seconds, 0) + " s" : "-");
    cells.push_back(std::move(line));
  }
  std::vector<std::size_t> width(header.size(), 0);
  for (const auto& line : cells) {
    for (std::size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  }
  std::string out = "sweep " + record.name + ": " + std::to_string(rows.size()) + " trials (";
  bool first = true;
  for (Status status : {Status::kCompleted, Status::kPruned, Status::kDiverged, Status::kFailed,
                        Status::kKilled, Status::kRunning, Status::kPending}) {
    if (counts[status] == 0) continue;
    out += (first ? "" : ", ") + std::to_string(counts[status]) + " " + status_name(status);
    first = false;
  }
  out += "), ranked by " + std::string(record.maximize ? "highest " : "lowest ") + record.metric +
         "\n";
  for (const auto& line : cells) {
    std::string text;
    for (std::size_t c = 0; c < line.size(); ++c) {
      text += (c ? "  " : "") + line[c] + std::string(width[c] - line[c].size(), ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += "  " + text + "\n";
  }
  for (const auto& row : rows) {
    if (row.status.reason.empty()) continue;
    out += "  " + row.trial.name() + " " + status_name(row.status.status) + ": " +
           row.status.reason + "\n";
  }
  if (!rows.empty() && rows.front().status.status == Status::kCompleted && rows.front().best) {
    const TrialRow& best = rows.front();
    out += "best: " + best.trial.name() + " (" + best.trial.label() + "): " + record.metric + " " +
           fixed(*best.best) +
           (best.best_step >= 0 ? " at step " + std::to_string(best.best_step) : " (final)") +
           " -> " + (sweep_dir / best.trial.name()).string() + "\n";
  } else {
    out += "best: none yet (no trial has completed with " + record.metric + ")\n";
    // A sweep metric that no run logs is a typo, not bad luck: say what they log.
    for (const auto& row : rows) {
      if (row.status.status != Status::kCompleted) continue;
      const auto logged = logged_metrics(sweep_dir / row.trial.name());
      if (logged.count(record.metric)) break;
      std::string names;
      for (const auto& name : logged) names += (names.empty() ? "" : ", ") + name;
      out += "warning: " + row.trial.name() + " completed without logging " + record.metric +
             "; its metrics are " + names + " (set [sweep] metric to one of them)\n";
      break;
    }
  }
  return out;
}

std::string write_results(const fs::path& sweep_dir, const SweepRecord& record) {
  std::vector<TrialRow> rows = collect_rows(sweep_dir, record);
  rank(rows, record.maximize);
  write_file_atomic(sweep_dir / "sweep.csv", results_csv(rows, record));
  write_file_atomic(sweep_dir / "sweep.json", results_json(rows, record));
  return results_table(rows, record, sweep_dir);
}

}  // namespace lmrun::host::sweep
