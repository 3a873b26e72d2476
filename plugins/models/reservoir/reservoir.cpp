// The fixed reservoir of reservoir.h: drawing its weights, measuring the spectral radius, and the
// autograd function around the kernel of reservoir_kernel.h.
#include "reservoir.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "lmrun/error.h"

namespace lmrun::models::reservoir {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Independent streams of one seed, so that changing how one part is drawn leaves the others.
enum Stream : std::uint64_t { kRecurrent = 1, kValues, kInput, kBias, kLeak };
SeededRandom stream(std::int64_t seed, Stream which) {
  return SeededRandom(static_cast<std::uint64_t>(seed) * 0x9E3779B97F4A7C15ULL + which);
}

// Grid coordinates of unit i on a (rows, cols) torus.
std::pair<std::int64_t, std::int64_t> cell(std::int64_t i, std::int64_t cols) {
  return {i / cols, i % cols};
}

// The distinct columns feeding row i: uniform over all units (random), or weighted by
// exp(-(d / radius)^2) on the unit grid, a torus (local: Maass et al. 2002), without replacement
// (Efraimidis & Spirakis 2006: the k largest u^(1/w)).
std::vector<std::int64_t> draw_inputs(const ReservoirOptions& o, std::int64_t i, std::int64_t k,
                                      SeededRandom& random, std::vector<std::int64_t>& perm) {
  const std::int64_t n = o.n_units;
  std::vector<std::int64_t> chosen;
  if (o.topology == Topology::kRandom) {
    // A partial Fisher-Yates shuffle of a permutation kept between rows: still uniform.
    for (std::int64_t j = 0; j < k; ++j) {
      std::swap(perm[j], perm[j + random.below(n - j)]);
      chosen.push_back(perm[j]);
    }
  } else {
    const auto grid = unit_grid(o);
    const std::int64_t rows = grid[0], cols = grid[1];
    const auto reach = static_cast<std::int64_t>(std::ceil(3.0 * o.local_radius));
    const auto [r0, c0] = cell(i, cols);
    using Keyed = std::pair<double, std::int64_t>;
    std::priority_queue<Keyed, std::vector<Keyed>, std::greater<>> best;  // the k largest keys
    std::vector<char> seen(static_cast<std::size_t>(n), 0);
    for (std::int64_t dr = -std::min(reach, rows / 2); dr <= std::min(reach, (rows - 1) / 2);
         ++dr) {
      for (std::int64_t dc = -std::min(reach, cols / 2); dc <= std::min(reach, (cols - 1) / 2);
           ++dc) {
        const std::int64_t j = ((r0 + dr + rows) % rows) * cols + (c0 + dc + cols) % cols;
        if (seen[j]) continue;
        seen[j] = 1;
        const double d2 = static_cast<double>(dr * dr + dc * dc);
        const double weight = std::exp(-d2 / (o.local_radius * o.local_radius));
        const double key = std::log(std::max(random.uniform(), 1e-300)) / weight;
        best.push({key, j});
        if (static_cast<std::int64_t>(best.size()) > k) best.pop();
      }
    }
    while (!best.empty()) {
      chosen.push_back(best.top().second);
      best.pop();
    }
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// One backward-capable run of the kernel. Non-tensor inputs travel as tensors in saved_data.
class ReservoirFunction : public torch::autograd::Function<ReservoirFunction> {
 public:
  // u (T, N, B) contiguous fp32 CPU; state (K, N, B) advanced in place (no gradient).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& u,
                            at::Tensor state, const SparseMatrix& w, const Dynamics& d) {
    at::Tensor out = at::empty_like(u);
    at::Tensor saved = at::empty(saved_shape(d, u.size(0), w.n, u.size(2)), u.options());
    run_forward(w, d, u, state, out, &saved);
    ctx->saved_data["saved"] = saved;
    ctx->saved_data["row_ptr"] = w.row_ptr;
    ctx->saved_data["col"] = w.col;
    ctx->saved_data["value"] = w.value;
    ctx->saved_data["leak"] = d.leak;
    ctx->saved_data["bias"] = d.bias;
    ctx->saved_data["neuron"] = static_cast<std::int64_t>(d.neuron);
    ctx->saved_data["trace_rate"] = d.trace_rate;
    ctx->saved_data["membrane_output"] = d.membrane_output;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    SparseMatrix w;
    w.row_ptr = ctx->saved_data["row_ptr"].toTensor();
    w.col = ctx->saved_data["col"].toTensor();
    w.value = ctx->saved_data["value"].toTensor();
    w.n = w.row_ptr.numel() - 1;
    Dynamics d;
    d.neuron = static_cast<Neuron>(ctx->saved_data["neuron"].toInt());
    d.leak = ctx->saved_data["leak"].toTensor();
    d.bias = ctx->saved_data["bias"].toTensor();
    d.trace_rate = ctx->saved_data["trace_rate"].toDouble();
    d.membrane_output = ctx->saved_data["membrane_output"].toBool();
    const at::Tensor grad_out = grads[0].to(at::kFloat).contiguous();
    at::Tensor grad_u =
        run_backward(w.transpose(), d, grad_out, ctx->saved_data["saved"].toTensor());
    return {grad_u, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor cpu_float(const at::Tensor& t) { return t.to(at::kCPU, at::kFloat).contiguous(); }

}  // namespace

// ---- random numbers
// ------------------------------------------------------------------------------

std::uint64_t SeededRandom::next() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double SeededRandom::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double SeededRandom::normal() {
  const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

std::int64_t SeededRandom::below(std::int64_t n) {
  return static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(n));
}

// ---- spectral radius ----------------------------------------------------------------------------

double spectral_radius(const SparseMatrix& w) {
  if (w.n <= kExactSpectralRadiusUnits) {
    return at::linalg_eigvals(w.to_dense().to(at::kDouble)).abs().max().item<double>();
  }
  // Power iteration in double on the CSR arrays: log |W^2k v| - log |W^k v| over k steps.
  const std::int64_t n = w.n, k = 600;
  const std::int64_t* rp = w.row_ptr.data_ptr<std::int64_t>();
  const std::int64_t* c = w.col.data_ptr<std::int64_t>();
  const float* v = w.value.data_ptr<float>();
  SeededRandom random(12345);
  std::vector<double> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
  for (double& e : x) e = random.normal();
  double log_growth = 0.0;
  for (std::int64_t step = 0; step < 2 * k; ++step) {
    double norm = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      double s = 0.0;
      for (std::int64_t j = rp[i]; j < rp[i + 1]; ++j) s += v[j] * x[c[j]];
      y[i] = s;
      norm += s * s;
    }
    norm = std::sqrt(norm);
    if (norm == 0.0) return 0.0;  // nilpotent
    for (std::int64_t i = 0; i < n; ++i) x[i] = y[i] / norm;
    if (step >= k) log_growth += std::log(norm);
  }
  return std::exp(log_growth / static_cast<double>(k));
}

// ---- the reservoir ------------------------------------------------------------------------------

ReservoirImpl::ReservoirImpl(const ReservoirOptions& options, std::int64_t n_embd)
    : options_(options) {
  const std::int64_t n = options.n_units;
  SeededRandom random = stream(options.reservoir_seed, kRecurrent);
  build_recurrent(random);

  SeededRandom input = stream(options.reservoir_seed, kInput);
  at::Tensor w_in = at::empty({n, n_embd}, at::kFloat);
  const double in_scale = options.input_scaling / std::sqrt(static_cast<double>(n_embd));
  for (float *p = w_in.data_ptr<float>(), *end = p + w_in.numel(); p != end; ++p)
    *p = static_cast<float>(in_scale * input.normal());
  input_weight_ = register_buffer("input_weight", w_in);

  SeededRandom bias_random = stream(options.reservoir_seed, kBias);
  at::Tensor bias = at::empty({n}, at::kFloat);
  for (std::int64_t i = 0; i < n; ++i)
    bias[i] = options.bias_scaling * (2.0 * bias_random.uniform() - 1.0);
  bias_ = register_buffer("bias", bias);

  SeededRandom leak_random = stream(options.reservoir_seed, kLeak);
  at::Tensor leak = at::full({n}, options.leak_rate, at::kFloat);
  if (options.leak_rate_min > 0.0 && options.leak_rate_min < options.leak_rate) {
    const double lo = std::log(options.leak_rate_min), hi = std::log(options.leak_rate);
    for (std::int64_t i = 0; i < n; ++i) leak[i] = std::exp(lo + (hi - lo) * leak_random.uniform());
  }
  leak_ = register_buffer("leak", leak);
}

void ReservoirImpl::build_recurrent(SeededRandom& random) {
  const ReservoirOptions& o = options_;
  const std::int64_t n = o.n_units;
  const std::int64_t k =
      std::clamp<std::int64_t>(std::llround((1.0 - o.sparsity) * static_cast<double>(n)), 1, n);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  std::vector<std::int64_t> row_ptr{0}, col;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::vector<std::int64_t> inputs = draw_inputs(o, i, k, random, perm);
    col.insert(col.end(), inputs.begin(), inputs.end());
    row_ptr.push_back(static_cast<std::int64_t>(col.size()));
  }
  SeededRandom values = stream(o.reservoir_seed, kValues);
  at::Tensor value = at::empty({static_cast<std::int64_t>(col.size())}, at::kFloat);
  for (float *p = value.data_ptr<float>(), *end = p + value.numel(); p != end; ++p)
    *p = static_cast<float>(values.normal());

  SparseMatrix w;
  w.n = n;
  w.row_ptr = at::tensor(row_ptr, at::kLong);
  w.col = at::tensor(col, at::kLong);
  w.value = value;
  const double radius = spectral_radius(w);
  if (!(radius > 1e-12)) {
    throw Error("the recurrent weights drawn with reservoir_seed " +
                    std::to_string(o.reservoir_seed) +
                    " are nilpotent (spectral radius 0): they cannot be rescaled to "
                    "spectral_radius",
                "change reservoir_seed, or lower sparsity so that each unit has more inputs");
  }
  value.mul_(o.spectral_radius / radius);
  measured_radius_ = o.spectral_radius;
  row_ptr_ = register_buffer("row_ptr", w.row_ptr);
  col_ = register_buffer("col", w.col);
  value_ = register_buffer("value", value);
}

SparseMatrix ReservoirImpl::matrix() const {
  SparseMatrix w;
  w.n = options_.n_units;
  w.row_ptr = row_ptr_.to(at::kCPU).contiguous();
  w.col = col_.to(at::kCPU).contiguous();
  w.value = cpu_float(value_);
  return w;
}

Dynamics ReservoirImpl::dynamics() const {
  Dynamics d;
  d.neuron = options_.activation;
  d.leak = cpu_float(leak_);
  d.bias = cpu_float(bias_);
  d.threshold = options_.threshold;
  d.refractory = options_.refractory;
  d.trace_rate = options_.trace_rate;
  d.membrane_output = options_.membrane_readout;
  return d;
}

at::Tensor ReservoirImpl::drive(const at::Tensor& embeddings) const {
  return at::matmul(embeddings, input_weight_.t());  // (B, T, D) @ (D, N)
}

at::Tensor ReservoirImpl::initial_state(std::int64_t batch) const {
  return reservoir::initial_state(dynamics(), options_.n_units, batch);
}

at::Tensor ReservoirImpl::run(const at::Tensor& u, at::Tensor& state) const {
  // (T, N, B), still connected to u in the autograd graph.
  const at::Tensor time_major = u.permute({1, 2, 0}).to(at::kCPU, at::kFloat).contiguous();
  const SparseMatrix w = matrix();
  const Dynamics d = dynamics();
  at::Tensor out;
  if (time_major.requires_grad() && at::GradMode::is_enabled()) {
    out = ReservoirFunction::apply(time_major, state, w, d);
  } else {
    out = at::empty_like(time_major);
    run_forward(w, d, time_major, state, out, nullptr);
  }
  return out.permute({2, 0, 1}).to(u.device(), u.scalar_type());  // (B, T, N)
}

}  // namespace lmrun::models::reservoir
