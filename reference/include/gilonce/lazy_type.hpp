// gilonce/lazy_type.hpp: a heap type created on first use, whose class attributes may be
// instances of the type itself (Color.RED = Color("red")), built in two stages with the
// GIL as the only lock. The general form of walkthroughs/05-two-stage-initialization.
// On a free-threaded build (Py_GIL_DISABLED) the same two stages hold with no GIL: stage 1
// runs exactly once in a py_once_lock, and stage 2's publication is claimed by one thread at
// a time in another (models/two_stage_type.pml checks the protocol; `SPIN:` comments mark
// its steps).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if PY_VERSION_HEX < 0x030A0000
#error "gilonce::lazy_type needs Python 3.10 or newer: its immutability rests on \
Py_TPFLAGS_IMMUTABLETYPE, and before 3.10 nothing stops Python code from changing a heap \
type while its class attributes are computed (see the FAQ)."
#endif

#include "cell_common.hpp"
#include "compiler.hpp"
#include "errors.hpp"
#if defined(Py_GIL_DISABLED)
#include <atomic>

#include "py_once_lock.hpp"
#else
#include "gil_once_cell.hpp"
#endif
#include "gil_state.hpp"
#include "gil_token.hpp"
#include "handles.hpp"
#include "init_context.hpp"
#include "py_ref.hpp"

namespace gilonce {

namespace detail {
/// Internal: the cell that runs stage 1. With a GIL, the GIL is its lock and a racing
/// thread builds a type of its own (dropped); without one, it must be exactly once.
#if defined(Py_GIL_DISABLED)
template <class T>
using stage_one_cell = py_once_lock<T>;
#else
template <class T>
using stage_one_cell = gil_once_cell<T>;
#endif
}  // namespace detail

/// One class attribute of a `lazy_type`: a name and the user code that computes it.
struct class_attribute {
    /// The attribute's name. The characters must outlive the `lazy_type` (a literal). Not a
    /// dunder name (`__x__`): those are slots, and a class attribute is a plain value.
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
///    attributes, inside a `gil_once_cell`. If it is to be immutable, it is made immutable
///    here, before any instance exists and before any Python code can see it. Not
///    re-entrant: if the bases factory asks for the type, `get` fails with a
///    `RuntimeError` naming the type.
/// 2. Every class attribute is computed with no lock held but the GIL (factories may
///    release it, and may ask for the type), then all are published at once, straight into
///    the type's dict (as CPython's own `datetime` gives the immutable `timedelta` its
///    `min` and `max`), with the GIL held and no Python code running in between.
///
/// Contract of `get`, each line tested in tests/cpp/test_lazy_type*.cpp and
/// tests/python/test_lazy_type.py:
/// - With a GIL: never blocks; takes no lock but the GIL. On a free-threaded build
///   (Py_GIL_DISABLED): stage 1 runs exactly once and publication is claimed by one thread
///   at a time, each in a `py_once_lock` whose waiters detach before they block; no lock is
///   held while user code (the bases factory aside, which runs in stage 1's claim) or a
///   class-attribute factory runs.
/// - Every caller gets the same type object. `get` returns it complete, with every class
///   attribute, to every caller but one: a call made while a factory runs, in the execution
///   context (thread, greenlet) computing the attributes, gets the ready type early, to
///   create instances. Another greenlet on the same thread is another caller. A context
///   copied from the computing one while it runs (`copy_context()`, asyncio's `call_soon`,
///   `create_task`, `to_thread`) is part of that computation until it ends, so code a
///   factory hands its context to may get the early type; once the computation has ended,
///   such a copy is an ordinary caller.
/// - Who else can see the incomplete type: while stage 2 runs, Python code (the factories'
///   own, and any thread's when a factory releases the GIL) can reach the type without
///   `get`: through the instances the factories create (`type(obj)`), through its bases'
///   `__subclasses__()`, and through the garbage collector (`gc.get_objects()`,
///   `gc.get_referrers()`, `gc.get_referents()`). Such code may read the type (the class
///   attributes are still missing), create instances and subclass it. It cannot change an
///   immutable type: it is immutable from stage 1, so setting or deleting an attribute,
///   and assigning `__class__` to or from it, raise `TypeError`. `gc.get_referents(type)`
///   also hands out the type's own dict, which Python code can write into; publication
///   compares the dict with the one stage 1 left and, if it changed, publishes nothing and
///   raises `RuntimeError` (on every call): only the class attributes are ever added (and
///   what CPython itself stores when annotations are read: the empty `__annotations__`
///   dict, or on 3.14 `__annotations_cache__` and `__annotate_func__`). A
///   type made with `immutable = false` is an ordinary mutable class from stage 1 on, and
///   publication overwrites only the class attributes' names.
/// - If stage 2 releases the GIL, other callers compute their own attributes meanwhile:
///   factories may run more than once. The first complete set is published, once; the
///   others are released at once, under the GIL.
/// - Errors, with TYPE the type's dotted name and ATTRIBUTE the attribute's name:
///   - a failing factory: `get` returns null with
///     `RuntimeError("cannot compute class attribute TYPE.ATTRIBUTE")` set, the factory's
///     error as `__cause__`; nothing is published, and the next call (in any context)
///     computes the attributes again;
///   - a factory that returns null without setting an exception: the same `RuntimeError`,
///     whose cause is
///     `SystemError("class attribute factory TYPE.ATTRIBUTE returned NULL without setting an exception")`;
///   - a factory that returns a value with an exception set:
///     `SystemError("class attribute factory TYPE.ATTRIBUTE returned a value with an exception set")`;
///   - a failing bases factory: `RuntimeError("cannot compute the bases of TYPE")`, its
///     error as `__cause__`; one that returns null without setting an exception has as
///     cause `SystemError("bases factory of TYPE returned NULL without setting an exception")`,
///     and one that returns a value with an exception set gives
///     `SystemError("bases factory of TYPE returned a value with an exception set")`;
///   - a C++ exception from either becomes `RuntimeError("C++ exception: WHAT")` (or
///     `MemoryError`) as that cause: no C++ exception escapes `get`;
///   - a `KeyboardInterrupt`, `SystemExit` or greenlet's `GreenletExit` (a `BaseException`
///     that is not an `Exception`) raised while a factory runs is not wrapped: `get` returns
///     null with it set, so `except KeyboardInterrupt` still sees it. Nothing is published.
/// - Immutable (the default, Python 3.10+): `Py_TPFLAGS_IMMUTABLETYPE`, on 3.14+ set by
///   `PyType_Freeze`, before any instance exists (as its documentation requires); on
///   3.10-3.13 by creating the type from a copy of the spec with the flag added, which is
///   how CPython's own modules make immutable types. Every class in its bases' MROs must
///   be immutable too (`PyType_Freeze`'s rule for bases, applied on every version and to
///   grand-bases): a mutable one would let attributes appear on the type through the back
///   door, so it is a `TypeError`. A spec
///   that already carries the flag is used as it is. Subclasses made in Python are
///   ordinary, mutable classes.
/// - Fast path once complete: one load and a branch, inlined (free-threaded: an acquire
///   load, a plain load on x86-64).
/// - The garbage collector: before the type is complete, `get` may create the type, run
///   the factories and release the GIL, none of which a traversal may do (CPython: a
///   `tp_traverse` must not create or destroy objects or change a reference count), and
///   `get` cannot tell that it is called from one: CPython says nothing to C code about a
///   traversal in progress. So `tp_traverse` and `m_traverse` ask `get_for_traverse`,
///   which never computes. Everything else the collector runs (`tp_clear`, `tp_finalize`,
///   `__del__`, `tp_dealloc`, weakref callbacks) runs after the traversal, where Python
///   code may run: `get` works there as anywhere, computing included.
/// - A thread ended by `pthread_exit` anywhere in stage 2 (a daemon thread during
///   Py_Finalize, CPython 3.11-3.13, wanting the GIL back in a factory, while an error is
///   chained, or while a value is released) unwinds through `get` with no Python C-API
///   call: the attributes it had computed are leaked, not decref'd without the GIL.
/// - Lifetime: the `lazy_type` owns one reference to the type (in a `gil_once_cell`) and
///   its factories (which may own Python objects). Its destructor releases them if the
///   destroying thread holds the GIL of a live interpreter (module state, cleared while
///   the interpreter runs) and leaks them otherwise (a `static` destroyed at process exit,
///   after Py_Finalize): no Python object is ever touched after the interpreter is gone.
///
/// Example:
/// @code
///   static PyType_Spec color_spec = {"colors.Color", sizeof(color_object), 0,
///                                    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, color_slots};
///   static gilonce::lazy_type color_type(&color_spec, {
///       {"RED", [](gilonce::gil_token gil) -> PyObject* {
///            PyTypeObject* type = color_type.get(gil);   // early, in this context
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
    /// (or null with a Python exception set); it must not ask for this type. On a
    /// free-threaded build stage 1 is a `py_once_lock`, whose waiters block: there the bases
    /// factory must not import either (see `py_once_lock` on the import lock); import the
    /// bases' module before the first `get`.
    /// `immutable`: make the type immutable in stage 1 (see the class comment).
    /// `module`: for a `lazy_type` in module state (PEP 489/630), the module it belongs to
    /// (borrowed: the state lives inside it). The type is then created with
    /// `PyType_FromModuleAndSpec`, so its methods find the module's state with
    /// `PyType_GetModuleByDef`, and it holds a reference to the module.
    /// Misuse (a null `spec`, an attribute with a null or dunder name, no factory, a name
    /// given twice, or a name the spec already defines) is reported by `get` as a
    /// `SystemError` naming the problem, not a crash.
    lazy_type(PyType_Spec* spec, std::vector<class_attribute> attributes,
              std::function<PyObject*(gil_token)> make_bases = {}, bool immutable = true,
              PyObject* module = nullptr)
        : spec_(spec),
          code_(new user_code{std::move(attributes), std::move(make_bases)}),
          immutable_(immutable),
          module_(module),
          ready_(spec != nullptr ? spec->name : nullptr)
#if defined(Py_GIL_DISABLED)
          ,
          publication_(spec != nullptr ? spec->name : nullptr)
#endif
    {
    }
    lazy_type(const lazy_type&) = delete;
    lazy_type& operator=(const lazy_type&) = delete;
    /// Releases the factories if this thread holds the GIL of a live interpreter; leaks
    /// them otherwise (they may own Python objects). The type: see `gil_once_cell`.
    ~lazy_type() {
        if (detail::this_thread_holds_the_gil()) delete code_;
        // else: leaked on purpose, like a static cell's value after Py_Finalize.
    }

    /// Requires: the GIL is held, and no Python exception is set (as for any C API call that
    /// may run Python code; the slow path would take it for its own failure). Not called
    /// from a traversal (`tp_traverse`, `m_traverse`) unless `is_complete`: there the slow
    /// path would run Python code inside the collection, which crashes the process; use
    /// `get_for_traverse`.
    /// Returns: a borrowed reference to the complete type (see the class comment for the
    /// one early exception), or null with a Python exception set. Throws nothing but a
    /// forced unwind (`pthread_exit`), which it lets through.
    PyTypeObject* get(gil_token gil) {
        // SPIN: fast_complete
        if (PyTypeObject* type = completed()) return type;  // the fast path: a load and a branch
        return get_slow(gil);
    }

    /// For `tp_traverse` and `m_traverse` (and every other traversal: `gc.get_referrers()`
    /// calls them outside any collection): the type if stage 1 made it, complete or not, else
    /// null (no type exists, so there is nothing to visit). Never computes, never runs
    /// Python code, never allocates, never blocks, never changes a reference count, never
    /// sets an exception: what CPython asks of a traversal, and what its `_DuringGC`
    /// functions promise. An instance's own type is `Py_TYPE(self)`; this is for a traversal
    /// that needs the type itself, to compare or to visit.
    /// Requires: the GIL is held (the collector holds it; a free-threaded collector has
    /// stopped the world). Returns: a borrowed reference, or null.
    PyTypeObject* get_for_traverse(gil_token gil) const noexcept {
        const ready_type* ready = ready_.get(gil);
        return ready != nullptr ? reinterpret_cast<PyTypeObject*>(ready->type.get()) : nullptr;
    }

    /// Requires: the GIL is held. Whether the class attributes have been published.
    bool is_complete(gil_token) const noexcept { return completed() != nullptr; }

    /// For a `lazy_type` in module state: call it from `m_traverse`, so the garbage
    /// collector sees the type (and its stage-1 bookkeeping) that this object owns. The
    /// factories are C++ callables: a Python object one of them holds is not visited.
    /// Requires: the GIL is held (the collector holds it). Returns: 0, or the first
    /// non-zero result of `visit`.
    int traverse(visitproc visit, void* arg) const { return ready_.traverse(visit, arg); }

    /// For a `lazy_type` in module state: call it from `m_clear`. Forgets the type and
    /// releases this object's references to it (instances keep the type alive). Every
    /// pointer `get` returned is invalidated; a later `get` builds a new type.
    /// Requires: the GIL is held, and no `get` of this object is in progress on any
    /// thread (true of a module being cleared: a call in progress keeps it alive).
    void clear(gil_token gil, invalidates_references_t tag) {
        mark_complete(nullptr);
#if defined(Py_GIL_DISABLED)
        publication_.clear(gil, tag);
#endif
        ready_.clear(gil, tag);
    }

    /// The type's dotted name, from the spec ("?" without a spec).
    const char* name() const noexcept { return spec_ != nullptr ? spec_->name : "?"; }

    // ---------------------------------------------------------------------------------
    // Implementation details follow.
private:
    struct user_code {
        std::vector<class_attribute> attributes;
        std::function<PyObject*(gil_token)> make_bases;
    };
    using computed = std::vector<std::pair<const char*, py_ref>>;
    // Stage 1's result: the ready type, and (immutable types) a copy of its dict as stage 1
    // left it, to catch a change made through the back door before publication.
    struct ready_type {
        py_ref type;
        py_ref stage_one_dict;
        // How the cell releases a losing stage 1 (handles.hpp): outside a destructor.
        void gilonce_release_now() {
            detail::release_now(stage_one_dict);
            detail::release_now(type);
        }
        void gilonce_abandon() noexcept {
            detail::abandon(stage_one_dict);
            detail::abandon(type);
        }
        int gilonce_traverse(visitproc visit, void* arg) const {
            Py_VISIT(type.get());
            Py_VISIT(stage_one_dict.get());
            return 0;
        }
    };

    PyTypeObject* get_slow(gil_token gil);  // GILONCE_COLD: kept out of the inlined fast path
    PyTypeObject* get_slow_unguarded(gil_token gil);
    bool check_user_code() const;
    std::optional<ready_type> create_ready_type(gil_token gil);
    std::optional<ready_type> finish_ready_type(py_ref& type);
    PyTypeObject* compute_and_publish(gil_token gil, const ready_type& ready);
    bool dict_is_as_stage_one_left_it(const ready_type& ready);
    py_ref make_bases(gil_token gil);
    void report_factory_failure(const char* attribute, bool half_failed) const;
    bool bases_are_immutable(PyObject* bases) const;
    bool make_immutable(PyTypeObject* type) const;
    using replaced_values = std::vector<std::pair<py_ref, py_ref>>;  // (name, old value)
    static void release_all(computed& values) {
        for (auto& value : values) detail::release_now(value.second);
    }
    bool publish(PyTypeObject* type, const computed& values, replaced_values& replaced);
    static bool is_dunder(const char* name) {
        const std::size_t n = std::strlen(name);
        return n > 4 && std::strncmp(name, "__", 2) == 0 && std::strcmp(name + n - 2, "__") == 0;
    }
    // The key of "this context is computing the attributes" in the context record.
    const void* stage_two_key() const noexcept { return &complete_; }

    PyType_Spec* spec_;
    user_code* code_;                    // owned; leaked when destroyed without the GIL
    bool immutable_;
    PyObject* module_;  // borrowed; null for a type that belongs to no module
    detail::stage_one_cell<ready_type> ready_;  // stage 1
    detail::live_computations computing_;  // stage 2 computations in progress
#if defined(Py_GIL_DISABLED)
    // No GIL orders the writes: publication release-stores, every read acquire-loads.
    std::atomic<PyTypeObject*> complete_{nullptr};
    py_once_lock<bool> publication_;  // one publisher at a time; named after the type
    std::atomic<bool> user_code_checked_{false};
    PyTypeObject* completed() const noexcept { return complete_.load(std::memory_order_acquire); }
    void mark_complete(PyTypeObject* type) noexcept { complete_.store(type, std::memory_order_release); }
#else
    PyTypeObject* complete_ = nullptr;   // set once published; GIL-guarded
    bool user_code_checked_ = false;     // check_user_code passed once; GIL-guarded
    PyTypeObject* completed() const noexcept { return complete_; }
    void mark_complete(PyTypeObject* type) noexcept { complete_ = type; }
#endif
};

// No C++ exception leaves `get`: a bad_alloc in the bookkeeping becomes a MemoryError.
GILONCE_COLD inline PyTypeObject* lazy_type::get_slow(gil_token gil) {
    return reinterpret_cast<PyTypeObject*>(
        detail::call_reporting_cpp_exceptions([&] { return reinterpret_cast<PyObject*>(get_slow_unguarded(gil)); }));
}

inline PyTypeObject* lazy_type::get_slow_unguarded(gil_token gil) {
    // The list never changes: one successful check is enough. Checking on every call made
    // each factory's `get` quadratic in the number of attributes (cubic for the type).
    if (!user_code_checked_) {
        if (!check_user_code()) return nullptr;
        user_code_checked_ = true;
    }
    // SPIN: stage_one
    const ready_type* ready = ready_.get_or_try_init(gil, [&] { return create_ready_type(gil); });
    if (ready == nullptr) return nullptr;
    if (PyTypeObject* type = completed()) return type;  // published while stage 1 ran or waited
    // SPIN: computing_check
    const int computing = detail::context_is_initializing(stage_two_key(), computing_);
    if (computing < 0) return nullptr;
    // SPIN: early_type
    if (computing) return reinterpret_cast<PyTypeObject*>(ready->type.get());  // the early exception
    return compute_and_publish(gil, *ready);
}

// Stage 2. Every C-API call that may run Python code (the factories, releasing values,
// chaining an error) is inside `call_user_code`: a thread torn down by pthread_exit
// anywhere in it leaks what it holds instead of touching Python without the GIL. Values
// are released explicitly (release_now), never by a destructor.
inline PyTypeObject* lazy_type::compute_and_publish(gil_token gil, const ready_type& ready) {
    auto* type = reinterpret_cast<PyTypeObject*>(ready.type.get());
    computed values;
    values.reserve(code_->attributes.size());  // no allocation between factories and publish
    replaced_values replaced;                  // released after `complete_` is set
    std::optional<detail::initializing_scope> scope;
    auto abandon = [&]() noexcept {
        if (scope) scope->abandon();
        for (auto& value : values) detail::abandon(value.second);
        for (auto& old : replaced) detail::abandon(old.first), detail::abandon(old.second);
    };
    return detail::call_user_code(
        [&]() -> PyTypeObject* {
            scope.emplace(stage_two_key(), computing_);
            if (!scope->ok()) return nullptr;
            // Factories report C++ exceptions as Python errors: nothing below throws but a
            // forced unwind, so the record is always ended by the explicit calls below.
            for (const class_attribute& attribute : code_->attributes) {
                // May release the GIL, and may re-enter `get` (and get the early type).
                // SPIN: compute_attribute
                py_ref value = py_ref::steal(detail::call_reporting_cpp_exceptions([&] { return attribute.make(gil); }));
                const bool half_failed = value && PyErr_Occurred();
                if (!value || half_failed) {
                    scope->end();
                    if (half_failed) detail::release_now(value);
                    report_factory_failure(attribute.name, half_failed);
                    release_all(values);
                    return nullptr;
                }
                values.emplace_back(attribute.name, std::move(value));
            }
            scope->end();
            // From here to `mark_complete` no Python code runs. With a GIL, which is held
            // throughout, checking and publishing are one step for every other thread.
            // Without one, no other thread publishes meanwhile, and none gets the type from
            // `get` before `mark_complete`; Python code that reaches the type another way
            // (type(obj), the collector) may see some class attributes before the others.
            bool published = true;
#if defined(Py_GIL_DISABLED)
            // One publisher at a time, by a real claim: a critical section would be suspended
            // if its holder blocked (on the interned-strings lock, or the type lock inside
            // PyType_Modified) and let a second publisher in. The others wait detached; if
            // this publication fails, one of them publishes its own values.
            // SPIN: publish_lock
            const bool* done = publication_.get_or_try_init(gil, [&]() -> std::optional<bool> {
                // SPIN: publish_check
                if (completed() != nullptr) return true;
                // SPIN: publish_all
                if (!dict_is_as_stage_one_left_it(ready) || !publish(type, values, replaced)) return std::nullopt;
                // SPIN: mark_complete
                mark_complete(type);
                return true;
            });
            // SPIN: publish_unlock
            published = done != nullptr;
#else
            // SPIN: publish_check
            if (completed() == nullptr) {
                // SPIN: publish_all
                published = dict_is_as_stage_one_left_it(ready) && publish(type, values, replaced);
                // SPIN: mark_complete
                if (published) mark_complete(type);
            }
#endif
            if (!published) {
                release_all(values);
                return nullptr;
            }
            release_all(values);  // the losers' values, or our references to the published ones
            for (auto& old : replaced) detail::release_now(old.second), detail::release_now(old.first);
            return completed();
        },
        abandon);
}

// Immutable types only: Python code that reached the type during stage 2 cannot set an
// attribute, but it can write into the dict itself (gc.get_referents(type) hands it out).
// Such a change must not be published silently: it is an error, on this and every call.
// CPython itself adds keys on a mere read: `type.__annotations__` stores an empty dict
// (3.10-3.13: `__annotations__`; 3.14: `__annotations_cache__`, after reading `__annotate__`,
// which stores None as `__annotate_func__`), so a new key of those names is allowed. No Python code runs here: a key that is not an exact str is a change
// without being hashed, and lookups go into the stage-1 copy, whose keys are all str.
inline bool lazy_type::dict_is_as_stage_one_left_it(const ready_type& ready) {
    PyObject* before = ready.stage_one_dict.get();
    if (before == nullptr) return true;  // a mutable type: changes are allowed
    PyObject* now = reinterpret_cast<PyTypeObject*>(ready.type.get())->tp_dict;
    Py_ssize_t matched = 0;
    bool same = true;
    bool failed = false;
    PyObject *key, *value;
#if defined(Py_GIL_DISABLED)
    // Other threads may write this dict meanwhile (reading __annotations__ stores a key):
    // PyDict_Next and its borrowed keys are safe only under the dict's own critical section.
    // Nothing below blocks, so the section is not suspended.
    Py_BEGIN_CRITICAL_SECTION(now);
#endif
    for (Py_ssize_t pos = 0; same && PyDict_Next(now, &pos, &key, &value);) {
        if (!PyUnicode_CheckExact(key)) {
            same = false;
            break;
        }
        PyObject* old = PyDict_GetItemWithError(before, key);  // `before` is ours alone
        if (old == nullptr && PyErr_Occurred()) {
            failed = true;
            break;
        }
        if (old == nullptr) {
            same = PyUnicode_CompareWithASCIIString(key, "__annotations__") == 0 ||
                   PyUnicode_CompareWithASCIIString(key, "__annotations_cache__") == 0 ||
                   PyUnicode_CompareWithASCIIString(key, "__annotate_func__") == 0;
            continue;
        }
        same = old == value;
        ++matched;
    }
#if defined(Py_GIL_DISABLED)
    Py_END_CRITICAL_SECTION();
#endif
    if (failed) return false;
    if (same && matched != PyDict_Size(before)) same = false;  // a key was removed
    if (!same)
        PyErr_Format(PyExc_RuntimeError,
                     "gilonce::lazy_type %s: its dict was changed while its class attributes were computed "
                     "(not by setattr, which an immutable type refuses, but through the dict itself, as "
                     "gc.get_referents() hands it out, or from C); the type is not published",
                     spec_->name);
    return same;
}

inline bool lazy_type::check_user_code() const {
    if (spec_ == nullptr) {
        PyErr_SetString(PyExc_SystemError, "gilonce::lazy_type: constructed with a null PyType_Spec");
        return false;
    }
    for (const class_attribute& attribute : code_->attributes) {
        const char* problem = attribute.name == nullptr ? "a class attribute has a null name"
                              : !attribute.make         ? "a class attribute has no factory"
                              : is_dunder(attribute.name) ? "a class attribute has a dunder name"
                                                          : nullptr;
        if (problem != nullptr) {
            if (attribute.name != nullptr)
                PyErr_Format(PyExc_SystemError, "gilonce::lazy_type %s: %s (%s)", spec_->name, problem, attribute.name);
            else
                PyErr_Format(PyExc_SystemError, "gilonce::lazy_type %s: %s", spec_->name, problem);
            return false;
        }
    }
    // Duplicates by sorting, not by comparing every pair: creation stays linear in practice.
    std::vector<std::string_view> names;
    names.reserve(code_->attributes.size());
    for (const class_attribute& attribute : code_->attributes) names.emplace_back(attribute.name);
    std::sort(names.begin(), names.end());
    const auto twice = std::adjacent_find(names.begin(), names.end());
    if (twice != names.end()) {
        PyErr_Format(PyExc_SystemError, "gilonce::lazy_type %s: two class attributes have the same name (%s)",
                     spec_->name, twice->data());
        return false;
    }
    return true;
}

// Stage 1. Runs inside the `ready_` cell: at most one result is kept.
inline std::optional<lazy_type::ready_type> lazy_type::create_ready_type(gil_token gil) {
    py_ref bases = make_bases(gil);
    if (code_->make_bases && !bases) return std::nullopt;
    if (immutable_ && bases && !bases_are_immutable(bases.get())) return std::nullopt;  // before creation
    PyType_Spec spec = *spec_;  // only the name's characters are kept by the type
#if PY_VERSION_HEX < 0x030E0000
    if (immutable_) spec.flags |= Py_TPFLAGS_IMMUTABLETYPE;  // 3.10-3.13: CPython's own way
#endif
    // Creating the type may run Python code (a collection's finalizers) that releases the GIL.
    PyObject* raw = detail::call_user_code([&] { return PyType_FromModuleAndSpec(module_, &spec, bases.get()); },
                                           [&]() noexcept { (void)bases.release(); });
    py_ref type = py_ref::steal(raw);
    if (!type) return std::nullopt;
    // What follows may run Python code too (a collection on an allocation): under the guard.
    return detail::call_user_code(
        [&]() -> std::optional<ready_type> {
            std::optional<ready_type> ready = finish_ready_type(type);  // takes `type` on success
            detail::release_now(type);                                  // on failure, released here
            detail::release_now(bases);
            return ready;
        },
        [&]() noexcept {
            detail::abandon(type);
            detail::abandon(bases);
        });
}

// Stage 1, after creation: immutability, the attribute-name checks, the dict's copy.
// Takes `type` (leaves it empty) only when it returns a result.
inline std::optional<lazy_type::ready_type> lazy_type::finish_ready_type(py_ref& type) {
    auto* type_object = reinterpret_cast<PyTypeObject*>(type.get());
    const bool spec_immutable = (spec_->flags & Py_TPFLAGS_IMMUTABLETYPE) != 0;
    // Again on the type: the spec's own Py_tp_base/Py_tp_bases slots may have given them.
    if ((immutable_ || spec_immutable) && !bases_are_immutable(type_object->tp_bases)) return std::nullopt;
    if (immutable_ && !make_immutable(type_object)) return std::nullopt;
    for (const class_attribute& attribute : code_->attributes) {
        py_ref name = py_ref::steal(PyUnicode_FromString(attribute.name));
        const int defined = name ? PyDict_Contains(type_object->tp_dict, name.get()) : -1;
        if (defined != 0) {
            if (defined > 0)
                PyErr_Format(PyExc_SystemError,
                             "gilonce::lazy_type %s: class attribute %s would replace what the spec defines",
                             spec_->name, attribute.name);
            return std::nullopt;
        }
    }
    py_ref stage_one_dict;
    if (PyType_HasFeature(type_object, Py_TPFLAGS_IMMUTABLETYPE)) {
        stage_one_dict = py_ref::steal(PyDict_Copy(type_object->tp_dict));
        if (!stage_one_dict) return std::nullopt;
    }
    return ready_type{std::move(type), std::move(stage_one_dict)};
}

// The bases factory, its errors named after the type. Empty with no factory.
inline py_ref lazy_type::make_bases(gil_token gil) {
    if (!code_->make_bases) return py_ref();
    bool half_failed = false;  // a value with an exception set: released, and an error
    py_ref bases = py_ref::steal(detail::call_user_code(
        [&]() -> PyObject* {
            PyObject* made = detail::call_reporting_cpp_exceptions([&] { return code_->make_bases(gil); });
            half_failed = made != nullptr && PyErr_Occurred();
            if (half_failed) Py_DECREF(made);
            return half_failed ? nullptr : made;
        },
        [] {}));
    if (!bases) report_factory_failure(nullptr, half_failed);
    return bases;
}

// A factory failed: say which one and what it did. Its own error becomes the cause of a
// RuntimeError naming the value; a factory that broke the C-API convention (null without an
// exception, or a value with one) is named in a SystemError. `attribute`: null for the bases.
inline void lazy_type::report_factory_failure(const char* attribute, bool half_failed) const {
    const std::string type = spec_->name;
    const std::string factory = attribute != nullptr ? "class attribute factory " + type + "." + attribute
                                                     : "bases factory of " + type;
    if (half_failed) {
        raise_from_current_unless_interrupt(PyExc_SystemError, (factory + " returned a value with an exception set").c_str());
        return;
    }
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, (factory + " returned NULL without setting an exception").c_str());
    const std::string value = attribute != nullptr ? "cannot compute class attribute " + type + "." + attribute
                                                   : "cannot compute the bases of " + type;
    raise_from_current_unless_interrupt(PyExc_RuntimeError, value.c_str());
}

// PyType_Freeze's rule: an immutable type's bases are immutable, or attributes could be
// added to the type through them.
// `bases`: a type or a tuple of types (anything else is left to PyType_FromSpecWithBases).
// Every class in each base's MRO is checked, not only the direct bases: an attribute set on
// a mutable grand-base shows up on the type just the same.
inline bool lazy_type::bases_are_immutable(PyObject* bases) const {
    const bool one = PyType_Check(bases);
    const Py_ssize_t n = one ? 1 : PyTuple_Check(bases) ? PyTuple_GET_SIZE(bases) : 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = one ? bases : PyTuple_GET_ITEM(bases, i);
        if (!PyType_Check(item)) continue;
        PyObject* mro = reinterpret_cast<PyTypeObject*>(item)->tp_mro;
        const Py_ssize_t depth = mro != nullptr && PyTuple_Check(mro) ? PyTuple_GET_SIZE(mro) : 0;
        for (Py_ssize_t k = 0; k < depth; ++k) {
        auto* base = reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(mro, k));
        if (!PyType_HasFeature(base, Py_TPFLAGS_IMMUTABLETYPE)) {
            PyErr_Format(PyExc_TypeError, "gilonce::lazy_type %s: an immutable type needs immutable bases, and %s is mutable",
                         spec_->name, base->tp_name);
            return false;
        }
        }
    }
    return true;
}

inline bool lazy_type::make_immutable(PyTypeObject* type) const {
#if PY_VERSION_HEX >= 0x030E0000
    // No instance exists and no Python code has seen the type: PyType_Freeze's rule holds.
    return PyType_HasFeature(type, Py_TPFLAGS_IMMUTABLETYPE) || PyType_Freeze(type) == 0;
#else
    (void)type;  // created immutable from the spec copy
    return true;
#endif
}

// Inserts every value into the type's dict (the only way into an immutable type, and the
// way CPython's datetime publishes timedelta.min), then invalidates the type's caches. All
// or none: on failure, takes out what it put in, restores what was there, keeps the first
// error. Values it replaces (a mutable type changed during stage 2) go to `replaced`, which
// the caller releases after publication, so no Python code (a __del__) runs in between.
inline bool lazy_type::publish(PyTypeObject* type, const computed& values, replaced_values& replaced) {
    PyObject* dict = type->tp_dict;  // a heap type's own dict, on every version
    replaced.reserve(values.size());
    std::size_t inserted = 0;
    bool ok = true;
    for (; inserted < values.size(); ++inserted) {
        py_ref name = py_ref::steal(PyUnicode_InternFromString(values[inserted].first));
        if (!name) { ok = false; break; }
#if defined(Py_GIL_DISABLED)
        // A strong reference at once: another thread may replace the value of a mutable type.
        PyObject* old_value = nullptr;
        if (PyDict_GetItemRef(dict, name.get(), &old_value) < 0) { ok = false; break; }
        py_ref old = py_ref::steal(old_value);
#else
        py_ref old = py_ref::borrow(PyDict_GetItemWithError(dict, name.get()));
        if (!old && PyErr_Occurred()) { ok = false; break; }
#endif
        if (PyDict_SetItem(dict, name.get(), values[inserted].second.get()) < 0) { ok = false; break; }
        replaced.emplace_back(std::move(name), std::move(old));
    }
    if (!ok) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        for (auto it = replaced.rbegin(); it != replaced.rend(); ++it) {  // last in, first out
            auto& [name, old] = *it;
            const int undone = old ? PyDict_SetItem(dict, name.get(), old.get()) : PyDict_DelItem(dict, name.get());
            if (undone < 0) PyErr_Clear();
        }
        PyErr_Restore(t, v, tb);
    }
    PyType_Modified(type);  // the attribute cache and specializations must see the new dict
    return ok;
}

}  // namespace gilonce
