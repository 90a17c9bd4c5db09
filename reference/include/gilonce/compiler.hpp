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
// on slow paths, which run once per value, are on in every build. Define it alike for every
// translation unit of an extension (a compile definition of the target, as NDEBUG is): the
// checked functions are inline, and a mix is an ODR violation whose outcome the linker picks.
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

// Process-wide state must be private to the extension module that compiled it: one copy
// per extension, shared by its translation units, never by two extensions built from these
// headers. Two mechanisms of the dynamic loader would share it otherwise, even between
// modules loaded with RTLD_LOCAL, when an extension is built with default visibility (what
// setuptools does):
// - GCC emits inline variables, and the statics of inline functions, as STB_GNU_UNIQUE
//   symbols, which the loader merges across modules;
// - a module loaded with RTLD_GLOBAL (sys.setdlopenflags, ctypes) lends its exported
//   functions to every module loaded after it: their calls to a same-named inline function
//   bind to its copy, and with it to its state.
// GILONCE_EXTENSION_PRIVATE hides one variable (or the inline function whose local static it
// is). GILONCE_PRIVATE_BEGIN / GILONCE_PRIVATE_END hide every declaration between them,
// types and functions too; they surround what reads such state and is never a member of an
// author's type (per_interpreter.hpp: its cells are statics). Not the whole library: a
// hidden type as a member of an author's default-visibility struct makes GCC warn
// (-Wattributes). The rest, shared or not, keeps no state of its own across extensions.
#if defined(__GNUC__) || defined(__clang__)
#define GILONCE_EXTENSION_PRIVATE __attribute__((visibility("hidden")))
#define GILONCE_PRIVATE_BEGIN _Pragma("GCC visibility push(hidden)")
#define GILONCE_PRIVATE_END _Pragma("GCC visibility pop")
#else
#define GILONCE_EXTENSION_PRIVATE
#define GILONCE_PRIVATE_BEGIN
#define GILONCE_PRIVATE_END
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
