// The `reservoir` model's options: one struct, bound to [model] keys by the schema in
// reservoir_plugin.cpp (the defaults live here and only here), read by every part of the model.
#pragma once

#include <cstdint>
#include <vector>

#include "reservoir_kernel.h"

namespace lmrun::models::reservoir {

enum class Embedding { kLearned, kFixedRandom, kSinusoidal };
enum class ReadoutKind { kLinear, kMlp, kCnn2d, kCnn3d };
enum class ReadoutFit { kBackprop, kRidge };
enum class Topology { kRandom, kLocal };

struct ReservoirOptions {
  // ---- the reservoir (fixed, from reservoir_seed) ----
  std::int64_t n_units = 1024;
  double spectral_radius = 0.9;  // of the recurrent matrix, measured and rescaled to
  double leak_rate = 0.5;        // a: x_t = (1 - a) x_{t-1} + a f(...)
  double leak_rate_min = 0.0;    // > 0: per-unit rates log-uniform in [leak_rate_min, leak_rate]
  double input_scaling = 1.0;    // std of each unit's input drive for unit-RMS embeddings
  double bias_scaling = 0.2;     // unit biases uniform in [-bias_scaling, bias_scaling]
  double sparsity = 0.99;        // fraction of zero recurrent weights (fixed in-degree)
  Topology topology = Topology::kRandom;
  double local_radius = 2.0;  // kLocal: connection probability ~ exp(-(d / local_radius)^2)
  Neuron activation = Neuron::kSine;
  double threshold = 1.0;           // spiking: firing threshold of the membrane
  std::int64_t refractory = 2;      // spiking: steps a neuron is silent after a spike
  double trace_rate = 0.3;          // spiking: rate of the spike filter the readout sees
  bool membrane_readout = false;    // spiking: the readout sees membranes instead of spike traces
  std::int64_t washout = 0;         // leading positions the loss and metrics leave out
  std::int64_t reservoir_seed = 1;  // the fixed weights' own seed

  // ---- token embedding ----
  Embedding embedding = Embedding::kLearned;
  std::int64_t n_embd = 64;              // D
  std::int64_t sinusoid_components = 8;  // sinusoidal: spectral coordinates per token
  std::int64_t sinusoid_context = 256;   // sinusoidal: most frequent tokens counted as contexts

  // ---- readout ----
  ReadoutKind readout = ReadoutKind::kLinear;
  bool readout_input = true;          // the current token's embedding joins the readout's features
  std::int64_t readout_hidden = 256;  // mlp: hidden width; cnn: the head's hidden width (0: none)
  std::int64_t readout_layers = 1;    // mlp: hidden layers
  std::int64_t window = 8;            // cnn: W, the last W states the readout sees
  std::int64_t channels = 8;          // cnn: feature maps
  std::int64_t kernel = 5;            // cnn: kernel width over units (and the grid)
  std::int64_t stride = 4;            // cnn: the first layer's stride over units (and the grid)
  std::int64_t cnn_layers = 1;        // cnn: convolution layers (residual: blocks) after the first
  bool residual = false;              // cnn: residual blocks (two convolutions and a skip)
  std::vector<std::int64_t> grid = {};  // cnn3d (and local topology): [rows, cols] of the units
  std::int64_t context_channels = 4;    // cnn3d: channels the system-message context adds
  bool use_context = true;  // FiLM of the input embeddings (and cnn3d channels) from the context
  double dropout = 0.0;     // in the readout, training only

  // ---- fitting ----
  ReadoutFit readout_fit = ReadoutFit::kBackprop;
  double ridge_lambda = 1e-2;              // Tikhonov penalty, times the number of states
  std::int64_t ridge_max_states = 200000;  // training states the ridge fit reads, at most
};

// The grid the units are arranged on: `grid` when given, else one row of n_units (a ring).
inline std::vector<std::int64_t> unit_grid(const ReservoirOptions& o) {
  return o.grid.empty() ? std::vector<std::int64_t>{1, o.n_units} : o.grid;
}

}  // namespace lmrun::models::reservoir
