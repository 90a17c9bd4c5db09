// Compiled with Py_GIL_DISABLED defined, against Python 3.13+ headers (ctest "free-threaded:
// headers compile"): py_once_lock and lazy_type, the two pieces meant for a free-threaded
// build, must compile there with every warning an error, each member instantiated. No
// free-threaded interpreter is available here to run them; the SPIN models of models/
// check their protocols, and GILONCE_FT_PYTHON runs the Python tests where one exists.
#include <gilonce/lazy_type.hpp>
#include <gilonce/py_once_lock.hpp>

#if !defined(Py_GIL_DISABLED)
#error "this check must be compiled with Py_GIL_DISABLED defined"
#endif

namespace {
gilonce::py_once_lock<gilonce::py_ref> cached{"free-threaded cached object"};
PyType_Slot slots[] = {{0, nullptr}};
PyType_Spec spec = {"ft.Color", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, slots};
gilonce::lazy_type color(&spec, {{"RED", [](gilonce::gil_token gil) -> PyObject* {
    PyTypeObject* type = color.get(gil);
    return type != nullptr ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(type)) : nullptr;
}}});
}  // namespace

// Every entry point, so that each template and inline member is compiled.
int use_everything(visitproc visit, void* arg) {
    auto gil = gilonce::gil_token::assume_held();
    const gilonce::py_ref& a = cached.get_or_init(gil, [] { return gilonce::py_ref::steal(PyDict_New()); });
    const gilonce::py_ref* b = cached.get_or_try_init(gil, []() -> std::optional<gilonce::py_ref> {
        return gilonce::py_ref::steal(PyDict_New());
    });
    const gilonce::py_ref* c = cached.get(gil);
    PyTypeObject* type = color.get(gil);
    int visited = cached.traverse(visit, arg) + color.traverse(visit, arg);
    color.clear(gil, gilonce::invalidates_references);
    return visited + (a.get() != nullptr) + (b != nullptr) + (c != nullptr) + (type != nullptr) + color.is_complete(gil);
}
