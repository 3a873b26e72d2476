// The [sweep] table of spec.h: validation, grid and random expansion, shards.
#include "sweep/spec.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "config/diagnostics.h"
#include "config/toml_document.h"
#include "lmrun/util/suggest.h"

namespace lmrun::host::sweep {
namespace {

using Distribution = ParameterSpec::Distribution;

const std::vector<std::string> kSweepKeys = {
    "method", "trials", "seed", "metric", "mode", "parameters", "early_termination"};
const std::vector<std::string> kParameterKeys = {"distribution", "values", "min", "max", "step"};
const std::vector<std::string> kDistributions = {"choice", "uniform", "loguniform", "int"};
const std::vector<std::string> kRuleKeys = {"rule", "grace_steps", "min_trials"};
// The sweep decides these for each trial.
const std::vector<std::string> kReservedKeys = {"experiment.out_dir", "experiment.name"};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// A value's TOML text: numbers as short as round-trips, strings quoted, lists recursively.
std::string toml_text(const toml::node& node) {
  if (const auto* f = node.as_floating_point()) return format_float(f->get());
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* array = node.as_array()) {
    std::string out = "[";
    for (std::size_t k = 0; k < array->size(); ++k) {
      out += (k ? ", " : "") + toml_text(*array->get(k));
    }
    return out + "]";
  }
  if (const auto* s = node.as_string()) return toml_string(s->get());
  return "";  // tables and dates: refused by the caller
}

class Parser {
 public:
  explicit Parser(const toml::table& sweep) : sweep_(sweep) {}

  SweepSpec run() {
    for (const auto& [key, node] : sweep_) {
      const std::string name(key.str());
      if (std::find(kSweepKeys.begin(), kSweepKeys.end(), name) == kSweepKeys.end()) {
        problem(&node, "sweep." + name,
                "unknown key" + did_you_mean(name, kSweepKeys) + "; keys: " + join(kSweepKeys));
      }
    }
    const std::string method = string_or("method", "grid");
    if (method == "random") {
      spec_.method = Method::kRandom;
    } else if (method != "grid") {
      problem(sweep_["method"].node(), "sweep.method",
              "must be \"grid\" or \"random\", not \"" + method + "\"");
    }
    if (spec_.method == Method::kRandom) {
      spec_.trials = integer_or("trials", 0);
      if (!sweep_.contains("trials")) {
        problem(&sweep_, "sweep.trials", "a random sweep needs trials = N");
      } else if (spec_.trials < 1 || spec_.trials > kMaxTrials) {
        problem(sweep_["trials"].node(), "sweep.trials",
                "must be between 1 and " + std::to_string(kMaxTrials));
      }
      const std::int64_t seed = integer_or("seed", 0);
      if (seed < 0) problem(sweep_["seed"].node(), "sweep.seed", "must be >= 0");
      spec_.seed = static_cast<std::uint64_t>(seed);
    } else {
      for (const char* key : {"trials", "seed"}) {
        if (sweep_.contains(key)) {
          problem(sweep_[key].node(), std::string("sweep.") + key,
                  "applies to method = \"random\" only: a grid runs every combination");
        }
      }
    }
    spec_.metric = string_or("metric", "val_loss");
    if (spec_.metric.empty()) problem(sweep_["metric"].node(), "sweep.metric", "is empty");
    const std::string mode = string_or("mode", "min");
    if (mode == "max") {
      spec_.maximize = true;
    } else if (mode != "min") {
      problem(sweep_["mode"].node(), "sweep.mode",
              "must be \"min\" or \"max\", not \"" + mode + "\"");
    }
    parameters();
    early_termination();
    if (spec_.method == Method::kGrid && diagnostics_.empty()) {
      double size = 1;
      for (const auto& p : spec_.parameters) size *= static_cast<double>(grid_values(p).size());
      if (size > static_cast<double>(kMaxTrials)) {
        problem(&sweep_, "sweep.parameters",
                "the grid has " + std::to_string(static_cast<long long>(size)) +
                    " combinations, more than " + std::to_string(kMaxTrials) +
                    "; use method = \"random\"");
      }
    }
    diagnostics_.throw_if_any();
    return spec_;
  }

 private:
  void problem(const toml::node* node, const std::string& key, const std::string& message) {
    diagnostics_.add(node ? location_of(*node) : "", key, message);
  }

  std::string string_or(const char* key, const std::string& fallback) {
    const toml::node* node = sweep_.get(key);
    if (node == nullptr) return fallback;
    if (const auto* s = node->as_string()) return s->get();
    problem(node, std::string("sweep.") + key, "expected a string");
    return fallback;
  }

  std::int64_t integer_or(const char* key, std::int64_t fallback) {
    const toml::node* node = sweep_.get(key);
    if (node == nullptr) return fallback;
    if (const auto* i = node->as_integer()) return i->get();
    problem(node, std::string("sweep.") + key, "expected an integer");
    return fallback;
  }

  void parameters() {
    const toml::node* node = sweep_.get("parameters");
    const toml::table* table = node ? node->as_table() : nullptr;
    if (table == nullptr || table->empty()) {
      problem(node ? node : &sweep_, "sweep.parameters",
              "a sweep needs [sweep.parameters]: dotted experiment keys, each with values or a "
              "distribution, e.g. \"optimizer.lr\" = [1e-3, 3e-3]");
      return;
    }
    for (const auto& [key, value] : *table) {
      ParameterSpec p;
      p.key = std::string(key.str());
      p.where = location_of(value);
      const std::string at = "sweep.parameters.\"" + p.key + "\"";
      if (std::find(kReservedKeys.begin(), kReservedKeys.end(), p.key) != kReservedKeys.end()) {
        problem(&value, at, "the sweep sets this key for each trial; it cannot be swept");
        continue;
      }
      if (p.key.rfind("sweep.", 0) == 0 || p.key.empty() || p.key.find('.') == std::string::npos) {
        problem(&value, at,
                "expected a dotted experiment key (section.key), e.g. \"optimizer.lr\"");
        continue;
      }
      if (const toml::array* list = value.as_array()) {
        values_of(*list, value, at, p);
      } else if (const toml::table* t = value.as_table()) {
        distribution_of(*t, at, p);
      } else {
        problem(&value, at,
                "expected a list of values or a table with a distribution, e.g. { distribution "
                "= \"loguniform\", min = 1e-4, max = 3e-3 }");
        continue;
      }
      spec_.parameters.push_back(std::move(p));
    }
  }

  void values_of(const toml::array& list, const toml::node& at_node, const std::string& at,
                 ParameterSpec& p) {
    p.distribution = Distribution::kValues;
    if (list.empty()) {
      problem(&at_node, at, "the list of values is empty");
      return;
    }
    for (const auto& item : list) {
      const std::string text = toml_text(item);
      if (text.empty()) {
        problem(&item, at, "values must be numbers, strings, booleans or lists");
        return;
      }
      p.values.push_back(text);
    }
  }

  void distribution_of(const toml::table& t, const std::string& at, ParameterSpec& p) {
    for (const auto& [key, node] : t) {
      const std::string name(key.str());
      if (std::find(kParameterKeys.begin(), kParameterKeys.end(), name) == kParameterKeys.end()) {
        problem(
            &node, at + "." + name,
            "unknown key" + did_you_mean(name, kParameterKeys) + "; keys: " + join(kParameterKeys));
      }
    }
    const toml::node* kind_node = t.get("distribution");
    std::string kind = "choice";
    if (kind_node != nullptr) {
      if (const auto* s = kind_node->as_string()) {
        kind = s->get();
      } else {
        problem(kind_node, at + ".distribution", "expected a string");
        return;
      }
    } else if (!t.contains("values")) {
      problem(&t, at, "needs values = [...] or a distribution (" + join(kDistributions) + ")");
      return;
    }
    if (kind == "choice") {
      const toml::node* values = t.get("values");
      if (values == nullptr || !values->is_array()) {
        problem(values ? values : &t, at + ".values", "choice needs values = [...]");
        return;
      }
      for (const char* key : {"min", "max", "step"}) {
        if (t.contains(key)) problem(t.get(key), at + "." + key, "does not apply to choice");
      }
      values_of(*values->as_array(), *values, at + ".values", p);
      return;
    }
    if (t.contains("values")) {
      problem(t.get("values"), at + ".values",
              "applies to a list (choice); " + kind + " takes min and max");
    }
    if (kind == "uniform" || kind == "loguniform") {
      p.distribution = kind == "uniform" ? Distribution::kUniform : Distribution::kLogUniform;
      if (!number(t, "min", at, p.min) || !number(t, "max", at, p.max)) return;
      if (t.contains("step")) problem(t.get("step"), at + ".step", "applies to int only");
      if (p.min > p.max) {
        problem(&t, at,
                "min " + format_float(p.min) + " is greater than max " + format_float(p.max));
      } else if (kind == "loguniform" && p.min <= 0) {
        problem(t.get("min"), at + ".min", "loguniform needs min > 0");
      }
      if (spec_.method == Method::kGrid) {
        problem(&t, at,
                kind +
                    " draws values at random: use method = \"random\", or give a grid values = "
                    "[...]");
      }
      return;
    }
    if (kind == "int") {
      p.distribution = Distribution::kInt;
      if (!integer(t, "min", at, p.int_min) || !integer(t, "max", at, p.int_max)) return;
      if (t.contains("step") && !integer(t, "step", at, p.int_step)) return;
      if (p.int_min > p.int_max) {
        problem(&t, at,
                "min " + std::to_string(p.int_min) + " is greater than max " +
                    std::to_string(p.int_max));
      }
      if (p.int_step < 1) problem(t.get("step"), at + ".step", "must be >= 1");
      return;
    }
    problem(kind_node, at + ".distribution",
            "unknown distribution \"" + kind + "\"" + did_you_mean(kind, kDistributions) +
                "; distributions: " + join(kDistributions));
  }

  bool number(const toml::table& t, const char* key, const std::string& at, double& out) {
    const toml::node* node = t.get(key);
    if (node == nullptr) {
      problem(&t, at, std::string("needs ") + key);
      return false;
    }
    if (const auto* f = node->as_floating_point()) {
      out = f->get();
    } else if (const auto* i = node->as_integer()) {
      out = static_cast<double>(i->get());
    } else {
      problem(node, at + "." + key, "expected a number");
      return false;
    }
    if (!std::isfinite(out)) {
      problem(node, at + "." + key, "must be finite");
      return false;
    }
    return true;
  }

  bool integer(const toml::table& t, const char* key, const std::string& at, std::int64_t& out) {
    const toml::node* node = t.get(key);
    if (node == nullptr) {
      problem(&t, at, std::string("needs ") + key);
      return false;
    }
    if (const auto* i = node->as_integer()) {
      out = i->get();
      return true;
    }
    problem(node, at + "." + key, "expected an integer");
    return false;
  }

  void early_termination() {
    const toml::node* node = sweep_.get("early_termination");
    if (node == nullptr) return;
    const toml::table* t = node->as_table();
    if (t == nullptr) {
      problem(node, "sweep.early_termination", "expected a table: rule, grace_steps, min_trials");
      return;
    }
    for (const auto& [key, value] : *t) {
      const std::string name(key.str());
      if (std::find(kRuleKeys.begin(), kRuleKeys.end(), name) == kRuleKeys.end()) {
        problem(&value, "sweep.early_termination." + name,
                "unknown key" + did_you_mean(name, kRuleKeys) + "; keys: " + join(kRuleKeys));
      }
    }
    const toml::node* rule = t->get("rule");
    const std::string name = rule && rule->is_string() ? rule->as_string()->get() : "";
    if (name == "none") return;
    if (name != "median") {
      problem(rule ? rule : node, "sweep.early_termination.rule",
              "must be \"median\" (or \"none\")");
      return;
    }
    MedianRule r;
    const std::string at = "sweep.early_termination";
    if (t->contains("grace_steps") && !integer(*t, "grace_steps", at, r.grace_steps)) return;
    if (t->contains("min_trials") && !integer(*t, "min_trials", at, r.min_trials)) return;
    if (r.grace_steps < 0) problem(t->get("grace_steps"), at + ".grace_steps", "must be >= 0");
    if (r.min_trials < 1) problem(t->get("min_trials"), at + ".min_trials", "must be >= 1");
    spec_.median_rule = r;
  }

 public:
  static std::vector<std::string> grid_values(const ParameterSpec& p) {
    if (p.distribution == Distribution::kValues) return p.values;
    std::vector<std::string> out;
    for (std::int64_t v = p.int_min; v <= p.int_max; v += p.int_step) {
      out.push_back(std::to_string(v));
      if (out.size() > static_cast<std::size_t>(kMaxTrials)) break;
    }
    return out;
  }

 private:
  const toml::table& sweep_;
  SweepSpec spec_;
  Diagnostics diagnostics_;
};

// SplitMix64: a small, well-mixed generator whose output is the same on every platform (the
// standard library's distributions are not).
std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t fnv(const std::string& text) {
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

// A uniform double in [0, 1) from the stream of (seed, trial, key).
double draw(std::uint64_t seed, std::int64_t trial, const std::string& key) {
  std::uint64_t state = seed;
  state = splitmix(state) ^ static_cast<std::uint64_t>(trial);
  state = splitmix(state) ^ fnv(key);
  return static_cast<double>(splitmix(state) >> 11) * 0x1.0p-53;
}

// Drawn reals keep 4 significant digits: 0.0009908, not 0.0009907928240421827. The draw is then
// a point of a fine grid (steps of 0.1% of the value), which no sweep of this size can tell from
// the continuous distribution, and the tables and folder records stay readable.
std::string rounded(double value, double min, double max) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", value);
  return format_float(std::clamp(std::strtod(buffer, nullptr), min, max));
}

std::string random_value(const ParameterSpec& p, double u) {
  switch (p.distribution) {
    case Distribution::kValues: {
      const auto n = static_cast<double>(p.values.size());
      return p.values[std::min(p.values.size() - 1, static_cast<std::size_t>(u * n))];
    }
    case Distribution::kUniform:
      return rounded(p.min + u * (p.max - p.min), p.min, p.max);
    case Distribution::kLogUniform:
      return rounded(std::exp(std::log(p.min) + u * (std::log(p.max) - std::log(p.min))), p.min,
                     p.max);
    case Distribution::kInt: {
      const std::int64_t count = (p.int_max - p.int_min) / p.int_step + 1;
      const auto pick =
          std::min(count - 1, static_cast<std::int64_t>(u * static_cast<double>(count)));
      return std::to_string(p.int_min + pick * p.int_step);
    }
  }
  return "";
}

}  // namespace

std::string Trial::name() const {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "trial-%04lld", static_cast<long long>(index));
  return buffer;
}

std::string Trial::label() const {
  std::string out;
  for (const auto& a : assignments) out += (out.empty() ? "" : " ") + a.key + "=" + a.value;
  return out;
}

SweepSpec parse_sweep(const toml::table& sweep) { return Parser(sweep).run(); }

std::vector<Trial> expand(const SweepSpec& spec) {
  std::vector<Trial> trials;
  if (spec.method == Method::kRandom) {
    for (std::int64_t i = 0; i < spec.trials; ++i) {
      Trial trial;
      trial.index = i;
      for (const auto& p : spec.parameters)
        trial.assignments.push_back({p.key, random_value(p, draw(spec.seed, i, p.key))});
      trials.push_back(std::move(trial));
    }
    return trials;
  }
  std::vector<std::vector<std::string>> values;
  for (const auto& p : spec.parameters) values.push_back(Parser::grid_values(p));
  std::vector<std::size_t> at(values.size(), 0);
  for (std::int64_t i = 0;; ++i) {
    Trial trial;
    trial.index = i;
    for (std::size_t k = 0; k < values.size(); ++k)
      trial.assignments.push_back({spec.parameters[k].key, values[k][at[k]]});
    trials.push_back(std::move(trial));
    // Odometer: the last parameter turns fastest.
    std::size_t k = values.size();
    while (k > 0 && ++at[k - 1] == values[k - 1].size()) at[--k] = 0;
    if (k == 0) break;
  }
  return trials;
}

Shard parse_shard(const std::string& text) {
  const std::size_t slash = text.find('/');
  Shard shard;
  bool ok = slash != std::string::npos && slash > 0 && slash + 1 < text.size();
  if (ok) {
    try {
      std::size_t used_i = 0, used_n = 0;
      shard.index = std::stoll(text.substr(0, slash), &used_i);
      shard.count = std::stoll(text.substr(slash + 1), &used_n);
      ok = used_i == slash && used_n == text.size() - slash - 1;
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok || shard.count < 1 || shard.index < 0 || shard.index >= shard.count) {
    throw Error("--shard " + text + ": expected I/N with 0 <= I < N, e.g. --shard 0/4",
                "under a Slurm array of N tasks (--array=0-N-1): --shard $SLURM_ARRAY_TASK_ID/N");
  }
  return shard;
}

std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string format_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  std::string text = buffer;
  // TOML reads 3 as an integer: a float keeps its point.
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

}  // namespace lmrun::host::sweep
