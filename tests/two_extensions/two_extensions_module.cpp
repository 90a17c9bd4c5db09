// One extension module's source, built twice (two_ext_joined, two_ext_plain) from the same
// gilonce headers with default visibility, as setuptools builds extensions: each copy of the
// headers must keep its own process-wide state (census, computation counter), never share it
// with the other module through STB_GNU_UNIQUE symbols. TWO_EXT_JOINS says whether this copy
// calls join_interpreter; TWO_EXT_NAME is the module's name. It also uses a py_once_lock, so
// that the symbol check sees every header's process-wide state.
#include <functional>

#include <gilonce/gil_once_cell.hpp>
#include <gilonce/per_interpreter.hpp>
#include <gilonce/per_interpreter_census.hpp>
#include <gilonce/py_once_lock.hpp>

#ifndef TWO_EXT_NAME
#error "TWO_EXT_NAME (the module's name) must be defined"
#endif
#define TWO_EXT_STRING(x) #x
#define TWO_EXT_QUOTE(x) TWO_EXT_STRING(x)
#define TWO_EXT_CONCAT(a, b) a##b
#define TWO_EXT_INIT(name) TWO_EXT_CONCAT(PyInit_, name)

namespace {

// The id of the interpreter that computed the value: a value handed to the wrong
// interpreter is seen as a wrong id.
gilonce::per_interpreter_cell<long long> made_in_cell{TWO_EXT_QUOTE(TWO_EXT_NAME) ".made_in"};

// made_in() -> the id of the interpreter whose value this interpreter reads.
PyObject* made_in(PyObject*, PyObject*) {
    const long long* value = made_in_cell.get_or_try_init(gilonce::gil_token::assume_held(), [] {
        return static_cast<long long>(PyInterpreterState_GetID(PyInterpreterState_Get()));
    });
    return value != nullptr ? PyLong_FromLongLong(*value) : nullptr;
}

// once() -> 1, from a py_once_lock (its waiters' thread key is process-wide state too).
gilonce::py_once_lock<long> once_cell{TWO_EXT_QUOTE(TWO_EXT_NAME) ".once"};
PyObject* once(PyObject*, PyObject*) {
    return PyLong_FromLong(once_cell.get_or_init(gilonce::gil_token::assume_held(), [] { return 1L; }));
}

// reenter() -> the messages of the reentrant_init_error that an initializer of a py_once_lock,
// then of a gil_once_cell, gets when it asks for its own cell. The outer initializer is a
// std::function, a type of external linkage, so the slow path's instantiation for it is
// exported: with RTLD_GLOBAL this module's outer call runs the first module's copy, and its
// inner call (a lambda of this file) its own. Had the claim or the record anything private
// to one copy of the headers (once a thread key, a tag), the inner check would miss: the
// py_once_lock would wait for itself (a child that does not end), the gil_once_cell would
// recurse until the stack overflows (a child that crashes). Each slow path also runs for a
// second cell (other()): used for one object only, GCC may clone it into a local function,
// which no module can lend.
gilonce::py_once_lock<long> reentered_lock{TWO_EXT_QUOTE(TWO_EXT_NAME) ".reentered_lock"};
gilonce::gil_once_cell<long> reentered_cell{TWO_EXT_QUOTE(TWO_EXT_NAME) ".reentered_cell"};
gilonce::py_once_lock<long> other_lock{TWO_EXT_QUOTE(TWO_EXT_NAME) ".other_lock"};
gilonce::gil_once_cell<long> other_cell{TWO_EXT_QUOTE(TWO_EXT_NAME) ".other_cell"};

template <class Cell>
PyObject* reentry_error(Cell& cell, std::function<long()>& outer) {
    try {
        cell.get_or_init(gilonce::gil_token::assume_held(), outer);
    } catch (const gilonce::reentrant_init_error& e) {
        return PyUnicode_FromString(e.what());
    }
    PyErr_Format(PyExc_AssertionError, "%s: the re-entrant call returned a value", cell.name());
    return nullptr;
}
PyObject* reenter(PyObject*, PyObject*) {
    std::function<long()> lock_outer = [] {
        return reentered_lock.get_or_init(gilonce::gil_token::assume_held(), [] { return 2L; });
    };
    std::function<long()> cell_outer = [] {
        return reentered_cell.get_or_init(gilonce::gil_token::assume_held(), [] { return 2L; });
    };
    PyObject* lock_error = reentry_error(reentered_lock, lock_outer);
    PyObject* cell_error = lock_error != nullptr ? reentry_error(reentered_cell, cell_outer) : nullptr;
    PyObject* both = cell_error != nullptr ? PyTuple_Pack(2, lock_error, cell_error) : nullptr;
    Py_XDECREF(lock_error);
    Py_XDECREF(cell_error);
    return both;
}
// other() -> 6: the same two slow paths, for two other cells.
PyObject* other(PyObject*, PyObject*) {
    std::function<long()> three = [] { return 3L; };
    return PyLong_FromLong(other_lock.get_or_init(gilonce::gil_token::assume_held(), three) +
                           other_cell.get_or_init(gilonce::gil_token::assume_held(), three));
}

// made_in_new_interpreter() -> (its id, made_in() there): a fresh sub-interpreter imports
// only this module and reads the cell through it, as Python code there would.
PyObject* made_in_new_interpreter(PyObject*, PyObject*) {
    PyThreadState* caller = PyThreadState_Get();
    PyThreadState* sub = Py_NewInterpreter();
    if (sub == nullptr) {
        PyThreadState_Swap(caller);
        PyErr_SetString(PyExc_RuntimeError, "Py_NewInterpreter failed");
        return nullptr;
    }
    const long long sub_id = PyInterpreterState_GetID(PyInterpreterState_Get());
    long long got = -1;
    PyObject* module = PyImport_ImportModule(TWO_EXT_QUOTE(TWO_EXT_NAME));
    PyObject* result = module != nullptr ? PyObject_CallMethod(module, "made_in", nullptr) : nullptr;
    if (result != nullptr) got = PyLong_AsLongLong(result);
    const bool failed = result == nullptr || PyErr_Occurred() != nullptr;
    if (failed) PyErr_Print();  // into the sub-interpreter's stderr: its exception cannot cross
    Py_XDECREF(result);
    Py_XDECREF(module);
    Py_EndInterpreter(sub);
    PyThreadState_Swap(caller);
    if (failed) {
        PyErr_SetString(PyExc_RuntimeError, "reading the cell in the sub-interpreter failed (see stderr)");
        return nullptr;
    }
    return Py_BuildValue("(LL)", sub_id, got);
}

int exec_module(PyObject*) {
#if TWO_EXT_JOINS
    return gilonce::join_interpreter(gilonce::gil_token::assume_held());
#else
    return 0;
#endif
}

PyMethodDef methods[] = {
    {"made_in", made_in, METH_NOARGS, "The id of the interpreter that computed this interpreter's value."},
    {"once", once, METH_NOARGS, "1, from a py_once_lock."},
    {"other", other, METH_NOARGS, "6, from two other cells."},
    {"reenter", reenter, METH_NOARGS, "The errors re-entrant py_once_lock and gil_once_cell initializers get."},
    {"made_in_new_interpreter", made_in_new_interpreter, METH_NOARGS,
     "(id, made_in()) of a fresh sub-interpreter that imports only this module."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef_Slot slots[] = {{Py_mod_exec, reinterpret_cast<void*>(exec_module)}, {0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, TWO_EXT_QUOTE(TWO_EXT_NAME), nullptr, 0, methods, slots,
                          nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC TWO_EXT_INIT(TWO_EXT_NAME)() { return PyModuleDef_Init(&module_def); }
