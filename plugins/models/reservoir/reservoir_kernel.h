// The reservoir's recurrence as plain C++ loops over contiguous fp32 CPU buffers: a sparse
// recurrent matrix in CSR form, rate neurons (sine, tanh) or leaky integrate-and-fire neurons,
// forward and its exact backward (backpropagation through time, surrogate gradients for spikes).
//
//   SparseMatrix w = SparseMatrix::from_tensors(row_ptr, col, value, n);
//   at::Tensor state = initial_state(dynamics, n, B);            // (K, N, B) zeros
//   at::Tensor saved = at::empty(saved_shape(dynamics, T, n, B));
//   run_forward(w, dynamics, u, state, out, &saved);             // u, out (T, N, B)
//   at::Tensor grad_u = run_backward(w.transpose(), dynamics, grad_out, saved);
//
// Layout: time-major, batch innermost ((T, N, B)): the sparse product of one step reads, for each
// nonzero, B contiguous floats of the previous state, which GCC vectorises. Rows are spread over
// LibTorch's intra-op threads (at::parallel_for); the time loop is sequential.
//
// Rate neurons (Jaeger 2001; leaky integration as reservoirpy's Reservoir):
//   pre_t = W x_{t-1} + u_t + b
//   x_t   = (1 - a) x_{t-1} + a f(pre_t)          f = sin or tanh, a the per-unit leak rate
// Leaky integrate-and-fire neurons (Maass, Natschläger & Markram 2002, discretised per step):
//   I_t = W s_{t-1} + u_t + b                     s: spikes (0 or 1) of the previous step
//   v̂_t = (1 - a) v_{t-1} + a I_t                 membrane before the threshold test
//   s_t = [v̂_t >= threshold]; a spike resets v_t to 0 and holds the neuron for `refractory`
//   steps (v stays 0, no spike); otherwise v_t = v̂_t
//   z_t = (1 - trace_rate) z_{t-1} + trace_rate s_t   exponentially filtered spike train
// The readout sees z (filtered spikes) or v̂ (membrane). The spike's gradient is the fast-sigmoid
// surrogate of SuperSpike (Zenke & Ganguli 2018), ds/dv̂ = 1 / (1 + slope |v̂ - threshold|)^2, and
// the reset is not differentiated through (Zenke & Vogels 2021).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lmrun::models::reservoir {

enum class Neuron { kSine, kTanh, kSpiking };

// A square sparse matrix in compressed sparse row form, as CPU tensors (views, not owned copies).
struct SparseMatrix {
  at::Tensor row_ptr;  // (N + 1) int64
  at::Tensor col;      // (nnz) int64
  at::Tensor value;    // (nnz) float
  std::int64_t n = 0;

  // The transpose, also in CSR form (a counting sort, O(nnz)): the backward pass multiplies by it.
  SparseMatrix transpose() const;
  // (N, N) dense, for tests and for measuring the spectral radius of small reservoirs.
  at::Tensor to_dense() const;
  // y (N, B) = this @ x (N, B), both contiguous float.
  void multiply(const float* x, std::int64_t batch, float* y) const;
};

struct Dynamics {
  Neuron neuron = Neuron::kSine;
  at::Tensor leak;  // (N) float: per-unit leak rate a in (0, 1]
  at::Tensor bias;  // (N) float
  // Spiking only.
  double threshold = 1.0;
  std::int64_t refractory = 2;   // steps a neuron is held after it spikes
  double trace_rate = 0.3;       // the spike filter's rate
  bool membrane_output = false;  // the readout sees v̂ instead of the filtered spikes
  double surrogate_slope = 5.0;  // of the fast sigmoid, per unit of (v̂ - threshold)
};

// Floats of state per unit and sequence: 1 (rate: x) or 4 (spiking: v, refractory count, z, s).
std::int64_t state_channels(Neuron neuron);
// A zero state (K, N, B).
at::Tensor initial_state(const Dynamics& dynamics, std::int64_t n, std::int64_t batch);
// What the forward pass keeps for the backward one: (S, T, N, B), S = 1 (rate: a f'(pre)) or 3
// (spiking: the surrogate derivative, the spike, whether the neuron integrated).
std::vector<std::int64_t> saved_shape(const Dynamics& dynamics, std::int64_t steps, std::int64_t n,
                                      std::int64_t batch);

// Runs T steps from `state` (K, N, B), advancing it in place, and writes what the readout sees at
// each step into `out` (T, N, B). u (T, N, B) is the input drive W_in e_t. With `saved`
// ((saved_shape), preallocated), keeps what run_backward needs. All contiguous fp32 CPU.
void run_forward(const SparseMatrix& w, const Dynamics& dynamics, const at::Tensor& u,
                 at::Tensor& state, at::Tensor& out, at::Tensor* saved);

// The gradient of a loss with respect to u (T, N, B), given its gradient with respect to the
// outputs of run_forward (T, N, B) and what it saved; `wt` is the transpose of the forward's
// matrix. The initial state gets no gradient.
at::Tensor run_backward(const SparseMatrix& wt, const Dynamics& dynamics,
                        const at::Tensor& grad_out, const at::Tensor& saved);

}  // namespace lmrun::models::reservoir
