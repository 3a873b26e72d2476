// A small JSON writer for the files lmrun writes (metrics.jsonl, summary.json): numbers stay
// numbers. (Boost.Property_tree's JSON writer quotes every value, so "val_loss": "1.88" would be a
// string.)
//
//   JsonObject o;
//   o.add("step", std::int64_t{250}).add("val_loss", 1.8861).add("stop", "max_steps");
//   std::string line = o.str();          // {"step": 250, "val_loss": 1.8861, "stop": "max_steps"}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmrun::host {

class JsonObject {
 public:
  JsonObject& add(std::string_view key, double value);  // non-finite values are written as null
  JsonObject& add(std::string_view key, std::int64_t value);
  JsonObject& add(std::string_view key, bool value);
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, const std::string& value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, JsonObject value);
  JsonObject& add(std::string_view key, std::vector<JsonObject> values);
  JsonObject& add(std::string_view key, const std::vector<std::string>& values);
  // A value already in JSON syntax (a number, true, a quoted string), written as it is.
  JsonObject& add_raw(std::string_view key, std::string json);

  bool empty() const { return fields_.empty(); }
  // One line, or indented by `indent` spaces per level when indent > 0.
  std::string str(int indent = 0) const;

 private:
  struct Field {
    std::string key;
    std::string scalar;               // JSON text, when the value is a scalar
    std::vector<JsonObject> objects;  // an object (one element) or an array of objects
    bool is_array = false;
    bool is_object = false;
  };
  std::string format(int indent, int depth) const;
  std::vector<Field> fields_;
};

std::string json_string(std::string_view text);  // "quoted, escaped"

}  // namespace lmrun::host
