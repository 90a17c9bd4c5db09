// gilonce/py_ref.hpp: an owned reference to a Python object, for C API code: the value type
// a cell stores (pybind11 users may store `pybind11::object` instead).
#pragma once

#include <utility>

#include "detail/python.hpp"

namespace gilonce {

/// Owns one strong reference to a Python object, or nothing. Move-only: a copy is explicit
/// (`py_ref::borrow(ref.get())`).
/// Requires: the GIL is held whenever a non-empty `py_ref` is destroyed or assigned to.
class py_ref {
public:
    /// An empty `py_ref`.
    constexpr py_ref() noexcept = default;
    /// Takes over a new reference (what most C API calls return); null gives an empty one.
    static py_ref steal(PyObject* owned) noexcept { return py_ref(owned); }
    /// Adds a reference to a borrowed object. Requires: the GIL is held.
    static py_ref borrow(PyObject* borrowed) noexcept {
        Py_XINCREF(borrowed);
        return py_ref(borrowed);
    }
    /// Takes over `other`'s reference; `other` is left empty.
    py_ref(py_ref&& other) noexcept : obj_(std::exchange(other.obj_, nullptr)) {}
    /// Drops the reference held, then takes over `other`'s; self-move keeps it.
    py_ref& operator=(py_ref&& other) noexcept {
        if (this != &other) {
            // The new reference first: the old object's finalizer may run Python code,
            // which must not see this py_ref half-assigned.
            PyObject* old = std::exchange(obj_, std::exchange(other.obj_, nullptr));
            Py_XDECREF(old);
        }
        return *this;
    }
    py_ref(const py_ref&) = delete;
    py_ref& operator=(const py_ref&) = delete;
    ~py_ref() { Py_XDECREF(obj_); }

    /// The object, still owned by this `py_ref` (a borrowed pointer), or null.
    PyObject* get() const noexcept { return obj_; }
    /// Gives up ownership: the caller now owns the reference.
    PyObject* release() noexcept { return std::exchange(obj_, nullptr); }
    /// Whether a reference is held.
    explicit operator bool() const noexcept { return obj_ != nullptr; }

private:
    explicit py_ref(PyObject* owned) noexcept : obj_(owned) {}
    PyObject* obj_ = nullptr;
};

}  // namespace gilonce
