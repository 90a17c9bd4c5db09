// Step 02: fix the unsound lazy type with a lock? Three ways to make every caller wait
// until one build has finished, and how each one fails once the build releases the GIL
// or asks for the type again. Each returns a borrowed reference to the one type object.
//
// Lock order is the whole story. The GIL is a lock; these add a second one (the "once-lock").
// (i) and (ii) take the once-lock while holding the GIL, and the build releases and
// re-takes the GIL while holding the once-lock: two orders, hence a deadlock.
// (iii) always drops the GIL before taking the once-lock: one order, no deadlock between
// threads, but a recursive call still waits for itself.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_token.hpp>

namespace step02 {

/// The trace's name for each variant's once-lock.
inline constexpr const char* static_guard = "static guard";
inline constexpr const char* once_flag_lock = "once_flag";
inline constexpr const char* pybind11_once_flag = "pybind11 once_flag";

/// (i) BAD: a function-local `static`. Requires: the GIL is held.
/// Deadlocks if the build releases the GIL while another thread waits for the type;
/// hangs if the build asks for the type (GCC: the guard's futex waits for itself).
PyObject* get_type_with_static(gilonce::gil_token gil);

/// (ii) BAD: std::call_once. Requires: the GIL is held. Fails the same two ways.
PyObject* get_type_with_call_once(gilonce::gil_token gil);

/// (iii) pybind11's gil_safe_call_once_and_store: releases the GIL, takes the once-lock,
/// re-takes the GIL inside. Requires: the GIL is held. No deadlock between threads; a
/// recursive call still waits for itself; every slow-path call gives up the GIL.
PyObject* get_type_release_then_lock(gilonce::gil_token gil);

/// Whether a call recorded `waits for <once-lock>` in the trace before blocking. The
/// recursion scenarios turn it off: there the question is what the primitive itself does
/// (block, abort or throw), and the trace must not answer it in advance.
extern bool trace_once_lock_waits;

}  // namespace step02
