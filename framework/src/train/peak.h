// The fp32 matrix-product rate of this machine, measured in this process: the denominator of the
// model-FLOPs utilisation (MFU) that training logs. nanoGPT divides by a data-sheet figure (an
// A100's 312 TFLOP/s); on a CPU that figure is unknown and shared, so lmrun measures it instead.
//
//   // GFLOP/s: at least 5 rounds, and more until 50 ms have passed.
//   double peak = measure_matmul_peak(at::kCPU, at::kFloat, /*size=*/512, /*rounds=*/5, 0.05);
#pragma once

#include <cstdint>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace lmrun::host {

// Best GFLOP/s of timed (size x size) @ (size x size) products in `dtype` on `device`, after a
// warm-up one: at least `rounds` of them, and more until `min_seconds` have passed (at most 50
// times `rounds`). A 512 fp32 product takes about 2 ms on two CPU cores.
double measure_matmul_peak(c10::Device device, c10::ScalarType dtype, std::int64_t size, int rounds,
                           double min_seconds);

}  // namespace lmrun::host
