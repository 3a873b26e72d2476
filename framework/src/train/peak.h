// The fp32 matrix-product rate of this machine, measured in this process: the denominator of the
// model-FLOPs utilisation (MFU) that training logs. nanoGPT divides by a data-sheet figure (an
// A100's 312 TFLOP/s); on a CPU that figure is unknown and shared, so lmrun measures it instead.
//
//   double peak = measure_matmul_peak(at::kCPU, at::kFloat, /*size=*/512, /*rounds=*/5);  //
//   GFLOP/s
#pragma once

#include <cstdint>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace lmrun::host {

// Best GFLOP/s of `rounds` timed (size x size) @ (size x size) products in `dtype` on `device`,
// after a warm-up one. A 512 fp32 product takes about 2 ms on two CPU cores: 5 rounds, ~15 ms.
double measure_matmul_peak(c10::Device device, c10::ScalarType dtype, std::int64_t size,
                           int rounds);

}  // namespace lmrun::host
