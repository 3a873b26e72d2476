// The one exception type lmrun throws, for plugins and host alike.
//
//   throw lmrun::Error("tokenizer 'char': vocabulary file " + path + " is empty",
//                      "delete the run folder's tokenizer/ and fit again");
//
// A message says what went wrong and where (file, key, line); `hint` says how to fix it. A layer
// that passes an exception up adds its context with `with_context`. `main` has the only catch that
// prints.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#if defined(__GNUC__)
#define LMRUN_API __attribute__((visibility("default")))
#else
#define LMRUN_API
#endif

namespace lmrun {

class LMRUN_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, std::string hint = {})
      : std::runtime_error(what), hint_(std::move(hint)) {}

  // May be empty.
  const std::string& hint() const noexcept { return hint_; }

  // "context: what", keeping the hint.
  // "context: message"; the message alone when it already begins with this context (a plugin
  // that names itself, passed up by a caller that names it too).
  Error with_context(const std::string& context) const {
    const std::string message = what();
    if (message.compare(0, context.size() + 2, context + ": ") == 0) return *this;
    return Error(context + ": " + message, hint_);
  }

 private:
  std::string hint_;
};

}  // namespace lmrun
