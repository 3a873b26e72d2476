// What the host costs: gpt_tiny's training step driven through the plugin interfaces
// (Trainer::train_step: dataset, model, loss, clipping, optimizer, all through the registry)
// against the same model in a hand-written LibTorch loop (nanoGPT's get_batch, cross_entropy,
// clip_grad_norm_, torch::optim::AdamW with nanoGPT's two parameter groups). The two steps run
// alternately in one process, so machine noise falls on both alike; the ratio of their medians
// is the host's overhead. It also counts each step's allocations (C++ `new`s and tensor buffers)
// on both sides.
//
//   build/bin/bench_host
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <dlfcn.h>

#include <ATen/ATen.h>
#include <torch/types.h>
// clip_grad.h uses torch::Tensor without including it.
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "bench_support.h"
#include "lmrun/model.h"
#include "lmrun/optimizer.h"

using namespace lmrun;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Allocation counting: every C++ `new` in the process (tensor objects, autograd nodes, our
// vectors) and every tensor buffer (LibTorch's CPU allocator uses posix_memalign), so that the
// two loops' allocations per step can be compared.

namespace {
std::atomic<long> g_news{0};
std::atomic<long> g_buffers{0};
}  // namespace

void* operator new(std::size_t size) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// The replacements pair malloc with free by design; GCC cannot see that once they are inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

extern "C" int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  using Real = int (*)(void**, std::size_t, std::size_t);
  static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "posix_memalign"));
  g_buffers.fetch_add(1, std::memory_order_relaxed);
  return real(out, alignment, size);
}

namespace {

// nanoGPT's train.py loop, written against LibTorch directly.
class HandWrittenLoop {
 public:
  // own_optimizer: torch::optim::AdamW as a hand-written loop would use; otherwise the optimizer
  // plugin's object (the fused AdamW), so that only the host's plumbing differs.
  HandWrittenLoop(const bench::Built& like, bool own_optimizer) {
    const host::Experiment& e = like.experiment;
    batch_ = e.train.batch_size;
    block_ = like.pipeline.model_context.sequence_length;
    // prepare.py: characters sorted, ids in that order; the first 90% is the training split.
    std::ifstream in(std::string(LMRUN_SOURCE_DIR) + "/data/tinyshakespeare/input.txt");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<int> id(256, -1);
    for (unsigned char c : text) id[c] = 0;
    std::int64_t vocab = 0;
    for (int& i : id) i = i == 0 ? static_cast<int>(vocab++) : -1;
    data_ = at::empty({static_cast<std::int64_t>(text.size() * 9 / 10)}, at::kLong);
    auto* out = data_.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < data_.numel(); ++i)
      out[i] = id[static_cast<unsigned char>(text[i])];

    torch::manual_seed(e.experiment.seed);
    model_ =
        bench::registry().create<Model>(e.model.type, e.model.params, like.pipeline.model_context);
    std::vector<at::Tensor> decay, no_decay;
    for (const at::Tensor& p : model_->module().parameters()) {
      (p.dim() >= 2 ? decay : no_decay).push_back(p);
      params_.push_back(p);
    }
    auto options = torch::optim::AdamWOptions(1e-3).betas({0.9, 0.99});
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(options).weight_decay(0.1)));
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(options).weight_decay(0.0)));
    if (own_optimizer) {
      optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(groups));
    } else {
      std::vector<NamedParameter> named;
      for (const auto& item : model_->module().named_parameters()) {
        named.push_back({item.key(), item.value()});
      }
      plugin_optimizer_ = bench::registry().create<Optimizer>(e.optimizer.type, e.optimizer.params,
                                                              OptimizerContext{named});
    }
    generator_ = at::detail::createCPUGenerator(1);
    model_->module().train();
  }

  double step() {
    at::Tensor ix = at::randint(data_.numel() - block_ - 1, {batch_, 1}, generator_, at::kLong);
    at::Tensor positions = ix + at::arange(block_, at::kLong);  // (B, T)
    at::Tensor x = data_.index({positions});
    at::Tensor y = data_.index({positions + 1});
    at::Tensor logits = model_->forward(x, at::Tensor());  // (B, T, V)
    at::Tensor loss = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), y.view({-1}));
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params_, 1.0);
    if (optimizer_) {
      optimizer_->step();
      optimizer_->zero_grad();
    } else {
      plugin_optimizer_->step();
      plugin_optimizer_->zero_grad();
    }
    return loss.item<double>();
  }

 private:
  std::int64_t batch_ = 0, block_ = 0;
  at::Tensor data_;
  std::shared_ptr<Model> model_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::shared_ptr<Optimizer> plugin_optimizer_;
  at::Generator generator_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::map<std::string, std::array<double, 3>> g_results;  // variant -> plugin ms, hand ms, ratio
// variant -> per step: plugin news, plugin tensor buffers, hand-written news, hand-written buffers
std::map<std::string, std::array<double, 4>> g_allocations;

void host_overhead(benchmark::State& state, const std::string& variant, bool own_optimizer) {
  bench::Built& g = bench::build("gpt_tiny");
  HandWrittenLoop hand(g, own_optimizer);
  // Validate: the fresh hand-written model starts near ln 65, the loss of a uniform guess over 65
  // characters; the plugin path's model is shared by the variants and may have trained hundreds
  // of steps already, so its loss need only be finite and no worse than a guess.
  const double first_plugin = g.trainer->train_step(1e-3), first_hand = hand.step();
  if (!std::isfinite(first_plugin) || first_plugin > std::log(65.0) + 0.3 ||
      std::fabs(first_hand - std::log(65.0)) > 0.3) {
    state.SkipWithError(
        "a first loss is not what a language model's step gives: the two loops "
        "do not train the same way");
    return;
  }
  for (int i = 0; i < 5; ++i) {  // warm-up
    g.trainer->train_step(1e-3);
    hand.step();
  }
  std::vector<double> plugin, handwritten;
  long plugin_news = 0, plugin_buffers = 0, hand_news = 0, hand_buffers = 0;
  for (auto _ : state) {
    for (int i = 0; i < 60; ++i) {
      long news = g_news, buffers = g_buffers;
      auto start = Clock::now();
      benchmark::DoNotOptimize(g.trainer->train_step(1e-3));
      plugin.push_back(seconds(start));
      plugin_news += g_news - news;
      plugin_buffers += g_buffers - buffers;
      news = g_news;
      buffers = g_buffers;
      start = Clock::now();
      benchmark::DoNotOptimize(hand.step());
      handwritten.push_back(seconds(start));
      hand_news += g_news - news;
      hand_buffers += g_buffers - buffers;
    }
  }
  const auto steps = static_cast<double>(plugin.size());
  state.counters["plugin news/step"] = static_cast<double>(plugin_news) / steps;
  state.counters["plugin buffers/step"] = static_cast<double>(plugin_buffers) / steps;
  state.counters["hand news/step"] = static_cast<double>(hand_news) / steps;
  state.counters["hand buffers/step"] = static_cast<double>(hand_buffers) / steps;
  g_allocations[variant] = {
      static_cast<double>(plugin_news) / steps, static_cast<double>(plugin_buffers) / steps,
      static_cast<double>(hand_news) / steps, static_cast<double>(hand_buffers) / steps};
  const double plugin_ms = 1000 * median(plugin), hand_ms = 1000 * median(handwritten);
  g_results[variant] = {plugin_ms, hand_ms, plugin_ms / hand_ms};
  state.counters["plugin ms/step"] = plugin_ms;
  state.counters["hand-written ms/step"] = hand_ms;
  state.counters["ratio"] = plugin_ms / hand_ms;
}

}  // namespace

// The hand-written loop with torch::optim::AdamW (what a user would write), and with the
// optimizer plugin's object (the host's plumbing alone).
BENCHMARK_CAPTURE(host_overhead, torch_adamw, std::string("torch::optim::AdamW"), true)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(host_overhead, same_optimizer, std::string("the same optimizer object"), false)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (const auto& [variant, r] : g_results) {
    std::printf(
        "ratio: gpt_tiny step through the plugin interfaces %.2f ms (median) against %.2f ms "
        "hand-written with %s = %.3fx (host overhead %+.1f%%)\n",
        r[0], r[1], variant.c_str(), r[2], 100 * (r[2] - 1));
    const auto& a = g_allocations[variant];
    std::printf(
        "ratio: allocations per step through the plugin interfaces %.0f news + %.0f tensor buffers "
        "against %.0f + %.0f hand-written with %s = %.2fx / %.2fx\n",
        a[0], a[1], a[2], a[3], variant.c_str(), a[0] / a[2], a[1] / a[3]);
  }
  return 0;
}
