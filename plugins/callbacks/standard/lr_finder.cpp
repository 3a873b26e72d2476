// Callback `lr_finder`: Leslie Smith's learning-rate range test (https://arxiv.org/abs/1506.01186,
// section 3.3), as fastai's lr_find and Lightning's Tuner.lr_find run it: the learning rate grows
// step by step from min_lr to max_lr, the loss is smoothed, the run stops when it diverges, and
// the curve and a suggested learning rate are written to the run folder.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "callbacks.h"
#include "lmrun/callback.h"
#include "lmrun/schema.h"
#include "lmrun/util/files.h"
#include "lmrun/util/format.h"
#include "lmrun/version.h"
#include "monitor.h"
#include "state_text.h"

namespace lmrun::callbacks {
namespace {

constexpr const char* kName = "lr_finder";
constexpr int kStateFormat = 1;
constexpr int kFileFormat = 1;
constexpr const char* kCsvFile = "lr_finder.csv";
constexpr const char* kJsonFile = "lr_finder.json";
constexpr const char* kRule = "steepest descent of the smoothed loss against log10(lr)";

// ---------------------------------------------------------------------------------------------
// Options

enum class Sweep { kExponential, kLinear };

struct LrFinderOptions {
  double min_lr = 1e-7;          // the first step's learning rate
  double max_lr = 10.0;          // the last step's
  std::int64_t num_steps = 100;  // steps of the sweep; the run stops after them
  Sweep mode = Sweep::kExponential;
  double smoothing = 0.98;            // beta of the loss's moving average; 0: no smoothing
  double divergence_threshold = 4.0;  // stop once smoothed > this x best smoothed; inf: never
  std::int64_t skip_begin = 10;       // points the suggestion ignores at the start ...
  std::int64_t skip_end = 1;          // ... and at the end
};

Schema<LrFinderOptions> lr_finder_schema() {
  Schema<LrFinderOptions> schema;
  schema.add("min_lr", &LrFinderOptions::min_lr, "learning rate of the sweep's first step")
      .min(0, true);
  schema.add("max_lr", &LrFinderOptions::max_lr, "learning rate of the sweep's last step")
      .min(0, true);
  schema
      .add("num_steps", &LrFinderOptions::num_steps,
           "optimizer steps of the sweep; the run stops after them (train.max_steps must allow "
           "them)")
      .min(2);
  schema.add_enum("mode", &LrFinderOptions::mode,
                  {{"exponential", Sweep::kExponential}, {"linear", Sweep::kLinear}},
                  "exponential: evenly spaced in log(lr); linear: evenly spaced in lr");
  schema
      .add("smoothing", &LrFinderOptions::smoothing,
           "beta of the loss's exponential moving average (bias-corrected); 0: raw loss")
      .range(0, 1, /*max_exclusive=*/true);
  schema
      .add("divergence_threshold", &LrFinderOptions::divergence_threshold,
           "stop once the smoothed loss exceeds this times its best so far; inf: never")
      .min(1, true);
  schema
      .add("skip_begin", &LrFinderOptions::skip_begin,
           "points at the start that the suggestion ignores (noisy while the average warms up)")
      .min(0);
  schema
      .add("skip_end", &LrFinderOptions::skip_end,
           "points at the end that the suggestion ignores (the diverging tail)")
      .min(0);
  schema.check([](const LrFinderOptions& o) {
    if (!std::isfinite(o.max_lr)) {
      throw Error("max_lr = " + format_number(o.max_lr) + " is not finite",
                  "set max_lr to the largest learning rate to try, e.g. 10");
    }
    if (!(o.min_lr < o.max_lr)) {
      throw Error("min_lr = " + format_number(o.min_lr) + " is not below max_lr = " +
                      format_number(o.max_lr) + ": the sweep would not rise",
                  "set min_lr < max_lr, e.g. min_lr = 1e-7 and max_lr = 10");
    }
    if (o.skip_begin + o.skip_end + 2 > o.num_steps) {
      throw Error("skip_begin = " + std::to_string(o.skip_begin) +
                      " and skip_end = " + std::to_string(o.skip_end) +
                      " leave fewer than 2 of num_steps = " + std::to_string(o.num_steps) +
                      " points for a suggestion",
                  "raise num_steps to at least skip_begin + skip_end + 2, or lower the skips");
    }
  });
  return schema;
}

const char* sweep_name(Sweep mode) {
  return mode == Sweep::kExponential ? "exponential" : "linear";
}

// ---------------------------------------------------------------------------------------------
// The curve and the suggestion

struct Point {
  std::int64_t step = 0;  // the run's optimizer step (TrainState::step after it)
  double lr = 0.0;        // the learning rate that step applied
  double loss = 0.0;      // its training loss
  double smoothed = 0.0;  // the bias-corrected moving average up to it
};

// Where the steepest descent of the smoothed loss is, or why there is none.
struct Suggestion {
  std::optional<std::size_t> index;  // into the curve
  std::string why_not;               // when there is none
};

// The derivative of y against x at every point, as numpy.gradient / torch.gradient compute it:
// second-order central differences inside (exact for parabolas, spacing may vary), one-sided
// at the two ends. x strictly increasing, at least 2 points.
std::vector<double> gradient(const std::vector<double>& x, const std::vector<double>& y) {
  const std::size_t n = x.size();
  std::vector<double> out(n);
  out.front() = (y[1] - y[0]) / (x[1] - x[0]);
  out.back() = (y[n - 1] - y[n - 2]) / (x[n - 1] - x[n - 2]);
  for (std::size_t i = 1; i + 1 < n; ++i) {
    const double left = x[i] - x[i - 1], right = x[i + 1] - x[i];
    out[i] =
        (left * left * y[i + 1] - right * right * y[i - 1] + (right * right - left * left) * y[i]) /
        (left * right * (left + right));
  }
  return out;
}

// Lightning's _LRFinder.suggestion: drop skip_begin points at the start and skip_end at the end,
// and the non-finite ones; the most negative slope of the smoothed loss against log10(lr) wins
// (torch.gradient with spacing log10(lr), as Lightning now computes it; its older unit spacing
// and fastai's "steep" pick the same point on an exponential sweep, evenly spaced in log(lr)).
// Indices map back through `kept`, so a dropped non-finite point shifts nothing.
Suggestion suggest(const std::vector<Point>& curve, std::size_t skip_begin, std::size_t skip_end) {
  std::vector<std::size_t> kept;
  for (std::size_t i = skip_begin; i + skip_end < curve.size(); ++i) {
    if (std::isfinite(curve[i].smoothed)) kept.push_back(i);
  }
  if (kept.size() < 2) {
    return {std::nullopt, "only " + std::to_string(kept.size()) + " finite point" +
                              (kept.size() == 1 ? "" : "s") + " of " +
                              std::to_string(curve.size()) + " remain after skipping the first " +
                              std::to_string(skip_begin) + " and the last " +
                              std::to_string(skip_end) + " (2 are needed)"};
  }
  std::vector<double> x, y;
  for (std::size_t i : kept) {
    x.push_back(std::log10(curve[i].lr));
    y.push_back(curve[i].smoothed);
  }
  const std::vector<double> slope = gradient(x, y);
  std::optional<std::size_t> steepest;
  for (std::size_t k = 0; k < slope.size(); ++k) {
    if (std::isfinite(slope[k]) && (!steepest || slope[k] < slope[*steepest])) steepest = k;
  }
  if (!steepest) return {std::nullopt, "the smoothed loss has no finite slope"};
  return {kept[*steepest], ""};
}

// "a b c" -> {"a", "b", "c"}; "a  b" -> {"a", "", "b"}.
std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = line.find(' ', start);
    fields.push_back(line.substr(start, end - start));
    if (end == std::string::npos) return fields;
    start = end + 1;
  }
}

// JSON reads no nan or inf: those are null.
std::string json_number(double v) { return std::isfinite(v) ? format_double(v) : "null"; }

// ---------------------------------------------------------------------------------------------
// The callback

// What one more point means for the sweep.
enum class Outcome { kGoOn, kComplete, kDiverged, kNotFinite };

class LrFinder final : public Callback {
 public:
  LrFinder(const LrFinderOptions& options, const CallbackContext& context)
      : o_(options), run_dir_(context.run_dir) {}

  void check_plan(const TrainState& planned) const override {
    if (planned.max_steps < o_.num_steps) {
      const std::string steps = std::to_string(o_.num_steps);
      throw Error(
          std::string(kName) + ": the sweep takes num_steps = " + steps +
              " steps and the run stops at train.max_steps = " + std::to_string(planned.max_steps),
          "raise train.max_steps to at least " + steps +
              " (lr_finder ends the run when its sweep ends), or lower num_steps");
    }
  }

  void on_train_start(const TrainState& state, TrainerControl& control) override {
    if (!state.run_dir.empty()) run_dir_ = state.run_dir;
    if (outcome_ != Outcome::kGoOn) {  // resumed from a checkpoint taken when the sweep ended
      control.request_stop(std::string(kName) + ": the range test already ended at step " +
                           std::to_string(curve_.back().step) + "; nothing is left to sweep");
      return;
    }
    control.set_next_lr(lr_at(curve_.size()));  // the first step's (on resume: the next one's)
  }

  void on_step_end(const TrainState& state, TrainerControl& control) override {
    if (outcome_ != Outcome::kGoOn) return;
    const auto loss = state.metrics.find("loss");
    if (loss == state.metrics.end()) {
      throw Error(std::string(kName) + ": step " + std::to_string(state.step) +
                  " reported no training loss ('loss' is not in TrainState::metrics)");
    }
    outcome_ = record(state.step, state.lr, loss->second);
    if (outcome_ == Outcome::kGoOn) {
      control.set_next_lr(lr_at(curve_.size()));
      return;
    }
    write_files();
    control.request_stop(stop_line());
  }

  // The run may end before the sweep does (another callback asked to stop): the curve so far is
  // written all the same, with status "interrupted".
  void on_train_end(const TrainState& /*state*/, TrainerControl& /*control*/) override {
    if (!curve_.empty() && written_points_ != curve_.size()) write_files();
  }

  std::string save_state() const override;
  void load_state(const std::string& text) override;

 private:
  // The learning rate of the sweep's point `i` (0-based): min_lr at 0, max_lr at num_steps - 1.
  double lr_at(std::size_t i) const {
    const auto last = static_cast<std::size_t>(o_.num_steps - 1);
    if (i >= last) return o_.max_lr;  // exactly, not min * (max / min) rounded
    const double t = static_cast<double>(i) / static_cast<double>(last);
    return o_.mode == Sweep::kExponential ? o_.min_lr * std::pow(o_.max_lr / o_.min_lr, t)
                                          : o_.min_lr + (o_.max_lr - o_.min_lr) * t;
  }

  Outcome record(std::int64_t step, double lr, double loss);
  std::string stop_line() const;
  std::string suggestion_text(const Suggestion& suggestion) const;
  std::string csv() const;
  std::string json(const Suggestion& suggestion) const;
  void write_files();

  LrFinderOptions o_;
  std::filesystem::path run_dir_;

  // Resumable state (save_state holds the curve; the rest follows from replaying it).
  std::vector<Point> curve_;
  double average_ = 0.0;             // the moving average before bias correction
  std::optional<std::size_t> best_;  // the point of the lowest smoothed loss so far
  Outcome outcome_ = Outcome::kGoOn;
  std::size_t written_points_ = 0;  // the curve's length when the files were last written
};

// Adds one step's point and judges it, in Lightning's order (_LRCallback.on_train_batch_end):
// smooth, then compare with the best *before* this point, then update the best.
Outcome LrFinder::record(std::int64_t step, double lr, double loss) {
  const double beta = o_.smoothing;
  average_ = beta * average_ + (1.0 - beta) * loss;
  const double corrected =
      average_ / (1.0 - std::pow(beta, static_cast<double>(curve_.size() + 1)));
  curve_.push_back(Point{step, lr, loss, corrected});
  if (!std::isfinite(corrected)) return Outcome::kNotFinite;
  // "x times the best" needs a positive best; every lmrun objective's loss is >= 0.
  const double best = best_ ? curve_[*best_].smoothed : corrected;
  if (best_ && best > 0 && corrected > o_.divergence_threshold * best) return Outcome::kDiverged;
  if (!best_ || corrected < best) best_ = curve_.size() - 1;
  if (curve_.size() == static_cast<std::size_t>(o_.num_steps)) return Outcome::kComplete;
  return Outcome::kGoOn;
}

// ---------------------------------------------------------------------------------------------
// The log line and the files

std::string LrFinder::suggestion_text(const Suggestion& suggestion) const {
  if (!suggestion.index) return "no suggested lr: " + suggestion.why_not;
  const Point& point = curve_[*suggestion.index];
  const Point& best = curve_[*best_];  // a finite point exists, so a best does
  return "suggested lr " + format_number(point.lr) + " (" + kRule + ", at step " +
         std::to_string(point.step) + "; lowest smoothed loss " + format_number(best.smoothed) +
         " at lr " + format_number(best.lr) + ")";
}

// The stop reason, which the trainer logs and writes to summary.json: why, what to use, where.
std::string LrFinder::stop_line() const {
  const Point& last = curve_.back();
  const std::string where = "at lr " + format_number(last.lr) + " (step " +
                            std::to_string(last.step) + ", point " + std::to_string(curve_.size()) +
                            " of " + std::to_string(o_.num_steps) + ")";
  std::string why;
  switch (outcome_) {
    case Outcome::kComplete:
      why = "range test complete: " + std::to_string(o_.num_steps) + " steps from lr " +
            format_number(o_.min_lr) + " to " + format_number(o_.max_lr);
      break;
    case Outcome::kDiverged:
      why = "diverged: the smoothed loss " + format_number(last.smoothed) + " is above " +
            format_number(o_.divergence_threshold) + " x its best " +
            format_number(curve_[*best_].smoothed) + " " + where;
      break;
    case Outcome::kNotFinite:
      why = "diverged: the loss is " + format_number(last.loss) + " " + where;
      break;
    case Outcome::kGoOn:
      break;
  }
  const Suggestion suggestion = suggest(curve_, static_cast<std::size_t>(o_.skip_begin),
                                        static_cast<std::size_t>(o_.skip_end));
  // The files by name only: the same run resumed in another folder stops with the same words
  // (lmrun prints the run folder at the end).
  return std::string(kName) + ": " + why + "; " + suggestion_text(suggestion) + "; curve in " +
         kCsvFile + " and " + kJsonFile + " of the run folder";
}

std::string LrFinder::csv() const {
  std::string out = "step,lr,loss,smoothed_loss\n";
  for (const Point& p : curve_) {
    out += std::to_string(p.step) + "," + format_double(p.lr) + "," + format_double(p.loss) + "," +
           format_double(p.smoothed) + "\n";
  }
  return out;
}

std::string LrFinder::json(const Suggestion& suggestion) const {
  const char* status = outcome_ == Outcome::kComplete ? "complete"
                       : outcome_ == Outcome::kGoOn   ? "interrupted"
                                                      : "diverged";
  std::string out = "{\n  \"format\": " + std::to_string(kFileFormat) +
                    ",\n  \"lmrun_version\": " + quote(kVersion) +
                    ",\n  \"plugin\": " + quote(std::string(kPluginName) + " " + kPluginVersion) +
                    ",\n  \"callback\": " + quote(kName);
  out += ",\n  \"options\": {\"min_lr\": " + json_number(o_.min_lr) +
         ", \"max_lr\": " + json_number(o_.max_lr) +
         ", \"num_steps\": " + std::to_string(o_.num_steps) +
         ", \"mode\": " + quote(sweep_name(o_.mode)) +
         ", \"smoothing\": " + json_number(o_.smoothing) +
         ", \"divergence_threshold\": " + json_number(o_.divergence_threshold) +
         ", \"skip_begin\": " + std::to_string(o_.skip_begin) +
         ", \"skip_end\": " + std::to_string(o_.skip_end) + "}";
  out += ",\n  \"status\": " + quote(status);
  out += ",\n  \"rule\": " + quote(kRule);
  if (suggestion.index) {
    const Point& p = curve_[*suggestion.index];
    out += ",\n  \"suggested_lr\": " + json_number(p.lr) +
           ",\n  \"suggested_step\": " + std::to_string(p.step);
  } else {
    out += ",\n  \"suggested_lr\": null,\n  \"suggested_step\": null,\n  \"no_suggestion\": " +
           quote(suggestion.why_not);
  }
  out += ",\n  \"best_smoothed_loss\": " + (best_ ? json_number(curve_[*best_].smoothed) : "null") +
         ",\n  \"best_lr\": " + (best_ ? json_number(curve_[*best_].lr) : "null");
  out += ",\n  \"points\": [";
  for (std::size_t i = 0; i < curve_.size(); ++i) {
    const Point& p = curve_[i];
    out += std::string(i == 0 ? "\n" : ",\n") + "    {\"step\": " + std::to_string(p.step) +
           ", \"lr\": " + json_number(p.lr) + ", \"loss\": " + json_number(p.loss) +
           ", \"smoothed_loss\": " + json_number(p.smoothed) + "}";
  }
  return out + "\n  ]\n}\n";
}

// Both files whole or not at all (each written aside and renamed). Under data parallelism every
// rank writes the same bytes: the loss the callbacks see is the global batch's.
void LrFinder::write_files() {
  const Suggestion suggestion = suggest(curve_, static_cast<std::size_t>(o_.skip_begin),
                                        static_cast<std::size_t>(o_.skip_end));
  if (run_dir_.empty()) {
    throw Error(std::string(kName) + ": no run folder to write " + kCsvFile + " in",
                "give the callback a run folder (CallbackContext::run_dir or TrainState::run_dir)");
  }
  std::filesystem::create_directories(run_dir_);
  write_file_atomic(run_dir_ / kCsvFile, csv());
  write_file_atomic(run_dir_ / kJsonFile, json(suggestion));
  written_points_ = curve_.size();
}

// ---------------------------------------------------------------------------------------------
// State: the options that shape the curve, and the curve's raw points

std::string LrFinder::save_state() const {
  StateWriter out(kName, kStateFormat);
  out.add("min_lr", o_.min_lr);
  out.add("max_lr", o_.max_lr);
  out.add("num_steps", o_.num_steps);
  out.add("mode", sweep_name(o_.mode));
  out.add("smoothing", o_.smoothing);
  out.add("divergence_threshold", o_.divergence_threshold);
  for (const Point& p : curve_)
    out.add("point",
            std::to_string(p.step) + " " + format_exact(p.lr) + " " + format_exact(p.loss));
  return out.text();
}

void LrFinder::load_state(const std::string& text) {
  StateReader in(text, kName, kStateFormat);
  const double min_lr = in.number("min_lr");
  const double max_lr = in.number("max_lr");
  const std::int64_t num_steps = in.integer("num_steps");
  const std::string mode = in.text("mode");
  const double smoothing = in.number("smoothing");
  const double threshold = in.number("divergence_threshold");
  const std::vector<std::string> points = in.all("point");
  in.finish();
  if (min_lr != o_.min_lr || max_lr != o_.max_lr || num_steps != o_.num_steps ||
      mode != sweep_name(o_.mode) || smoothing != o_.smoothing ||
      threshold != o_.divergence_threshold) {
    throw Error(std::string(kName) + ": the checkpoint's sweep (min_lr " + format_number(min_lr) +
                    ", max_lr " + format_number(max_lr) + ", num_steps " +
                    std::to_string(num_steps) + ", " + mode + ", smoothing " +
                    format_number(smoothing) + ", divergence_threshold " +
                    format_number(threshold) + ") differs from this run's options",
                "resume with the options the range test started with, or start afresh");
  }
  if (points.size() > static_cast<std::size_t>(num_steps))
    in.fail(std::to_string(points.size()) + " points for a sweep of " + std::to_string(num_steps));
  // Replaying the raw points rebuilds the average, the best and the verdict bit for bit.
  LrFinder replay(o_, CallbackContext{run_dir_});
  for (const std::string& line : points) {
    const std::vector<std::string> fields = split_fields(line);
    if (fields.size() != 3) in.fail("'point=" + line + "' does not have 3 fields");
    if (replay.outcome_ != Outcome::kGoOn)
      in.fail("'point=" + line + "' comes after the sweep ended");
    replay.outcome_ =
        replay.record(in.to_integer(fields[0], "point"), in.to_number(fields[1], "point"),
                      in.to_number(fields[2], "point"));
  }
  curve_ = std::move(replay.curve_);
  average_ = replay.average_;
  best_ = replay.best_;
  outcome_ = replay.outcome_;
  written_points_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Factory

std::shared_ptr<Callback> make_lr_finder(const LrFinderOptions& options,
                                         const CallbackContext& context) {
  return std::make_shared<LrFinder>(options, context);  // the schema checked the options
}

}  // namespace

void register_lr_finder(Registry& registry) {
  registry.add<Callback>(kName,
                         "learning-rate range test: sweep the lr up over num_steps, stop on "
                         "divergence, write the loss curve and a suggested lr",
                         lr_finder_schema(), make_lr_finder);
}

}  // namespace lmrun::callbacks
