// gilonce/detail/type_building.hpp: the C-API work of `lazy_type`'s two stages, each step a
// function that calls no user code: checking what the user gave, making a type immutable,
// comparing its dict with stage 1's copy, and inserting the class attributes all or none.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../py_ref.hpp"
#include "handles.hpp"
#include "python.hpp"

#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif

namespace gilonce::detail {

/// Runs a factory (a new reference, or null with a Python exception set) and turns a C++
/// exception it throws into a Python one: `MemoryError`, or `RuntimeError("C++ exception:
/// WHAT")` chained from any exception already set (WHAT cut at 255 bytes). A forced unwind
/// passes untouched.
template <class Factory>
GILONCE_FORCED_UNWIND_HANDLER PyObject* call_factory(Factory&& factory) {
    char what[256] = "unknown C++ exception";
    bool out_of_memory = false;
    try {
        return factory();
#if defined(__GLIBCXX__)
    } catch (abi::__forced_unwind&) {
        throw;
#endif
    } catch (const std::bad_alloc&) {
        out_of_memory = true;
    } catch (const std::exception& e) {
        std::snprintf(what, sizeof what, "C++ exception: %s", e.what());
    } catch (...) {
    }
    // The Python work after the handler, with the exception object gone: a forced unwind
    // that starts in it (3.11 normalizes the cause: Python code) finds nothing to destroy.
    if (out_of_memory) return PyErr_NoMemory();
    PyObject* text = PyUnicode_FromFormat("%s", what);  // bytes not UTF-8 (or cut): replaced
    const char* utf8 = text != nullptr ? PyUnicode_AsUTF8(text) : nullptr;
    raise_from_current(PyExc_RuntimeError, utf8 != nullptr ? utf8 : "C++ exception");
    Py_XDECREF(text);  // a raw reference, not a py_ref: an unwind in raise_from_current leaks it
    return nullptr;
}

/// A factory failed: its error becomes the cause of a RuntimeError naming the value; one
/// that broke the C-API convention (null without an exception, a value with one) is named
/// in a SystemError. `attribute`: null for the bases factory.
inline void report_factory_failure(const char* type, const char* attribute, bool half_failed) {
    const std::string factory = attribute != nullptr ? std::string("class attribute factory ") + type + "." + attribute
                                                     : std::string("bases factory of ") + type;
    if (half_failed)
        return raise_from_current_unless_interrupt(PyExc_SystemError, (factory + " returned a value with an exception set").c_str());
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, (factory + " returned NULL without setting an exception").c_str());
    const std::string value = attribute != nullptr ? std::string("cannot compute class attribute ") + type + "." + attribute
                                                   : std::string("cannot compute the bases of ") + type;
    raise_from_current_unless_interrupt(PyExc_RuntimeError, value.c_str());
}

inline bool is_dunder(const char* name) {
    const std::size_t n = std::strlen(name);
    return n > 4 && std::strncmp(name, "__", 2) == 0 && std::strcmp(name + n - 2, "__") == 0;
}

/// Misuse of the attribute list, as a SystemError naming it: a null or dunder name, no
/// factory, a name given twice. Returns: whether the list is sound.
template <class Attributes>
bool attributes_are_sound(const char* type, const Attributes& attributes) {
    std::vector<std::string_view> names;
    for (const auto& attribute : attributes) {
        const char* problem = attribute.name == nullptr ? "a class attribute has a null name"
                              : !attribute.make         ? "a class attribute has no factory"
                              : is_dunder(attribute.name) ? "a class attribute has a dunder name"
                                                          : nullptr;
        if (problem != nullptr) {
            PyErr_Format(PyExc_SystemError, "gilonce::lazy_type %s: %s%s%s%s", type, problem,
                         attribute.name ? " (" : "", attribute.name ? attribute.name : "", attribute.name ? ")" : "");
            return false;
        }
        names.emplace_back(attribute.name);
    }
    std::sort(names.begin(), names.end());  // duplicates by sorting: linear in practice
    const auto twice = std::adjacent_find(names.begin(), names.end());
    if (twice != names.end())
        PyErr_Format(PyExc_SystemError, "gilonce::lazy_type %s: two class attributes have the same name (%s)", type, twice->data());
    return twice == names.end();
}

/// PyType_Freeze's rule, on every version and through each base's whole MRO: an immutable
/// type's bases are immutable, or attributes could reach the type through them. `bases`: a
/// type or a tuple of types (anything else is left to PyType_FromSpecWithBases).
inline bool bases_are_immutable(const char* type, PyObject* bases) {
    const bool one = PyType_Check(bases);
    const Py_ssize_t n = one ? 1 : PyTuple_Check(bases) ? PyTuple_GET_SIZE(bases) : 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = one ? bases : PyTuple_GET_ITEM(bases, i);
        PyObject* mro = PyType_Check(item) ? reinterpret_cast<PyTypeObject*>(item)->tp_mro : nullptr;
        const Py_ssize_t depth = mro != nullptr && PyTuple_Check(mro) ? PyTuple_GET_SIZE(mro) : 0;
        for (Py_ssize_t k = 0; k < depth; ++k) {
            auto* base = reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(mro, k));
            if (PyType_HasFeature(base, Py_TPFLAGS_IMMUTABLETYPE)) continue;
            PyErr_Format(PyExc_TypeError, "gilonce::lazy_type %s: an immutable type needs immutable bases, and %s is mutable",
                         type, base->tp_name);
            return false;
        }
    }
    return true;
}

#if PY_VERSION_HEX >= 0x030E0000
/// 3.14+: `PyType_Freeze`, allowed since no instance exists and no Python code saw the type.
inline bool make_immutable(PyTypeObject* type) {
    return PyType_HasFeature(type, Py_TPFLAGS_IMMUTABLETYPE) || PyType_Freeze(type) == 0;
}
inline constexpr unsigned long immutable_spec_flag = 0;
#else
/// 3.10-3.13: the type was created from a spec copy with the flag (CPython's own way).
inline bool make_immutable(PyTypeObject*) { return true; }
inline constexpr unsigned long immutable_spec_flag = Py_TPFLAGS_IMMUTABLETYPE;
#endif

/// Whether the type's dict `now` still holds what stage 1 left (`before`, its copy), plus
/// only what CPython stores on a mere read of annotations (`__annotations__`; 3.14:
/// `__annotations_cache__`, `__annotate_func__`). No Python code runs: a key that is not an
/// exact str is a change, found without hashing it. Returns 1, 0, or -1 (exception set).
/// Requires: no other thread writes `now` meanwhile (free-threaded: its critical section).
inline int dict_matches(PyObject* now, PyObject* before) {
    Py_ssize_t pos = 0, matched = 0;
    PyObject *key, *value;
    while (PyDict_Next(now, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) return 0;
        PyObject* old = PyDict_GetItemWithError(before, key);  // `before` is ours alone
        if (old == nullptr && PyErr_Occurred()) return -1;
        if (old != nullptr && old != value) return 0;
        if (old == nullptr && PyUnicode_CompareWithASCIIString(key, "__annotations__") != 0 &&
            PyUnicode_CompareWithASCIIString(key, "__annotations_cache__") != 0 &&
            PyUnicode_CompareWithASCIIString(key, "__annotate_func__") != 0)
            return 0;
        matched += old != nullptr;
    }
    return matched == PyDict_Size(before);  // else a key was removed
}

using computed_values = std::vector<std::pair<const char*, py_ref>>;
using replaced_values = std::vector<std::pair<py_ref, py_ref>>;  // (name, old value or empty)

/// Inserts every value into the type's own dict (the only way into an immutable type, as
/// CPython's datetime gives timedelta its min and max), then invalidates the type's caches.
/// All or none: on failure, puts back what was there, keeping the first error. What it
/// replaces goes to `replaced` (its capacity reserved by the caller: nothing here throws),
/// released by the caller after publication.
inline bool insert_all(PyTypeObject* type, const computed_values& values, replaced_values& replaced) {
    PyObject* dict = type->tp_dict;
    bool ok = true;
    for (std::size_t i = 0; ok && i < values.size(); ++i) {
        py_ref name = py_ref::steal(PyUnicode_InternFromString(values[i].first));
        PyObject* old = nullptr;  // a strong reference: another thread may replace it
        ok = name && dict_get_ref(dict, name.get(), &old) >= 0;
        py_ref old_value = py_ref::steal(old);
        ok = ok && PyDict_SetItem(dict, name.get(), values[i].second.get()) == 0;
        if (ok) replaced.emplace_back(std::move(name), std::move(old_value));
    }
    if (!ok) {
        set_aside_exception error;
        for (auto it = replaced.rbegin(); it != replaced.rend(); ++it)  // last in, first out
            if ((it->second ? PyDict_SetItem(dict, it->first.get(), it->second.get()) : PyDict_DelItem(dict, it->first.get())) < 0)
                PyErr_Clear();
        error.put_back();
    }
    PyType_Modified(type);  // the attribute cache and specializations must see the new dict
    return ok;
}

}  // namespace gilonce::detail
