// TorchModel<Net>: a LibTorch module (a TORCH_MODULE holder) as an lmrun::Model, so that a model
// plugin writes its module and nothing of the adapter.
//
//   struct TinyImpl : torch::nn::Module {
//     TinyImpl(const TinyOptions& o, const lmrun::ModelContext& c);
//     at::Tensor forward(const at::Tensor& inputs, const at::Tensor& mask);   // (B, T, V)
//   };
//   TORCH_MODULE(Tiny);
//
//   registry.add<lmrun::Model>("tiny", "a tiny model", schema,
//       [](const TinyOptions& o, const lmrun::ModelContext& c) {
//         return std::make_shared<lmrun::TorchModel<Tiny>>(Tiny(o, c));
//       });
//
// What the adapter takes from the module, by what the module's Impl declares:
//   forward(inputs, mask) or forward(inputs)              -> Model::forward (one of them required)
//   forward(inputs, mask, std::vector<Activation>*) or
//   forward(inputs, std::vector<Activation>*)             -> activations(): the module appends its
//                                                            stages; the adapter adds the logits
//   describe() const -> std::vector<std::string>         -> summary(), one line each
// Anything else (decoding: can_decode, start_decoding, decode, max_context; flops_per_token) a
// plugin adds by deriving from TorchModel<Net> and overriding; net() is its module.
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lmrun/model.h"

namespace lmrun {

namespace detail {

template <class Impl, class = void>
struct TakesMask : std::false_type {};
template <class Impl>
struct TakesMask<Impl, std::void_t<decltype(std::declval<Impl&>().forward(
                           std::declval<const at::Tensor&>(), std::declval<const at::Tensor&>()))>>
    : std::true_type {};

template <class Impl, class = void>
struct RecordsWithMask : std::false_type {};
template <class Impl>
struct RecordsWithMask<Impl, std::void_t<decltype(std::declval<Impl&>().forward(
                                 std::declval<const at::Tensor&>(),
                                 std::declval<const at::Tensor&>(),
                                 std::declval<std::vector<Activation>*>()))>> : std::true_type {};

template <class Impl, class = void>
struct Records : std::false_type {};
template <class Impl>
struct Records<Impl, std::void_t<decltype(std::declval<Impl&>().forward(
                         std::declval<const at::Tensor&>(),
                         std::declval<std::vector<Activation>*>()))>> : std::true_type {};

template <class Impl, class = void>
struct Describes : std::false_type {};
template <class Impl>
struct Describes<Impl, std::void_t<decltype(std::declval<const Impl&>().describe())>>
    : std::true_type {};

}  // namespace detail

template <class Net>
class TorchModel : public Model {
 public:
  using Impl = typename Net::ContainedType;

  explicit TorchModel(Net net) : net_(std::move(net)) {}

  torch::nn::Module& module() override { return *net_; }

  // inputs (B, T) int64; mask (B, T) bool or undefined. A module without a mask argument reads
  // left to right and ignores the padding after the real tokens.
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& mask) override {
    if constexpr (detail::TakesMask<Impl>::value) {
      return net_->forward(inputs, mask);
    } else {
      (void)mask;
      return net_->forward(inputs);
    }
  }

  std::vector<Activation> activations(const at::Tensor& inputs, const at::Tensor& mask) override {
    std::vector<Activation> out;
    at::Tensor logits;
    if constexpr (detail::RecordsWithMask<Impl>::value) {
      logits = net_->forward(inputs, mask, &out);
    } else if constexpr (detail::Records<Impl>::value) {
      (void)mask;
      logits = net_->forward(inputs, &out);
    } else {
      return Model::activations(inputs, mask);
    }
    const bool per_position = logits.dim() == 3;  // (B, T, V) of a language model
    out.push_back({"logits", std::move(logits), per_position});
    return out;
  }

  std::string summary() const override {
    if constexpr (detail::Describes<Impl>::value) {
      std::string text;
      for (const std::string& line : net_->describe()) text += line + "\n";
      return text;
    } else {
      return {};
    }
  }

  Net& net() { return net_; }
  const Net& net() const { return net_; }

 protected:
  Net net_;
};

}  // namespace lmrun
