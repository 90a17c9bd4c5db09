// step02: the Python module of walkthrough step 02. It exposes the step's scenarios
// (`scenarios()`, `play(name)`), each of which runs in a watchdog child: calling the
// deadlocking variants in this process would hang it.
#include <pybind11/pybind11.h>

#include "harness/python_bindings.hpp"
#include "scenarios.hpp"

PYBIND11_MODULE(step02, m) {
    m.doc() = "Walkthrough step 02: fix it with a lock? (it deadlocks)";
    harness::bind_scenarios(m, step02::scenarios());
}
