// gilonce/handles.hpp: what the cells know about the handle types they may store.
//
// A cell stores any T, but three kinds of T hold a Python object: `gilonce::py_ref`,
// `pybind11::object` (and its subclasses), and raw pointers such as `PyObject*`. For those,
// "empty" means "holds nothing", and letting go of one may run Python code (a `__del__`).
// A destructor is the wrong place for that when the thread may be torn down by
// `pthread_exit` inside the `__del__` (a forced unwind out of a destructor ends the
// process), so the cells release such values through `release_now`, an ordinary function
// the unwind may pass through, and give them up without a C-API call through `abandon`.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <type_traits>

namespace gilonce {
namespace detail {

// Overloads are ranked by their second parameter: int > long > unsigned > ... (0 is an int).

template <class T>
auto is_empty_handle(const T& value, int) -> decltype(value.ptr() == nullptr) {
    return value.ptr() == nullptr;  // pybind11::handle and its subclasses
}
template <class T>
auto is_empty_handle(const T& value, long)
    -> std::enable_if_t<std::is_convertible_v<decltype(value.get()), PyObject*>, bool> {
    return value.get() == nullptr;  // gilonce::py_ref
}
template <class T>
bool is_empty_handle(const T& value, ...) {
    if constexpr (std::is_pointer_v<T>)
        return value == nullptr;  // PyObject*, PyTypeObject*, any raw pointer
    else
        return false;  // a C++ value: 0 and "" are values, not "empty"
}

/// Whether `value` is a handle that holds nothing (never true for a non-handle T).
template <class T>
bool is_empty(const T& value) {
    return is_empty_handle(value, 0);
}

// A stored type of its own may say how: members `gilonce_release_now()` and
// `gilonce_abandon()` (lazy_type's stage-1 result does). Ranked first.
template <class T>
auto release_handle(T& value, int) -> decltype(value.gilonce_release_now(), void()) {
    value.gilonce_release_now();
}
template <class T>
auto release_handle(T& value, long) -> decltype(value.release().dec_ref(), void()) {
    value.release().dec_ref();  // pybind11::object
}
template <class T>
auto release_handle(T& value, unsigned) -> std::enable_if_t<std::is_same_v<decltype(value.release()), PyObject*>> {
    Py_XDECREF(value.release());  // gilonce::py_ref
}
template <class T>
void release_handle(T&, ...) {}  // other T: its destructor does the rest (see below)

/// Lets go of the Python object `value` holds, leaving it empty, outside any destructor.
/// Requires: the GIL is held. May run Python code; a forced unwind may pass through.
/// Limit: for a T that is none of the above (a struct or a pair holding a `py_ref`), the
/// objects are released later by T's destructor; a daemon thread torn down in a `__del__`
/// run there during Py_Finalize ends the process (an unwind cannot leave a destructor).
/// Store handles themselves, or give T the two members above.
template <class T>
void release_now(T& value) {
    release_handle(value, 0);
}

template <class T>
auto abandon_handle(T& value, int) -> decltype(value.gilonce_abandon(), void()) {
    value.gilonce_abandon();
}
template <class T>
auto abandon_handle(T& value, long) -> decltype(value.release().ptr(), void()) {
    (void)value.release();  // pybind11::object: the reference is leaked
}
template <class T>
auto abandon_handle(T& value, unsigned) -> std::enable_if_t<std::is_same_v<decltype(value.release()), PyObject*>> {
    (void)value.release();  // gilonce::py_ref: the reference is leaked
}
template <class T>
void abandon_handle(T&, ...) noexcept {}

/// Gives up the Python object `value` holds without a C-API call (its reference leaks),
/// for a thread being torn down without the GIL. Other T are left as they are.
template <class T>
void abandon(T& value) noexcept {
    abandon_handle(value, 0);
}

// Visiting for the garbage collector: only what the cell owns. A raw pointer is not owned
// (the cell never decrefs it), so it is not visited: reporting a reference the container
// does not hold would let the collector free an object that is still in use elsewhere.
template <class T>
auto traverse_handle(const T& value, visitproc visit, void* arg, int) -> decltype(value.gilonce_traverse(visit, arg)) {
    return value.gilonce_traverse(visit, arg);
}
template <class T>
auto traverse_handle(const T& value, visitproc visit, void* arg, long)
    -> decltype(std::declval<T&>().release().ptr(), int()) {
    Py_VISIT(value.ptr());  // pybind11::object
    return 0;
}
template <class T>
auto traverse_handle(const T& value, visitproc visit, void* arg, unsigned)
    -> std::enable_if_t<std::is_same_v<decltype(std::declval<T&>().release()), PyObject*>, int> {
    Py_VISIT(value.get());  // gilonce::py_ref
    return 0;
}
template <class T>
int traverse_handle(const T&, visitproc, void*, ...) {
    return 0;  // a raw pointer or a C++ value: no reference owned
}

/// Calls `visit` on the Python object `value` owns, as a tp_traverse / m_traverse does.
/// Returns: 0, or the first non-zero result of `visit`.
template <class T>
int traverse(const T& value, visitproc visit, void* arg) {
    return traverse_handle(value, visit, arg, 0);
}

}  // namespace detail
}  // namespace gilonce
