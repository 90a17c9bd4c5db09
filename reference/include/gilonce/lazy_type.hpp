// gilonce/lazy_type.hpp: a heap type created on first use, whose class attributes may be
// instances of the type itself (Color.RED = Color("red")), built in two stages with the
// GIL as the only lock. The general form of walkthroughs/05-two-stage-initialization.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "errors.hpp"
#include "gil_once_cell.hpp"
#include "gil_token.hpp"
#include "py_ref.hpp"

namespace gilonce {

/// One class attribute of a `lazy_type`: a name and the user code that computes it.
struct class_attribute {
    /// The attribute's name. The characters must outlive the `lazy_type` (a literal).
    const char* name;
    /// Requires: the GIL is held. Returns a new reference, or null with a Python exception
    /// set; a C++ exception is reported the same way. May release the GIL, and may call
    /// `get` on its `lazy_type` to create instances of the type. May run more than once.
    std::function<PyObject*(gil_token)> make;
};

/// A heap type created from a `PyType_Spec` on first use, with class attributes computed
/// by user code, in two stages:
///
/// 1. The type is created and readied (`PyType_FromSpecWithBases`), with no class
///    attributes, inside a `gil_once_cell`. Not re-entrant: if the bases factory asks for
///    the type, `get` fails with a `RuntimeError` naming the type.
/// 2. Every class attribute is computed with no lock held but the GIL (factories may
///    release it, and may ask for the type), then all are published at once with
///    `PyObject_SetAttr`, with the GIL held and no Python code running in between.
///
/// Contract of `get`, each line tested in tests/cpp/test_lazy_type.cpp:
/// - Never blocks; takes no lock but the GIL.
/// - Every caller gets the same type object. A caller only ever gets it complete, with
///   every class attribute, except one: a call from a class-attribute factory, on the
///   thread computing the attributes, gets the ready type early (to create instances).
/// - If stage 2 releases the GIL, other threads compute their own attributes meanwhile:
///   factories may run more than once. The first complete set is published, once; the
///   others are released at once, under the GIL.
/// - A failing factory: `get` returns null with `RuntimeError("cannot compute class
///   attribute <type>.<attribute>")` set, the factory's error as `__cause__`. Nothing is
///   published, and the next call (on any thread) computes the attributes again.
/// - Immutable by default: once published, the type gets `Py_TPFLAGS_IMMUTABLETYPE`
///   (Python 3.10+), so `Color.RED = ...` and `del Color.RED` raise `TypeError`.
///   Subclasses made in Python are ordinary, mutable classes.
/// - Fast path once complete: one load and a branch, inlined.
/// - The `lazy_type` owns one reference to the type, held in a `gil_once_cell`: a
///   `static` lazy_type keeps the type for the life of the process and never touches it
///   after `Py_Finalize` (see `gil_once_cell`'s destructor).
///
/// Example:
/// @code
///   static PyType_Spec color_spec = {"colors.Color", sizeof(color_object), 0,
///                                    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, color_slots};
///   static gilonce::lazy_type color_type(&color_spec, {
///       {"RED", [](gilonce::gil_token gil) -> PyObject* {
///            PyTypeObject* type = color_type.get(gil);   // early, on this thread
///            return type ? PyObject_CallFunction((PyObject*)type, "s", "red") : nullptr;
///        }},
///   });
///
///   PyObject* get_color_type() {   // Requires: the GIL is held.
///       return (PyObject*)color_type.get(gilonce::gil_token::assume_held());  // borrowed
///   }
/// @endcode
class lazy_type {
public:
    /// `spec` must outlive this object and every type it creates (Python 3.11 keeps
    /// `spec->name` as the type's `tp_name`): a `static` spec. `make_bases`, if given,
    /// runs in stage 1 and returns a new reference to a base type or a tuple of bases
    /// (or null with a Python exception set); it must not ask for this type.
    /// `immutable`: set `Py_TPFLAGS_IMMUTABLETYPE` once the attributes are published.
    /// Misuse (a null `spec`, an attribute with a null name or no factory) is reported by
    /// `get` as a `SystemError` naming the problem, not a crash.
    lazy_type(PyType_Spec* spec, std::vector<class_attribute> attributes,
              std::function<PyObject*(gil_token)> make_bases = {}, bool immutable = true)
        : spec_(spec), attributes_(std::move(attributes)), make_bases_(std::move(make_bases)),
          immutable_(immutable), ready_(spec != nullptr ? spec->name : nullptr) {}
    lazy_type(const lazy_type&) = delete;
    lazy_type& operator=(const lazy_type&) = delete;

    /// Requires: the GIL is held.
    /// Returns: a borrowed reference to the complete type (see the class comment for the
    /// one early exception), or null with a Python exception set.
    PyTypeObject* get(gil_token gil) {
        if (complete_ != nullptr) return complete_;  // the fast path: a load and a branch
        return get_slow(gil);
    }

    /// Requires: the GIL is held. Whether the class attributes have been published.
    bool is_complete(gil_token) const noexcept { return complete_ != nullptr; }

    /// The type's dotted name, from the spec ("?" without a spec).
    const char* name() const noexcept { return spec_ != nullptr ? spec_->name : "?"; }

    // ---------------------------------------------------------------------------------
    // Implementation details follow.
private:
    using computed = std::vector<std::pair<const char*, py_ref>>;

    PyTypeObject* get_slow(gil_token gil);  // GILONCE_COLD: kept out of the inlined fast path
    std::optional<py_ref> create_ready_type(gil_token gil);
    bool publish(PyObject* type, const computed& values);
    bool this_thread_is_computing() const;

    // Registers the calling thread as computing class attributes for as long as it lives,
    // so that every exit path, error or not, removes the record.
    class computing_record {
    public:
        explicit computing_record(std::vector<std::thread::id>& threads)
            : threads_(threads), id_(std::this_thread::get_id()) { threads_.push_back(id_); }
        ~computing_record() { threads_.erase(std::find(threads_.begin(), threads_.end(), id_)); }
        computing_record(const computing_record&) = delete;
        computing_record& operator=(const computing_record&) = delete;
    private:
        std::vector<std::thread::id>& threads_;
        std::thread::id id_;
    };

    PyType_Spec* spec_;
    std::vector<class_attribute> attributes_;
    std::function<PyObject*(gil_token)> make_bases_;
    bool immutable_;
    gil_once_cell<py_ref> ready_;                   // stage 1: the ready type
    std::vector<std::thread::id> computing_threads_;  // stage 2 in progress; GIL-guarded
    PyTypeObject* complete_ = nullptr;              // set once published; GIL-guarded
};

GILONCE_COLD inline PyTypeObject* lazy_type::get_slow(gil_token gil) {
    if (spec_ == nullptr) {
        PyErr_SetString(PyExc_SystemError, "gilonce::lazy_type: constructed with a null PyType_Spec");
        return nullptr;
    }
    for (const class_attribute& attribute : attributes_) {
        if (attribute.name == nullptr || !attribute.make) {
            PyErr_Format(PyExc_SystemError, "gilonce::lazy_type %s: a class attribute has %s", spec_->name,
                         attribute.name == nullptr ? "a null name" : "no factory");
            return nullptr;
        }
    }
    const py_ref* ready = ready_.get_or_try_init(gil, [&] { return create_ready_type(gil); });
    if (ready == nullptr) return nullptr;
    if (complete_ != nullptr) return complete_;  // published while stage 1 released the GIL
    auto* type = reinterpret_cast<PyTypeObject*>(ready->get());
    if (this_thread_is_computing()) return type;  // a factory creating an instance: early

    computing_record record(computing_threads_);
    computed values;
    for (const class_attribute& attribute : attributes_) {
        py_ref value;
        try {
            value = py_ref::steal(attribute.make(gil));  // may release the GIL, may re-enter
        } catch (const std::exception& e) {
            PyErr_Format(PyExc_RuntimeError, "C++ exception: %s", e.what());
        } catch (...) {
            PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
        }
        if (!value) {
            const std::string what = std::string("cannot compute class attribute ") + spec_->name + "." +
                                     attribute.name;
            raise_from_current(PyExc_RuntimeError, what.c_str());
            return nullptr;
        }
        values.emplace_back(attribute.name, std::move(value));
    }
    // From here to the return the GIL is held and no Python code runs: checking and
    // publishing are one step for every other thread.
    if (complete_ != nullptr) return complete_;  // another thread won; `values` released
    if (!publish(ready->get(), values)) return nullptr;
    complete_ = type;
    return complete_;
}

inline std::optional<py_ref> lazy_type::create_ready_type(gil_token gil) {
    py_ref bases;
    if (make_bases_) {
        bases = py_ref::steal(make_bases_(gil));
        if (!bases) return std::nullopt;
    }
    auto type = py_ref::steal(PyType_FromSpecWithBases(spec_, bases.get()));
    if (!type) return std::nullopt;
    return type;
}

// Sets every attribute (PyObject_SetAttr on a type also invalidates the type attribute
// cache). All or none: on failure, removes what it set and keeps the first error.
inline bool lazy_type::publish(PyObject* type, const computed& values) {
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (PyObject_SetAttrString(type, values[i].first, values[i].second.get()) < 0) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            for (std::size_t j = 0; j < i; ++j)
                if (PyObject_DelAttrString(type, values[j].first) < 0) PyErr_Clear();
            PyErr_Restore(t, v, tb);
            return false;
        }
    }
#if PY_VERSION_HEX >= 0x030A0000
    if (immutable_) {
        reinterpret_cast<PyTypeObject*>(type)->tp_flags |= Py_TPFLAGS_IMMUTABLETYPE;
        PyType_Modified(reinterpret_cast<PyTypeObject*>(type));
    }
#endif
    return true;
}

inline bool lazy_type::this_thread_is_computing() const {
    return std::find(computing_threads_.begin(), computing_threads_.end(),
                     std::this_thread::get_id()) != computing_threads_.end();
}

}  // namespace gilonce
