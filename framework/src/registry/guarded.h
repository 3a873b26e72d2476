// Plugin objects as the host holds them: made through make_plugin(), which runs the factory
// guarded (guard.h) and wraps the object so that every later call into it is guarded too. The
// wrapper forwards each method of the kind's interface, optional ones included, so host code
// uses the object as it would the plugin's own.
//
//   auto model = make_plugin<Model>(registry, "transformer", params, context);
//   model->forward(inputs, mask);   // a crash names model 'transformer' and "forward"
//
// Adding a virtual to a kind's interface (framework/include/lmrun/) means adding its forwarder in
// guarded.cpp: an optional method left out would silently run the interface's default instead.
#pragma once

#include <memory>
#include <string>

#include "lmrun/callback.h"
#include "lmrun/registry.h"
#include "lmrun/util/suggest.h"
#include "registry/guard.h"
#include "registry/plugin_registry.h"

namespace lmrun {
class Dataset;
class Tokenizer;
class Model;
class Optimizer;
class Scheduler;
class Sampler;
class Metric;
class Objective;
}  // namespace lmrun

namespace lmrun::host {

using WhoPtr = std::shared_ptr<const PluginWho>;

// The wrappers, one per kind (guarded.cpp).
std::shared_ptr<Dataset> wrap_plugin(std::shared_ptr<Dataset> object, WhoPtr who);
std::shared_ptr<Tokenizer> wrap_plugin(std::shared_ptr<Tokenizer> object, WhoPtr who);
std::shared_ptr<Model> wrap_plugin(std::shared_ptr<Model> object, WhoPtr who);
std::shared_ptr<Optimizer> wrap_plugin(std::shared_ptr<Optimizer> object, WhoPtr who);
std::shared_ptr<Scheduler> wrap_plugin(std::shared_ptr<Scheduler> object, WhoPtr who);
std::shared_ptr<Callback> wrap_plugin(std::shared_ptr<Callback> object, WhoPtr who);
std::shared_ptr<Sampler> wrap_plugin(std::shared_ptr<Sampler> object, WhoPtr who);
std::shared_ptr<Metric> wrap_plugin(std::shared_ptr<Metric> object, WhoPtr who);
std::shared_ptr<Objective> wrap_plugin(std::shared_ptr<Objective> object, WhoPtr who);

// How messages name KIND.NAME: "model 'transformer'", with the file it was registered from.
// The file is known when `registry` is the host's PluginRegistry.
WhoPtr plugin_who(const Registry& registry, Kind kind, const std::string& name);

// What every wrapper is besides its interface: the plugin it forwards to.
class Wrapped {
 public:
  explicit Wrapped(WhoPtr who) : who_(std::move(who)) {}
  virtual ~Wrapped() = default;
  const PluginWho& who() const { return *who_; }

 protected:
  WhoPtr who_;
};

// The plugin behind an object make_plugin() made; null for any other object (one a test built
// through Registry::create). For breadcrumbs the host sets around work that runs plugin code
// outside its calls, such as the backward pass through a model's autograd functions.
template <class Interface>
const PluginWho* who_of(const Interface& object) {
  const auto* wrapped = dynamic_cast<const Wrapped*>(&object);
  return wrapped ? &wrapped->who() : nullptr;
}

// Builds KIND.NAME from validated params through its factory, guarded, and wraps the result.
// Throws lmrun::Error naming the plugin when the name is unknown, the factory throws anything,
// or returns nothing.
template <class Interface>
std::shared_ptr<Interface> make_plugin(const Registry& registry, const std::string& name,
                                       const Params& params,
                                       const typename KindTraits<Interface>::Context& context) {
  const Kind kind = KindTraits<Interface>::kKind;
  const Registration* registration = registry.find(kind, name);
  if (registration == nullptr) {
    throw Error(std::string("no ") + kind_name(kind) + " '" + name + "' is registered",
                "check the experiment's `type`");
  }
  WhoPtr who = plugin_who(registry, kind, name);
  std::shared_ptr<void> object =
      guarded(*who, "create", [&] { return registration->factory(params, &context); });
  if (!object) throw Error(who->name + ": the factory returned nothing", who->file);
  return wrap_plugin(std::static_pointer_cast<Interface>(std::move(object)), std::move(who));
}

}  // namespace lmrun::host
