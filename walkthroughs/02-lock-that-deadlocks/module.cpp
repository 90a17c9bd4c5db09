// step02: the Python module of walkthrough step 02. It exposes the step's scenarios
// (`scenarios()`, `play(name)`), each of which runs in a watchdog child. The locked types
// themselves are not exposed: calling one in this process would fix its state (a
// function-local static is initialized once per process) for every later scenario, and
// calling a deadlocking one would hang the interpreter.
#include <pybind11/pybind11.h>

#include "harness/python_bindings.hpp"
#include "scenarios.hpp"

PYBIND11_MODULE(step02, m) {
    m.doc() = "Walkthrough step 02: fix it with a lock? (it deadlocks)";
    harness::bind_scenarios(m, step02::scenarios());
}
