// Tokenizer speed on the corpus we ship: encode and decode of tinyshakespeare (1.1 MB) with the
// tokenizer of each experiment (and GPT-2's BPE vocabulary), in MB/s of text, against a plain
// copy of the same bytes measured in the same run. Round trip checked first. One thread: encode
// runs on one core.
//
//   build/bin/bench_tokenizer
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "bench_support.h"
#include "lmrun/tokenizer.h"

using namespace lmrun;

namespace {

const std::string& corpus() {
  static const std::string text = [] {
    std::ifstream in(std::string(LMRUN_SOURCE_DIR) + "/data/tinyshakespeare/input.txt");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  return text;
}

void set_rate(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<std::int64_t>(corpus().size()) *
                          static_cast<std::int64_t>(state.iterations()));
}

}  // namespace

static void BM_Copy(benchmark::State& state) {
  std::string out(corpus().size(), '\0');
  for (auto _ : state) {
    std::memcpy(out.data(), corpus().data(), corpus().size());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rate(state);
}
BENCHMARK(BM_Copy)->Unit(benchmark::kMillisecond);

// GPT-2's own vocabulary in gpt_tiny_bpe, instead of the one it trains.
const std::vector<std::string> kGpt2 = {"tokenizer.vocab=data/gpt2/encoder.json",
                                        "tokenizer.merges=data/gpt2/vocab.bpe"};

static void BM_Encode(benchmark::State& state, const std::string& experiment,
                      std::vector<std::string> overrides) {
  const Tokenizer& tokenizer = *bench::build(experiment, overrides).pipeline.tokenizer;
  if (tokenizer.decode(tokenizer.encode(corpus())) != corpus()) {
    state.SkipWithError("decode(encode(corpus)) is not the corpus");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer.encode(corpus()));
  set_rate(state);
}
BENCHMARK_CAPTURE(BM_Encode, char, std::string("gpt_tiny"), {})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, bpe_gpt2, std::string("gpt_tiny_bpe"), kGpt2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, bpe_trained_1024, std::string("gpt_tiny_bpe"), {})
    ->Unit(benchmark::kMillisecond);

static void BM_Decode(benchmark::State& state, const std::string& experiment,
                      std::vector<std::string> overrides) {
  const Tokenizer& tokenizer = *bench::build(experiment, overrides).pipeline.tokenizer;
  const std::vector<std::int64_t> ids = tokenizer.encode(corpus());
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer.decode(ids));
  set_rate(state);
}
BENCHMARK_CAPTURE(BM_Decode, char, std::string("gpt_tiny"), {})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, bpe_gpt2, std::string("gpt_tiny_bpe"), kGpt2)
    ->Unit(benchmark::kMillisecond);

// Prints each tokenizer rate as a share of the copy rate, both measured in this run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const double seconds = run.GetAdjustedRealTime() / 1e3;  // unit: milliseconds
      const double rate = static_cast<double>(corpus().size()) / seconds / 1e6;  // MB/s
      const std::string name = run.benchmark_name();
      if (name.rfind("BM_Copy", 0) == 0) {
        copy_ = rate;
      } else if (copy_ > 0) {
        std::printf("ratio: %s %.0f MB/s = %.3fx a plain copy of the text (%.0f MB/s)\n",
                    name.c_str(), rate, rate / copy_, copy_);
      }
    }
  }

 private:
  double copy_ = 0;
};

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
