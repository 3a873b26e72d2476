// Calls into plugin code, guarded two ways, so that a plugin's mistake never ends lmrun silently:
//
//   guarded(who, "forward", [&] { return model->forward(inputs, mask); });
//
// - Exceptions: whatever the call throws (lmrun::Error, a LibTorch c10::Error, any std::exception,
//   or a non-standard one such as `throw 42`) comes out as one lmrun::Error whose message names
//   the plugin and the call, without LibTorch's backtrace (LMRUN_DEBUG=1 keeps it).
// - Crashes: while the call runs, an async-signal-safe breadcrumb names it. The handler that
//   install_crash_handler() sets up prints, on SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT, which
//   plugin and which call was active, and the process then dies by the same signal (a non-zero
//   exit, as before, but never a silent one).
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "lmrun/error.h"

namespace lmrun::host {

// A plugin object as messages name it: `name` is "model 'transformer'", `file` the .so it came
// from (empty for factories added in-process, as tests do), `full` both: what a crash report
// prints. Made once per object; the breadcrumb points into it, so it lives as long as the object.
struct PluginWho {
  PluginWho() = default;
  PluginWho(std::string name, std::string file);
  std::string name;
  std::string file;
  std::string full;
};

// Sets the breadcrumb for its lifetime and restores the one before it (calls nest). `who` and
// `call` must outlive the object; they are read from a signal handler, so they are not copied.
class ActiveCall {
 public:
  ActiveCall(const char* who, const char* call) noexcept;
  ~ActiveCall();
  ActiveCall(const ActiveCall&) = delete;
  ActiveCall& operator=(const ActiveCall&) = delete;

 private:
  const char* previous_who_;
  const char* previous_call_;
};

// Installs the fatal-signal handler (on an alternate stack, so a stack overflow is reported too).
// Idempotent. main() calls it first thing.
void install_crash_handler();

// "SIGSEGV (segmentation fault)", ..., "signal N" for others. Async-signal-safe for the five fatal
// signals the handler catches (a static string); the others give "a fatal signal".
const char* signal_words(int signal);

// The message of an exception for a user: a c10::Error without its "frame #N:" backtrace unless
// LMRUN_DEBUG=1 is set.
std::string exception_message(const std::exception& e);

// True when LMRUN_DEBUG=1 (or any value but 0 or empty): full LibTorch backtraces.
bool debug_mode();

// Called inside a catch block: the exception in flight as an lmrun::Error naming the plugin and
// the call. A plugin's own lmrun::Error gets "model 'transformer': " in front and keeps its hint;
// anything else also says which call threw what, and names the file.
[[noreturn]] void rethrow_as_plugin_error(const PluginWho& who, const char* call);

template <class F>
decltype(auto) guarded(const PluginWho& who, const char* call, F&& f) {
  ActiveCall crumb(who.full.c_str(), call);
  try {
    return std::forward<F>(f)();
  } catch (...) {
    rethrow_as_plugin_error(who, call);
  }
}

}  // namespace lmrun::host
