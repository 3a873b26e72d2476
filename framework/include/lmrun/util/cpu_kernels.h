// Vector primitives for plain-C++ CPU kernels of plugins: a dot product and a matrix-vector product
// over raw fp32 arrays, written so GCC vectorises them on any x86-64 (SSE) without -march flags.
// For batch-1 decoding, where LibTorch's per-op dispatch costs more than the arithmetic.
//
//   lmrun::cpu::matvec(weight, bias, x, rows, cols, out);   // out = weight (rows, cols) @ x + bias
//
// Sums are reassociated (eight partial sums), so results agree with LibTorch's to float rounding.
#pragma once

#include <cstdint>
#include <cstring>

namespace lmrun::cpu {
namespace detail {

// Four float lanes (one SSE register, which every x86-64 has), two accumulators per row: eight
// independent partial sums keep the adders busy.
typedef float Lanes __attribute__((vector_size(16)));
constexpr std::int64_t kStep = 8;  // floats per loop iteration: two Lanes

inline Lanes load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float sum_lanes(Lanes v) { return (v[0] + v[2]) + (v[1] + v[3]); }

}  // namespace detail

// sum of a[k] * b[k] for k < n.
inline float dot(const float* a, const float* b, std::int64_t n) {
  const std::int64_t vector_n = n - n % detail::kStep;
  detail::Lanes acc{}, acc2{};
  for (std::int64_t k = 0; k < vector_n; k += detail::kStep) {
    acc += detail::load(a + k) * detail::load(b + k);
    acc2 += detail::load(a + k + 4) * detail::load(b + k + 4);
  }
  float s = detail::sum_lanes(acc + acc2);
  for (std::int64_t k = vector_n; k < n; ++k) s += a[k] * b[k];
  return s;
}

// out[n] = dot(weight[n, :], x) + bias[n] for n < rows; weight (rows, cols). Four rows at a time,
// so each load of x feeds four products.
inline void matvec(const float* weight, const float* bias, const float* x, std::int64_t rows,
                   std::int64_t cols, float* out) {
  const std::int64_t vector_cols = cols - cols % detail::kStep;
  std::int64_t n = 0;
  for (; n + 4 <= rows; n += 4) {
    const float* w0 = weight + n * cols;
    const float* w1 = w0 + cols;
    const float* w2 = w1 + cols;
    const float* w3 = w2 + cols;
    detail::Lanes a0{}, a1{}, a2{}, a3{}, b0{}, b1{}, b2{}, b3{};
    for (std::int64_t k = 0; k < vector_cols; k += detail::kStep) {
      const detail::Lanes xa = detail::load(x + k), xb = detail::load(x + k + 4);
      a0 += detail::load(w0 + k) * xa;
      b0 += detail::load(w0 + k + 4) * xb;
      a1 += detail::load(w1 + k) * xa;
      b1 += detail::load(w1 + k + 4) * xb;
      a2 += detail::load(w2 + k) * xa;
      b2 += detail::load(w2 + k + 4) * xb;
      a3 += detail::load(w3 + k) * xa;
      b3 += detail::load(w3 + k + 4) * xb;
    }
    float s0 = detail::sum_lanes(a0 + b0), s1 = detail::sum_lanes(a1 + b1);
    float s2 = detail::sum_lanes(a2 + b2), s3 = detail::sum_lanes(a3 + b3);
    for (std::int64_t k = vector_cols; k < cols; ++k) {
      s0 += w0[k] * x[k];
      s1 += w1[k] * x[k];
      s2 += w2[k] * x[k];
      s3 += w3[k] * x[k];
    }
    out[n] = s0;
    out[n + 1] = s1;
    out[n + 2] = s2;
    out[n + 3] = s3;
  }
  for (; n < rows; ++n) out[n] = dot(weight + n * cols, x, cols);
  if (bias != nullptr) {
    for (std::int64_t i = 0; i < rows; ++i) out[i] += bias[i];
  }
}

}  // namespace lmrun::cpu
