// The breadcrumb, the fatal-signal handler, and turning whatever a plugin throws into an
// lmrun::Error that names it.
#include "registry/guard.h"

#include <cxxabi.h>
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <typeinfo>

#include <c10/util/Exception.h>

namespace lmrun::host {
namespace {

// Read by the signal handler: plain pointers to strings that outlive the call (lock-free atomics
// are async-signal-safe).
std::atomic<const char*> g_who{nullptr};
std::atomic<const char*> g_call{nullptr};

void write_text(const char* text) {
  if (text == nullptr) return;
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
}

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
bool g_debug = false;  // read once at install: getenv is not async-signal-safe

void on_fatal_signal(int signal) {
  const char* who = g_who.load();
  const char* call = g_call.load();
  write_text("\nlmrun: fatal: ");
  write_text(signal_words(signal));
  if (who != nullptr) {
    write_text(" in ");
    write_text(who);
    write_text(", during ");
    write_text(call);
    write_text(
        "\n  hint: the plugin crashed; lmrun cannot go on. Report it to the plugin's author with "
        "the experiment that led here, or leave the plugin out of the experiment\n");
  } else {
    write_text(
        " in lmrun, outside any plugin call\n  hint: this is a bug in lmrun; please report "
        "it with the experiment and the command that led here (LMRUN_DEBUG=1 adds a "
        "backtrace)\n");
  }
  if (g_debug) {
    void* frames[64];
    const int n = ::backtrace(frames, 64);
    ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
  }
  // Die by the same signal, with its default action: the exit status says what happened.
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

// The demangled type of the exception in flight ("int", "std::out_of_range").
std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (type == nullptr) return "unknown type";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? name.get() : type->name();
}

std::string file_hint(const PluginWho& who) {
  return who.file.empty() ? std::string() : "the plugin is " + who.file;
}

}  // namespace

const char* signal_words(int signal) {
  switch (signal) {
    case SIGSEGV:
      return "SIGSEGV (segmentation fault)";
    case SIGBUS:
      return "SIGBUS (bus error)";
    case SIGFPE:
      return "SIGFPE (arithmetic error)";
    case SIGILL:
      return "SIGILL (illegal instruction)";
    case SIGABRT:
      return "SIGABRT (abort)";
    case SIGKILL:
      return "SIGKILL";
    default:
      return "a fatal signal";
  }
}

PluginWho::PluginWho(std::string name_, std::string file_)
    : name(std::move(name_)), file(std::move(file_)) {
  full = file.empty() ? name : name + " (" + file + ")";
}

ActiveCall::ActiveCall(const char* who, const char* call) noexcept
    : previous_who_(g_who.load()), previous_call_(g_call.load()) {
  g_call.store(call);
  g_who.store(who);
}

ActiveCall::~ActiveCall() {
  g_who.store(previous_who_);
  g_call.store(previous_call_);
}

bool debug_mode() {
  const char* value = std::getenv("LMRUN_DEBUG");
  return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

void install_crash_handler() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  g_debug = debug_mode();
  // An alternate stack, so that a stack overflow (runaway recursion in a plugin) is reported too.
  static char alternate_stack[64 * 1024];
  stack_t stack{};
  stack.ss_sp = alternate_stack;
  stack.ss_size = sizeof alternate_stack;
  ::sigaltstack(&stack, nullptr);
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  action.sa_flags = SA_ONSTACK | SA_NODEFER | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int signal : kFatalSignals) ::sigaction(signal, &action, nullptr);
}

std::string exception_message(const std::exception& e) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&e)) {
    if (debug_mode()) return torch_error->what();
    std::string message = torch_error->what_without_backtrace();
    // LibTorch appends "Exception raised from f at file:line (most recent call first):" and the
    // frames; what_without_backtrace() keeps the first of those lines on some builds.
    if (const auto at = message.find("\nException raised from "); at != std::string::npos)
      message.resize(at);
    // An enforce failure (the CPU allocator's "can't allocate memory") lists its frames at once.
    if (const auto at = message.find("\nframe #"); at != std::string::npos) message.resize(at);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
      message.pop_back();
    return message;
  }
  return e.what();
}

void rethrow_as_plugin_error(const PluginWho& who, const char* call) {
  try {
    throw;
  } catch (const Error& e) {
    throw e.with_context(who.name);
  } catch (const c10::Error& e) {
    throw Error(
        who.name + ": " + call + " failed in LibTorch: " + exception_message(e),
        file_hint(who) + (debug_mode() ? "" : "; LMRUN_DEBUG=1 shows LibTorch's backtrace"));
  } catch (const std::exception& e) {
    throw Error(who.name + ": " + call + " threw " + current_exception_type() + ": " + e.what(),
                file_hint(who));
  } catch (...) {
    throw Error(who.name + ": " + call + " threw a non-standard exception (" +
                    current_exception_type() + ")",
                "a plugin reports errors by throwing lmrun::Error" +
                    (who.file.empty() ? std::string() : "; " + file_hint(who)));
  }
}

}  // namespace lmrun::host
