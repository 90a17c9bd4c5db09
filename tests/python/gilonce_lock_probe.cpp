// gilonce_lock_probe: py_once_lock as an extension module uses it, for the tests that need a
// whole Python process (tests/python/test_py_once_lock_process.py): a function-local `static`
// cell destroyed at process exit while daemon threads are inside its initializer and waiting
// for it; and the import-lock cycle an initializer that imports can join, next to the shape
// that avoids it (import first, then ask for the cell).
#include <gilonce/py_once_lock.hpp>
#include <gilonce/py_ref.hpp>

#include <unistd.h>

#include <optional>

namespace {

using gilonce::gil_token;
using gilonce::py_ref;

// Calls `hook()` if it is callable; false (with its exception set) if the call failed.
bool call_hook(PyObject* hook) {
    if (hook == Py_None) return true;
    PyObject* result = PyObject_CallNoArgs(hook);
    Py_XDECREF(result);
    return result != nullptr;
}

// ---- process exit -------------------------------------------------------------------------

// The cell an author writes as a function-local static: destroyed at exit, after Py_Finalize.
gilonce::py_once_lock<int>& static_cell() {
    static gilonce::py_once_lock<int> cell{"gilonce_lock_probe.static_cell"};
    return cell;
}

// static_cell_blocking(inside): asks for the static cell. The first caller's initializer
// calls inside(), then releases the GIL and never returns (pause() until the process ends),
// as an initializer blocked on I/O would; every later caller waits for it.
PyObject* static_cell_blocking(PyObject*, PyObject* inside) {
    auto gil = gilonce::gil_token::assume_held();
    const int* value = static_cell().get_or_try_init(gil, [&]() -> std::optional<int> {
        if (!call_hook(inside)) return std::nullopt;
        Py_BEGIN_ALLOW_THREADS
        for (;;) pause();  // blocked with the GIL released, for good
        Py_END_ALLOW_THREADS
    });
    return value != nullptr ? PyLong_FromLong(*value) : nullptr;
}

// ---- the import lock ----------------------------------------------------------------------

// The shape the contract warns of: the initializer imports. If another thread is importing
// that module and the module's code asks for the cell, each waits for the other.
PyObject* import_inside_initializer(PyObject*, PyObject* args) {
    const char* name;
    PyObject* claimed;
    if (!PyArg_ParseTuple(args, "sO", &name, &claimed)) return nullptr;
    static gilonce::py_once_lock<py_ref> cell{"gilonce_lock_probe.import_inside"};
    auto gil = gilonce::gil_token::assume_held();
    const py_ref* module = cell.get_or_try_init(gil, [&]() -> std::optional<py_ref> {
        if (!call_hook(claimed)) return std::nullopt;
        return py_ref::steal(PyImport_ImportModule(name));  // waits for the module's import lock
    });
    return module != nullptr ? Py_NewRef(module->get()) : nullptr;
}

// The shape the contract recommends: import first, with no cell held, then ask for the
// cell, whose initializer only reads what the import gave. The import may wait for the
// module's lock, but this thread holds nothing another thread waits for meanwhile.
PyObject* import_before_asking(PyObject*, PyObject* args) {
    const char* name;
    PyObject* claimed;
    if (!PyArg_ParseTuple(args, "sO", &name, &claimed)) return nullptr;
    static gilonce::py_once_lock<py_ref> cell{"gilonce_lock_probe.import_before"};
    auto gil = gilonce::gil_token::assume_held();
    if (const py_ref* module = cell.get(gil)) return Py_NewRef(module->get());
    py_ref imported = py_ref::steal(PyImport_ImportModule(name));
    if (!imported) return nullptr;
    const py_ref* module = cell.get_or_try_init(gil, [&]() -> std::optional<py_ref> {
        if (!call_hook(claimed)) return std::nullopt;
        return py_ref::borrow(imported.get());
    });
    return module != nullptr ? Py_NewRef(module->get()) : nullptr;
}

PyMethodDef methods[] = {
    {"static_cell_blocking", static_cell_blocking, METH_O,
     "static_cell_blocking(inside): the static cell; its initializer calls inside() and never returns"},
    {"import_inside_initializer", import_inside_initializer, METH_VARARGS,
     "import_inside_initializer(name, claimed): a cell whose initializer calls claimed() and imports name"},
    {"import_before_asking", import_before_asking, METH_VARARGS,
     "import_before_asking(name, claimed): imports name, then a cell whose initializer calls claimed()"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "gilonce_lock_probe",
                          "py_once_lock at process exit and next to the import lock", -1, methods,
                          nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit_gilonce_lock_probe() { return PyModule_Create(&module_def); }
