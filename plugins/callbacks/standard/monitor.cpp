// The monitored metric shared by early_stopping and checkpoint: the check at train start that it
// exists (with a did-you-mean, as the host does for keys), the one comparison, the formats.
#include "monitor.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "lmrun/error.h"
#include "lmrun/util/suggest.h"

namespace lmrun::callbacks {
namespace {

std::string format(const char* pattern, double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, v);
  return buffer;
}

}  // namespace

Mode parse_mode(const std::string& text) {
  if (text == "min") return Mode::kMin;
  if (text == "max") return Mode::kMax;
  throw Error("mode = \"" + text + "\" is not one of: min, max", "set mode to \"min\" or \"max\"");
}

const char* mode_name(Mode mode) { return mode == Mode::kMin ? "min" : "max"; }

Monitor::Monitor(std::string owner, std::string metric, Mode mode, double min_delta)
    : owner_(std::move(owner)), metric_(std::move(metric)), mode_(mode), min_delta_(min_delta) {}

void Monitor::check_reported(const TrainState& planned) const {
  std::vector<std::string> eval_metrics = planned.eval_metrics;
  for (const auto& name : planned.step_metrics) {
    if (name != "loss" && name != "lr") eval_metrics.push_back(name);  // a callback's
  }
  if (std::find(eval_metrics.begin(), eval_metrics.end(), metric_) != eval_metrics.end()) return;
  const std::string what = owner_ + ": monitor '" + metric_ + "' is not a metric this run reports";
  if (eval_metrics.empty()) {
    throw Error(what + "; its evaluations report no metrics",
                "turn evaluation on in [train], or remove this callback");
  }
  const std::string suggestion = lmrun::nearest(metric_, eval_metrics);
  throw Error(what + "; it reports: " + join(eval_metrics) +
                  (suggestion.empty() ? "" : " (did you mean " + suggestion + "?)"),
              "set monitor to one of: " + join(eval_metrics));
}

std::optional<double> Monitor::find(const Metrics& eval, const Metrics& latest) const {
  if (auto it = eval.find(metric_); it != eval.end()) return it->second;
  if (auto it = latest.find(metric_); it != latest.end()) return it->second;
  return std::nullopt;
}

bool Monitor::improves(double current, double reference) const {
  return mode_ == Mode::kMin ? current < reference - min_delta_ : current > reference + min_delta_;
}

double Monitor::worst() const {
  const double inf = std::numeric_limits<double>::infinity();
  return mode_ == Mode::kMin ? inf : -inf;
}

std::string format_number(double v) { return format("%.5g", v); }

std::string format_exact(double v) { return format("%.17g", v); }

std::string safe_name(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    const bool keep =
        std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    if (!keep) c = '_';
  }
  return out;
}

}  // namespace lmrun::callbacks
