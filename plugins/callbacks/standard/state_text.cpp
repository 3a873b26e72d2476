// Callback state as "key=value" lines, read strictly: a damaged or foreign state is an error naming
// the line, never a silently fresh callback.
#include "state_text.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "lmrun/error.h"
#include "monitor.h"

namespace lmrun::callbacks {
namespace {

const char* const kHint =
    "the callback state stored in the checkpoint is damaged or from another lmrun version; "
    "resume from another checkpoint, or start the run afresh";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writing

StateWriter::StateWriter(const std::string& callback, int format) {
  add("callback", callback);
  add("format", static_cast<std::int64_t>(format));
}

void StateWriter::add(const std::string& key, const std::string& value) {
  if (value.find_first_of("\r\n") != std::string::npos) {
    throw Error("callback state: the value of '" + key + "' has a line break: " + value);
  }
  text_ += key + "=" + value + "\n";
}

void StateWriter::add(const std::string& key, double value) { add(key, format_exact(value)); }

void StateWriter::add(const std::string& key, std::int64_t value) {
  add(key, std::to_string(value));
}

// ---------------------------------------------------------------------------------------------
// Reading

StateReader::StateReader(const std::string& text, const std::string& callback, int format)
    : callback_(callback) {
  if (text.empty()) fail("it is empty");
  std::size_t start = 0;
  int line_number = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    const std::size_t equals = line.find('=');
    if (equals == std::string::npos || equals == 0) {
      fail("line " + std::to_string(line_number) + " is not key=value: '" + line + "'");
    }
    values_[line.substr(0, equals)].push_back(line.substr(equals + 1));
  }
  const std::string owner = this->text("callback");
  if (owner != callback) fail("it is the state of '" + owner + "', not of '" + callback + "'");
  const std::int64_t found = integer("format");
  if (found != format) {
    fail("it has format " + std::to_string(found) + " and this plugin reads format " +
         std::to_string(format) + ": the state is " + (found > format ? "newer" : "older") +
         " than the plugin");
  }
}

std::string StateReader::text(const std::string& key) {
  auto it = values_.find(key);
  if (it == values_.end()) fail("'" + key + "' is missing");
  if (it->second.size() != 1)
    fail("'" + key + "' appears " + std::to_string(it->second.size()) + " times");
  std::string value = it->second.front();
  values_.erase(it);
  return value;
}

std::vector<std::string> StateReader::all(const std::string& key) {
  auto it = values_.find(key);
  if (it == values_.end()) return {};
  std::vector<std::string> values = std::move(it->second);
  values_.erase(it);
  return values;
}

double StateReader::to_number(const std::string& value, const std::string& key) const {
  char* end = nullptr;
  const double v = value.empty() || std::isspace(static_cast<unsigned char>(value[0]))
                       ? 0.0
                       : std::strtod(value.c_str(), &end);
  if (end == nullptr || *end != '\0') fail("'" + key + "' is not a number: '" + value + "'");
  return v;
}

std::int64_t StateReader::to_integer(const std::string& value, const std::string& key) const {
  char* end = nullptr;
  errno = 0;
  const long long v = value.empty() || std::isspace(static_cast<unsigned char>(value[0]))
                          ? 0
                          : std::strtoll(value.c_str(), &end, 10);
  if (end == nullptr || *end != '\0' || errno == ERANGE) {
    fail("'" + key + "' is not an integer: '" + value + "'");
  }
  return static_cast<std::int64_t>(v);
}

void StateReader::finish() const {
  if (!values_.empty()) fail("it has an unknown key '" + values_.begin()->first + "'");
}

void StateReader::fail(const std::string& problem) const {
  throw Error(callback_ + ": cannot read the saved callback state: " + problem, kHint);
}

}  // namespace lmrun::callbacks
