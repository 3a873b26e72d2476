// The fixed reservoir: random sparse recurrent weights rescaled to a spectral radius, input
// weights, biases and leak rates, all drawn from reservoir_seed and registered as buffers
// (checkpointed, never trained). Runs the recurrence of reservoir_kernel.h under autograd: the
// weights get no gradient, the input drive does (embeddings and FiLM modifiers train through it).
//
//   Reservoir reservoir(options, n_embd);
//   at::Tensor u = reservoir->drive(embeddings);              // (B, T, D) -> (B, T, N)
//   at::Tensor state = reservoir->initial_state(B);           // (K, N, B)
//   at::Tensor states = reservoir->run(u, state);             // (B, T, N), state advanced
//
// Checkpoint keys (buffers; they are API):
//   reservoir.row_ptr        (N + 1) int64   the recurrent matrix W in CSR form
//   reservoir.col            (nnz)   int64
//   reservoir.value          (nnz)   float   rescaled to spectral_radius
//   reservoir.input_weight   (N, D)  float   W_in, input_scaling folded in
//   reservoir.bias           (N)     float
//   reservoir.leak           (N)     float   per-unit leak rate
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "reservoir_kernel.h"
#include "reservoir_options.h"

namespace lmrun::models::reservoir {

// A deterministic generator independent of LibTorch's (the reservoir has its own seed, and its
// weights must not change with a LibTorch version): splitmix64, Box-Muller normals.
class SeededRandom {
 public:
  explicit SeededRandom(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  double uniform();                    // [0, 1)
  double normal();                     // N(0, 1)
  std::int64_t below(std::int64_t n);  // [0, n)

 private:
  std::uint64_t state_;
};

// The spectral radius (largest eigenvalue modulus) of a sparse matrix: exact (LAPACK's geev on the
// dense matrix, in double) up to kExactSpectralRadiusUnits units, else the growth rate of a power
// iteration, (|W^2k v| / |W^k v|)^(1/k) with k = 600, a few tenths of a percent off for random
// reservoirs.
constexpr std::int64_t kExactSpectralRadiusUnits = 1024;
double spectral_radius(const SparseMatrix& w);

class ReservoirImpl : public torch::nn::Module {
 public:
  ReservoirImpl(const ReservoirOptions& options, std::int64_t n_embd);

  // embeddings (B, T, D) -> the input drive W_in e (B, T, N).
  at::Tensor drive(const at::Tensor& embeddings) const;
  // A zero state for `batch` sequences (K, N, B), on the CPU.
  at::Tensor initial_state(std::int64_t batch) const;
  // Runs the reservoir over u (B, T, N) from `state` (K, N, B, advanced in place) and returns what
  // the readout sees (B, T, N) on u's device and dtype. Differentiable in u when u requires grad;
  // the recurrence itself always runs on the CPU in fp32.
  at::Tensor run(const at::Tensor& u, at::Tensor& state) const;

  std::int64_t n_units() const { return options_.n_units; }
  std::int64_t nonzeros() const { return value_.numel(); }
  Neuron neuron() const { return options_.activation; }
  // The CSR matrix and dynamics as CPU fp32 views of the buffers (copies when they live elsewhere).
  SparseMatrix matrix() const;
  Dynamics dynamics() const;
  // The spectral radius the weights were rescaled to, as measured after rescaling.
  double measured_radius() const { return measured_radius_; }

 private:
  void build_recurrent(SeededRandom& random);

  ReservoirOptions options_;
  at::Tensor row_ptr_, col_, value_;  // W (N, N) in CSR form
  at::Tensor input_weight_;           // (N, D)
  at::Tensor bias_;                   // (N)
  at::Tensor leak_;                   // (N)
  double measured_radius_ = 0.0;
};
TORCH_MODULE(Reservoir);

}  // namespace lmrun::models::reservoir
