// gpt_tiny's training step through the plugin interfaces: tokens/s, the model's GFLOP/s, and that
// rate as a share of this machine's fp32 matrix-product peak measured in the same run.
//
//   build/bin/bench_train                      # from the repository root or anywhere
//   build/bin/bench_train --benchmark_filter=TrainStep
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>

#include <unistd.h>

#include <ATen/ops/matmul.h>
#include <ATen/ops/randn.h>

#include "config/experiment.h"
#include "config/toml_document.h"
#include "registry/plugin_loader.h"
#include "train/pipeline.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace lmrun;
using namespace lmrun::host;

namespace {

// ---------------------------------------------------------------------------------------------
// gpt_tiny, built once through the registry exactly as `lmrun experiments/gpt_tiny.toml` does.

struct GptTiny {
  PluginRegistry registry;
  Experiment experiment;
  Pipeline pipeline;
  fs::path run_dir;
  std::unique_ptr<Trainer> trainer;
  double flops_per_token = 0.0;  // nanoGPT's estimate_mfu: 6N + 12 L T C
};

GptTiny& gpt_tiny() {
  static GptTiny* g = [] {
    auto* t = new GptTiny();
    PluginLoader loader(t->registry);
    loader.load_directory(builtin_plugin_dir());
    const fs::path source = LMRUN_SOURCE_DIR;
    fs::current_path(source);  // the experiment's data path is relative to the repository root
    t->experiment = resolve_experiment(load_document(source / "experiments" / "gpt_tiny.toml", {}),
                                       t->registry);
    t->experiment.callbacks.clear();  // no checkpoints or early stopping inside a benchmark
    configure_threads(t->experiment.train.threads);
    t->run_dir = fs::temp_directory_path() / ("lmrun-bench-" + std::to_string(::getpid()));
    fs::create_directories(t->run_dir);
    t->pipeline = build_pipeline(t->experiment, t->registry, PipelineOptions{t->run_dir, {}, true});
    std::ostringstream quiet;
    t->trainer = std::make_unique<Trainer>(t->experiment, t->pipeline, t->run_dir,
                                           CheckpointProvenance{}, quiet);
    const double n =
        static_cast<double>(t->pipeline.parameter_count - 64 * 128);  // without the position table
    const double layers = 4, context = 64, width = 128;
    t->flops_per_token = 6 * n + 12 * layers * context * width;
    return t;
  }();
  return *g;
}

// Validate before timing: an untrained gpt_tiny predicts about uniformly over 65 characters, so
// its first loss is near ln 65 = 4.17; a wrong loss, mask or init shows here first.
bool validated() {
  static const bool ok = [] {
    const double loss = gpt_tiny().trainer->train_step(1e-3);
    const bool good = std::fabs(loss - std::log(65.0)) < 0.3;
    std::fprintf(stderr, "check: first gpt_tiny loss %.4f (expected about ln 65 = %.4f): %s\n",
                 loss, std::log(65.0), good ? "ok" : "WRONG");
    return good;
  }();
  return ok;
}

}  // namespace

// fp32 matrix product at the model's scale: the ceiling a training step's FLOPs are measured
// against.
static void BM_MatmulPeak(benchmark::State& state) {
  const int64_t n = state.range(0);
  at::Tensor a = at::randn({n, n});
  at::Tensor b = at::randn({n, n});
  // Validate: the product agrees with a float64 reference.
  at::Tensor reference = at::matmul(a.to(at::kDouble), b.to(at::kDouble));
  if (!at::matmul(a, b).to(at::kDouble).allclose(reference, 1e-3, 1e-2)) {
    state.SkipWithError("matmul disagrees with the float64 reference");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(at::matmul(a, b));
  const double flops =
      2.0 * static_cast<double>(n * n * n) * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
  benchmark::DoNotOptimize(reference);
}
BENCHMARK(BM_MatmulPeak)
    ->Arg(512)
    ->Arg(1024)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

static void BM_TrainStep(benchmark::State& state) {
  if (!validated()) {
    state.SkipWithError("the first loss is wrong: see the check line above");
    return;
  }
  GptTiny& g = gpt_tiny();
  const auto& train = g.experiment.train;
  const double tokens_per_step =
      static_cast<double>(train.batch_size * train.grad_accum_steps * 64);
  for (auto _ : state) benchmark::DoNotOptimize(g.trainer->train_step(1e-3));
  state.SetItemsProcessed(
      static_cast<int64_t>(tokens_per_step * static_cast<double>(state.iterations())));
  state.counters["tokens/s"] = benchmark::Counter(
      tokens_per_step * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["model GFLOP/s"] = benchmark::Counter(
      g.flops_per_token * tokens_per_step * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TrainStep)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

// Prints the step's share of the matrix-product peak, both measured in this run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      auto counter = [&](const char* name) {
        auto it = run.counters.find(name);
        return it == run.counters.end() ? 0.0 : static_cast<double>(it->second);
      };
      if (run.benchmark_name().rfind("BM_MatmulPeak", 0) == 0)
        peak_ = std::max(peak_, counter("GFLOP/s"));
      if (run.benchmark_name().rfind("BM_TrainStep", 0) == 0 && peak_ > 0) {
        std::printf(
            "ratio: gpt_tiny training step runs at %.1f model GFLOP/s = %.0f%% of the %.1f GFLOP/s "
            "matrix-product peak measured in this run (%.0f tokens/s)\n",
            counter("model GFLOP/s"), 100.0 * counter("model GFLOP/s") / peak_, peak_,
            counter("tokens/s"));
      }
    }
  }

 private:
  double peak_ = 0.0;
};

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(fs::temp_directory_path() / ("lmrun-bench-" + std::to_string(::getpid())), ec);
  return 0;
}
