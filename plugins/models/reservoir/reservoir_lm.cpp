// The reservoir language model of reservoir_lm.h: the forward pass, the carry between decoding
// calls, the closed-form ridge readout and the diagnostics `lmrun inspect` prints.
#include "reservoir_lm.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>

#include "lmrun/error.h"
#include "reservoir_kernel.h"

namespace lmrun::models::reservoir {
namespace {

std::string shape(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

std::string number(double v) {
  std::ostringstream out;
  out.precision(4);
  out << v;
  return out.str();
}

const char* neuron_name(Neuron neuron) {
  switch (neuron) {
    case Neuron::kSine:
      return "sine";
    case Neuron::kTanh:
      return "tanh";
    case Neuron::kSpiking:
      return "lif";
  }
  return "?";
}

// The x in [lo, hi] minimising a unimodal f: golden-section search, 40 steps.
template <class F>
double golden_section(F f, double lo, double hi) {
  const double g = (std::sqrt(5.0) - 1.0) / 2.0;
  double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
  double fa = f(a), fb = f(b);
  for (int i = 0; i < 40; ++i) {
    if (fa < fb) {
      hi = b, b = a, fb = fa;
      a = hi - g * (hi - lo);
      fa = f(a);
    } else {
      lo = a, a = b, fa = fb;
      b = lo + g * (hi - lo);
      fb = f(b);
    }
  }
  return (lo + hi) / 2.0;
}

double cross_entropy(const at::Tensor& logits, const at::Tensor& targets) {
  return at::cross_entropy_loss(logits, targets).item<double>();
}

}  // namespace

ReservoirLmImpl::ReservoirLmImpl(const ReservoirOptions& options, const ModelContext& context,
                                 const std::vector<std::int64_t>& ids)
    : options_(options),
      vocab_size_(context.vocab_size),
      out_dim_(context.output == ModelOutput::kVectors ? options.n_embd : context.vocab_size),
      vectors_(context.output == ModelOutput::kVectors) {
  const std::int64_t D = options.n_embd;
  embed_ = register_module(
      "embed", TokenEmbedder(options, vocab_size_, ids, !context.weights_from_checkpoint));
  if (options.use_context) {
    // FiLM (Perez et al. 2018): scale 1 + gamma and shift beta of the input embeddings from the
    // context vector, both zero at the start so that conditioning begins as the identity.
    film_ = register_module("film", torch::nn::Linear(D, 2 * D));
    at::NoGradGuard no_grad;
    film_->weight.zero_();
    film_->bias.zero_();
  }
  reservoir_ = register_module("reservoir", Reservoir(options, D));
  readout_ = register_module("readout", Readout(options, options.n_units, D, out_dim_));
  score_floor_ = register_buffer("score_floor", at::zeros({1}));
}

void ReservoirLmImpl::check_tokens(const at::Tensor& idx) const {
  if (idx.dim() != 2 || idx.size(0) < 1 || idx.size(1) < 1 || idx.scalar_type() != at::kLong) {
    throw Error("reservoir: tokens must be (batch, time) int64 ids, got " + shape(idx) + " " +
                std::string(c10::toString(idx.scalar_type())));
  }
  const std::int64_t low = idx.min().item<std::int64_t>(), high = idx.max().item<std::int64_t>();
  if (low < 0 || high >= vocab_size_) {
    throw Error("reservoir: token id " + std::to_string(low < 0 ? low : high) +
                " is outside the vocabulary of " + std::to_string(vocab_size_));
  }
}

at::Tensor ReservoirLmImpl::embed(const at::Tensor& idx, const at::Tensor& context) {
  at::Tensor e = embed_->forward(idx);  // (B, T, D)
  if (film_ && context.defined()) {
    const std::vector<at::Tensor> gb = film_->forward(context).unsqueeze(1).chunk(2, -1);
    e = e * (1.0 + gb[0]) + gb[1];  // (B, 1, D) each
  }
  return e;
}

at::Tensor ReservoirLmImpl::context_vector(const Conditioning& context) {
  if (!context.defined()) return {};
  const at::Tensor e = embed_->forward(context.tokens.to(embed_->weight().device()));  // (B, S, D)
  at::Tensor m = context.mask.defined() ? context.mask.to(e.device(), e.scalar_type())
                                        : at::ones({e.size(0), e.size(1)}, e.options());
  m = m.unsqueeze(-1);  // (B, S, 1)
  return (e * m).sum(1) / m.sum(1).clamp_min(1.0);
}

ReservoirCarry ReservoirLmImpl::start(std::int64_t batch_size,
                                      const at::Tensor& context_vector) const {
  if (batch_size < 1) {
    throw Error("reservoir: decoding needs a batch size >= 1, got " + std::to_string(batch_size));
  }
  ReservoirCarry carry;
  carry.batch_size = batch_size;
  carry.state = reservoir_->initial_state(batch_size);
  carry.history = readout_->empty_history(batch_size, embed_->weight());
  if (context_vector.defined()) {
    if (context_vector.size(0) != batch_size && context_vector.size(0) != 1) {
      throw Error("reservoir: the context holds " + std::to_string(context_vector.size(0)) +
                  " rows for a batch of " + std::to_string(batch_size));
    }
    carry.context = context_vector.expand({batch_size, context_vector.size(1)}).contiguous();
  }
  return carry;
}

at::Tensor ReservoirLmImpl::run(const at::Tensor& idx, ReservoirCarry& carry,
                                std::vector<Activation>* record) {
  check_tokens(idx);
  if (idx.size(0) != carry.batch_size) {
    throw Error("reservoir: the state holds a batch of " + std::to_string(carry.batch_size) +
                ", but the tokens are " + shape(idx));
  }
  const at::Tensor e = embed(idx, carry.context);                                // (B, T, D)
  const at::Tensor states = reservoir_->run(reservoir_->drive(e), carry.state);  // (B, T, N)
  if (record != nullptr) {
    record->push_back({"embedding", e, true});
    record->push_back({"reservoir", states, true});
  }
  at::Tensor y = readout_->forward(states, carry.history, e, carry.context);
  if (options_.readout_fit == ReadoutFit::kRidge && !vectors_) {
    const double floor = score_floor_.item<double>();
    if (floor > 0) y = at::log(y.clamp_min(floor));  // the ridge's scores read as probabilities
  }
  carry.history = readout_->next_history(states.detach(), carry.history);
  carry.filled += idx.size(1);
  return y;  // (B, T, out)
}

at::Tensor ReservoirLmImpl::forward(const at::Tensor& idx, const at::Tensor& /*mask*/,
                                    std::vector<Activation>* record) {
  ReservoirCarry carry = start(idx.size(0), {});
  return run(idx, carry, record);
}

// ---- the ridge readout
// ---------------------------------------------------------------------------

std::string ReservoirLmImpl::fit_ridge(const std::vector<std::int64_t>& ids,
                                       std::int64_t sequence_length) {
  at::NoGradGuard no_grad;
  const std::int64_t L = sequence_length > 0 ? sequence_length : 64;
  const std::int64_t washout = std::min(options_.washout, L - 1);
  const auto available = static_cast<std::int64_t>(ids.size() > 0 ? (ids.size() - 1) / L : 0);
  if (available < 1) {
    return "ridge: no training text to fit on; the readout keeps its initial weights";
  }
  const std::int64_t per_window = L - washout;
  const std::int64_t windows =
      std::clamp<std::int64_t>(options_.ridge_max_states / per_window, 1, available);
  const at::Tensor all = at::tensor(ids, at::kLong);
  const at::Tensor starts =
      at::linspace(0, static_cast<double>((available - 1) * L), windows).round().to(at::kLong);

  torch::nn::Linear& out = readout_->out();
  const std::int64_t F = out->weight.size(1), O = out_dim_;
  at::Tensor xtx = at::zeros({F + 1, F + 1}, at::kDouble);
  at::Tensor ytx = at::zeros({O, F + 1}, at::kDouble);  // (X^T Y)^T
  at::Tensor last_x, last_y;
  std::int64_t rows = 0;
  const std::int64_t batch = 64;
  const at::Tensor offsets = at::arange(L + 1, at::kLong);
  const at::Tensor table = embed_->weight().to(at::kCPU, at::kFloat);
  for (std::int64_t b0 = 0; b0 < windows; b0 += batch) {
    const at::Tensor s = starts.narrow(0, b0, std::min(batch, windows - b0));
    const at::Tensor chunk = all.index({s.unsqueeze(1) + offsets});  // (b, L + 1)
    const at::Tensor x = chunk.narrow(1, 0, L).to(embed_->weight().device());
    const at::Tensor y = chunk.narrow(1, 1 + washout, per_window).reshape({-1});
    ReservoirCarry carry = start(x.size(0), {});
    const at::Tensor e = embed(x, {});
    const at::Tensor states = reservoir_->run(reservoir_->drive(e), carry.state);
    at::Tensor f = readout_->linear_features(states, e).narrow(1, washout, per_window);
    f = f.reshape({-1, F}).to(at::kCPU, at::kFloat);
    const at::Tensor design = at::cat({f, at::ones({f.size(0), 1})}, 1);  // (n, F + 1)
    xtx += at::matmul(design.t(), design).to(at::kDouble);
    if (vectors_) {
      ytx += at::matmul(table.index_select(0, y).t(), design).to(at::kDouble);
    } else {
      ytx.index_add_(0, y, design.to(at::kDouble));
    }
    rows += design.size(0);
    last_x = design;
    last_y = y;
  }
  // Tikhonov penalty lambda * n on the weights, none on the bias (the last column).
  at::Tensor penalty =
      at::full({F + 1}, options_.ridge_lambda * static_cast<double>(rows), at::kDouble);
  penalty[F] = 0.0;
  const at::Tensor w = at::linalg_solve(xtx + at::diag(penalty), ytx.t());  // (F + 1, O)
  // Regression scores estimate the next token's probabilities but are not logits. Two readings,
  // each with one constant fitted by cross-entropy on the last batch of training states, and the
  // better kept: logits = a z (a temperature), or logits = log(max(z, f)) (the scores as
  // probabilities, floored at f; score_floor). Either keeps the ridge's solution.
  double scale = 1.0, floor = 0.0;
  if (!vectors_) {
    const at::Tensor z = at::matmul(last_x.to(at::kDouble), w);  // (n, V)
    const double log_a =
        golden_section([&](double x) { return cross_entropy(z * std::exp(x), last_y); },
                       std::log(0.01), std::log(1000.0));
    const double log_f = golden_section(
        [&](double x) { return cross_entropy(at::log(z.clamp_min(std::exp(x))), last_y); },
        std::log(1e-8), std::log(0.5));
    const double scaled = cross_entropy(z * std::exp(log_a), last_y);
    const double floored = cross_entropy(at::log(z.clamp_min(std::exp(log_f))), last_y);
    if (floored < scaled) {
      floor = std::exp(log_f);
    } else {
      scale = std::exp(log_a);
    }
  }
  out->weight.copy_((w.narrow(0, 0, F).t() * scale).to(out->weight.options()));
  out->bias.copy_((w[F] * scale).to(out->bias.options()));
  score_floor_.fill_(floor);
  std::ostringstream text;
  text << "ridge readout fitted on " << rows << " states (" << windows << " windows of " << L
       << (washout > 0 ? ", washout " + std::to_string(washout) : "") << "), lambda "
       << options_.ridge_lambda;
  if (!vectors_) {
    text << (floor > 0 ? ", logits log(max(scores, " + number(floor) + "))"
                       : ", score scale " + number(scale));
  }
  return text.str();
}

// ---- diagnostics
// ---------------------------------------------------------------------------------

std::string ReservoirLmImpl::diagnostics(const Batch& batch) {
  at::NoGradGuard no_grad;
  check_tokens(batch.inputs);
  const SparseMatrix w = reservoir_->matrix();
  const Dynamics d = reservoir_->dynamics();
  const std::int64_t N = options_.n_units;
  std::ostringstream out;
  out << "spectral_radius: " << number(spectral_radius(w)) << " (measured on the recurrent "
      << "weights; spectral_radius option " << options_.spectral_radius << ")\n";

  const at::Tensor ctx = context_vector(batch.context);
  const at::Tensor e = embed(batch.inputs.to(embed_->weight().device()), ctx);
  const at::Tensor u =
      reservoir_->drive(e).permute({1, 2, 0}).to(at::kCPU, at::kFloat).contiguous();  // (T, N, B)
  const std::int64_t T = u.size(0), B = u.size(2);
  at::Tensor state = reservoir_->initial_state(B);
  at::Tensor states = at::empty_like(u);
  at::Tensor saved = at::empty(saved_shape(d, T, N, B), u.options());
  run_forward(w, d, u, state, states, &saved);
  out << "state_mean_abs: " << number(states.abs().mean().item<double>())
      << " (mean |x| of what the readout sees, over units, steps and rows)\n";
  if (d.neuron == Neuron::kSpiking) {
    out << "spike_rate: " << number(saved[1].mean().item<double>())
        << " (spikes per unit per step; "
        << number(saved[1].sum(0).gt(0).to(at::kFloat).mean().item<double>())
        << " of the units fire at least once)\n";
  } else {
    out << "saturation: " << number(states.abs().gt(0.95).to(at::kFloat).mean().item<double>())
        << " (fraction of |x| > 0.95, where the " << neuron_name(d.neuron)
        << " units have no slope left)\n";
  }

  // The echo state property: two different random initial states, the same input.
  at::Generator generator = at::detail::createCPUGenerator(1234);
  std::vector<at::Tensor> runs;
  for (int r = 0; r < 2; ++r) {
    at::Tensor s = reservoir_->initial_state(B);
    if (d.neuron == Neuron::kSpiking) {
      s[0].uniform_(0.0, options_.threshold, generator);
    } else {
      s[0].uniform_(-1.0, 1.0, generator);
    }
    at::Tensor o = at::empty_like(u);
    run_forward(w, d, u, s, o, nullptr);
    runs.push_back(o);
  }
  const at::Tensor distance =
      (runs[0] - runs[1]).pow(2).mean({1, 2}).sqrt();  // (T) RMS over units and rows
  const double first = distance[0].item<double>(), last = distance[T - 1].item<double>();
  std::int64_t forgotten = -1;
  for (std::int64_t t = 0; t < T; ++t) {
    if (distance[t].item<double>() <= 1e-3 * std::max(first, 1e-30)) {
      forgotten = t + 1;
      break;
    }
  }
  out << "echo_state: distance " << number(first) << " at step 1, " << number(last) << " at step "
      << T << " (RMS difference of two runs from different random initial states under the same "
      << "input; "
      << (last <= 1e-2 * first ? "converges: the echo state property holds"
                               : "does not converge within the batch")
      << ")\n";
  out << "memory_steps: " << (forgotten > 0 ? std::to_string(forgotten) : "> " + std::to_string(T))
      << " (steps until the initial state's trace is below 1e-3 of its start; washout "
      << options_.washout << ")\n";
  return out.str();
}

std::vector<std::string> ReservoirLmImpl::describe() const {
  const ReservoirOptions& o = options_;
  std::ostringstream res;
  res << "  reservoir: " << o.n_units << " " << neuron_name(o.activation) << " units, "
      << reservoir_->nonzeros() << " recurrent weights (sparsity " << o.sparsity
      << "), spectral radius " << o.spectral_radius << ", leak " << o.leak_rate;
  if (o.leak_rate_min > 0) res << " (per unit from " << o.leak_rate_min << ")";
  res << ", input scaling " << o.input_scaling << ", bias scaling " << o.bias_scaling << ", seed "
      << o.reservoir_seed;
  if (o.activation == Neuron::kSpiking) {
    res << "; threshold " << o.threshold << ", refractory " << o.refractory << ", "
        << (o.membrane_readout ? "membrane" : "spike-trace") << " readout";
  }
  std::int64_t trained = 0, fixed = 0;
  for (const at::Tensor& p : parameters()) trained += p.numel();
  for (const at::Tensor& b : buffers()) fixed += b.numel();
  std::vector<std::string> lines = {
      std::string("reservoir: ") +
          (o.activation == Neuron::kSpiking ? "liquid state machine" : "echo state network") +
          ", vocab " + std::to_string(vocab_size_) + (vectors_ ? ", vector outputs" : ""),
      "  embed:     " + embed_->description(),
      res.str(),
  };
  if (film_) lines.push_back("  film:      context -> scale and shift of the input embeddings");
  lines.push_back("  readout:   " + readout_->describe().front() +
                  (o.readout_fit == ReadoutFit::kRidge ? " (ridge)" : ""));
  if (o.washout > 0) lines.push_back("  washout:   " + std::to_string(o.washout) + " positions");
  if (!note_.empty()) lines.push_back("  " + note_);
  lines.push_back("  parameters: " + std::to_string(trained) + " trained, " +
                  std::to_string(fixed) + " fixed (buffers)");
  return lines;
}

}  // namespace lmrun::models::reservoir

namespace lmrun::models::reservoir {

double ReservoirLmImpl::flops_per_token() const {
  const double recurrence = static_cast<double>(reservoir_->nonzeros()) +
                            static_cast<double>(reservoir_->n_units() * options_.n_embd);
  return 6.0 * (recurrence + readout_->macs_per_token());
}

}  // namespace lmrun::models::reservoir
