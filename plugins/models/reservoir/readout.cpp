// The readouts of readout.h: features from the reservoir's states, convolutions over a window of
// them, and the trained layers that map the features to the outputs.
#include "readout.h"

#include <algorithm>
#include <sstream>

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>

#include "lmrun/error.h"

namespace lmrun::models::reservoir {
namespace {

bool is_cnn(ReadoutKind kind) { return kind == ReadoutKind::kCnn2d || kind == ReadoutKind::kCnn3d; }

at::Tensor activate(const at::Tensor& x) { return at::gelu(x); }

// The kernel over time: 3 when the window holds 3 states or more, else 1 (size kept by padding).
std::int64_t time_kernel(std::int64_t window) { return window >= 3 ? 3 : 1; }

}  // namespace

ReadoutImpl::ReadoutImpl(const ReservoirOptions& options, std::int64_t n_units, std::int64_t n_embd,
                         std::int64_t out_dim)
    : options_(options), n_units_(n_units), n_embd_(n_embd), out_dim_(out_dim) {
  const ReservoirOptions& o = options_;
  const std::int64_t embd = o.readout_input ? n_embd : 0;
  std::int64_t features = n_units + embd;
  if (o.readout == ReadoutKind::kMlp) {
    hidden_ = register_module("hidden", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < o.readout_layers; ++i) {
      hidden_->push_back(torch::nn::Linear(i == 0 ? features : o.readout_hidden, o.readout_hidden));
    }
    features = o.readout_hidden;
  } else if (is_cnn(o.readout)) {
    history_length_ = o.window - 1;
    const bool three_d = o.readout == ReadoutKind::kCnn3d;
    const std::int64_t kt = time_kernel(o.window), k = o.kernel, pad = k / 2;
    const std::int64_t in_channels = 1 + (three_d && o.use_context ? o.context_channels : 0);
    const std::int64_t layers = 1 + (o.residual ? 2 : 1) * o.cnn_layers;
    conv_ = register_module("conv", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < layers; ++i) {
      const std::int64_t in = i == 0 ? in_channels : o.channels;
      const std::int64_t stride = i == 0 ? o.stride : 1;
      if (three_d) {
        conv_->push_back(torch::nn::Conv3d(torch::nn::Conv3dOptions(in, o.channels, {kt, k, k})
                                               .stride({1, stride, stride})
                                               .padding({kt / 2, pad, pad})));
      } else {
        conv_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, o.channels, {kt, k})
                                               .stride({1, stride})
                                               .padding({kt / 2, pad})));
      }
    }
    if (three_d && o.use_context) {
      context_ = register_module(
          "context",
          torch::nn::Linear(torch::nn::LinearOptions(n_embd, o.context_channels).bias(false)));
    }
    {  // the flattened size, from a dry run of one window
      at::NoGradGuard no_grad;
      const at::Tensor probe = at::zeros({1, 1, n_units});
      count_macs_ = true;
      flat_ = conv_features(probe, empty_history(1, probe), at::Tensor()).size(-1);
      count_macs_ = false;
    }
    features = flat_ + embd;
    if (o.readout_hidden > 0) {
      head_ = register_module("head", torch::nn::Linear(features, o.readout_hidden));
      features = o.readout_hidden;
    }
  }
  out_ = register_module("out", torch::nn::Linear(features, out_dim));
}

at::Tensor ReadoutImpl::empty_history(std::int64_t batch, const at::Tensor& like) const {
  return at::zeros({batch, history_length_, n_units_}, like.options());
}

at::Tensor ReadoutImpl::next_history(const at::Tensor& states, const at::Tensor& history) const {
  if (history_length_ == 0) return history;
  const at::Tensor full = at::cat({history, states}, 1);  // (B, W - 1 + T, N)
  return full.narrow(1, full.size(1) - history_length_, history_length_).contiguous();
}

at::Tensor ReadoutImpl::linear_features(const at::Tensor& states,
                                        const at::Tensor& embeddings) const {
  return options_.readout_input ? at::cat({states, embeddings}, -1) : states;
}

at::Tensor ReadoutImpl::conv(std::size_t i, const at::Tensor& x) {
  const bool three_d = options_.readout == ReadoutKind::kCnn3d;
  at::Tensor y = three_d ? conv_->ptr<torch::nn::Conv3dImpl>(i)->forward(x)
                         : conv_->ptr<torch::nn::Conv2dImpl>(i)->forward(x);
  if (count_macs_) {  // one window: each output element takes a kernel volume of the inputs
    const at::Tensor& w = three_d ? conv_->ptr<torch::nn::Conv3dImpl>(i)->weight
                                  : conv_->ptr<torch::nn::Conv2dImpl>(i)->weight;
    conv_macs_ += static_cast<double>(y.numel()) / static_cast<double>(y.size(0)) *
                  static_cast<double>(w.numel() / w.size(0));
  }
  return y;
}

double ReadoutImpl::macs_per_token() const {
  double macs = conv_macs_;
  for (const auto& item : named_parameters()) {
    const std::string& name = item.key();
    const bool linear_weight = item.value().dim() == 2 && name.rfind("conv.", 0) != 0 &&
                               name.rfind("context.", 0) != 0;  // context: once a sequence
    if (linear_weight) macs += static_cast<double>(item.value().numel());
  }
  return macs;
}

at::Tensor ReadoutImpl::conv_features(const at::Tensor& states, const at::Tensor& history,
                                      const at::Tensor& context) {
  const ReservoirOptions& o = options_;
  const std::int64_t B = states.size(0), T = states.size(1), W = o.window;
  // (B, T, N, W) -> (B T, 1, W, N): position t sees the states t - W + 1 .. t, oldest first.
  at::Tensor x = at::cat({history, states}, 1).unfold(1, W, 1).permute({0, 1, 3, 2});
  x = x.reshape({B * T, 1, W, n_units_});
  if (o.readout == ReadoutKind::kCnn3d) {
    const std::vector<std::int64_t> grid = unit_grid(o);
    x = x.reshape({B * T, 1, W, grid[0], grid[1]});
    if (context_) {
      at::Tensor channels =
          at::zeros({B * T, o.context_channels, W, grid[0], grid[1]}, x.options());
      if (context.defined()) {
        const at::Tensor c = context_->forward(context);  // (B, C)
        channels = c.reshape({B, 1, o.context_channels, 1, 1, 1})
                       .expand({B, T, o.context_channels, W, grid[0], grid[1]})
                       .reshape({B * T, o.context_channels, W, grid[0], grid[1]});
      }
      x = at::cat({x, channels}, 1);
    }
  }
  x = activate(conv(0, x));
  for (std::int64_t b = 0; b < o.cnn_layers; ++b) {
    if (o.residual) {
      const auto i = static_cast<std::size_t>(1 + 2 * b);
      x = activate(x + conv(i + 1, activate(conv(i, x))));
    } else {
      x = activate(conv(static_cast<std::size_t>(1 + b), x));
    }
  }
  return x.reshape({B, T, -1});
}

at::Tensor ReadoutImpl::forward(const at::Tensor& states, const at::Tensor& history,
                                const at::Tensor& embeddings, const at::Tensor& context) {
  const ReservoirOptions& o = options_;
  const bool drop = o.dropout > 0.0 && is_training();
  at::Tensor x;
  if (is_cnn(o.readout)) {
    x = conv_features(states, history, context);
    if (o.readout_input) x = at::cat({x, embeddings}, -1);
    if (head_) x = activate(head_->forward(drop ? at::dropout(x, o.dropout, true) : x));
  } else {
    x = linear_features(states, embeddings);
    if (hidden_) {
      for (std::size_t i = 0; i < hidden_->size(); ++i) {
        x = activate(hidden_->ptr<torch::nn::LinearImpl>(i)->forward(
            drop ? at::dropout(x, o.dropout, true) : x));
      }
    }
  }
  return out_->forward(drop ? at::dropout(x, o.dropout, true) : x);
}

std::vector<std::string> ReadoutImpl::describe() const {
  const ReservoirOptions& o = options_;
  std::ostringstream text;
  const std::string input = o.readout_input ? " + e_t" : "";
  switch (o.readout) {
    case ReadoutKind::kLinear:
      text << "linear (" << n_units_ << input << " -> " << out_dim_ << ")";
      break;
    case ReadoutKind::kMlp:
      text << "mlp (" << n_units_ << input << " -> " << o.readout_layers << " x "
           << o.readout_hidden << " GELU -> " << out_dim_ << ")";
      break;
    case ReadoutKind::kCnn2d:
    case ReadoutKind::kCnn3d: {
      const std::vector<std::int64_t> grid = unit_grid(o);
      text << (o.readout == ReadoutKind::kCnn2d ? "cnn2d over (" : "cnn3d over (") << o.window
           << ", ";
      if (o.readout == ReadoutKind::kCnn2d) {
        text << n_units_;
      } else {
        text << grid[0] << ", " << grid[1];
      }
      text << ") windows, " << o.channels << " channels, kernel " << o.kernel << ", stride "
           << o.stride << ", " << o.cnn_layers << (o.residual ? " residual blocks" : " more layers")
           << " -> " << flat_ << input;
      if (o.readout_hidden > 0) text << " -> " << o.readout_hidden << " GELU";
      text << " -> " << out_dim_;
      break;
    }
  }
  return {text.str()};
}

}  // namespace lmrun::models::reservoir
