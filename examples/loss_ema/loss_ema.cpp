// loss_ema: a callback plugin built out of tree. It logs a smoothed training loss, an exponential
// moving average of each step's loss, as a metric of the run (metrics.jsonl and metrics.csv), and
// keeps the average across --resume.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "lmrun/callback.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Options

struct LossEmaOptions {
  double decay = 0.98;            // weight of the past: about 1 / (1 - decay) steps of memory
  std::string name = "loss_ema";  // the metric's name in metrics.jsonl and metrics.csv
};

lmrun::Schema<LossEmaOptions> loss_ema_schema() {
  lmrun::Schema<LossEmaOptions> schema;
  schema
      .add("decay", &LossEmaOptions::decay,
           "weight of the previous average at each step (0.98: about 50 steps of memory)")
      .range(0, 1, /*max_exclusive=*/true);
  schema.add("name", &LossEmaOptions::name, "the metric's name (not one of the trainer's)");
  schema.check([](const LossEmaOptions& o) {
    if (o.name.empty()) throw lmrun::Error("name is empty", "name the metric, e.g. loss_ema");
  });
  return schema;
}

// ---------------------------------------------------------------------------------------------
// The callback
//
// ema_t = decay * ema_(t-1) + (1 - decay) * loss_t, from ema_0 = 0, logged bias-corrected as
// ema_t / (1 - decay^t): the correction Adam applies to its moments (Kingma & Ba 2015, section
// 3, https://arxiv.org/abs/1412.6980), without which the first steps' average is pulled to 0.
// A step whose loss is not finite leaves the average alone (the trainer stops such a run).

class LossEma final : public lmrun::Callback {
 public:
  explicit LossEma(LossEmaOptions options) : o_(std::move(options)) {}

  void on_step_end(const lmrun::TrainState& state, lmrun::TrainerControl& control) override {
    const auto loss = state.metrics.find("loss");  // this step's training loss
    if (loss == state.metrics.end() || !std::isfinite(loss->second)) return;
    ema_ = o_.decay * ema_ + (1 - o_.decay) * loss->second;
    ++steps_;
    control.log_metric(o_.name, ema_ / (1 - std::pow(o_.decay, static_cast<double>(steps_))));
  }

  // Declared, so that `lmrun check` accepts a monitor naming it.
  std::vector<std::string> metric_names() const override { return {o_.name}; }

  // "loss_ema 1 <ema> <steps>": the average exactly (17 significant digits read back the same
  // double), so a resumed run logs what an uninterrupted one would.
  std::string save_state() const override {
    std::ostringstream out;
    out.precision(17);
    out << "loss_ema 1 " << ema_ << " " << steps_;
    return out.str();
  }

  void load_state(const std::string& text) override {
    std::istringstream in(text);
    std::string tag;
    int format = 0;
    double ema = 0;
    std::int64_t steps = 0;
    if (!(in >> tag >> format >> ema >> steps) || tag != "loss_ema" || steps < 0) {
      throw lmrun::Error("loss_ema: the saved state '" + text + "' is not this callback's",
                         "resume with the [[callbacks]] the run started with");
    }
    if (format != 1) {
      throw lmrun::Error("loss_ema: saved state format " + std::to_string(format) +
                         ", this plugin reads format 1");
    }
    ema_ = ema;
    steps_ = steps;
  }

 private:
  LossEmaOptions o_;
  double ema_ = 0;
  std::int64_t steps_ = 0;  // steps averaged so far
};

// ---------------------------------------------------------------------------------------------
// Registration

void register_loss_ema(lmrun::Registry& registry) {
  registry.add<lmrun::Callback>(
      "loss_ema", "logs a bias-corrected exponential moving average of the training loss",
      loss_ema_schema(), [](const LossEmaOptions& options, const lmrun::CallbackContext&) {
        return std::make_shared<LossEma>(options);
      });
}

}  // namespace

LMRUN_PLUGIN("loss_ema", "0.1.0", register_loss_ema)
