// gilonce/compiler.hpp: the two compiler-level tools the other headers share.
//
// GILONCE_COLD keeps slow paths out of line, so the inlined fast paths stay a load and a
// branch. `call_user_code` runs user code (an initializer, a factory) so that a thread torn
// down by `pthread_exit` while inside it (CPython 3.11-3.13 does this to a daemon thread
// that wants the GIL back during Py_Finalize) unwinds without a single Python C-API call.
#pragma once

#include <utility>

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
decltype(auto) call_user_code(Code&& code, Abandon&& abandon) {
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

}  // namespace detail
}  // namespace gilonce
