// Config problems and the error that carries them all.
#include "config/diagnostics.h"

namespace lmrun::host {

std::string Problem::text() const {
  std::string out;
  if (!location.empty()) out += location + ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

namespace {
std::string join_problems(const std::vector<Problem>& problems) {
  std::string out = problems.size() == 1
                        ? "invalid experiment:"
                        : "invalid experiment (" + std::to_string(problems.size()) + " problems):";
  for (const auto& problem : problems) out += "\n  " + problem.text();
  return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<Problem> problems)
    : Error(join_problems(problems)), problems_(std::move(problems)) {}

void Diagnostics::throw_if_any() const {
  if (!problems_.empty()) throw ConfigError(problems_);
}

}  // namespace lmrun::host
