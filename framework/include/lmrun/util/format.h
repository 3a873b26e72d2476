// Text for values, as TOML and JSON both read it: quoted strings, shortest round-trip numbers,
// lists. The resolved config, `lmrun describe`, metrics files and error messages use these.
//
//   lmrun::quote("a\"b")          -> "\"a\\\"b\""
//   lmrun::format_double(0.1)     -> "0.1";  format_double(1.0) -> "1.0"
//   lmrun::format_value(Value(std::vector<double>{0.9, 0.99}))  -> "[0.9, 0.99]"
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace lmrun {

// A parameter's value: kString and kPath both hold std::string (params.h).
using Value = std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>,
                           std::vector<double>, std::vector<std::string>>;

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

}  // namespace lmrun
