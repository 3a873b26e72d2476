// Plugin parameters: what a plugin declares (ParamSpec) and what it is given (Params).
//
// A plugin does not read TOML. It declares its parameters through a Schema (schema.h), the host
// validates the experiment against every declaration before any work starts, and the plugin's
// factory receives a Params holding exactly the declared names, each already converted to the
// declared type, range-checked, and defaulted. Paths arrive absolute (a relative path resolves
// against the working directory); an empty path stays empty, meaning "not given".
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "lmrun/error.h"
#include "lmrun/util/format.h"
#include "lmrun/util/suggest.h"

namespace lmrun {

enum class ParamType { kBool, kInt, kFloat, kString, kPath, kIntList, kFloatList, kStringList };

inline const char* type_name(ParamType type) {
  switch (type) {
    case ParamType::kBool:
      return "bool";
    case ParamType::kInt:
      return "int";
    case ParamType::kFloat:
      return "float";
    case ParamType::kString:
      return "string";
    case ParamType::kPath:
      return "path";
    case ParamType::kIntList:
      return "int list";
    case ParamType::kFloatList:
      return "float list";
    case ParamType::kStringList:
      return "string list";
  }
  return "?";
}

inline bool is_list(ParamType type) {
  return type == ParamType::kIntList || type == ParamType::kFloatList ||
         type == ParamType::kStringList;
}

inline bool is_numeric(ParamType type) {
  return type == ParamType::kInt || type == ParamType::kFloat || type == ParamType::kIntList ||
         type == ParamType::kFloatList;
}

// What a parameter means to the host, for the few capabilities that are declared on a parameter
// rather than called on an object (the object does not exist yet when the host needs them).
enum class ParamRole {
  kNone,
  // Dataset: k-fold cross-validation. An int `folds` (0 or 1: off) and an int `fold` (which one
  // is held out); `lmrun FILE.toml` with folds >= 2 runs one run per fold, setting the fold.
  kFolds,
  kFold,
  // A path parameter naming a file the plugin reads (a dataset's text, a tokenizer's
  // vocabulary). Validation (`lmrun check` and every run) refuses one that is not a regular file:
  // missing, a folder, a FIFO. An empty path (not given) passes. (API 8.1)
  kInputFile,
};

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kString;
  std::string doc;                     // one line, shown by `lmrun describe`
  std::optional<Value> default_value;  // empty: the parameter is required
  // Numeric bounds, for lists on every element. Inclusive unless the *_exclusive flag is set.
  std::optional<double> min;
  std::optional<double> max;
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::vector<std::string> choices;  // strings and string lists only; empty means any value
  std::optional<std::size_t> size;   // lists only: the exact number of elements
  ParamRole role = ParamRole::kNone;
  // Sampler parameters: a short command of `lmrun generate --interactive` that sets this one
  // (`/temp 0.7` sets temperature's value); the sampler joins the chain when absent, first in it
  // when `shortcut_first`, else last.
  std::string shortcut;
  bool shortcut_first = false;

  bool required() const { return !default_value.has_value(); }

  // "in [0, 1)", "> 0", "one of: cpu, cuda, auto", "2 elements"; empty when unconstrained.
  std::string constraint() const {
    std::string out;
    auto number = [](double v) {
      return v == std::floor(v) && std::abs(v) < 1e15 ? std::to_string(static_cast<long long>(v))
                                                      : format_double(v);
    };
    if (min && max) {
      out = std::string("in ") + (min_exclusive ? "(" : "[") + number(*min) + ", " + number(*max) +
            (max_exclusive ? ")" : "]");
    } else if (min) {
      out = (min_exclusive ? "> " : ">= ") + number(*min);
    } else if (max) {
      out = (max_exclusive ? "< " : "<= ") + number(*max);
    }
    if (!choices.empty()) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
      out += (out.empty() ? "" : "; ") + std::string("one of: ") + list;
    }
    if (size) {
      out += (out.empty() ? "" : "; ") + std::to_string(*size) + " elements";
    }
    return out;
  }
};

namespace detail {

// `text`: the value as the user wrote it (an integer without ".0").
inline std::string range_problem(double v, const std::string& text, const ParamSpec& spec) {
  if (std::isnan(v)) return "nan is not a number";
  const bool low = spec.min && (spec.min_exclusive ? v <= *spec.min : v < *spec.min);
  const bool high = spec.max && (spec.max_exclusive ? v >= *spec.max : v > *spec.max);
  if (low || high) return text + " is out of range: expected " + spec.constraint();
  return "";
}

inline std::string choice_problem(const std::string& v, const ParamSpec& spec) {
  if (spec.choices.empty()) return "";
  for (const auto& choice : spec.choices) {
    if (v == choice) return "";
  }
  return quote(v) + " is not allowed: expected one of " + join(spec.choices) +
         did_you_mean(v, spec.choices);
}

}  // namespace detail

// "" when `value` satisfies the spec's range, choices and size; otherwise why not ("5 is out of
// range: expected in [0, 1]"). The host checks every experiment value with it, and Schema::parse
// checks again, so a factory never sees a value its declaration forbids.
inline std::string check_value(const Value& value, const ParamSpec& spec) {
  if (const auto* v = std::get_if<std::int64_t>(&value))
    return detail::range_problem(static_cast<double>(*v), std::to_string(*v), spec);
  if (const auto* v = std::get_if<double>(&value))
    return detail::range_problem(*v, format_double(*v), spec);
  if (const auto* v = std::get_if<std::string>(&value)) return detail::choice_problem(*v, spec);
  auto check_list = [&](const auto& list) -> std::string {
    if (spec.size && list.size() != *spec.size) {
      return "expected " + std::to_string(*spec.size) + " elements, got " +
             std::to_string(list.size());
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
      std::string problem = check_value(Value(list[i]), spec);
      if (!problem.empty()) return "element " + std::to_string(i) + ": " + problem;
    }
    return "";
  };
  if (const auto* v = std::get_if<std::vector<std::int64_t>>(&value)) return check_list(*v);
  if (const auto* v = std::get_if<std::vector<double>>(&value)) return check_list(*v);
  if (const auto* v = std::get_if<std::vector<std::string>>(&value)) return check_list(*v);
  return "";
}

// The validated values of one plugin section, keyed by parameter name.
class Params {
 public:
  void set(const std::string& name, Value value) { values_[name] = std::move(value); }
  bool contains(std::string_view name) const { return values_.count(std::string(name)) > 0; }
  const std::map<std::string, Value>& values() const { return values_; }

  const Value& at(std::string_view name) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end()) throw Error("parameter '" + std::string(name) + "' is not set");
    return it->second;
  }

  template <class T>
  const T& get(std::string_view name) const {
    const T* v = std::get_if<T>(&at(name));
    if (v == nullptr) throw Error("parameter '" + std::string(name) + "' has another type");
    return *v;
  }

 private:
  std::map<std::string, Value> values_;
};

}  // namespace lmrun
