// The floor of any LibTorch program on this machine: loads LibTorch (its static initialisers run)
// and exits. bench_startup times it beside lmrun.
#include <c10/core/TensorOptions.h>

int main() { return c10::TensorOptions().has_device() ? 1 : 0; }
