// What early_stopping and checkpoint share: the watched metric, its direction, the one "is this
// value better" rule, and the number formats of their messages, folder names and saved state.
//
//   Monitor monitor("early_stopping", "val_loss", Mode::kMin, /*min_delta=*/0.01);
//   monitor.check_reported(state.eval_metrics);       // at train start: throws on a typo
//   if (auto v = monitor.find(eval); v && monitor.improves(*v, best)) best = *v;
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "lmrun/callback.h"
#include "lmrun/common.h"

namespace lmrun::callbacks {

enum class Mode { kMin, kMax };

// "min" -> kMin, "max" -> kMax; anything else throws lmrun::Error (the factory's caller adds
// "callback 'NAME'").
Mode parse_mode(const std::string& text);
const char* mode_name(Mode mode);

class Monitor {
 public:
  // `owner` is the callback's registry name, the first word of every message.
  // min_delta >= 0 and finite (the factory checks it).
  Monitor(std::string owner, std::string metric, Mode mode, double min_delta = 0.0);

  const std::string& metric() const { return metric_; }
  Mode mode() const { return mode_; }
  double min_delta() const { return min_delta_; }

  // Throws lmrun::Error unless the run reports metric(): an evaluation's (eval_metrics) or a
  // step's (step_metrics: a callback's own). The message lists what the run reports and
  // suggests the nearest name.
  void check_reported(const TrainState& planned) const;

  // metric()'s value in this evaluation, else its latest in `latest` (TrainState::metrics, for a
  // callback's step metric); nullopt when neither has it.
  std::optional<double> find(const Metrics& eval, const Metrics& latest = {}) const;

  // True when `current` beats `reference` by more than min_delta:
  //   min: current < reference - min_delta;   max: current > reference + min_delta.
  // Comparisons with NaN are false: a NaN value never improves, and nothing improves on NaN.
  bool improves(double current, double reference) const;

  // The starting "best": +inf for min, -inf for max, so that any finite value improves on it.
  double worst() const;

 private:
  std::string owner_;
  std::string metric_;
  Mode mode_;
  double min_delta_;
};

// Messages: 5 significant digits ("1.8861", "0.0012346", "inf", "nan").
std::string format_number(double v);
// Saved state: 17 significant digits, which std::strtod reads back to the same double.
std::string format_exact(double v);

// Names that a file name can carry: every character outside [A-Za-z0-9_.-] becomes '_'.
std::string safe_name(const std::string& text);

}  // namespace lmrun::callbacks
