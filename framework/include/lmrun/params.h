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

namespace lmrun {

enum class ParamType { kBool, kInt, kFloat, kString, kPath, kIntList, kFloatList, kStringList };

// kString and kPath both hold std::string.
using Value = std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>,
                           std::vector<double>, std::vector<std::string>>;

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

namespace detail {

// A double-quoted string valid both as a TOML basic string and as JSON: quotes, backslashes and
// every control character escaped.
inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Shortest text that reads back as the same double, always with a '.' or an exponent so that TOML
// reads it as a float.
inline std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // The shortest digits that read back exactly: fixed from 1e-4 up to 1e15 (0.0003, 100.0,
  // 5203200.0), scientific beyond (1e-8, 2.5e+20).
  char text[64];
  const double magnitude = std::fabs(v);
  const bool fixed = magnitude == 0.0 || (magnitude >= 1e-4 && magnitude < 1e15);
  const auto result =
      std::to_chars(text, text + sizeof text, v,
                    fixed ? std::chars_format::fixed : std::chars_format::scientific);
  std::string s(text, result.ptr);
  if (const auto e = s.find('e'); e != std::string::npos) {
    // "1e-08" -> "1e-8": no zeros at the front of the exponent.
    std::size_t digits = e + 2;
    while (digits + 1 < s.size() && s[digits] == '0') s.erase(digits, 1);
  }
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

}  // namespace detail

namespace detail {
struct ValueFormatter {
  std::string operator()(bool v) const { return v ? "true" : "false"; }
  std::string operator()(std::int64_t v) const { return std::to_string(v); }
  std::string operator()(double v) const { return format_double(v); }
  std::string operator()(const std::string& v) const { return quote(v); }
  template <class T>
  std::string operator()(const std::vector<T>& list) const {
    std::string out = "[";
    for (std::size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + (*this)(list[i]);
    return out + "]";
  }
};
}  // namespace detail

// TOML text for a value: 3, 0.001, true, "text", [0.9, 0.99].
inline std::string format_value(const Value& value) {
  return std::visit(detail::ValueFormatter{}, value);
}

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

  bool required() const { return !default_value.has_value(); }

  // "in [0, 1)", "> 0", "one of: cpu, cuda, auto", "2 elements"; empty when unconstrained.
  std::string constraint() const {
    std::string out;
    auto number = [](double v) {
      return v == std::floor(v) && std::abs(v) < 1e15 ? std::to_string(static_cast<long long>(v))
                                                      : detail::format_double(v);
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
