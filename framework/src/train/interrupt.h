// SIGINT and SIGTERM during training: the first asks the run to stop at the next step boundary
// (it then writes `last` and summary.json and exits 128 + the signal); a second ends the process
// at once, as the signal would have.
#pragma once

namespace lmrun::host {

// Installs the handlers while it lives; restores the previous ones after. A SIGINT that this
// process inherited ignored (a background job of a shell script) stays ignored, as shells mean it.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
};

// The signal received since the guard was installed; 0 when none.
int interrupt_signal();

// "SIGINT", "SIGTERM".
const char* interrupt_name(int signal);

}  // namespace lmrun::host
