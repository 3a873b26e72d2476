// Signal handlers that only set a flag (async-signal-safe), read by the trainer between steps.
#include "train/interrupt.h"

#include <signal.h>

#include <csignal>

namespace lmrun::host {
namespace {

volatile std::sig_atomic_t g_signal = 0;
struct sigaction g_old_int {};
struct sigaction g_old_term {};
bool g_int_installed = false;

extern "C" void on_interrupt(int signal) {
  if (g_signal != 0) {  // the second: stop now
    ::signal(signal, SIG_DFL);
    ::raise(signal);
    return;
  }
  g_signal = signal;
}

}  // namespace

InterruptGuard::InterruptGuard() {
  g_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, &g_old_term);
  struct sigaction current {};
  sigaction(SIGINT, nullptr, &current);
  g_int_installed = current.sa_handler != SIG_IGN;
  if (g_int_installed) sigaction(SIGINT, &action, &g_old_int);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGTERM, &g_old_term, nullptr);
  if (g_int_installed) sigaction(SIGINT, &g_old_int, nullptr);
}

int interrupt_signal() { return g_signal; }

const char* interrupt_name(int signal) {
  return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "a signal";
}

}  // namespace lmrun::host
