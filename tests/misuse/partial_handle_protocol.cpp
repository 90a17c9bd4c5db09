// Misuse that must not compile: a stored type with only part of the handle protocol. With
// `gilonce_abandon` alone, the cell would release the object in T's destructor (the C API in
// a destructor, which a forced unwind cannot pass) and never visit it in a traversal.
#include <Python.h>

#include <gilonce/gil_once_cell.hpp>
#include <gilonce/py_ref.hpp>

struct half_handle {
    gilonce::py_ref object;
    void gilonce_abandon() noexcept { (void)object.release(); }
};

void clears(gilonce::gil_once_cell<half_handle>& cell, gilonce::gil_token gil) {
    cell.clear(gil, gilonce::invalidates_references);  // error: static_assert in detail/handles.hpp
}
