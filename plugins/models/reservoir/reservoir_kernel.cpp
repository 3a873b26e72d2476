// The recurrence of reservoir_kernel.h: per time step, one sparse product parallel over rows, then
// the neurons' update. The nonlinearities of rate neurons go through ATen's vectorised sin/tanh;
// everything else is loops over B contiguous floats, which GCC vectorises at -O3.
#include "reservoir_kernel.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace lmrun::models::reservoir {
namespace {

// Rows per task so that a task holds at least ~32k multiply-adds: decoding one sequence should not
// pay the thread pool's overhead for a few hundred floats.
std::int64_t grain(const SparseMatrix& w, std::int64_t batch) {
  const std::int64_t per_row = (w.col.numel() / std::max<std::int64_t>(w.n, 1) + 2) * batch;
  return std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(per_row, 1));
}

// y[i, :] = bias[i] + add[i, :] + sum_k W[i, k] x[k, :] for rows [begin, end); add may be null.
void sparse_rows(const SparseMatrix& w, const float* x, const float* add, const float* bias,
                 std::int64_t batch, std::int64_t begin, std::int64_t end, float* y) {
  const std::int64_t* row_ptr = w.row_ptr.data_ptr<std::int64_t>();
  const std::int64_t* col = w.col.data_ptr<std::int64_t>();
  const float* value = w.value.data_ptr<float>();
  for (std::int64_t i = begin; i < end; ++i) {
    float* out = y + i * batch;
    const float b = bias != nullptr ? bias[i] : 0.0f;
    if (add != nullptr) {
      const float* a = add + i * batch;
      for (std::int64_t j = 0; j < batch; ++j) out[j] = a[j] + b;
    } else {
      for (std::int64_t j = 0; j < batch; ++j) out[j] = b;
    }
    for (std::int64_t k = row_ptr[i]; k < row_ptr[i + 1]; ++k) {
      const float v = value[k];
      const float* in = x + col[k] * batch;
      for (std::int64_t j = 0; j < batch; ++j) out[j] += v * in[j];
    }
  }
}

float surrogate(float vhat, float threshold, float slope) {
  const float d = 1.0f + slope * std::fabs(vhat - threshold);
  return 1.0f / (d * d);
}

// ---- rate neurons ----------------------------------------------------------------------------

void rate_forward(const SparseMatrix& w, const Dynamics& d, const at::Tensor& u, at::Tensor& state,
                  at::Tensor& out, at::Tensor* saved) {
  const std::int64_t T = u.size(0), N = w.n, B = u.size(2), step = N * B;
  const float* leak = d.leak.data_ptr<float>();
  const float* bias = d.bias.data_ptr<float>();
  at::Tensor pre = at::empty({N, B}, u.options());  // (N, B)
  at::Tensor act = at::empty({N, B}, u.options());  // (N, B) f(pre)
  float* pre_p = pre.data_ptr<float>();
  float* act_p = act.data_ptr<float>();
  const float* u_p = u.data_ptr<float>();
  float* out_p = out.data_ptr<float>();
  float* saved_p = saved != nullptr ? saved->data_ptr<float>() : nullptr;
  const bool sine = d.neuron == Neuron::kSine;
  const std::int64_t g = grain(w, B);
  const float* prev = state.data_ptr<float>();
  for (std::int64_t t = 0; t < T; ++t) {
    at::parallel_for(0, N, g, [&](std::int64_t begin, std::int64_t end) {
      sparse_rows(w, prev, u_p + t * step, bias, B, begin, end, pre_p);
    });
    float* deriv = saved_p != nullptr ? saved_p + t * step : nullptr;
    if (sine) {
      at::sin_out(act, pre);
      if (deriv != nullptr) {
        at::Tensor view = at::from_blob(deriv, {N, B}, u.options());
        at::cos_out(view, pre);
      }
    } else {
      at::tanh_out(act, pre);
    }
    float* x = out_p + t * step;
    at::parallel_for(0, N, std::max<std::int64_t>(1, 32768 / B),
                     [&](std::int64_t b0, std::int64_t b1) {
                       for (std::int64_t i = b0; i < b1; ++i) {
                         const float a = leak[i];
                         const float* p = prev + i * B;
                         const float* f = act_p + i * B;
                         float* xi = x + i * B;
                         for (std::int64_t j = 0; j < B; ++j) xi[j] = p[j] + a * (f[j] - p[j]);
                         if (deriv == nullptr) continue;
                         float* di = deriv + i * B;
                         if (sine) {
                           for (std::int64_t j = 0; j < B; ++j) di[j] *= a;  // a cos(pre)
                         } else {
                           for (std::int64_t j = 0; j < B; ++j) di[j] = a * (1.0f - f[j] * f[j]);
                         }
                       }
                     });
    prev = x;
  }
  if (T > 0) state[0].copy_(out[T - 1]);
}

at::Tensor rate_backward(const SparseMatrix& wt, const Dynamics& d, const at::Tensor& grad_out,
                         const at::Tensor& saved) {
  const std::int64_t T = grad_out.size(0), N = wt.n, B = grad_out.size(2), step = N * B;
  const float* leak = d.leak.data_ptr<float>();
  at::Tensor grad_u = at::empty_like(grad_out);
  at::Tensor carry = at::zeros({N, B}, grad_out.options());  // dL/dx_t through x_{t+1}
  at::Tensor total = at::empty({N, B}, grad_out.options());  // dL/dx_t
  float* carry_p = carry.data_ptr<float>();
  float* total_p = total.data_ptr<float>();
  const float* go = grad_out.data_ptr<float>();
  const float* deriv = saved.data_ptr<float>();
  float* gu = grad_u.data_ptr<float>();
  const std::int64_t elementwise = std::max<std::int64_t>(1, 32768 / B);
  for (std::int64_t t = T - 1; t >= 0; --t) {
    float* gpre = gu + t * step;
    at::parallel_for(0, N, elementwise, [&](std::int64_t b0, std::int64_t b1) {
      for (std::int64_t k = b0 * B; k < b1 * B; ++k) {
        total_p[k] = go[t * step + k] + carry_p[k];
        gpre[k] = total_p[k] * deriv[t * step + k];
      }
    });
    if (t == 0) break;
    // carry = (1 - a) total + W^T gpre
    at::parallel_for(0, N, grain(wt, B), [&](std::int64_t begin, std::int64_t end) {
      sparse_rows(wt, gpre, nullptr, nullptr, B, begin, end, carry_p);
      for (std::int64_t i = begin; i < end; ++i) {
        const float keep = 1.0f - leak[i];
        for (std::int64_t j = 0; j < B; ++j) carry_p[i * B + j] += keep * total_p[i * B + j];
      }
    });
  }
  return grad_u;
}

// ---- spiking neurons -------------------------------------------------------------------------

void spiking_forward(const SparseMatrix& w, const Dynamics& d, const at::Tensor& u,
                     at::Tensor& state, at::Tensor& out, at::Tensor* saved) {
  const std::int64_t T = u.size(0), N = w.n, B = u.size(2), step = N * B;
  const float* leak = d.leak.data_ptr<float>();
  const float* bias = d.bias.data_ptr<float>();
  const auto threshold = static_cast<float>(d.threshold);
  const auto refractory = static_cast<float>(d.refractory);
  const auto rate = static_cast<float>(d.trace_rate);
  const auto slope = static_cast<float>(d.surrogate_slope);
  float* v = state[0].data_ptr<float>();  // membrane after reset
  float* r = state[1].data_ptr<float>();  // refractory steps left
  float* z = state[2].data_ptr<float>();  // filtered spikes
  float* s = state[3].data_ptr<float>();  // spikes of the last step
  at::Tensor current = at::empty({N, B}, u.options());
  float* cur = current.data_ptr<float>();
  const float* u_p = u.data_ptr<float>();
  float* out_p = out.data_ptr<float>();
  float* saved_p = saved != nullptr ? saved->data_ptr<float>() : nullptr;
  const std::int64_t plane = T * step;  // one of the saved channels
  for (std::int64_t t = 0; t < T; ++t) {
    at::parallel_for(0, N, grain(w, B), [&](std::int64_t begin, std::int64_t end) {
      sparse_rows(w, s, u_p + t * step, bias, B, begin, end, cur);
    });
    at::parallel_for(
        0, N, std::max<std::int64_t>(1, 8192 / B), [&](std::int64_t b0, std::int64_t b1) {
          for (std::int64_t i = b0; i < b1; ++i) {
            const float a = leak[i];
            for (std::int64_t j = 0; j < B; ++j) {
              const std::int64_t k = i * B + j;
              float vhat = 0.0f, spike = 0.0f, active = 0.0f;
              if (r[k] > 0.0f) {
                r[k] -= 1.0f;
                v[k] = 0.0f;
              } else {
                active = 1.0f;
                vhat = (1.0f - a) * v[k] + a * cur[k];
                if (vhat >= threshold) {
                  spike = 1.0f;
                  v[k] = 0.0f;
                  r[k] = refractory;
                } else {
                  v[k] = vhat;
                }
              }
              s[k] = spike;
              z[k] = (1.0f - rate) * z[k] + rate * spike;
              out_p[t * step + k] = d.membrane_output ? vhat : z[k];
              if (saved_p != nullptr) {
                saved_p[t * step + k] = active > 0.0f ? surrogate(vhat, threshold, slope) : 0.0f;
                saved_p[plane + t * step + k] = spike;
                saved_p[2 * plane + t * step + k] = active;
              }
            }
          }
        });
  }
}

at::Tensor spiking_backward(const SparseMatrix& wt, const Dynamics& d, const at::Tensor& grad_out,
                            const at::Tensor& saved) {
  const std::int64_t T = grad_out.size(0), N = wt.n, B = grad_out.size(2), step = N * B;
  const std::int64_t plane = T * step;
  const float* leak = d.leak.data_ptr<float>();
  const auto rate = static_cast<float>(d.trace_rate);
  at::Tensor grad_u = at::empty_like(grad_out);
  const auto options = grad_out.options();
  at::Tensor gz_t = at::zeros({N, B}, options);      // dL/dz_t through z_{t+1}
  at::Tensor gv_t = at::zeros({N, B}, options);      // dL/dv_t through v̂_{t+1}
  at::Tensor gs_rec_t = at::zeros({N, B}, options);  // dL/ds_t through I_{t+1} (W^T gI)
  float* gz = gz_t.data_ptr<float>();
  float* gv = gv_t.data_ptr<float>();
  float* gs_rec = gs_rec_t.data_ptr<float>();
  const float* go = grad_out.data_ptr<float>();
  const float* h = saved.data_ptr<float>();
  const float* spike = h + plane;
  const float* active = h + 2 * plane;
  float* gu = grad_u.data_ptr<float>();
  for (std::int64_t t = T - 1; t >= 0; --t) {
    float* gi = gu + t * step;
    at::parallel_for(
        0, N, std::max<std::int64_t>(1, 8192 / B), [&](std::int64_t b0, std::int64_t b1) {
          for (std::int64_t i = b0; i < b1; ++i) {
            const float a = leak[i];
            for (std::int64_t j = 0; j < B; ++j) {
              const std::int64_t k = i * B + j, at_t = t * step + k;
              float gvhat = 0.0f;
              float gzk = gz[k];
              if (d.membrane_output) {
                gvhat = go[at_t];
              } else {
                gzk += go[at_t];
              }
              const float gs = rate * gzk + gs_rec[k];
              gvhat = active[at_t] * (gvhat + gs * h[at_t] + gv[k] * (1.0f - spike[at_t]));
              gi[k] = a * gvhat;
              gv[k] = (1.0f - a) * gvhat;
              gz[k] = (1.0f - rate) * gzk;
            }
          }
        });
    if (t == 0) break;
    at::parallel_for(0, N, grain(wt, B), [&](std::int64_t begin, std::int64_t end) {
      sparse_rows(wt, gi, nullptr, nullptr, B, begin, end, gs_rec);
    });
  }
  return grad_u;
}

}  // namespace

// ---- sparse matrix ---------------------------------------------------------------------------

SparseMatrix SparseMatrix::transpose() const {
  const std::int64_t nnz = col.numel();
  const std::int64_t* rp = row_ptr.data_ptr<std::int64_t>();
  const std::int64_t* c = col.data_ptr<std::int64_t>();
  const float* v = value.data_ptr<float>();
  SparseMatrix t;
  t.n = n;
  t.row_ptr = at::zeros({n + 1}, at::kLong);
  t.col = at::empty({nnz}, at::kLong);
  t.value = at::empty({nnz}, at::kFloat);
  std::int64_t* trp = t.row_ptr.data_ptr<std::int64_t>();
  for (std::int64_t k = 0; k < nnz; ++k) ++trp[c[k] + 1];
  for (std::int64_t i = 0; i < n; ++i) trp[i + 1] += trp[i];
  std::vector<std::int64_t> fill(trp, trp + n);
  std::int64_t* tc = t.col.data_ptr<std::int64_t>();
  float* tv = t.value.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t k = rp[i]; k < rp[i + 1]; ++k) {
      const std::int64_t slot = fill[c[k]]++;
      tc[slot] = i;
      tv[slot] = v[k];
    }
  }
  return t;
}

at::Tensor SparseMatrix::to_dense() const {
  at::Tensor dense = at::zeros({n, n}, at::kFloat);
  float* d = dense.data_ptr<float>();
  const std::int64_t* rp = row_ptr.data_ptr<std::int64_t>();
  const std::int64_t* c = col.data_ptr<std::int64_t>();
  const float* v = value.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t k = rp[i]; k < rp[i + 1]; ++k) d[i * n + c[k]] += v[k];
  }
  return dense;
}

void SparseMatrix::multiply(const float* x, std::int64_t batch, float* y) const {
  at::parallel_for(0, n, grain(*this, batch), [&](std::int64_t begin, std::int64_t end) {
    sparse_rows(*this, x, nullptr, nullptr, batch, begin, end, y);
  });
}

// ---- entry points ----------------------------------------------------------------------------

std::int64_t state_channels(Neuron neuron) { return neuron == Neuron::kSpiking ? 4 : 1; }

at::Tensor initial_state(const Dynamics& dynamics, std::int64_t n, std::int64_t batch) {
  return at::zeros({state_channels(dynamics.neuron), n, batch}, at::kFloat);
}

std::vector<std::int64_t> saved_shape(const Dynamics& dynamics, std::int64_t steps, std::int64_t n,
                                      std::int64_t batch) {
  return {dynamics.neuron == Neuron::kSpiking ? 3 : 1, steps, n, batch};
}

void run_forward(const SparseMatrix& w, const Dynamics& dynamics, const at::Tensor& u,
                 at::Tensor& state, at::Tensor& out, at::Tensor* saved) {
  if (dynamics.neuron == Neuron::kSpiking) {
    spiking_forward(w, dynamics, u, state, out, saved);
  } else {
    rate_forward(w, dynamics, u, state, out, saved);
  }
}

at::Tensor run_backward(const SparseMatrix& wt, const Dynamics& dynamics,
                        const at::Tensor& grad_out, const at::Tensor& saved) {
  return dynamics.neuron == Neuron::kSpiking ? spiking_backward(wt, dynamics, grad_out, saved)
                                             : rate_backward(wt, dynamics, grad_out, saved);
}

}  // namespace lmrun::models::reservoir
