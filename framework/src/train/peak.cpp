// The matrix-product probe of peak.h.
#include "train/peak.h"

#include <algorithm>
#include <chrono>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/randn.h>

namespace lmrun::host {

double measure_matmul_peak(c10::Device device, c10::ScalarType dtype, std::int64_t size, int rounds,
                           double min_seconds) {
  // A generator of its own: drawing from the global one would change the run's random stream, and
  // a resumed run (which probes again) would no longer match the uninterrupted one.
  at::Generator generator = at::detail::createCPUGenerator(/*seed_in=*/0);
  const at::Tensor a = at::randn({size, size}, generator, at::kFloat).to(device, dtype);
  const at::Tensor b = at::randn({size, size}, generator, at::kFloat).to(device, dtype);
  // .item() waits for an asynchronous device (CUDA) to finish before the clock is read.
  at::matmul(a, b).sum().item<double>();
  const double flops = 2.0 * static_cast<double>(size) * static_cast<double>(size * size);
  double best = 0.0;
  const auto began = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  };
  // A window, not only a count: a few milliseconds can fall wholly inside another process's time
  // slice on a shared machine, and read a tenth of the real rate.
  for (int round = 0; round < rounds || (elapsed() < min_seconds && round < 50 * rounds); ++round) {
    const auto start = std::chrono::steady_clock::now();
    at::matmul(a, b).sum().item<double>();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 0) best = std::max(best, flops / seconds / 1e9);
  }
  return best;
}

}  // namespace lmrun::host
