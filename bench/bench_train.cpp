// gpt_tiny's training step through the plugin interfaces: tokens/s, the model's GFLOP/s, and that
// rate as a share of this machine's fp32 matrix-product peak measured in the same run.
//
//   build/bin/bench_train
//
// Model FLOPs are nanoGPT's estimate_mfu count (6N + 12 L T C per token), so the share compares
// with nanoGPT's own MFU on the same machine.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>

#include "bench_support.h"
#include "lmrun/model.h"

using namespace lmrun;

namespace {

// Validate before timing: an untrained gpt_tiny predicts about uniformly over 65 characters, so
// its first loss is near ln 65 = 4.17; a wrong loss, mask or init shows here first.
bool validated() {
  static const bool ok = [] {
    const double loss = bench::build("gpt_tiny").trainer->train_step(1e-3);
    const bool good = std::fabs(loss - std::log(65.0)) < 0.3;
    std::fprintf(stderr, "check: first gpt_tiny loss %.4f (expected about ln 65 = %.4f): %s\n",
                 loss, std::log(65.0), good ? "ok" : "WRONG");
    return good;
  }();
  return ok;
}

}  // namespace

static void BM_TrainStep(benchmark::State& state) {
  if (!validated()) {
    state.SkipWithError("the first loss is wrong: see the check line above");
    return;
  }
  bench::Built& g = bench::build("gpt_tiny");
  const auto& train = g.experiment.train;
  const double tokens_per_step = static_cast<double>(train.batch_size * train.grad_accum_steps *
                                                     g.pipeline.model_context.sequence_length);
  const double flops_per_token =
      g.pipeline.model->flops_per_token(g.pipeline.model_context.sequence_length);
  for (auto _ : state) benchmark::DoNotOptimize(g.trainer->train_step(1e-3));
  const double tokens = tokens_per_step * static_cast<double>(state.iterations());
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["model GFLOP/s"] =
      benchmark::Counter(flops_per_token * tokens / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TrainStep)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

// Prints the step's share of the matrix-product peak, both measured in this run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      auto it = run.counters.find("model GFLOP/s");
      if (run.error_occurred || it == run.counters.end()) continue;
      const double peak = bench::matmul_peak_gflops();
      const double rate = it->second;
      std::printf(
          "ratio: gpt_tiny training step runs at %.1f model GFLOP/s = %.0f%% of the %.1f GFLOP/s "
          "matrix-product peak measured in this run (%.0f tokens/s)\n",
          rate, 100.0 * rate / peak, peak, static_cast<double>(run.counters.at("tokens/s")));
    }
  }
};

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
