// step07: the Python module of walkthrough step 07: the step's scenarios, for its pytest
// suite.
#include <pybind11/pybind11.h>

#include "harness/python_bindings.hpp"
#include "scenarios.hpp"

PYBIND11_MODULE(step07, m) {
    m.doc() = "Walkthrough step 07: no GIL at all";
    harness::bind_scenarios(m, step07::scenarios());
}
