// gilonce/detail/build.hpp: the build switches and compiler attributes every header shares
// (no Python here: the core of py_once_lock is checked without libpython).
#pragma once

// GILONCE_CHECKS=1 turns on the two misuse checks that would cost something on a fast path
// (`gil_token::assume_held` without the GIL; a census read from an interpreter that did not
// join). Off by default. Not tied to NDEBUG, which setuptools and CMake's Release define,
// so checks tied to it would be off exactly where extensions are built. Define it alike in
// every translation unit of an extension: the checked functions are inline.
#ifndef GILONCE_CHECKS
#define GILONCE_CHECKS 0
#endif

// GILONCE_FREE_THREADED_PROTOCOL=1 makes `lazy_type` order its stages as on a free-threaded
// build (a py_once_lock for stage 1, a claim for publication: detail/two_stage_sync.hpp) on a
// GIL build too, so that the protocol can run with real threads where no free-threaded
// interpreter exists; gilonce's own tests do. Sound either way, but `get` may then block, as
// on a free-threaded build (waiting detached for another thread's stage 1 or publication).
// Free-threaded builds always use it. Define it alike in every translation unit that uses
// `lazy_type`.

#if defined(__GNUC__) || defined(__clang__)
#define GILONCE_COLD __attribute__((noinline, cold))  // slow paths: out of the inlined fast path
// Two extensions built from these headers may be loaded into one process, built the default
// way (no -fvisibility=hidden), one of them perhaps with RTLD_GLOBAL, which lends its
// exported inline functions to modules loaded after it: calls of one object may then run
// some in one module's copy of a function and some in the other's. So the cells keep no
// state of their own outside the cell (py_once_lock's owner is the thread's id; the
// re-entrancy record is in the interpreter's dict, its entries compared by identity), and the
// one header with process-wide state, per_interpreter.hpp, is hidden as a whole, its state
// and every function that reads it together (an exported inline variable would also be an
// STB_GNU_UNIQUE symbol, which the loader merges across modules).
#define GILONCE_PRIVATE_BEGIN _Pragma("GCC visibility push(hidden)")
#define GILONCE_PRIVATE_END _Pragma("GCC visibility pop")
#else
#define GILONCE_COLD
#define GILONCE_PRIVATE_BEGIN
#define GILONCE_PRIVATE_END
#endif

// UBSan reports "reference binding to null pointer" for `catch (abi::__forced_unwind&)`: a
// forced unwind carries no exception object. The binding is never used, so the functions
// with such a handler are not instrumented for it.
#if defined(__GLIBCXX__) && (defined(__GNUC__) || defined(__clang__))
#define GILONCE_FORCED_UNWIND_HANDLER __attribute__((no_sanitize("null")))
#else
#define GILONCE_FORCED_UNWIND_HANDLER
#endif

namespace gilonce::detail {
inline constexpr bool checks_enabled = GILONCE_CHECKS != 0;
}  // namespace gilonce::detail
