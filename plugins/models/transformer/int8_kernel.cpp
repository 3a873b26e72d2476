// The INT8 products of int8_kernel.h. The AVX2 dot products widen 16 weights to int16
// (vpmovsxbw) and multiply-add them against the int16 activations (vpmaddwd) into int32 lanes:
// |q| <= 127, so a pair sums to at most 2 * 127 * 127 and nothing saturates; four rows share each
// load of x. The paths only produce int32 sums (parked in y's storage); one shared, untargeted
// epilogue turns them into floats, so no path can fuse the float multiply-add differently.
#include "int8_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <immintrin.h>

namespace lmrun::models {
namespace {

constexpr std::int64_t kPad = 32;  // row stride and vector length are multiples of this
constexpr float kQMax = 127.0f;

std::int64_t padded(std::int64_t n) { return (n + kPad - 1) / kPad * kPad; }

bool cpu_has_avx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}

// The path in use; a function-local static, so it is set before any caller can run.
bool& use_avx2() {
  static bool use = cpu_has_avx2();
  return use;
}

// Half to even under the default rounding mode, clamped; v finite.
std::int16_t quantize_value(float v) {
  return static_cast<std::int16_t>(std::min(kQMax, std::max(-kQMax, std::nearbyint(v))));
}

void store_sum(float* y, std::int32_t sum) { std::memcpy(y, &sum, sizeof sum); }

// ---- Portable path ----

float max_abs_portable(const float* x, std::int64_t n) {
  float top = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) top = std::max(top, std::fabs(x[i]));
  return top;
}

void quantize_portable(const float* x, std::int64_t n, float scale, std::int16_t* q) {
  for (std::int64_t i = 0; i < n; ++i) q[i] = quantize_value(x[i] / scale);
}

// y[r] <- the int32 bits of sum_c q[r][c] * x[c] over the padded stride.
void sums_portable(const Int8Matrix& w, const std::int16_t* x, float* y) {
  for (std::int64_t r = 0; r < w.rows; ++r) {
    const std::int8_t* row = w.q.data() + r * w.stride;
    std::int32_t sum = 0;
    for (std::int64_t c = 0; c < w.stride; ++c) sum += std::int32_t{row[c]} * std::int32_t{x[c]};
    store_sum(y + r, sum);
  }
}

// ---- AVX2 path ----

__attribute__((target("avx2"))) float max_abs_avx2(const float* x, std::int64_t n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 top8 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    top8 = _mm256_max_ps(top8, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, top8);
  float top = 0.0f;
  for (float v : lanes) top = std::max(top, v);
  for (; i < n; ++i) top = std::max(top, std::fabs(x[i]));
  return top;
}

__attribute__((target("avx2"))) void quantize_avx2(const float* x, std::int64_t n, float scale,
                                                   std::int16_t* q) {
  const __m256 s = _mm256_set1_ps(scale), hi = _mm256_set1_ps(kQMax), lo = _mm256_set1_ps(-kQMax);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), s);
    v = _mm256_round_ps(v, _MM_FROUND_CUR_DIRECTION | _MM_FROUND_NO_EXC);  // as nearbyint
    v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
    const __m256i v32 = _mm256_cvtps_epi32(v);  // exact: v is integral
    const __m128i v16 =
        _mm_packs_epi32(_mm256_castsi256_si128(v32), _mm256_extracti128_si256(v32, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), v16);
  }
  for (; i < n; ++i) q[i] = quantize_value(x[i] / scale);
}

__attribute__((target("avx2"))) inline __m256i madd16(const std::int8_t* w, __m256i x) {
  const __m256i w16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  return _mm256_madd_epi16(w16, x);
}

__attribute__((target("avx2"))) inline __m256i load16(const std::int16_t* x) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
}

__attribute__((target("avx2"))) void sums_avx2(const Int8Matrix& w, const std::int16_t* x,
                                               float* y) {
  const std::int64_t stride = w.stride;
  std::int64_t r = 0;
  for (; r + 4 <= w.rows; r += 4) {
    const std::int8_t* w0 = w.q.data() + r * stride;
    const std::int8_t* w1 = w0 + stride;
    const std::int8_t* w2 = w1 + stride;
    const std::int8_t* w3 = w2 + stride;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (std::int64_t c = 0; c < stride; c += kPad) {
      const __m256i xa = load16(x + c), xb = load16(x + c + 16);
      a0 = _mm256_add_epi32(a0, _mm256_add_epi32(madd16(w0 + c, xa), madd16(w0 + c + 16, xb)));
      a1 = _mm256_add_epi32(a1, _mm256_add_epi32(madd16(w1 + c, xa), madd16(w1 + c + 16, xb)));
      a2 = _mm256_add_epi32(a2, _mm256_add_epi32(madd16(w2 + c, xa), madd16(w2 + c + 16, xb)));
      a3 = _mm256_add_epi32(a3, _mm256_add_epi32(madd16(w3 + c, xa), madd16(w3 + c + 16, xb)));
    }
    // Lane sums of a0..a3 side by side: [s0 s1 s2 s3].
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + r), s);
  }
  for (; r < w.rows; ++r) {
    const std::int8_t* w0 = w.q.data() + r * stride;
    __m256i a = _mm256_setzero_si256();
    for (std::int64_t c = 0; c < stride; c += 16)
      a = _mm256_add_epi32(a, madd16(w0 + c, load16(x + c)));
    const __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i a2 = _mm_add_epi32(a4, _mm_unpackhi_epi64(a4, a4));
    store_sum(y + r, _mm_cvtsi128_si32(_mm_add_epi32(a2, _mm_shuffle_epi32(a2, 1))));
  }
}

// The shared epilogue: y[r] = float(sum) * (scale[r] * x_scale) (+ bias[r]).
void finish(const Int8Matrix& w, const float* bias, float x_scale, float* y) {
  for (std::int64_t r = 0; r < w.rows; ++r) {
    std::int32_t sum;
    std::memcpy(&sum, y + r, sizeof sum);
    y[r] = static_cast<float>(sum) * (w.scale[r] * x_scale);
  }
  if (bias != nullptr) {
    for (std::int64_t r = 0; r < w.rows; ++r) y[r] += bias[r];
  }
}

}  // namespace

Int8Matrix quantize_rows(const float* w, std::int64_t rows, std::int64_t cols) {
  Int8Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.stride = padded(cols);
  m.q.assign(static_cast<std::size_t>(rows * m.stride), 0);
  m.scale.assign(static_cast<std::size_t>(rows), 0.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    const float top = max_abs_portable(row, cols);
    if (top == 0.0f) continue;
    const float scale = top / kQMax;
    m.scale[r] = scale;
    std::int8_t* q = m.q.data() + r * m.stride;
    for (std::int64_t c = 0; c < cols; ++c)
      q[c] = static_cast<std::int8_t>(quantize_value(row[c] / scale));
  }
  return m;
}

void quantize_vector(const float* x, std::int64_t n, Int8Vector& out) {
  const auto size = static_cast<std::size_t>(padded(n));
  out.q.resize(size);
  std::fill(out.q.begin() + n, out.q.end(), std::int16_t{0});
  const bool avx2 = use_avx2();
  const float top = avx2 ? max_abs_avx2(x, n) : max_abs_portable(x, n);
  if (top == 0.0f) {
    out.scale = 0.0f;
    std::fill(out.q.begin(), out.q.end(), std::int16_t{0});
    return;
  }
  out.scale = top / kQMax;
  if (avx2) {
    quantize_avx2(x, n, out.scale, out.q.data());
  } else {
    quantize_portable(x, n, out.scale, out.q.data());
  }
}

void matvec_int8(const Int8Matrix& w, const float* bias, const Int8Vector& x, float* y) {
  if (use_avx2()) {
    sums_avx2(w, x.q.data(), y);
  } else {
    sums_portable(w, x.q.data(), y);
  }
  finish(w, bias, x.scale, y);
}

void matvec_int8(const Int8Matrix& w, const float* bias, const float* x, Int8Vector& scratch,
                 float* y) {
  quantize_vector(x, w.cols, scratch);
  matvec_int8(w, bias, scratch, y);
}

bool int8_kernel_uses_avx2() { return use_avx2(); }

void set_int8_kernel_avx2(bool enabled) { use_avx2() = enabled && cpu_has_avx2(); }

}  // namespace lmrun::models
