// Config problems and the error that carries them all.
#include "config/diagnostics.h"

namespace lmrun::host {

std::string abbreviate(const std::string& text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "... (" + std::to_string(text.size()) + " bytes)";
}

std::string Problem::text() const {
  std::string out;
  // A location or key made from the command line (--set KEY=VALUE) can be any length.
  if (!location.empty()) out += abbreviate(location, 120) + ": ";
  if (!key.empty()) out += abbreviate(key) + ": ";
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
