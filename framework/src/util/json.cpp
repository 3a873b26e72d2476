// JSON text for lmrun's output files: escaping, shortest round-trip numbers, optional indentation.
#include "util/json.h"

#include <cmath>

#include "lmrun/params.h"

namespace lmrun::host {

std::string json_string(std::string_view text) { return quote(text); }

JsonObject& JsonObject::add(std::string_view key, double value) {
  fields_.push_back({std::string(key),
                     std::isfinite(value) ? format_double(value) : "null",
                     {},
                     false,
                     false});
  return *this;
}

JsonObject& JsonObject::add(std::string_view key, std::int64_t value) {
  fields_.push_back({std::string(key), std::to_string(value), {}, false, false});
  return *this;
}

JsonObject& JsonObject::add(std::string_view key, bool value) {
  fields_.push_back({std::string(key), value ? "true" : "false", {}, false, false});
  return *this;
}

JsonObject& JsonObject::add(std::string_view key, std::string_view value) {
  fields_.push_back({std::string(key), json_string(value), {}, false, false});
  return *this;
}

JsonObject& JsonObject::add(std::string_view key, JsonObject value) {
  fields_.push_back({std::string(key), "", {std::move(value)}, false, true});
  return *this;
}

JsonObject& JsonObject::add(std::string_view key, std::vector<JsonObject> values) {
  fields_.push_back({std::string(key), "", std::move(values), true, false});
  return *this;
}

JsonObject& JsonObject::add(std::string_view key, const std::vector<std::string>& values) {
  std::string list = "[";
  for (std::size_t i = 0; i < values.size(); ++i) list += (i ? ", " : "") + json_string(values[i]);
  fields_.push_back({std::string(key), list + "]", {}, false, false});
  return *this;
}

JsonObject& JsonObject::add_raw(std::string_view key, std::string json) {
  fields_.push_back({std::string(key), std::move(json), {}, false, false});
  return *this;
}

std::string JsonObject::format(int indent, int depth) const {
  if (fields_.empty()) return "{}";
  const std::string newline = indent > 0 ? "\n" : "";
  const std::string pad =
      indent > 0 ? std::string(static_cast<std::size_t>(indent * (depth + 1)), ' ') : "";
  const std::string close_pad =
      indent > 0 ? std::string(static_cast<std::size_t>(indent * depth), ' ') : "";
  std::string out = "{" + newline;
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    const Field& f = fields_[i];
    out += pad + json_string(f.key) + ": ";
    if (f.is_object) {
      out += f.objects.front().format(indent, depth + 1);
    } else if (f.is_array) {
      out += "[";
      for (std::size_t j = 0; j < f.objects.size(); ++j) {
        out += (j ? ", " : "") + f.objects[j].format(indent, depth + 1);
      }
      out += "]";
    } else {
      out += f.scalar;
    }
    out += (i + 1 < fields_.size() ? (indent > 0 ? "," : ", ") : "") + newline;
  }
  return out + close_pad + "}";
}

std::string JsonObject::str(int indent) const { return format(indent, 0); }

}  // namespace lmrun::host
