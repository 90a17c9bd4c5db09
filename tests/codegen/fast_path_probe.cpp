// The fast paths of gil_once_cell (get, get_or_init, get_or_try_init), lazy_type::get,
// per_interpreter_cell's sole slot and py_once_lock (get, get_or_init, get_or_try_init),
// compiled on their own at -O2 so that check_fast_path.py can read their machine code and
// hold the contract stated at the declaration: on a full cell, a load and a branch; no
// lock, no atomic read-modify-write, no thread-local (thread-id) access, no call. Two
// peers, a plain global read and a function-local static, are compiled alongside for
// comparison. Compiled as an extension author's default build: with GILONCE_CHECKS=1,
// per_interpreter_cell checks the current interpreter on the sole path (a call), on purpose.
#undef GILONCE_CHECKS
#define GILONCE_CHECKS 0
#include <gilonce/gil_once_cell.hpp>

using probe_cell = gilonce::gil_once_cell<PyObject*>;

PyObject* make_value();  // never defined: only the slow path would call it

extern "C" PyObject* const* gilonce_fast_path_probe(probe_cell& cell, gilonce::gil_token gil) {
    return &cell.get_or_init(gil, make_value);
}

extern "C" PyObject* const* gilonce_get_probe(const probe_cell& cell, gilonce::gil_token gil) {
    return cell.get(gil);
}

std::optional<PyObject*> try_make_value();  // never defined, like make_value

extern "C" PyObject* const* gilonce_get_or_try_init_probe(probe_cell& cell, gilonce::gil_token gil) {
    return cell.get_or_try_init(gil, try_make_value);
}

#include <gilonce/lazy_type.hpp>

extern "C" PyTypeObject* gilonce_lazy_type_fast_path_probe(gilonce::lazy_type& type, gilonce::gil_token gil) {
    return type.get(gil);
}

#include <gilonce/per_interpreter.hpp>
#include <gilonce/per_interpreter_census.hpp>

// The sole slot: the path once one interpreter has joined the census and filled the value.
extern "C" PyObject* const* gilonce_per_interpreter_sole_probe(gilonce::per_interpreter_cell<PyObject*>& cell,
                                                               gilonce::gil_token gil) {
    return &cell.get_or_init(gil, make_value);
}

#include <gilonce/py_once_lock.hpp>

// py_once_lock: an acquire load of the state and a branch (on x86-64 the load is plain).
using probe_lock = gilonce::py_once_lock<PyObject*>;

extern "C" PyObject* const* gilonce_py_once_lock_get_probe(const probe_lock& cell, gilonce::gil_token gil) {
    return cell.get(gil);
}

extern "C" PyObject* const* gilonce_py_once_lock_fast_path_probe(probe_lock& cell, gilonce::gil_token gil) {
    return &cell.get_or_init(gil, make_value);
}

extern "C" PyObject* const* gilonce_py_once_lock_get_or_try_init_probe(probe_lock& cell, gilonce::gil_token gil) {
    return cell.get_or_try_init(gil, try_make_value);
}

// ---- peers: what the fast paths are compared with ------------------------------------

// Hidden visibility: read straight from memory, as a global of the extension's own.
__attribute__((visibility("hidden"))) extern PyObject* plain_global_value;

extern "C" PyObject* gilonce_plain_global_probe() { return plain_global_value; }

extern "C" PyObject* const* gilonce_function_local_static_probe() {
    static PyObject* const value = make_value();  // the compiler's guard variable
    return &value;
}
