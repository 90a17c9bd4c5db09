// gilonce/compiler.hpp: the compiler-level tools the other headers share.
//
// GILONCE_COLD keeps slow paths out of line, so the inlined fast paths stay a load and a
// branch. `call_user_code` runs user code (an initializer, a factory) so that a thread torn
// down by `pthread_exit` while inside it (CPython 3.11-3.13 does this to a daemon thread
// that wants the GIL back during Py_Finalize) unwinds without a single Python C-API call.
#pragma once

#include <utility>

// GILONCE_CHECKS: the misuse checks that would cost something on a fast path, namely
// `gil_token::assume_held`'s "does this thread hold the GIL?" and per_interpreter_cell's
// "did this interpreter join the census?". Off unless the build defines GILONCE_CHECKS=1.
// NDEBUG plays no part: setuptools (from Python's own CFLAGS) and CMake's Release both
// define it, so a check tied to it would be off exactly where extensions are built. Checks
// on slow paths, which run once per value, are on in every build.
#ifndef GILONCE_CHECKS
#define GILONCE_CHECKS 0
#endif

#if defined(__GLIBCXX__)
#include <cxxabi.h>  // abi::__forced_unwind
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GILONCE_COLD __attribute__((noinline, cold))
#elif defined(_MSC_VER)
#define GILONCE_COLD __declspec(noinline)
#else
#define GILONCE_COLD
#endif

// GILONCE_EXTENSION_PRIVATE marks each variable holding process-wide state (and each inline
// function whose local static does), so that every extension module keeps its own: one copy
// per extension, shared by its translation units, never by two extensions. Built with default
// visibility (what setuptools does), GCC emits inline variables and the statics of inline
// functions as STB_GNU_UNIQUE symbols, which the dynamic loader merges across modules loaded
// with RTLD_LOCAL: two extensions would share one census. Only the variables are marked; a
// hidden namespace would make GCC warn (-Wattributes) about an author's default-visibility
// type that has a gilonce member.
#if defined(__GNUC__) || defined(__clang__)
#define GILONCE_EXTENSION_PRIVATE __attribute__((visibility("hidden")))
#else
#define GILONCE_EXTENSION_PRIVATE
#endif

// UBSan reports "reference binding to null pointer" for `catch (abi::__forced_unwind&)`:
// a forced unwind carries no exception object. The binding is never used; the report is a
// false positive, so the functions with such a handler are not instrumented for it.
#if defined(__GLIBCXX__) && (defined(__GNUC__) || defined(__clang__))
#define GILONCE_FORCED_UNWIND_HANDLER __attribute__((no_sanitize("null")))
#else
#define GILONCE_FORCED_UNWIND_HANDLER
#endif

namespace gilonce {
namespace detail {

/// Calls `code()` and returns what it returns. If the calling thread is being torn down by
/// `pthread_exit` inside `code` (glibc unwinds it with `abi::__forced_unwind`), calls
/// `abandon()` and lets the unwind go on. `abandon` must not call the Python C API: the
/// thread does not hold the GIL and the interpreter may be gone. It exists so that the
/// caller can give up (leak) the Python objects it owns instead of decref'ing them.
///
/// Why not `catch (...)`: swallowing the forced unwind aborts the process ("FATAL: exception
/// not rethrown"), and any error handling after it would call the C API without the GIL.
template <class Code, class Abandon>
GILONCE_FORCED_UNWIND_HANDLER decltype(auto) call_user_code(Code&& code, Abandon&& abandon) {
#if defined(__GLIBCXX__)
    try {
        return std::forward<Code>(code)();
    } catch (abi::__forced_unwind&) {
        std::forward<Abandon>(abandon)();
        throw;  // a forced unwind must always be rethrown
    }
#else
    (void)abandon;  // other C++ runtimes do not unwind C++ frames in pthread_exit
    return std::forward<Code>(code)();
#endif
}

/// Calls `code()`; if it throws an ordinary C++ exception, calls `cleanup()` in the handler
/// (not during unwinding: a forced unwind that starts inside `cleanup` may then pass) and
/// rethrows. A forced unwind from `code` is let through untouched: no cleanup, since the
/// thread no longer holds the GIL.
template <class Code, class Cleanup>
GILONCE_FORCED_UNWIND_HANDLER decltype(auto) call_cleaning_up_on_exception(Code&& code, Cleanup&& cleanup) {
    try {
        return std::forward<Code>(code)();
#if defined(__GLIBCXX__)
    } catch (abi::__forced_unwind&) {
        throw;
#endif
    } catch (...) {
        std::forward<Cleanup>(cleanup)();
        throw;
    }
}

}  // namespace detail
}  // namespace gilonce
