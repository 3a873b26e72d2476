// Callback state as text (Callback::save_state / load_state): "key=value" lines under a header
// naming the callback and the format version. The trainer stores the text inside checkpoints.
//
//   callback=early_stopping
//   format=1
//   best=1.8861000000000001
//   wait=2
//
// Numbers are written with format_exact (monitor.h) so that they read back bit-exactly. A key may
// repeat (a list, in order). Values are single lines; the writer refuses a line break.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lmrun::callbacks {

class StateWriter {
 public:
  StateWriter(const std::string& callback, int format);

  void add(const std::string& key, const std::string& value);
  void add(const std::string& key, const char* value) { add(key, std::string(value)); }
  void add(const std::string& key, double value);
  void add(const std::string& key, std::int64_t value);

  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// Reads what StateWriter wrote; every problem is an lmrun::Error that names the callback, says
// what is wrong with which line, and hints at resuming from another checkpoint.
class StateReader {
 public:
  // Checks the header: the callback's name and a format this code reads (`format`).
  StateReader(const std::string& text, const std::string& callback, int format);

  // The one value of `key`; an error when it is missing or repeated.
  std::string text(const std::string& key);
  double number(const std::string& key) { return to_number(text(key), key); }
  std::int64_t integer(const std::string& key) { return to_integer(text(key), key); }
  // Every value of `key`, in order; possibly none.
  std::vector<std::string> all(const std::string& key);

  // Strict conversions of a value (or part of one) read under `key`: the whole text must parse.
  double to_number(const std::string& value, const std::string& key) const;
  std::int64_t to_integer(const std::string& value, const std::string& key) const;

  // Call after reading: an error for any key nobody asked for (state from another version).
  void finish() const;

  // Throws the reader's error for a problem the caller found in a value.
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  std::string callback_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace lmrun::callbacks
