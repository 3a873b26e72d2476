// The token embedder of embedding.h, and the sinusoidal fit it documents.
#include "embedding.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include <ATen/ATen.h>

#include "reservoir.h"

namespace lmrun::models::reservoir {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr std::int64_t kIdentityCoordinates = 2;
constexpr double kContextSmoothing = 0.75;

// Seeds of the embedding's own streams (the reservoir's are in reservoir.cpp).
SeededRandom embedding_stream(std::int64_t seed, std::uint64_t which) {
  return SeededRandom(static_cast<std::uint64_t>(seed) * 0xD1B54A32D192ED03ULL + 101 + which);
}

at::Tensor normal_table(SeededRandom& random, std::int64_t rows, std::int64_t cols) {
  at::Tensor t = at::empty({rows, cols}, at::kDouble);
  for (double *p = t.data_ptr<double>(), *end = p + t.numel(); p != end; ++p) *p = random.normal();
  return t;
}

// Positive PMI of a (rows, contexts) count matrix, with smoothed context probabilities.
at::Tensor ppmi(const at::Tensor& counts) {
  const double total = counts.sum().item<double>();
  if (total <= 0) return at::zeros_like(counts);
  at::Tensor row = counts.sum(1, /*keepdim=*/true) / total;                      // (S, 1)
  at::Tensor smoothed = counts.sum(0, /*keepdim=*/true).pow(kContextSmoothing);  // (1, K)
  smoothed = smoothed / smoothed.sum();
  at::Tensor pmi = at::log(counts / total) - at::log(row) - at::log(smoothed);
  return at::where(counts > 0, pmi.clamp_min(0.0), at::zeros_like(pmi));
}

// Pearson correlation of a and b with weights w (all flat).
double weighted_correlation(const at::Tensor& a, const at::Tensor& b, const at::Tensor& w) {
  const at::Tensor sw = w.sum();
  const at::Tensor ma = (w * a).sum() / sw, mb = (w * b).sum() / sw;
  const at::Tensor da = a - ma, db = b - mb;
  const double cov = (w * da * db).sum().item<double>();
  const double va = (w * da * da).sum().item<double>(), vb = (w * db * db).sum().item<double>();
  return va > 0 && vb > 0 ? cov / std::sqrt(va * vb) : 0.0;
}

}  // namespace

SinusoidalFit fit_sinusoidal(const std::vector<std::int64_t>& ids, std::int64_t vocab_size,
                             std::int64_t dim, std::int64_t components, std::int64_t contexts,
                             std::int64_t seed) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  // ---- 1. context statistics over the seen tokens
  std::vector<std::int64_t> count(static_cast<std::size_t>(vocab_size), 0);
  for (std::int64_t id : ids) ++count[id];
  std::vector<std::int64_t> seen;  // vocabulary ids with a count, in id order
  std::vector<std::int64_t> seen_of(count.size(), -1);
  for (std::int64_t v = 0; v < vocab_size; ++v) {
    if (count[v] > 0) {
      seen_of[v] = static_cast<std::int64_t>(seen.size());
      seen.push_back(v);
    }
  }
  std::vector<std::int64_t> by_count = seen;
  std::stable_sort(by_count.begin(), by_count.end(),
                   [&](std::int64_t a, std::int64_t b) { return count[a] > count[b]; });
  by_count.resize(std::min<std::size_t>(by_count.size(), static_cast<std::size_t>(contexts)));
  const auto n_ctx = static_cast<std::int64_t>(by_count.size());
  const auto n_seen = static_cast<std::int64_t>(seen.size());
  std::vector<std::int64_t> ctx_of(count.size(), -1);
  for (std::int64_t c = 0; c < n_ctx; ++c) ctx_of[by_count[c]] = c;

  at::Tensor left = at::zeros({n_seen, std::max<std::int64_t>(n_ctx, 1)}, f64);
  at::Tensor right = at::zeros_like(left);
  double* lp = left.data_ptr<double>();
  double* rp = right.data_ptr<double>();
  const std::int64_t width = left.size(1);
  for (std::size_t i = 1; i < ids.size(); ++i) {
    const std::int64_t a = ids[i - 1], b = ids[i];
    if (ctx_of[a] >= 0) lp[seen_of[b] * width + ctx_of[a]] += 1.0;
    if (ctx_of[b] >= 0) rp[seen_of[a] * width + ctx_of[b]] += 1.0;
  }
  at::Tensor rows = at::cat({ppmi(left), ppmi(right)}, 1);  // (S, 2K)
  rows = rows / rows.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12);
  at::Tensor weight = at::empty({n_seen}, f64);
  for (std::int64_t s = 0; s < n_seen; ++s)
    weight[s] = std::log1p(static_cast<double>(count[seen[s]]));

  // ---- 2. spectral coordinates
  const std::int64_t k = n_ctx >= 2 ? std::min<std::int64_t>(components, rows.size(1)) : 0;
  at::Tensor coords = at::zeros({vocab_size, k}, f64);  // unseen tokens at the origin
  double bandwidth = 1.0, correlation = 0.0;
  if (k > 0) {
    at::Tensor gram = at::matmul(rows.t() * weight, rows);    // (2K, 2K)
    at::Tensor vectors = std::get<1>(at::linalg_eigh(gram));  // ascending eigenvalues
    at::Tensor top = vectors.narrow(1, vectors.size(1) - k, k).flip({1});
    at::Tensor p = at::matmul(rows, top);  // (S, k)
    const double scale =
        std::sqrt(((p * p).sum(1) * weight).sum().item<double>() / weight.sum().item<double>());
    if (scale > 0) p = p / scale;
    coords.index_copy_(0, at::tensor(seen, at::kLong), p);

    // ---- the bandwidth: the kernel on the frequent tokens against their context similarity
    at::Tensor ctx_rows = at::empty({n_ctx}, at::kLong);
    for (std::int64_t c = 0; c < n_ctx; ++c) ctx_rows[c] = seen_of[by_count[c]];
    const at::Tensor pc = p.index_select(0, ctx_rows), fc = rows.index_select(0, ctx_rows);
    const at::Tensor wc = weight.index_select(0, ctx_rows);
    const at::Tensor upper = at::triu(at::ones({n_ctx, n_ctx}, at::kBool), 1);
    const at::Tensor d2 = at::cdist(pc, pc).pow(2).masked_select(upper);
    const at::Tensor sim = at::matmul(fc, fc.t()).masked_select(upper);
    const at::Tensor pair_w = at::outer(wc, wc).masked_select(upper);
    double median = d2.sqrt().median().item<double>();
    if (!(median > 0)) median = 1.0;
    correlation = -2.0;
    for (int j = -16; j <= 16; ++j) {
      const double sigma = median * std::pow(2.0, j / 4.0);
      const double r = weighted_correlation(at::exp(-d2 / (2 * sigma * sigma)), sim, pair_w);
      if (r > correlation) {
        correlation = r;
        bandwidth = sigma;
      }
    }
  }

  // ---- 3. sinusoids of the coordinates
  SeededRandom identity = embedding_stream(seed, 1), frequencies = embedding_stream(seed, 2);
  SeededRandom phases = embedding_stream(seed, 3);
  at::Tensor q =
      at::cat({coords / bandwidth, normal_table(identity, vocab_size, kIdentityCoordinates)},
              1);                                                // (V, k + 2)
  at::Tensor omega = normal_table(frequencies, dim, q.size(1));  // (D, k + 2)
  at::Tensor phi = at::empty({dim}, f64);
  for (std::int64_t d = 0; d < dim; ++d) phi[d] = 2.0 * kPi * phases.uniform();
  SinusoidalFit fit;
  fit.table = (std::sqrt(2.0) * at::cos(at::matmul(q, omega.t()) + phi)).to(at::kFloat);
  fit.bandwidth = bandwidth;
  fit.correlation = k > 0 ? correlation : 0.0;
  fit.seen_tokens = n_seen;
  return fit;
}

TokenEmbedderImpl::TokenEmbedderImpl(const ReservoirOptions& options, std::int64_t vocab_size,
                                     const std::vector<std::int64_t>& ids, bool fit) {
  const std::int64_t D = options.n_embd;
  std::ostringstream text;
  switch (options.embedding) {
    case Embedding::kLearned:
      // LibTorch's Embedding initialisation, N(0, 1), from the experiment's seed.
      weight_ = register_parameter("weight", at::randn({vocab_size, D}));
      text << "learned (" << vocab_size << ", " << D << ")";
      break;
    case Embedding::kFixedRandom: {
      SeededRandom random = embedding_stream(options.reservoir_seed, 0);
      weight_ = register_buffer("weight", normal_table(random, vocab_size, D).to(at::kFloat));
      text << "fixed random (" << vocab_size << ", " << D << "), N(0, 1) from reservoir_seed";
      break;
    }
    case Embedding::kSinusoidal: {
      if (!fit) {
        weight_ = register_buffer("weight", at::zeros({vocab_size, D}));
        text << "sinusoidal (" << vocab_size << ", " << D << "), from the checkpoint";
        break;
      }
      const SinusoidalFit result = fit_sinusoidal(ids, vocab_size, D, options.sinusoid_components,
                                                  options.sinusoid_context, options.reservoir_seed);
      weight_ = register_buffer("weight", result.table);
      text << "sinusoidal (" << vocab_size << ", " << D << "), fitted on " << ids.size()
           << " tokens (" << result.seen_tokens << " distinct): bandwidth " << result.bandwidth
           << ", kernel/context correlation " << result.correlation;
      break;
    }
  }
  description_ = text.str();
}

at::Tensor TokenEmbedderImpl::forward(const at::Tensor& tokens) const {
  return at::embedding(weight_, tokens);
}

}  // namespace lmrun::models::reservoir
