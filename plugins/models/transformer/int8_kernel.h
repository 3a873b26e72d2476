// INT8 matrix-vector products for batch-1 CPU decoding: weights quantized symmetric per output row
// (once, at load), the activation vector quantized symmetric per call, exact int32 dot products,
// fp32 results.
//
//   Int8Matrix w = quantize_rows(weight, rows, cols);   // once; weight row-major (rows, cols)
//   Int8Vector scratch;                                 // reused across calls
//   matvec_int8(w, bias, x, scratch, y);                // y ~= weight @ x + bias
//
// A quarter of fp32's weight bytes and 16 multiply-adds per integer instruction. The dot products
// use AVX2 when the CPU has it (chosen at run time: the project builds without -march flags) and a
// portable loop otherwise; integer sums are exact and both share the float epilogue, so the two
// paths give bit-identical results. Rounding is half to even (std::nearbyint under the default
// rounding mode, as torch.round); quantized values are clamped to [-127, 127].
#pragma once

#include <cstdint>
#include <vector>

namespace lmrun::models {

// w[r][c] ~= q[r * stride + c] * scale[r], scale[r] = max_c |w[r][c]| / 127 (0 for an all-zero
// row, whose q is all 0). Each row is zero-padded from cols to stride (a multiple of 32).
struct Int8Matrix {
  std::int64_t rows = 0, cols = 0, stride = 0;
  std::vector<std::int8_t> q;  // rows * stride
  std::vector<float> scale;    // rows
};

Int8Matrix quantize_rows(const float* w, std::int64_t rows, std::int64_t cols);

// x[c] ~= q[c] * scale, scale = max|x| / 127 (0 for an all-zero x). q holds int8 values widened
// to int16 (what the dot product consumes), zero-padded to a multiple of 32.
struct Int8Vector {
  std::vector<std::int16_t> q;
  float scale = 0;
};

// q[c] = nearbyint(x[c] / scale) clamped to [-127, 127]. Inputs are assumed finite.
void quantize_vector(const float* x, std::int64_t n, Int8Vector& out);

// y[r] = float(sum_c q[r][c] * xq[c]) * (scale[r] * x.scale) (+ bias[r] when bias is not null),
// the sum in exact int32 (x must come from quantize_vector with n == w.cols).
void matvec_int8(const Int8Matrix& w, const float* bias, const Int8Vector& x, float* y);

// quantize_vector(x, w.cols, scratch), then the above.
void matvec_int8(const Int8Matrix& w, const float* bias, const float* x, Int8Vector& scratch,
                 float* y);

// Whether the AVX2 path is in use. set_int8_kernel_avx2(false) forces the portable path (for
// tests); true restores the run-time choice (AVX2 only where the CPU has it).
bool int8_kernel_uses_avx2();
void set_int8_kernel_avx2(bool enabled);

}  // namespace lmrun::models
