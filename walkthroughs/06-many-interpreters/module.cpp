// step06: the Python module of walkthrough step 06: the step's scenarios, for its pytest
// suite (the modules it imports into interpreters are step06_legacy and colors).
#include <pybind11/pybind11.h>

#include "harness/python_bindings.hpp"
#include "scenarios.hpp"

PYBIND11_MODULE(step06, m) {
    m.doc() = "Walkthrough step 06: many interpreters and lifetimes";
    harness::bind_scenarios(m, step06::scenarios());
}
