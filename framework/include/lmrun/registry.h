// The registry: what plugins add factories to, and what the host creates objects from.
//
//   void register_transformer(lmrun::Registry& registry) {
//     registry.add<lmrun::Model>("transformer", "GPT decoder", transformer_schema(),
//         [](const TransformerOptions& options, const lmrun::ModelContext& context) {
//           return std::make_shared<Transformer>(options, context);
//         });
//   }
//   LMRUN_PLUGIN("transformer", "0.1.0", register_transformer)   // plugin.h
//
// The host knows plugin *kinds* (the interfaces in the kind headers), never plugin names. A name is
// unique within its kind: a second `model.transformer` is an error naming both files. Each kind
// header specialises KindTraits<Interface> with its Kind and the Context its factories receive.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmrun/error.h"
#include "lmrun/params.h"
#include "lmrun/schema.h"

namespace lmrun {

enum class Kind {
  kDataset,
  kTokenizer,
  kModel,
  kOptimizer,
  kScheduler,
  kCallback,
  kSampler,
  kMetric,
  kObjective
};

inline constexpr std::array<Kind, 9> kAllKinds = {
    Kind::kDataset,  Kind::kTokenizer, Kind::kModel,  Kind::kOptimizer, Kind::kScheduler,
    Kind::kCallback, Kind::kSampler,   Kind::kMetric, Kind::kObjective};

// "model", "sampler", ...: the word used in `lmrun describe model.transformer` and in errors.
inline const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kDataset:
      return "dataset";
    case Kind::kTokenizer:
      return "tokenizer";
    case Kind::kModel:
      return "model";
    case Kind::kOptimizer:
      return "optimizer";
    case Kind::kScheduler:
      return "scheduler";
    case Kind::kCallback:
      return "callback";
    case Kind::kSampler:
      return "sampler";
    case Kind::kMetric:
      return "metric";
    case Kind::kObjective:
      return "objective";
  }
  return "?";
}

inline std::optional<Kind> parse_kind(std::string_view word) {
  for (Kind kind : kAllKinds) {
    if (word == kind_name(kind)) return kind;
  }
  return std::nullopt;
}

// Specialised by each kind header: `static constexpr Kind kKind; using Context = ...;`.
template <class Interface>
struct KindTraits;

// Type-erased: `context` points at KindTraits<Interface>::Context, the result is a
// std::shared_ptr<Interface>. Registry::add and Registry::create below are the typed doors.
using AnyFactory = std::function<std::shared_ptr<void>(const Params& params, const void* context)>;

// What a model will hold, estimated from its options before it is built, in numbers of floats:
// enough for `lmrun check` to refuse a model that cannot fit in memory (n_layer = 4294967297)
// instead of LibTorch's allocator failing deep in a run. An estimate may be a lower bound.
struct SizeEstimate {
  double parameters = 0;             // every parameter, trainable or frozen
  double activations_per_token = 0;  // kept for the backward pass, per token of a batch
};

struct Registration {
  Kind kind = Kind::kModel;
  std::string name;               // short lower-case word: "transformer", "top_p"
  std::string doc;                // one line
  std::vector<ParamSpec> params;  // in declaration order
  AnyFactory factory;
  // Optional: rules across parameters (Schema::check), run while validating; throws lmrun::Error.
  std::function<void(const Params& params)> check;
  // Optional, models: the size estimate for these params and a context (the kind's Context;
  // counts the host does not know yet, such as vocab_size before the tokenizer is fitted, are 0).
  std::function<SizeEstimate(const Params& params, const void* context)> estimate;

  // What every Registry::add checks first: a name and a factory. Throws lmrun::Error.
  void require_complete() const {
    if (name.empty()) {
      throw Error(std::string("a ") + kind_name(kind) + " was registered without a name");
    }
    if (!factory) {
      throw Error(std::string(kind_name(kind)) + " '" + name +
                  "' was registered without a factory");
    }
  }
};

class LMRUN_API Registry {
 public:
  virtual ~Registry() = default;

  // Throws lmrun::Error when the kind already has this name.
  virtual void add(Registration registration) = 0;
  // nullptr when the kind has no such name.
  virtual const Registration* find(Kind kind, std::string_view name) const = 0;

  // Registers a factory that receives the parsed options struct and the kind's context.
  template <class Interface, class Options, class Make>
  void add(std::string name, std::string doc, const Schema<Options>& schema, Make make) {
    add(make_registration<Interface>(std::move(name), std::move(doc), schema, std::move(make)));
  }

  // The typed registration add() above makes: the factory parses params into Options.
  template <class Interface, class Options, class Make>
  static Registration make_registration(std::string name, std::string doc,
                                        const Schema<Options>& schema, Make make) {
    using Context = typename KindTraits<Interface>::Context;
    Registration registration;
    registration.kind = KindTraits<Interface>::kKind;
    registration.name = std::move(name);
    registration.doc = std::move(doc);
    registration.params = schema.specs();
    registration.factory = [schema, make](const Params& params,
                                          const void* context) -> std::shared_ptr<void> {
      std::shared_ptr<Interface> object =
          make(schema.parse(params), *static_cast<const Context*>(context));
      return object;
    };
    if (schema.has_checks()) {
      registration.check = [schema](const Params& params) { schema.parse(params); };
    }
    return registration;
  }

  // As above, with a size estimate (models): `estimate(options, context)` -> SizeEstimate.
  template <class Interface, class Options, class Make, class Estimate>
  void add(std::string name, std::string doc, const Schema<Options>& schema, Make make,
           Estimate estimate) {
    using Context = typename KindTraits<Interface>::Context;
    Registration registration =
        make_registration<Interface>(std::move(name), std::move(doc), schema, std::move(make));
    registration.estimate = [schema, estimate](const Params& params,
                                               const void* context) -> SizeEstimate {
      return estimate(schema.parse(params), *static_cast<const Context*>(context));
    };
    add(std::move(registration));
  }

  // Builds KIND.NAME from validated params. Errors from the plugin come back with
  // "model 'transformer': " in front.
  template <class Interface>
  std::shared_ptr<Interface> create(std::string_view name, const Params& params,
                                    const typename KindTraits<Interface>::Context& context) const {
    const Kind kind = KindTraits<Interface>::kKind;
    const std::string where = std::string(kind_name(kind)) + " '" + std::string(name) + "'";
    const Registration* registration = find(kind, name);
    if (registration == nullptr) throw Error("no " + where + " is registered");
    std::shared_ptr<void> object;
    try {
      object = registration->factory(params, &context);
    } catch (const Error& e) {
      throw e.with_context(where);
    } catch (const std::exception& e) {
      throw Error(where + ": " + e.what());
    } catch (...) {
      throw Error(where + ": the factory threw a non-standard exception",
                  "a plugin reports errors by throwing lmrun::Error");
    }
    if (!object) throw Error(where + ": the factory returned nothing");
    return std::static_pointer_cast<Interface>(object);
  }
};

}  // namespace lmrun
