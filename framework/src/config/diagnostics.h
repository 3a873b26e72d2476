// Config problems, collected so that one run of `lmrun check` reports every one of them.
#pragma once

#include <string>
#include <vector>

#include "lmrun/error.h"

namespace lmrun::host {

struct Problem {
  std::string location;  // "experiments/gpt_tiny.toml:12:1", or the file alone; may be empty
  std::string key;       // "model.n_layer"; may be empty
  std::string message;

  std::string text() const;  // "file:12:1: model.n_layer: message"
};

// Thrown when an experiment is invalid; what() lists every problem, one per line.
class ConfigError : public Error {
 public:
  explicit ConfigError(std::vector<Problem> problems);
  const std::vector<Problem>& problems() const { return problems_; }

 private:
  std::vector<Problem> problems_;
};

// `text` as an error message echoes it: whole up to `limit` bytes, else its first `limit` and
// "... (N bytes)" (a megabyte-long --set value is not printed back whole). Cuts between UTF-8
// characters.
std::string abbreviate(const std::string& text, std::size_t limit = 80);

class Diagnostics {
 public:
  void add(std::string location, std::string key, std::string message) {
    problems_.push_back(Problem{std::move(location), std::move(key), std::move(message)});
  }
  bool empty() const { return problems_.empty(); }
  const std::vector<Problem>& problems() const { return problems_; }
  // Throws ConfigError when there is any problem.
  void throw_if_any() const;

 private:
  std::vector<Problem> problems_;
};

}  // namespace lmrun::host
