// A user's program: embeds Python and caches `math.pi` in a gil_once_cell.
// Exits 0 and prints the value when the package works.
#include <gilonce/gilonce.hpp>

#include <cstdio>

// --8<-- [start:cell]
static gilonce::gil_once_cell<gilonce::py_ref> math_pi{"math.pi"};
// --8<-- [end:cell]

int main() {
    Py_Initialize();
    int status = 1;
    {
        // --8<-- [start:use]
        gilonce::gil_acquire gil;
        const gilonce::py_ref* pi = math_pi.get_or_try_init(gil.token(), []() -> std::optional<gilonce::py_ref> {
            auto math = gilonce::py_ref::steal(PyImport_ImportModule("math"));
            if (!math) return std::nullopt;
            return gilonce::py_ref::steal(PyObject_GetAttrString(math.get(), "pi"));
        });
        // --8<-- [end:use]
        if (pi != nullptr) {
            std::printf("math.pi = %.5f\n", PyFloat_AsDouble(pi->get()));
            status = 0;
        } else {
            PyErr_Print();
        }
    }
    // The static cell outlives the interpreter: its destructor must not decref math.pi.
    if (Py_FinalizeEx() != 0) status = 1;
    return status;
}
