// gilonce/detail/two_stage_sync.hpp: what orders `lazy_type`'s two stages between threads:
// the GIL on a GIL build; on a free-threaded build (Py_GIL_DISABLED), or a GIL build with
// GILONCE_FREE_THREADED_PROTOCOL=1 (build.hpp), a `py_once_lock` for stage 1, acquire/release
// for the completion mark, and a claim for publication.
//
// Invariant of publication: at most one thread at a time runs from "not complete yet?" to
// the completion mark, and no Python code runs in between. With a GIL, the GIL is that
// claim (the publisher holds it throughout). Without one, it is a claim in a `once_core`,
// whose waiters wait detached; a failed publication resets it and the next waiter
// publishes its own values. (A critical section would not do: CPython suspends it when its
// holder blocks, on the interned-strings lock or inside PyType_Modified, letting a second
// publisher in halfway.) Assumed, as of every C extension: dict and type watchers (3.12+),
// which PyDict_SetItem and PyType_Modified call, do not release the GIL. Without a GIL,
// the check of an immutable type's dict finds changes made before the publication, not a
// write another thread makes into the dict itself while the values are inserted.
#pragma once

#include <atomic>

#include "type_building.hpp"

#if defined(Py_GIL_DISABLED) || (defined(GILONCE_FREE_THREADED_PROTOCOL) && GILONCE_FREE_THREADED_PROTOCOL)
#define GILONCE_DETAIL_NO_GIL_PROTOCOL 1
#else
#define GILONCE_DETAIL_NO_GIL_PROTOCOL 0
#endif

#if GILONCE_DETAIL_NO_GIL_PROTOCOL
#include "../py_once_lock.hpp"
#else
#include "../gil_once_cell.hpp"
#endif

namespace gilonce::detail {

#if GILONCE_DETAIL_NO_GIL_PROTOCOL

template <class T>
using stage_one_cell = py_once_lock<T>;  // exactly once: no GIL to let a loser build its own

/// The completed type: release-stored once published, acquire-loaded by every reader.
class completion {
public:
    PyTypeObject* get() const noexcept { return type_.load(std::memory_order_acquire); }
    void set(PyTypeObject* type) noexcept { type_.store(type, std::memory_order_release); }

private:
    std::atomic<PyTypeObject*> type_{nullptr};
};

/// The publication claim (see the top).
class publication {
public:
    /// One thread's turn to publish. A holder (attempt.hpp): a claim still held when it is
    /// destroyed (a forced unwind) is given up without a C-API call.
    class turn {
    public:
        explicit turn(publication& of) noexcept : core_(of.core_) {}
        turn(const turn&) = delete;
        turn& operator=(const turn&) = delete;
        ~turn() { core_.abandon(); }
        /// Waits, detached, for this thread's turn (or for a finished publication). Returns
        /// false, with a RuntimeError set, during Py_Finalize, when the publisher of the
        /// moment may never come back.
        bool begin(const char* type) {
            const auto found = core_.wait_or_claim(hooks_);
            claimed_ = found == once_core::outcome::claimed;
            if (found != once_core::outcome::refused) return true;
            PyErr_Format(PyExc_RuntimeError, "gilonce::lazy_type %s: another thread is publishing its class attributes "
                         "while the interpreter is finalizing; that thread is ended or parked when it next wants the "
                         "interpreter, so waiting might never end", type);
            return false;
        }
        /// Ends the turn: `published` for good, or failed (the next waiter publishes).
        void end(bool published) {
            if (!std::exchange(claimed_, false)) return;
            if (published) core_.publish(hooks_, []() noexcept {});
            else core_.reset(hooks_);
        }

    private:
        once_core& core_;
        python_attachment hooks_;
        bool claimed_ = false;
    };
    /// For `lazy_type::clear`: the next type is published anew.
    void clear() {
        python_attachment hooks;
        core_.empty_if_full(hooks, []() noexcept {});
    }

private:
    once_core core_;
};

/// `dict_matches`, under the dict's own critical section: another thread may write it
/// meanwhile (reading `__annotations__` stores a key). Nothing inside blocks, so the section
/// is not suspended.
inline int dict_unchanged(PyObject* now, PyObject* before) {
#if defined(Py_BEGIN_CRITICAL_SECTION)  // 3.13+; before, only a GIL build gets here
    int same = 0;
    Py_BEGIN_CRITICAL_SECTION(now);
    same = dict_matches(now, before);
    Py_END_CRITICAL_SECTION();
    return same;
#else
    return dict_matches(now, before);
#endif
}

#else  // a GIL build

template <class T>
using stage_one_cell = gil_once_cell<T>;  // a racing thread builds a type of its own, dropped

/// The completed type, GIL-guarded.
class completion {
public:
    PyTypeObject* get() const noexcept { return type_; }
    void set(PyTypeObject* type) noexcept { type_ = type; }

private:
    PyTypeObject* type_ = nullptr;
};

/// The publication claim is the GIL itself (see the top): every turn is this thread's.
class publication {
public:
    class turn {
    public:
        explicit turn(publication&) noexcept {}
        bool begin(const char*) noexcept { return true; }
        void end(bool) noexcept {}
    };
    void clear() noexcept {}
};

inline int dict_unchanged(PyObject* now, PyObject* before) { return dict_matches(now, before); }

#endif

}  // namespace gilonce::detail
