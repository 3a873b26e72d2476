// Callback `grad_norm`: logs the norm of all gradients and of each layer's, after backward and
// before clipping, as Lightning's `grad_norm` utility does
// (https://lightning.ai/docs/pytorch/stable/api/lightning.pytorch.utilities.grad_norm.html).
#include <ATen/core/grad_mode.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "callbacks.h"
#include "lmrun/callback.h"
#include "lmrun/schema.h"
#include "lmrun/util/suggest.h"

namespace lmrun::callbacks {
namespace {

constexpr const char* kName = "grad_norm";

// ---------------------------------------------------------------------------------------------
// Options

struct GradNormOptions {
  std::int64_t every_steps = 10;    // log at every N-th optimizer step and at the last
  double norm_type = 2.0;           // p of the p-norm: >= 1, or inf (the largest |gradient|)
  bool per_layer = true;            // also one norm per group of parameters
  std::int64_t group_depth = 2;     // a group: the first N parts of the module path; 0: per tensor
  std::vector<std::string> layers;  // the groups to log; empty: every group
};

Schema<GradNormOptions> grad_norm_schema() {
  Schema<GradNormOptions> schema;
  schema
      .add("every_steps", &GradNormOptions::every_steps,
           "log at every this many optimizer steps, and at the last (train.log_interval's rule)")
      .min(1);
  schema
      .add("norm_type", &GradNormOptions::norm_type,
           "p of the p-norm (2: Euclidean, 1: sum of |g|, inf: largest |g|); names other than 2 "
           "carry it (grad_norm_inf)")
      .min(1);
  schema.add("per_layer", &GradNormOptions::per_layer,
             "also log one norm per layer as grad_norm/<layer>");
  schema
      .add("group_depth", &GradNormOptions::group_depth,
           "a layer is the first N dot-separated parts of a parameter's module path "
           "(blocks.0.attn.qkv.weight: 1 -> blocks, 2 -> blocks.0); 0: one norm per tensor")
      .min(0);
  schema.add("layers", &GradNormOptions::layers,
             "the layers to log, e.g. [\"blocks.0\", \"wte\"] (declared, so a monitor may name "
             "them); empty: every layer");
  schema.check([](const GradNormOptions& o) {
    if (!o.per_layer && !o.layers.empty()) {
      throw Error("layers is set but per_layer = false: no layer would be logged",
                  "set per_layer = true, or remove layers");
    }
    std::set<std::string> seen;
    for (const std::string& layer : o.layers) {
      if (layer.empty()) throw Error("layers holds an empty name", "name layers like \"blocks.0\"");
      if (!seen.insert(layer).second) {
        throw Error("layers names '" + layer + "' twice", "list each layer once");
      }
    }
  });
  return schema;
}

// "grad_norm" for the Euclidean norm, else "grad_norm_<p>" (grad_norm_inf, grad_norm_1,
// grad_norm_1.5), so that two of these callbacks with different norms log different names.
std::string total_name(double p) {
  if (p == 2.0) return kName;
  if (std::isinf(p)) return std::string(kName) + "_inf";
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", p);
  return std::string(kName) + "_" + text;
}

// The layer of a parameter: "blocks.0.attn.qkv.weight" -> "blocks.0" at depth 2. Only the module
// path (all but the last part, the tensor's own name) counts, so "ln_f.weight" is "ln_f" at any
// depth >= 1; a name without a module path ("scale"), or depth 0, is its own layer.
std::string layer_of(const std::string& name, std::int64_t depth) {
  const std::size_t last_dot = name.rfind('.');
  if (depth == 0 || last_dot == std::string::npos || last_dot == 0) return name;
  const std::string module = name.substr(0, last_dot);
  std::size_t end = 0;
  for (std::int64_t part = 0; part < depth; ++part) {
    end = module.find('.', part == 0 ? 0 : end + 1);
    if (end == std::string::npos) return module;
  }
  return module.substr(0, end);
}

// ---------------------------------------------------------------------------------------------
// The callback

class GradNorm final : public Callback {
 public:
  explicit GradNorm(const GradNormOptions& options)
      : options_(options), total_name_(total_name(options.norm_type)) {}

  // The total always; layers only when listed, since which layers exist depends on the model,
  // which does not exist when the host asks (`lmrun check`).
  std::vector<std::string> metric_names() const override {
    std::vector<std::string> names = {total_name_};
    for (const std::string& layer : options_.layers) names.push_back(layer_metric(layer));
    return names;
  }

  void on_after_backward(const TrainState& state, const std::vector<NamedParameter>& parameters,
                         TrainerControl& control) override {
    // state.step counts the steps before this one; the values go to this step's record.
    if (!is_logging_step(state.step + 1, options_.every_steps, state.max_steps)) return;
    if (!assigned_ || layer_of_parameter_.size() != parameters.size()) assign_layers(parameters);

    std::vector<double> norms;        // per tensor with a gradient
    std::vector<std::size_t> owners;  // its layer (index into layers_)
    tensor_norms(parameters, norms, owners);
    if (norms.empty()) return;  // nothing has a gradient: nothing to report
    control.log_metric(total_name_, combine(norms));
    if (!options_.per_layer) return;
    for (std::size_t layer = 0; layer < layers_.size(); ++layer) {
      if (!logged_layer_[layer]) continue;
      std::vector<double> own;
      for (std::size_t i = 0; i < norms.size(); ++i) {
        if (owners[i] == layer) own.push_back(norms[i]);
      }
      // A layer none of whose tensors got a gradient (frozen, unused) has no norm to report.
      if (!own.empty()) control.log_metric(layer_metric(layers_[layer]), combine(own));
    }
  }

 private:
  std::string layer_metric(const std::string& layer) const { return total_name_ + "/" + layer; }

  // Groups the parameters into layers, in the model's order, and checks `layers` against them.
  void assign_layers(const std::vector<NamedParameter>& parameters) {
    assigned_ = true;
    layers_.clear();
    layer_of_parameter_.clear();
    for (const NamedParameter& parameter : parameters) {
      const std::string layer = layer_of(parameter.name, options_.group_depth);
      auto it = std::find(layers_.begin(), layers_.end(), layer);
      if (it == layers_.end()) it = layers_.insert(layers_.end(), layer);
      layer_of_parameter_.push_back(static_cast<std::size_t>(it - layers_.begin()));
    }
    logged_layer_.assign(layers_.size(), options_.layers.empty());
    for (const std::string& wanted : options_.layers) {
      const auto it = std::find(layers_.begin(), layers_.end(), wanted);
      if (it == layers_.end()) {
        const std::string suggestion = nearest(wanted, layers_);
        throw Error(std::string(kName) + ": layers names '" + wanted +
                        "', which is no layer of this model at group_depth = " +
                        std::to_string(options_.group_depth) +
                        "; its layers are: " + join(layers_) +
                        (suggestion.empty() ? "" : " (did you mean " + suggestion + "?)"),
                    "set layers to some of these, or to [] to log every layer");
      }
      logged_layer_[static_cast<std::size_t>(it - layers_.begin())] = true;
    }
  }

  // The p-norm of each defined gradient, in double, computed where the gradient lives and
  // brought to the CPU in one transfer (one synchronisation on a GPU, not one per tensor; one per
  // tensor only for a model spread over several devices).
  void tensor_norms(const std::vector<NamedParameter>& parameters, std::vector<double>& norms,
                    std::vector<std::size_t>& owners) const {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> per_tensor;
    bool one_device = true;
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      const at::Tensor& grad = parameters[i].tensor.grad();
      if (!grad.defined()) continue;
      per_tensor.push_back(at::linalg_vector_norm(grad.detach(), options_.norm_type, c10::nullopt,
                                                  /*keepdim=*/false, at::kDouble));
      owners.push_back(layer_of_parameter_[i]);
      one_device = one_device && grad.device() == per_tensor.front().device();
    }
    if (per_tensor.empty()) return;
    if (!one_device) {
      for (at::Tensor& norm : per_tensor) norm = norm.to(at::kCPU);
    }
    const at::Tensor all = at::stack(per_tensor).to(at::kCPU).contiguous();  // (tensors,)
    const double* data = all.data_ptr<double>();
    norms.assign(data, data + all.numel());
  }

  // The p-norm of a set of tensors from their p-norms: (sum n_i^p)^(1/p), or max n_i for inf.
  // A NaN norm (a NaN gradient) makes the set's NaN, whichever p: that is what the log must show.
  double combine(const std::vector<double>& norms) const {
    const double p = options_.norm_type;
    if (std::isinf(p)) {
      double largest = 0.0;
      for (double n : norms) {
        if (std::isnan(n)) return n;
        largest = std::max(largest, n);
      }
      return largest;
    }
    double sum = 0.0;
    for (double n : norms) sum += p == 2.0 ? n * n : std::pow(n, p);
    return p == 2.0 ? std::sqrt(sum) : p == 1.0 ? sum : std::pow(sum, 1.0 / p);
  }

  GradNormOptions options_;
  std::string total_name_;
  // From the parameters' names at the first logging step (again if their number changes).
  std::vector<std::string> layers_;              // in the model's order
  std::vector<std::size_t> layer_of_parameter_;  // parameter index -> layer index
  std::vector<bool> logged_layer_;               // by layer index: listed in `layers` (or all)
  bool assigned_ = false;
};

std::shared_ptr<Callback> make_grad_norm(const GradNormOptions& options,
                                         const CallbackContext& /*context*/) {
  return std::make_shared<GradNorm>(options);  // the schema checked the options
}

}  // namespace

void register_grad_norm(Registry& registry) {
  registry.add<Callback>(kName,
                         "log the gradients' global and per-layer norms after backward, before "
                         "clipping",
                         grad_norm_schema(), make_grad_norm);
}

}  // namespace lmrun::callbacks
