// gilonce/lazy_type.hpp: a heap type created on first use, whose class attributes may be
// instances of the type itself (Color.RED = Color("red")), built in two stages: stage 1
// makes the type ready (and immutable) with no class attributes; stage 2 computes them all,
// then publishes them at once. With a GIL, the GIL is the only lock; on a free-threaded
// build the same two stages hold (gilonce/detail/two_stage_sync.hpp).
#pragma once

#include <functional>
#include <optional>
#include <utility>
#include <vector>


#include "detail/attempt.hpp"
#include "detail/context_record.hpp"
#include "detail/two_stage_sync.hpp"
#include "detail/type_building.hpp"
#include "errors.hpp"
#include "gil_token.hpp"
#include "py_ref.hpp"

#if PY_VERSION_HEX < 0x030A0000
#error "gilonce::lazy_type needs Python 3.10 or newer: its immutability rests on \
Py_TPFLAGS_IMMUTABLETYPE, and before 3.10 nothing stops Python code from changing a heap \
type while its class attributes are computed."
#endif

namespace gilonce {

/// One class attribute of a `lazy_type`: a name and the user code that computes it.
struct class_attribute {
    /// The name: characters that outlive the `lazy_type` (a literal); not a dunder name.
    const char* name;
    /// Requires: the GIL is held. Returns a new reference, or null with a Python exception
    /// set (a C++ exception counts as one). May release the GIL, may call `get` on its
    /// `lazy_type` to create instances, and may run more than once.
    std::function<PyObject*(gil_token)> make;
};

/// A heap type created from a `PyType_Spec` on first use, with class attributes computed by
/// user code.
///
/// Invariant: `get` hands out the type complete (every class attribute in its dict) to
/// every caller but one: the execution context computing the attributes, which gets the
/// ready type early, to create instances. Publication inserts every attribute at once, with
/// no Python code running in between, and an immutable type cannot be changed by anyone
/// else (its dict is compared with stage 1's copy just before).
///
/// Contract of `get`:
/// - With a GIL: never blocks, takes no lock but the GIL. Free-threaded: stage 1 runs once
///   and publication is claimed by one thread at a time, waiters detached; no lock is held
///   while a class-attribute factory runs.
/// - Every caller gets the same type object. The early caller is the computing context:
///   the thread or greenlet running the factories, and a context copied from it while they
///   run (`copy_context()`, asyncio's `call_soon`, `create_task`, `to_thread`); after the
///   computation ends such a copy is an ordinary caller.
/// - Who else can see the incomplete type during stage 2: Python code that reaches it
///   without `get` (`type(obj)` of an instance a factory made, `__subclasses__()` of a base,
///   the garbage collector's `get_objects`/`get_referrers`/`get_referents`). It may read the
///   type, create instances, subclass it. It cannot change an immutable type (setattr and
///   `__class__` assignment raise `TypeError`); a change made through the dict itself
///   (`gc.get_referents(type)` hands it out) is found at publication, which then publishes
///   nothing and raises `RuntimeError` on every call. A type made with `immutable = false`
///   is an ordinary mutable class, and publication overwrites only the attributes' names.
/// - If stage 2 releases the GIL, other callers compute attributes of their own: factories
///   may run more than once. The first complete set is published, once; the rest released.
/// - Errors, with TYPE the dotted name and ATTRIBUTE the attribute's name: a failing factory
///   gives `RuntimeError("cannot compute class attribute TYPE.ATTRIBUTE")` with its error as
///   `__cause__`, and nothing is published (the next call computes again); a factory that
///   returns null without an exception has as cause `SystemError("class attribute factory
///   TYPE.ATTRIBUTE returned NULL without setting an exception")`; one that returns a value
///   with an exception set gives `SystemError("class attribute factory TYPE.ATTRIBUTE returned
///   a value with an exception set")`. The bases factory: the same, with "cannot compute the
///   bases of TYPE" and "bases factory of TYPE". A C++ exception becomes `RuntimeError("C++
///   exception: WHAT")` (or `MemoryError`) as that cause: none escapes `get`. A
///   `KeyboardInterrupt`, `SystemExit` or `GreenletExit` is left unwrapped.
/// - Immutable (the default): `Py_TPFLAGS_IMMUTABLETYPE` before any instance exists (3.14+:
///   `PyType_Freeze`; 3.10-3.13: a spec copy with the flag, CPython's own way). Every class
///   in the bases' MROs must be immutable too, else `TypeError`. Python subclasses are
///   ordinary mutable classes.
/// - The garbage collector: `get` may compute, and a traversal must not (CPython says nothing
///   to C code about one in progress), so `tp_traverse`/`m_traverse` use `get_for_traverse`.
///   Everything else the collector runs (`tp_clear`, finalizers, weakref callbacks) may call
///   `get`.
/// - A thread torn down by `pthread_exit` in stage 2 unwinds with no C-API call: the
///   attributes it computed are leaked.
/// - Lifetime: owns one reference to the type and its factories; its destructor releases them
///   if this thread holds the GIL of a live interpreter, and leaks them otherwise.
/// - Fast path once complete: one load and a branch, inlined.
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
    /// `spec`: a `static` spec that outlives every type it creates (3.11 keeps its name).
    /// `make_bases`, if given, runs in stage 1 and returns a new reference to a base or a
    /// tuple of bases (null with an exception set on failure); it must not ask for this type,
    /// and on a free-threaded build must not import (stage 1 blocks there: import the bases'
    /// module before the first `get`). `immutable`: make the type immutable in stage 1.
    /// `module`: for a `lazy_type` in module state (PEP 489/630), the module (borrowed): the
    /// type is made with `PyType_FromModuleAndSpec` and finds the state by
    /// `PyType_GetModuleByDef`. Misuse (a null spec, an attribute with a null or dunder name
    /// or no factory, a name twice or one the spec defines) is a `SystemError` from `get`.
    lazy_type(PyType_Spec* spec, std::vector<class_attribute> attributes,
              std::function<PyObject*(gil_token)> make_bases = {}, bool immutable = true, PyObject* module = nullptr)
        : spec_(spec),
          user_(user_code{std::move(attributes), std::move(make_bases)}),
          immutable_(immutable),
          module_(module),
          ready_(spec != nullptr ? spec->name : nullptr) {}
    lazy_type(const lazy_type&) = delete;
    lazy_type& operator=(const lazy_type&) = delete;
    /// Releases the factories (which may own Python objects) with the GIL of a live
    /// interpreter; leaks them otherwise. The type: as `gil_once_cell`.
    ~lazy_type() {
        if (detail::this_thread_holds_the_gil()) user_.code.~user_code();  // else leaked on purpose
    }

    /// Requires: the GIL is held; no Python exception set; not inside a traversal unless
    /// `is_complete` (use `get_for_traverse` there). Returns: a borrowed reference to the
    /// type (complete, but for the early caller), or null with a Python exception set.
    /// Throws nothing but a forced unwind, which it lets through.
    PyTypeObject* get(gil_token gil) {
        if (PyTypeObject* type = complete_.get()) return type;  // the fast path: a load and a branch
        return get_slow(gil);
    }

    /// For `tp_traverse`/`m_traverse` and every other traversal: the type if stage 1 made it,
    /// complete or not, else null. Never computes, allocates, blocks, runs Python code,
    /// changes a reference count or sets an exception. Requires: the GIL is held (the
    /// collector's). Returns: a borrowed reference, or null.
    PyTypeObject* get_for_traverse(gil_token gil) const noexcept {
        const ready_type* ready = ready_.get(gil);
        return ready != nullptr ? reinterpret_cast<PyTypeObject*>(ready->type.get()) : nullptr;
    }

    /// Requires: the GIL is held. Whether the class attributes have been published.
    bool is_complete(gil_token) const noexcept { return complete_.get() != nullptr; }

    /// For `m_traverse` of a `lazy_type` in module state: visits the type (and stage 1's
    /// copy of its dict). Objects the factories hold are not visited. Requires: the GIL.
    int traverse(visitproc visit, void* arg) const { return ready_.traverse(visit, arg); }

    /// For `m_clear`: forgets the type (instances keep it alive); a later `get` builds a new
    /// one. Invalidates every pointer `get` returned. Requires: the GIL is held, and no
    /// `get` of this object in progress on any thread (true of a module being cleared).
    void clear(gil_token gil, invalidates_references_t tag) {
        complete_.set(nullptr);
        publication_.clear();
        ready_.clear(gil, tag);
    }

    /// The type's dotted name, from the spec ("?" without one).
    const char* name() const noexcept { return spec_ != nullptr ? spec_->name : "?"; }

private:
    struct user_code {
        std::vector<class_attribute> attributes;
        std::function<PyObject*(gil_token)> make_bases;
    };
    union user_code_slot {  // as a cell's slot: ~lazy_type decides whether it is destroyed
        user_code code;
        explicit user_code_slot(user_code&& given) : code(std::move(given)) {}
        ~user_code_slot() {}
    };
    // Stage 1's result: the ready type and, for an immutable one, a copy of its dict as stage
    // 1 left it. Released and abandoned as a handle (gilonce/detail/handles.hpp).
    struct ready_type {
        py_ref type;
        py_ref stage_one_dict;
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
    // Stage 2's values in flight. A holder (gilonce/detail/attempt.hpp): its destructor
    // abandons what it still holds; the normal path releases them explicitly.
    struct values_in_flight {
        detail::computed_values computed;
        detail::replaced_values replaced;  // by a publication into a mutable type
        values_in_flight() = default;
        values_in_flight(const values_in_flight&) = delete;
        values_in_flight& operator=(const values_in_flight&) = delete;
        ~values_in_flight() {
            for (auto& value : computed) detail::abandon(value.second);
            for (auto& old : replaced) detail::abandon(old.first), detail::abandon(old.second);
        }
        bool reserve(std::size_t n) noexcept {
            try {
                computed.reserve(n);
                replaced.reserve(n);
                return true;
            } catch (const std::bad_alloc&) {
                return false;
            }
        }
        void release_now() {
            for (auto& value : computed) detail::release_now(value.second);
            for (auto& old : replaced) detail::release_now(old.second), detail::release_now(old.first);
        }
    };

    PyTypeObject* get_slow(gil_token gil);  // GILONCE_COLD, at its definition
    std::optional<ready_type> make_ready_type(gil_token gil);
    std::optional<ready_type> create(PyObject* bases);
    std::optional<ready_type> finish_ready_type(py_ref& type);
    py_ref make_bases(gil_token gil);
    PyTypeObject* compute_and_publish(gil_token gil, const ready_type& ready);
    bool publish(const ready_type& ready, values_in_flight& values);
    bool dict_is_as_stage_one_left_it(const ready_type& ready) const;

    PyType_Spec* spec_;
    user_code_slot user_;  // the factories, which may own Python objects
    bool immutable_;
    PyObject* module_;                          // borrowed; null for a type of no module
    detail::stage_one_cell<ready_type> ready_;  // stage 1
    detail::live_computations computing_;       // stage 2's computations in progress
    detail::completion complete_;               // the type, once published
    detail::publication publication_;
};

// ---- the algorithm -----------------------------------------------------------------------

// Stage 1 (in its cell: at most one result kept), then the early exception, then stage 2.
// No C++ exception leaves: a bad_alloc of the bookkeeping becomes a MemoryError.
GILONCE_COLD inline PyTypeObject* lazy_type::get_slow(gil_token gil) {
    return reinterpret_cast<PyTypeObject*>(detail::call_factory([&]() -> PyObject* {
        const ready_type* ready = ready_.get_or_try_init(gil, [&] { return make_ready_type(gil); });
        if (ready == nullptr) return nullptr;
        if (PyTypeObject* type = complete_.get()) return reinterpret_cast<PyObject*>(type);  // published meanwhile
        return reinterpret_cast<PyObject*>(compute_and_publish(gil, *ready));
    }));
}

// Stage 2: compute every attribute with this context recorded as computing, then publish
// them all at once, or give the ready type early to a call from inside the computation.
inline PyTypeObject* lazy_type::compute_and_publish(gil_token gil, const ready_type& ready) {
    detail::context_record record;  // a holder: a forced unwind leaves its entry behind
    const auto entered = record.enter(computing_);
    if (entered == detail::context_record::entry::reentrant) return reinterpret_cast<PyTypeObject*>(ready.type.get());
    if (entered == detail::context_record::entry::failed) return nullptr;
    values_in_flight values;  // a holder too
    if (!values.reserve(user_.code.attributes.size())) {  // all the memory now: nothing throws below
        record.leave();
        PyErr_NoMemory();
        return nullptr;
    }
    for (const class_attribute& attribute : user_.code.attributes) {
        // May release the GIL, and may call `get` (which gets the early type). Held at once.
        values.computed.emplace_back(attribute.name, py_ref::steal(detail::call_factory([&] { return attribute.make(gil); })));
        py_ref& value = values.computed.back().second;
        const bool half_failed = value && PyErr_Occurred();
        if (!value || half_failed) {
            record.leave();
            values.release_now();  // a half-failed factory's value too; finalizers keep the error
            detail::report_factory_failure(spec_->name, attribute.name, half_failed);
            return nullptr;
        }
    }
    record.leave();
    const bool published = publish(ready, values);
    values.release_now();  // the losers' values, or our references to the published ones
    return published ? complete_.get() : nullptr;
}

// Publication (see gilonce/detail/two_stage_sync.hpp): in this thread's turn, nothing if the
// type is complete already; else check the dict, insert every value, mark the type complete.
inline bool lazy_type::publish(const ready_type& ready, values_in_flight& values) {
    detail::publication::turn turn(publication_);  // a holder: a forced unwind gives it up
    if (!turn.begin(spec_->name)) return false;
    auto* type = reinterpret_cast<PyTypeObject*>(ready.type.get());
    const bool published = complete_.get() != nullptr  // another thread's values won
                           || (dict_is_as_stage_one_left_it(ready) && detail::insert_all(type, values.computed, values.replaced));
    if (published) complete_.set(type);  // the same type, if another thread's won
    turn.end(published);                 // always: a turn is ended attached, never by ~turn
    return published;
}

// Stage 1, in its cell. Holders keep the bases and the new type; the normal path releases.
inline std::optional<lazy_type::ready_type> lazy_type::make_ready_type(gil_token gil) {
    if (spec_ == nullptr) {
        PyErr_SetString(PyExc_SystemError, "gilonce::lazy_type: constructed with a null PyType_Spec");
        return std::nullopt;
    }
    if (!detail::attributes_are_sound(spec_->name, user_.code.attributes)) return std::nullopt;
    detail::held<py_ref> bases;
    bases.value = make_bases(gil);
    std::optional<ready_type> ready;
    if (*bases.value || !user_.code.make_bases) ready = create(bases.value->get());
    detail::release_now(*bases.value);  // runs no Python code: a new type holds its bases
    return ready;
}

// The bases factory, its errors named after the type. Empty with no factory.
inline py_ref lazy_type::make_bases(gil_token gil) {
    if (!user_.code.make_bases) return py_ref();
    py_ref bases = py_ref::steal(detail::call_factory([&] { return user_.code.make_bases(gil); }));
    const bool half_failed = bases && PyErr_Occurred();
    if (half_failed) detail::release_now(bases);
    if (!bases) detail::report_factory_failure(spec_->name, nullptr, half_failed);
    return bases;
}

// The type from the spec; for an immutable one, its bases are checked before it exists.
inline std::optional<lazy_type::ready_type> lazy_type::create(PyObject* bases) {
    if (immutable_ && bases != nullptr && !detail::bases_are_immutable(spec_->name, bases)) return std::nullopt;
    PyType_Spec spec = *spec_;  // only the name's characters are kept by the type
    if (immutable_) spec.flags |= detail::immutable_spec_flag;
    detail::held<py_ref> type;
    type.value = py_ref::steal(PyType_FromModuleAndSpec(module_, &spec, bases));  // may run a collection
    std::optional<ready_type> ready;
    if (*type.value) ready = finish_ready_type(*type.value);  // takes the type on success
    detail::release_now(*type.value);  // on failure only: no Python code runs while `ready` holds one
    return ready;
}

// After creation: immutability, the attribute names, the dict's copy. Takes `type` (leaves
// it empty) only when it returns a result.
inline std::optional<lazy_type::ready_type> lazy_type::finish_ready_type(py_ref& type) {
    auto* object = reinterpret_cast<PyTypeObject*>(type.get());
    const bool immutable = immutable_ || (spec_->flags & Py_TPFLAGS_IMMUTABLETYPE) != 0;
    // Again on the type: the spec's own Py_tp_base/Py_tp_bases slots may have given bases.
    if (immutable && !detail::bases_are_immutable(spec_->name, object->tp_bases)) return std::nullopt;
    if (immutable_ && !detail::make_immutable(object)) return std::nullopt;
    for (const class_attribute& attribute : user_.code.attributes) {
        py_ref name = py_ref::steal(PyUnicode_FromString(attribute.name));
        const int defined = name ? PyDict_Contains(object->tp_dict, name.get()) : -1;
        if (defined > 0)
            PyErr_Format(PyExc_SystemError, "gilonce::lazy_type %s: class attribute %s would replace what the spec defines",
                         spec_->name, attribute.name);
        if (defined != 0) return std::nullopt;
    }
    py_ref copy;  // may run a collection: `type` is in the caller's holder meanwhile
    if (PyType_HasFeature(object, Py_TPFLAGS_IMMUTABLETYPE) && !(copy = py_ref::steal(PyDict_Copy(object->tp_dict))))
        return std::nullopt;
    return ready_type{std::move(type), std::move(copy)};
}

// Immutable types only: code that reached the type during stage 2 cannot set an attribute,
// but it can write into the dict itself; such a change is an error, on every call.
inline bool lazy_type::dict_is_as_stage_one_left_it(const ready_type& ready) const {
    if (!ready.stage_one_dict) return true;  // a mutable type: changes are allowed
    PyObject* now = reinterpret_cast<PyTypeObject*>(ready.type.get())->tp_dict;
    const int same = detail::dict_unchanged(now, ready.stage_one_dict.get());
    if (same == 0)
        PyErr_Format(PyExc_RuntimeError,
                     "gilonce::lazy_type %s: its dict was changed while its class attributes were computed "
                     "(not by setattr, which an immutable type refuses, but through the dict itself, as "
                     "gc.get_referents() hands it out, or from C); the type is not published",
                     spec_->name);
    return same > 0;
}

}  // namespace gilonce
