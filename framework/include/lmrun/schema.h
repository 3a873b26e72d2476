// Schema<Options>: a plugin's parameters, declared once by binding the fields of its options
// struct.
//
//   struct TransformerOptions {
//     std::int64_t n_layer = 4;  // the default lives here, and only here
//     double dropout = 0.0;
//     std::string norm = "layernorm";
//   };
//
//   lmrun::Schema<TransformerOptions> schema;
//   schema.add("n_layer", &TransformerOptions::n_layer, "number of decoder blocks").min(1);
//   schema.add("dropout", &TransformerOptions::dropout, "dropout probability").range(0, 1, true);
//   schema.add_enum("norm", &GptConfig::norm, {{"layernorm", Norm::kLayer}, {"rmsnorm",
//   Norm::kRms}}, "normalisation");                  // an enum field, named in TOML
//   schema.check([](const GptConfig& c) { if (c.n_embd % c.n_head) throw lmrun::Error(...); });
//
// specs() is what the host validates an experiment against and what `lmrun describe` prints;
// parse(params) turns Params into a filled options struct. Registry::add (registry.h) wires both,
// so a factory receives the typed struct, never a string lookup.
//
// The schema enforces everything it declares, in parse() too: types, ranges, choices, list sizes,
// then the cross-field rules of check(). The host validates experiments the same way before any
// work, so a factory can trust its options struct and need not check it again.
//
// Field types: bool, int, std::int64_t, double, std::string, std::filesystem::path,
// std::vector<std::int64_t | double | std::string>, std::array<std::int64_t | double, N>, and
// enums through add_enum.
#pragma once

#include <array>
#include <filesystem>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lmrun/params.h"

namespace lmrun {

// How one C++ field type maps to a parameter type and back.
template <class T>
struct FieldTraits;

template <>
struct FieldTraits<bool> {
  static constexpr ParamType kType = ParamType::kBool;
  static Value to_value(bool v) { return v; }
  static bool from_value(const Value& v) { return std::get<bool>(v); }
};
template <>
struct FieldTraits<std::int64_t> {
  static constexpr ParamType kType = ParamType::kInt;
  static Value to_value(std::int64_t v) { return v; }
  static std::int64_t from_value(const Value& v) { return std::get<std::int64_t>(v); }
};
template <>
struct FieldTraits<int> {
  static constexpr ParamType kType = ParamType::kInt;
  static Value to_value(int v) { return static_cast<std::int64_t>(v); }
  static int from_value(const Value& v) { return static_cast<int>(std::get<std::int64_t>(v)); }
};
template <>
struct FieldTraits<double> {
  static constexpr ParamType kType = ParamType::kFloat;
  static Value to_value(double v) { return v; }
  static double from_value(const Value& v) { return std::get<double>(v); }
};
template <>
struct FieldTraits<std::string> {
  static constexpr ParamType kType = ParamType::kString;
  static Value to_value(const std::string& v) { return v; }
  static std::string from_value(const Value& v) { return std::get<std::string>(v); }
};
template <>
struct FieldTraits<std::filesystem::path> {
  static constexpr ParamType kType = ParamType::kPath;
  static Value to_value(const std::filesystem::path& v) { return v.string(); }
  static std::filesystem::path from_value(const Value& v) { return std::get<std::string>(v); }
};
template <>
struct FieldTraits<std::vector<std::int64_t>> {
  static constexpr ParamType kType = ParamType::kIntList;
  static Value to_value(const std::vector<std::int64_t>& v) { return v; }
  static std::vector<std::int64_t> from_value(const Value& v) {
    return std::get<std::vector<std::int64_t>>(v);
  }
};
template <>
struct FieldTraits<std::vector<double>> {
  static constexpr ParamType kType = ParamType::kFloatList;
  static Value to_value(const std::vector<double>& v) { return v; }
  static std::vector<double> from_value(const Value& v) { return std::get<std::vector<double>>(v); }
};
template <>
struct FieldTraits<std::vector<std::string>> {
  static constexpr ParamType kType = ParamType::kStringList;
  static Value to_value(const std::vector<std::string>& v) { return v; }
  static std::vector<std::string> from_value(const Value& v) {
    return std::get<std::vector<std::string>>(v);
  }
};
// Fixed-size lists (betas = [0.9, 0.99]): the size is part of the declaration.
template <class E, std::size_t N>
struct FieldTraits<std::array<E, N>> {
  using List = std::vector<E>;
  static constexpr ParamType kType = FieldTraits<List>::kType;
  static constexpr std::size_t kSize = N;
  static Value to_value(const std::array<E, N>& v) { return List(v.begin(), v.end()); }
  static std::array<E, N> from_value(const Value& v) {
    const List& list = std::get<List>(v);
    std::array<E, N> out{};
    for (std::size_t i = 0; i < N && i < list.size(); ++i) out[i] = list[i];
    return out;
  }
};

namespace detail {
template <class T>
struct FixedSize {
  static constexpr std::size_t kSize = 0;
};
template <class E, std::size_t N>
struct FixedSize<std::array<E, N>> {
  static constexpr std::size_t kSize = N;
};
}  // namespace detail

// Chained refinements of the parameter just added. Valid until the next Schema::add.
class ParamBuilder {
 public:
  explicit ParamBuilder(ParamSpec& spec) : spec_(spec) {}

  ParamBuilder& min(double v, bool exclusive = false) {
    spec_.min = v;
    spec_.min_exclusive = exclusive;
    return *this;
  }
  ParamBuilder& max(double v, bool exclusive = false) {
    spec_.max = v;
    spec_.max_exclusive = exclusive;
    return *this;
  }
  // [lo, hi], or [lo, hi) with max_exclusive.
  ParamBuilder& range(double lo, double hi, bool max_exclusive = false) {
    return min(lo).max(hi, max_exclusive);
  }
  ParamBuilder& choices(std::vector<std::string> values) {
    spec_.choices = std::move(values);
    return *this;
  }
  // No default: the experiment must set it.
  ParamBuilder& required() {
    spec_.default_value.reset();
    return *this;
  }
  // What the parameter means to the host (params.h): a dataset's folds and fold.
  ParamBuilder& role(ParamRole role) {
    spec_.role = role;
    return *this;
  }
  // A path the plugin reads: validation refuses it unless it names a regular file (params.h).
  ParamBuilder& input_file() { return role(ParamRole::kInputFile); }
  // Samplers: the REPL command that sets this parameter (`/temp 0.7`), and whether the sampler
  // goes first in the chain when the command adds it.
  ParamBuilder& shortcut(std::string command, bool first_in_chain = false) {
    spec_.shortcut = std::move(command);
    spec_.shortcut_first = first_in_chain;
    return *this;
  }

 private:
  ParamSpec& spec_;
};

template <class Options>
class Schema {
 public:
  template <class Field>
  ParamBuilder add(std::string name, Field Options::*member, std::string doc) {
    using Traits = FieldTraits<Field>;
    ParamSpec spec;
    spec.name = std::move(name);
    spec.type = Traits::kType;
    spec.doc = std::move(doc);
    spec.default_value = Traits::to_value(Options{}.*member);
    if constexpr (detail::FixedSize<Field>::kSize > 0) spec.size = detail::FixedSize<Field>::kSize;
    specs_.push_back(std::move(spec));
    setters_.push_back([member](Options& options, const Value& value) {
      options.*member = Traits::from_value(value);
    });
    getters_.push_back(
        [member](const Options& options) { return Traits::to_value(options.*member); });
    return ParamBuilder(specs_.back());
  }

  // An enum field: the TOML value is one of the names, which map to the enum's values.
  template <class Enum>
  ParamBuilder add_enum(std::string name, Enum Options::*member,
                        std::vector<std::pair<std::string, Enum>> names, std::string doc) {
    static_assert(std::is_enum_v<Enum>, "add_enum binds an enum field");
    ParamSpec spec;
    spec.name = std::move(name);
    spec.type = ParamType::kString;
    spec.doc = std::move(doc);
    const Enum fallback = Options{}.*member;
    for (const auto& [text, value] : names) {
      spec.choices.push_back(text);
      if (value == fallback) spec.default_value = Value(text);
    }
    if (!spec.default_value) throw Error("schema: the default of '" + spec.name + "' has no name");
    specs_.push_back(std::move(spec));
    setters_.push_back([member, names](Options& options, const Value& value) {
      const std::string& text = std::get<std::string>(value);
      for (const auto& [name_, enum_value] : names) {
        if (name_ == text) options.*member = enum_value;
      }
    });
    getters_.push_back([member, names](const Options& options) -> Value {
      for (const auto& [name_, enum_value] : names) {
        if (enum_value == options.*member) return name_;
      }
      return names.front().first;
    });
    return ParamBuilder(specs_.back());
  }

  const std::vector<ParamSpec>& specs() const { return specs_; }

  // A rule across parameters ("nesterov needs momentum > 0"), run by the host while it validates
  // the experiment, before any work starts. The rule throws lmrun::Error to refuse.
  //   schema.check([](const SgdOptions& o) { if (o.nesterov && o.momentum == 0) throw ...; });
  Schema& check(std::function<void(const Options&)> rule) {
    rules_.push_back(std::move(rule));
    return *this;
  }
  bool has_checks() const { return !rules_.empty(); }
  void run_checks(const Options& options) const {
    for (const auto& rule : rules_) rule(options);
  }

  // Fills an Options from params, a parameter absent from them keeping its default, and checks
  // it all: each value against its declaration (type, range, choices, size), then the rules.
  // Throws lmrun::Error naming the parameter.
  Options parse(const Params& params) const {
    Options options{};
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      const ParamSpec& spec = specs_[i];
      if (params.contains(spec.name)) {
        const Value& value = params.at(spec.name);
        const std::string problem = check_value(value, spec);
        if (!problem.empty()) throw Error(spec.name + ": " + problem);
        try {
          setters_[i](options, value);
        } catch (const std::bad_variant_access&) {
          throw Error("parameter '" + spec.name + "' is not a " + type_name(spec.type));
        }
      } else if (spec.required()) {
        throw Error("required parameter '" + spec.name + "' is not set");
      }
    }
    run_checks(options);
    return options;
  }

  // The reverse of parse: every declared parameter's value in `options`.
  Params to_params(const Options& options) const {
    Params params;
    for (std::size_t i = 0; i < specs_.size(); ++i)
      params.set(specs_[i].name, getters_[i](options));
    return params;
  }

 private:
  std::vector<ParamSpec> specs_;
  std::vector<std::function<void(Options&, const Value&)>> setters_;
  std::vector<std::function<Value(const Options&)>> getters_;
  std::vector<std::function<void(const Options&)>> rules_;
};

}  // namespace lmrun
