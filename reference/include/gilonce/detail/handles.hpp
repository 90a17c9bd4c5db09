// gilonce/detail/handles.hpp: what the cells know about the handle types they may store.
//
// A cell stores any T, but three kinds of T hold a Python object: `gilonce::py_ref`,
// `pybind11::object` (and its subclasses), and raw pointers such as `PyObject*`, which a cell
// never owns. A stored type of its own may join in with three members, `gilonce_release_now`,
// `gilonce_abandon` and `gilonce_traverse`, all three or none (lazy_type's stage-1 result does).
#pragma once

#include <type_traits>
#include <utility>

#include "python.hpp"

namespace gilonce::detail {

template <template <class> class Member, class T, class = void>
struct has : std::false_type {};
template <template <class> class Member, class T>
struct has<Member, T, std::void_t<Member<T>>> : std::true_type {};

template <class T> using own_release_now = decltype(std::declval<T&>().gilonce_release_now());
template <class T> using own_abandon = decltype(std::declval<T&>().gilonce_abandon());
template <class T> using own_traverse = decltype(std::declval<const T&>().gilonce_traverse(visitproc{}, nullptr));
template <class T> using pybind11_release = decltype(std::declval<T&>().release().dec_ref());
template <class T> using pybind11_ptr = decltype(std::declval<const T&>().ptr());
template <class T> using py_ref_release = std::enable_if_t<std::is_same_v<decltype(std::declval<T&>().release()), PyObject*>>;

template <class T> inline constexpr int own_members =
    has<own_release_now, T>::value + has<own_abandon, T>::value + has<own_traverse, T>::value;
template <class T> inline constexpr bool is_own_handle = own_members<T> == 3;
// Some but not all of the three: what is missing would fall to T's destructor (the C API
// in a destructor, which a forced unwind cannot pass) or to no traversal. Refused.
template <class T> inline constexpr bool own_protocol_is_whole =
    own_members<T> == 0 || own_members<T> == 3;
template <class T> inline constexpr bool is_pybind11_object = has<pybind11_release, T>::value;
template <class T> inline constexpr bool is_py_ref = has<py_ref_release, T>::value;

/// Whether `value` is a handle that holds nothing; never true for a C++ value (0 and "" are
/// values).
template <class T>
bool is_empty(const T& value) {
    if constexpr (has<pybind11_ptr, T>::value) return value.ptr() == nullptr;  // pybind11 handles
    else if constexpr (is_py_ref<T>) return value.get() == nullptr;
    else if constexpr (std::is_pointer_v<T>) return value == nullptr;
    else return false;
}

/// Lets go of the Python object `value` owns, emptying the handle before the decref, in an
/// ordinary call (not a destructor), so that a forced unwind starting in a `__del__` it runs
/// can pass. Requires: the GIL is held. May run Python code.
/// Limit: a T that is none of these (a struct holding a `py_ref`) releases its objects in
/// its destructor, where such an unwind ends the process: store handles, or give T the
/// members above.
template <class T>
void release_now(T& value) {
    static_assert(own_protocol_is_whole<T>, "a stored type must define all three of gilonce_release_now, "
                                            "gilonce_abandon and gilonce_traverse, or none");
    if constexpr (is_own_handle<T>) value.gilonce_release_now();
    else if constexpr (is_pybind11_object<T>) value.release().dec_ref();
    else if constexpr (is_py_ref<T>) Py_XDECREF(value.release());
}

/// Gives up the object `value` owns without a C-API call (the reference leaks), for a thread
/// being torn down without the GIL. Other T are left as they are.
template <class T>
void abandon(T& value) noexcept {
    static_assert(own_protocol_is_whole<T>, "a stored type must define all three of gilonce_release_now, "
                                            "gilonce_abandon and gilonce_traverse, or none");
    if constexpr (is_own_handle<T>) value.gilonce_abandon();
    else if constexpr (is_pybind11_object<T> || is_py_ref<T>) (void)value.release();
}

/// Calls `visit` on the object `value` owns, as a tp_traverse does; a raw pointer is not
/// owned and not visited (reporting a reference the cell does not hold would let the
/// collector free an object in use). Returns: 0, or the first non-zero result of `visit`.
template <class T>
int traverse(const T& value, visitproc visit, void* arg) {
    static_assert(own_protocol_is_whole<T>, "a stored type must define all three of gilonce_release_now, "
                                            "gilonce_abandon and gilonce_traverse, or none");
    if constexpr (is_own_handle<T>) return value.gilonce_traverse(visit, arg);
    else if constexpr (is_pybind11_object<T>) Py_VISIT(value.ptr());
    else if constexpr (is_py_ref<T>) Py_VISIT(value.get());
    return 0;
}

}  // namespace gilonce::detail
