// A sweep: the [sweep] table of an experiment file, turned into a list of trials.
//
//   [sweep]
//   method = "random"          # or "grid": every combination of the parameters' values
//   trials = 8                 # random only
//   seed = 0                   # random only
//   metric = "val_loss"        # what ranks the trials (and what early termination watches)
//   mode = "min"               # or "max"
//   [sweep.parameters]         # any dotted key of the experiment
//   "optimizer.lr" = { distribution = "loguniform", min = 1e-4, max = 3e-3 }
//   "model.dropout" = { distribution = "uniform", min = 0.0, max = 0.2 }
//   "model.n_embd" = { distribution = "int", min = 64, max = 256, step = 64 }
//   "model.n_layer" = [2, 4]   # a list: every value in a grid, one at random ("choice")
//   [sweep.early_termination]  # off unless present
//   rule = "median"
//   grace_steps = 250          # no trial stops at an evaluation before this step
//   min_trials = 3             # finished trials needed at a step before the rule applies
//
//   SweepSpec spec = parse_sweep(*doc.root["sweep"].as_table());   // throws ConfigError
//   std::vector<Trial> trials = expand(spec);
//
// The trial list is a pure function of the table: a grid varies the last key (in sorted order)
// fastest; trial i of a random sweep draws each parameter from its own stream, seeded by (seed,
// i, key), so a trial's values never depend on the number of trials or on the other parameters.
// Drawn reals keep 4 significant digits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace lmrun::host::sweep {

enum class Method { kGrid, kRandom };

struct ParameterSpec {
  enum class Distribution { kValues, kUniform, kLogUniform, kInt };
  std::string key;    // dotted experiment key: "optimizer.lr", "callbacks.0.patience"
  std::string where;  // file:line:column of its definition
  Distribution distribution = Distribution::kValues;
  std::vector<std::string> values;                      // kValues: each value in TOML syntax
  double min = 0, max = 0;                              // kUniform, kLogUniform
  std::int64_t int_min = 0, int_max = 0, int_step = 1;  // kInt: min, min + step, ... <= max
};

struct MedianRule {
  std::int64_t grace_steps = 0;  // evaluations before this step never stop a trial
  std::int64_t min_trials = 3;   // finished trials with a value at the step, at least
};

struct SweepSpec {
  Method method = Method::kGrid;
  std::int64_t trials = 0;  // random: how many
  std::uint64_t seed = 0;   // random: the draws' seed
  std::string metric = "val_loss";
  bool maximize = false;                  // mode = "max"
  std::vector<ParameterSpec> parameters;  // sorted by key
  std::optional<MedianRule> median_rule;  // [sweep.early_termination] rule = "median"
};

struct Assignment {
  std::string key;
  std::string value;  // TOML syntax: 0.001, 4, "gelu", true
};

struct Trial {
  std::int64_t index = 0;
  std::vector<Assignment> assignments;  // one per parameter, in the spec's order

  std::string name() const;   // "trial-0007"
  std::string label() const;  // "model.n_layer=2 optimizer.lr=0.001"
};

// The [sweep] table validated; throws ConfigError listing every problem with its location.
SweepSpec parse_sweep(const toml::table& sweep);

// Every trial of the sweep, by index. A grid of more than kMaxTrials is refused when parsing.
std::vector<Trial> expand(const SweepSpec& spec);
inline constexpr std::int64_t kMaxTrials = 100000;

// `--shard i/n`: trials whose index is i modulo n, so n shards cover every trial exactly once.
struct Shard {
  std::int64_t index = 0;
  std::int64_t count = 1;
  bool contains(const Trial& trial) const { return trial.index % count == index; }
};
Shard parse_shard(const std::string& text);  // "2/8"; throws Error

// A string in TOML syntax: quoted, with quotes, backslashes and control characters escaped.
std::string toml_string(const std::string& text);

// A number in TOML syntax, as short as round-trips exactly (1e-07, 0.25, 3.0).
std::string format_float(double value);

}  // namespace lmrun::host::sweep
