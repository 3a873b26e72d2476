// The `reservoir` plugin: its parameters bound to ReservoirOptions, and the reservoir language
// model of reservoir_lm.h behind lmrun::Model, with stateful decoding, conditioning on a context
// and the diagnostics of `lmrun inspect`.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmrun/error.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/torch_model.h"
#include "reservoir_lm.h"

namespace lmrun::models::reservoir {
namespace {

using O = ReservoirOptions;

std::string text(std::int64_t v) { return std::to_string(v); }

void add_reservoir_params(Schema<O>& s) {
  s.add("n_units", &O::n_units, "reservoir units N").min(1);
  s.add("spectral_radius", &O::spectral_radius,
        "largest eigenvalue modulus the recurrent weights are rescaled to; < 1 for fading memory")
      .min(0, /*exclusive=*/true)
      .max(3);
  s.add("leak_rate", &O::leak_rate, "leak a: x_t = (1 - a) x_{t-1} + a f(W x_{t-1} + W_in e_t + b)")
      .min(0, /*exclusive=*/true)
      .max(1);
  s.add("leak_rate_min", &O::leak_rate_min,
        "> 0: per-unit leak rates log-uniform in [leak_rate_min, leak_rate] (several time scales)")
      .range(0, 1);
  s.add("input_scaling", &O::input_scaling,
        "std of each unit's input drive for unit-RMS embeddings")
      .min(0);
  s.add("bias_scaling", &O::bias_scaling, "unit biases uniform in [-bias_scaling, bias_scaling]")
      .min(0);
  s.add("sparsity", &O::sparsity,
        "fraction of zero recurrent weights; each unit gets round((1 - sparsity) N) inputs")
      .range(0, 1, /*max_exclusive=*/true);
  s.add_enum("topology", &O::topology, {{"random", Topology::kRandom}, {"local", Topology::kLocal}},
             "recurrent connections uniform over units, or local on the unit grid (a torus)");
  s.add("local_radius", &O::local_radius,
        "local topology: connection probability ~ exp(-(d / local_radius)^2) on the grid")
      .min(0, /*exclusive=*/true);
  s.add_enum("activation", &O::activation,
             {{"sine", Neuron::kSine}, {"tanh", Neuron::kTanh}, {"lif", Neuron::kSpiking}},
             "unit nonlinearity; lif: leaky integrate-and-fire spiking neurons (a liquid state "
             "machine)");
  s.add("threshold", &O::threshold, "lif: firing threshold of the membrane").min(0, true);
  s.add("refractory", &O::refractory, "lif: steps a neuron stays silent after a spike").min(0);
  s.add("trace_rate", &O::trace_rate, "lif: rate of the spike filter the readout sees")
      .min(0, true)
      .max(1);
  s.add("membrane_readout", &O::membrane_readout,
        "lif: the readout sees the membranes instead of the filtered spikes");
  s.add("washout", &O::washout,
        "leading positions of every sequence the loss and metrics leave out (the state still "
        "remembers the initial one)")
      .min(0);
  s.add("reservoir_seed", &O::reservoir_seed,
        "seed of the fixed weights (and fixed embeddings), apart from the experiment's")
      .min(0);
}

void add_model_params(Schema<O>& s) {
  s.add_enum("embedding", &O::embedding,
             {{"learned", Embedding::kLearned},
              {"fixed_random", Embedding::kFixedRandom},
              {"sinusoidal", Embedding::kSinusoidal}},
             "token embedder: trained, fixed N(0, 1), or sinusoids fitted to the training text's "
             "co-occurrences");
  s.add("n_embd", &O::n_embd, "token embedding size D").min(1);
  s.add("sinusoid_components", &O::sinusoid_components,
        "sinusoidal: spectral coordinates of the co-occurrence statistics per token")
      .min(1);
  s.add("sinusoid_context", &O::sinusoid_context,
        "sinusoidal: most frequent tokens counted as neighbours")
      .min(2);
  s.add_enum("readout", &O::readout,
             {{"linear", ReadoutKind::kLinear},
              {"mlp", ReadoutKind::kMlp},
              {"cnn2d", ReadoutKind::kCnn2d},
              {"cnn3d", ReadoutKind::kCnn3d}},
             "what maps the states to the outputs");
  s.add("readout_input", &O::readout_input, "the current token's embedding joins the features");
  s.add("readout_hidden", &O::readout_hidden,
        "mlp: hidden width; cnn: width of the hidden layer after the convolutions (0: none)")
      .min(0);
  s.add("readout_layers", &O::readout_layers, "mlp: hidden layers").min(1);
  s.add("window", &O::window, "cnn: the last W states the readout sees").min(1);
  s.add("channels", &O::channels, "cnn: feature maps per convolution").min(1);
  s.add("kernel", &O::kernel, "cnn: kernel size over units (and both grid axes)").min(1);
  s.add("stride", &O::stride, "cnn: the first convolution's stride over units (grid axes)").min(1);
  s.add("cnn_layers", &O::cnn_layers, "cnn: convolutions (residual: blocks) after the first")
      .min(0);
  s.add("residual", &O::residual, "cnn: residual blocks of two convolutions and a skip");
  s.add("grid", &O::grid, "[rows, cols] the units are arranged on; rows * cols == n_units").min(1);
  s.add("context_channels", &O::context_channels,
        "cnn3d: input channels carrying the system-message context")
      .min(1);
  s.add("use_context", &O::use_context,
        "condition on a conversation's system message: FiLM of the input embeddings (cnn3d: "
        "also context channels)");
  s.add("dropout", &O::dropout, "dropout in the readout, training only").range(0, 1, true);
  s.add_enum("readout_fit", &O::readout_fit,
             {{"backprop", ReadoutFit::kBackprop}, {"ridge", ReadoutFit::kRidge}},
             "train the readout by gradient descent, or solve a linear one in closed form at "
             "construction (ridge regression over the training text)");
  s.add("ridge_lambda", &O::ridge_lambda, "ridge: Tikhonov penalty, times the number of states")
      .min(0);
  s.add("ridge_max_states", &O::ridge_max_states, "ridge: training states read, at most").min(1);
}

Schema<O> reservoir_schema() {
  Schema<O> s;
  add_reservoir_params(s);
  add_model_params(s);
  s.check([](const O& o) {
    if (!o.grid.empty()) {
      if (o.grid.size() != 2) {
        throw Error("grid must be [rows, cols], got " +
                    text(static_cast<std::int64_t>(o.grid.size())) + " numbers");
      }
      if (o.grid[0] * o.grid[1] != o.n_units) {
        throw Error("grid [" + text(o.grid[0]) + ", " + text(o.grid[1]) + "] holds " +
                        text(o.grid[0] * o.grid[1]) + " units, but n_units is " + text(o.n_units),
                    "choose rows * cols == n_units, e.g. n_units = " + text(o.grid[0] * o.grid[1]));
      }
    }
    if (o.readout == ReadoutKind::kCnn3d && o.grid.empty()) {
      throw Error("readout = \"cnn3d\" needs grid = [rows, cols] with rows * cols == n_units",
                  "set grid, e.g. grid = [32, 32] for n_units = 1024");
    }
    if (o.leak_rate_min > o.leak_rate) {
      throw Error("leak_rate_min (" + std::to_string(o.leak_rate_min) + ") is above leak_rate (" +
                  std::to_string(o.leak_rate) + ")");
    }
    if (o.readout_fit == ReadoutFit::kRidge && o.readout != ReadoutKind::kLinear) {
      throw Error("readout_fit = \"ridge\" solves a linear readout, but readout is not \"linear\"",
                  "set readout = \"linear\", or readout_fit = \"backprop\"");
    }
  });
  return s;
}

// ---- the model
// -----------------------------------------------------------------------------------

class ReservoirState final : public DecodeState {
 public:
  explicit ReservoirState(ReservoirCarry carry) : carry(std::move(carry)) {}
  std::int64_t length() const override { return carry.filled; }
  bool select_rows(const at::Tensor& rows) override {
    const at::Tensor index = rows.to(at::kCPU, at::kLong);
    carry.state = carry.state.index_select(2, index).contiguous();
    carry.history = carry.history.index_select(0, index.to(carry.history.device()));
    if (carry.context.defined()) {
      carry.context = carry.context.index_select(0, index.to(carry.context.device()));
    }
    carry.batch_size = rows.size(0);
    return true;
  }
  ReservoirCarry carry;
};

class ReservoirModel final : public TorchModel<ReservoirLm> {
 public:
  explicit ReservoirModel(ReservoirLm net) : TorchModel(std::move(net)) {}

  at::Tensor forward_conditioned(const at::Tensor& inputs, const at::Tensor& /*mask*/,
                                 const Conditioning& context) override {
    ReservoirCarry carry = net_->start(inputs.size(0), net_->context_vector(context));
    return net_->run(inputs, carry);
  }
  bool uses_context() const override { return net_->options().use_context; }

  bool can_decode() const override { return true; }
  std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size) override {
    return std::make_unique<ReservoirState>(net_->start(batch_size, {}));
  }
  std::unique_ptr<DecodeState> start_decoding_conditioned(std::int64_t batch_size,
                                                          const Conditioning& context) override {
    at::NoGradGuard no_grad;
    return std::make_unique<ReservoirState>(net_->start(batch_size, net_->context_vector(context)));
  }
  at::Tensor decode(DecodeState& state, const at::Tensor& tokens) override {
    auto* reservoir = dynamic_cast<ReservoirState*>(&state);
    if (reservoir == nullptr) {
      throw Error("reservoir: the decoding state was not made by this model's start_decoding()");
    }
    at::NoGradGuard no_grad;
    return net_->run(tokens, reservoir->carry).select(1, tokens.size(1) - 1);  // (B, out)
  }

  at::Tensor token_embeddings() override { return net_->token_embeddings(); }
  std::int64_t washout() const override { return net_->options().washout; }
  std::string diagnostics(const Batch& batch) override { return net_->diagnostics(batch); }
  double flops_per_token(std::int64_t /*context*/) const override {
    return net_->flops_per_token();
  }
};

std::shared_ptr<Model> make_model(const O& options, const ModelContext& context) {
  require_language_model(context);
  const bool cnn = options.readout == ReadoutKind::kCnn2d || options.readout == ReadoutKind::kCnn3d;
  if (cnn && context.sequence_length > 0 && options.window > context.sequence_length) {
    throw Error("window " + text(options.window) +
                    " is longer than the context: the data's "
                    "sequences hold " +
                    text(context.sequence_length) + " tokens",
                "set window <= " + text(context.sequence_length) + ", or a larger data.block_size");
  }
  if (context.sequence_length > 0 && options.washout >= context.sequence_length) {
    throw Error("washout " + text(options.washout) + " leaves nothing of the data's sequences of " +
                    text(context.sequence_length) + " tokens to learn from",
                "set washout < " + text(context.sequence_length));
  }
  const bool fitting = !context.weights_from_checkpoint && context.tokenizer != nullptr &&
                       !context.training_text.empty();
  const bool needs_ids =
      options.embedding == Embedding::kSinusoidal || options.readout_fit == ReadoutFit::kRidge;
  std::vector<std::int64_t> ids;
  if (fitting && needs_ids) ids = context.tokenizer->encode(context.training_text);
  ReservoirLm net(options, context, ids);
  if (options.readout_fit == ReadoutFit::kRidge && fitting) {
    net->set_note(net->fit_ridge(ids, context.sequence_length));
  }
  return std::make_shared<ReservoirModel>(std::move(net));
}

// Trained parameters and fixed buffers, and the floats a training step keeps per token (the
// reservoir's state and saved derivatives, the readout's features), for `lmrun check`.
SizeEstimate estimate(const O& o, const ModelContext& context) {
  const double v = static_cast<double>(std::max<std::int64_t>(context.vocab_size, 1));
  const double n = static_cast<double>(o.n_units), d = static_cast<double>(o.n_embd);
  const double fan_in = std::max(1.0, std::round((1.0 - o.sparsity) * n));
  SizeEstimate size;
  size.parameters = v * d + n * d + n * (fan_in * 2 + 3) + (n + d) * v;
  size.activations_per_token = d + 4 * n + v;
  if (o.readout == ReadoutKind::kCnn2d || o.readout == ReadoutKind::kCnn3d) {
    size.activations_per_token += 2 * static_cast<double>(o.channels * o.window) * n;
  }
  return size;
}

void register_reservoir(Registry& registry) {
  registry.add<Model>("reservoir",
                      "echo state network / liquid state machine language model: a fixed random "
                      "reservoir and a trained or ridge-fitted readout",
                      reservoir_schema(), make_model, estimate);
}

}  // namespace
}  // namespace lmrun::models::reservoir

LMRUN_PLUGIN("reservoir", "0.1.0", lmrun::models::reservoir::register_reservoir)
