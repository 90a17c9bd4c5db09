// stress/naive.hpp: BAD, do not copy. The lazy cell and lazy type everyone writes first,
// with the interface of gilonce's, so that `stress_first_use --naive` can run the same
// rounds and checks on them. They must be caught: a checker that passes these proves
// nothing about gilonce.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_token.hpp>
#include <gilonce/lazy_type.hpp>  // class_attribute
#include <gilonce/py_ref.hpp>

#include <functional>
#include <utility>
#include <vector>

namespace stress {

/// BAD: check, then store. An initializer that releases the GIL lets a second thread find
/// the cell empty too; the last to finish overwrites the first, so callers get different
/// objects.
class naive_cell {
public:
    explicit naive_cell(const char*) {}

    /// Requires: the GIL is held (here and in the destructor).
    const gilonce::py_ref* get(gilonce::gil_token) const { return value_ ? &value_ : nullptr; }

    template <class F>
    const gilonce::py_ref& get_or_init(gilonce::gil_token, F&& init) {
        if (value_) return value_;
        gilonce::py_ref made = std::forward<F>(init)();  // may release the GIL
        // BUG: replaces what an earlier caller already got. (Kept alive, not decref'd, so
        // that the demonstration itself stays memory-safe.)
        if (value_) overwritten_.push_back(std::move(value_));
        value_ = std::move(made);
        return value_;
    }

private:
    gilonce::py_ref value_;
    std::vector<gilonce::py_ref> overwritten_;
};

/// BAD: the type is handed out as soon as it exists, before its class attributes are set
/// (step 01's bug on a heap type), and a creator that raced past the check replaces it.
class naive_type {
public:
    naive_type(PyType_Spec* spec, std::vector<gilonce::class_attribute> attributes,
               std::function<PyObject*(gilonce::gil_token)> make_bases)
        : spec_(spec), attributes_(std::move(attributes)), make_bases_(std::move(make_bases)) {}

    /// Requires: the GIL is held (here and in the destructor).
    /// Returns: a borrowed type, possibly without its class attributes; null on error.
    PyTypeObject* get(gilonce::gil_token gil) {
        if (type_) return as_type(type_);  // BUG: maybe still being built
        gilonce::py_ref bases = gilonce::py_ref::steal(make_bases_(gil));  // may release the GIL
        if (!bases) return nullptr;
        gilonce::py_ref made = gilonce::py_ref::steal(PyType_FromSpecWithBases(spec_, bases.get()));
        if (!made) return nullptr;
        if (type_) replaced_.push_back(std::move(type_));  // BUG: another caller has it already
        type_ = gilonce::py_ref::borrow(made.get());
        for (const auto& attribute : attributes_) {
            gilonce::py_ref value = gilonce::py_ref::steal(attribute.make(gil));  // may release the GIL
            if (!value || PyObject_SetAttrString(made.get(), attribute.name, value.get()) < 0) return nullptr;
        }
        return as_type(made);
    }

private:
    static PyTypeObject* as_type(const gilonce::py_ref& t) { return reinterpret_cast<PyTypeObject*>(t.get()); }

    PyType_Spec* spec_;
    std::vector<gilonce::class_attribute> attributes_;
    std::function<PyObject*(gilonce::gil_token)> make_bases_;
    gilonce::py_ref type_;
    std::vector<gilonce::py_ref> replaced_;
};

}  // namespace stress
