// Generation speed: tokens/s with the model's decoding state (KV cache, carried RNN state) against
// the reference path that re-runs forward() on the cropped context, for gpt_tiny and lstm_char.
// Both paths must draw the same tokens for a seed, checked before anything is timed.
//
//   build/bin/bench_generate
//
// "in_context" generates 63 tokens after a 1-token prompt (gpt_tiny's window is 64); "long" 500,
// past it, where an absolute-position transformer must re-read its whole window per token. A
// recurrent model has no window: uncached, it re-reads the whole history every token (run once).
// "beam4" is a width-4 beam search over 63 tokens, its hypotheses carrying their KV caches
// (DecodeState::select_rows) against recomputing every context each step. quantized_against_fp32
// decodes the same model with INT8 weights (--quantize int8) and with fp32 ones, in turn.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "bench_support.h"
#include "generate/generate.h"
#include "lmrun/model.h"

using namespace lmrun;

namespace {

host::GenerationRequest request(std::int64_t new_tokens, bool cached) {
  host::GenerationRequest r;
  r.prompt = {0};
  r.max_new_tokens = new_tokens;
  r.seed = 1337;
  r.use_cache = cached;
  return r;
}

// The same seed gives the same tokens cached and uncached; checked once per experiment and length.
bool same_tokens(const std::string& name, std::int64_t new_tokens) {
  static std::map<std::pair<std::string, std::int64_t>, bool> checked;
  auto key = std::make_pair(name, new_tokens);
  auto it = checked.find(key);
  if (it != checked.end()) return it->second;
  bench::Built& b = bench::build(name);
  const auto cached =
      host::generate(*b.pipeline.model, b.pipeline.samplers, request(new_tokens, true));
  const auto uncached =
      host::generate(*b.pipeline.model, b.pipeline.samplers, request(new_tokens, false));
  const bool same = cached.tokens == uncached.tokens;
  std::fprintf(stderr, "check: %s, %lld tokens, cached and uncached draw the same tokens: %s\n",
               name.c_str(), static_cast<long long>(new_tokens), same ? "ok" : "DIFFERENT");
  return checked[key] = same;
}

void generate_tokens(benchmark::State& state, const std::string& name, std::int64_t new_tokens,
                     bool cached) {
  if (!same_tokens(name, new_tokens)) {
    state.SkipWithError("cached and uncached generation differ: see the check line above");
    return;
  }
  bench::Built& b = bench::build(name);
  const host::GenerationRequest r = request(new_tokens, cached);
  for (auto _ : state) {
    benchmark::DoNotOptimize(host::generate(*b.pipeline.model, b.pipeline.samplers, r));
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(new_tokens) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

// Beam search of `width` over `new_tokens`: hypotheses carrying their decoding states against
// recomputing every hypothesis's context each step. Both must find the same sequence.
void beam_tokens(benchmark::State& state, const std::string& name, std::int64_t width,
                 std::int64_t new_tokens, bool cached) {
  bench::Built& b = bench::build(name);
  const host::GenerationRequest r = request(new_tokens, cached);
  const auto found = host::beam_search(*b.pipeline.model, r, {width, 1.0, cached});
  if (found.tokens != host::beam_search(*b.pipeline.model, r, {width, 1.0, !cached}).tokens) {
    state.SkipWithError("the cached and recomputed beams differ");
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(host::beam_search(*b.pipeline.model, r, {width, 1.0, cached}));
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(new_tokens) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

// Decoding with INT8 weights (Model::quantize, --quantize int8) against fp32, one token at a time
// after a 1-token prompt: the same model built twice from the same seed, one copy quantized, the
// two generating in turn within every iteration so that both see the same machine. Counters: each
// one's tokens/s and their ratio over the whole run.
void quantized_against_fp32(benchmark::State& state, const std::string& name,
                            std::int64_t new_tokens) {
  bench::Built& fp32 = bench::build(name, {"experiment.name=fp32"});
  bench::Built& int8 = bench::build(name, {"experiment.name=int8"});
  static std::map<std::string, bool> quantized;
  if (!quantized[name]) {
    int8.pipeline.model->module().eval();
    std::fprintf(stderr, "quantized %s: %s\n", name.c_str(),
                 int8.pipeline.model->quantize("int8").c_str());
    quantized[name] = true;
  }
  const host::GenerationRequest r = request(new_tokens, true);
  using Clock = std::chrono::steady_clock;
  double fp32_seconds = 0, int8_seconds = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    benchmark::DoNotOptimize(host::generate(*fp32.pipeline.model, fp32.pipeline.samplers, r));
    const auto t1 = Clock::now();
    benchmark::DoNotOptimize(host::generate(*int8.pipeline.model, int8.pipeline.samplers, r));
    const auto t2 = Clock::now();
    fp32_seconds += std::chrono::duration<double>(t1 - t0).count();
    int8_seconds += std::chrono::duration<double>(t2 - t1).count();
  }
  const double tokens = static_cast<double>(new_tokens) * static_cast<double>(state.iterations());
  state.counters["fp32_tokens/s"] = tokens / fp32_seconds;
  state.counters["int8_tokens/s"] = tokens / int8_seconds;
  state.counters["int8_speedup"] = fp32_seconds / int8_seconds;
}

}  // namespace

BENCHMARK_CAPTURE(beam_tokens, gpt_tiny_beam4_cached, "gpt_tiny", 4, 63, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK_CAPTURE(beam_tokens, gpt_tiny_beam4_uncached, "gpt_tiny", 4, 63, false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK_CAPTURE(generate_tokens, gpt_tiny_in_context_cached, "gpt_tiny", 63, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK_CAPTURE(generate_tokens, gpt_tiny_in_context_uncached, "gpt_tiny", 63, false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK_CAPTURE(generate_tokens, gpt_tiny_long_cached, "gpt_tiny", 500, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(generate_tokens, gpt_tiny_long_uncached, "gpt_tiny", 500, false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(generate_tokens, lstm_char_long_cached, "lstm_char", 500, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(generate_tokens, lstm_char_long_uncached, "lstm_char", 500, false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK_CAPTURE(generate_tokens, gru_char_long_cached, "gru_char", 500, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

BENCHMARK_CAPTURE(quantized_against_fp32, gpt_tiny_in_context, "gpt_tiny", 63)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(4.0);

// Prints each cached/uncached pair's speed-up, both measured in this run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const std::string name = run.benchmark_name();
      auto it = run.counters.find("tokens/s");
      if (it == run.counters.end()) continue;
      const std::string::size_type cut = name.rfind("_cached");
      const std::string::size_type uncut = name.rfind("_uncached");
      if (uncut != std::string::npos) {
        const std::string pair = name.substr(0, uncut);
        auto cached = cached_.find(pair);
        if (cached != cached_.end()) {
          std::printf("ratio: %s cached %.0f tokens/s against %.0f uncached = %.1fx\n",
                      pair.c_str(), cached->second, static_cast<double>(it->second),
                      cached->second / static_cast<double>(it->second));
        }
      } else if (cut != std::string::npos) {
        cached_[name.substr(0, cut)] = it->second;
      }
    }
  }

 private:
  std::map<std::string, double> cached_;
};

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
