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

#if defined(__GNUC__) || defined(__clang__)
#define GILONCE_COLD __attribute__((noinline, cold))  // slow paths: out of the inlined fast path
// Process-wide state (an inline variable, a thread-local) is private to the extension that
// compiled it, and so is every function that reads it. A hidden variable alone is not
// enough: GCC would emit an exported inline variable as an STB_GNU_UNIQUE symbol, which the
// loader merges across extension modules; and an exported function that reads a hidden one
// is lent, by a module loaded with RTLD_GLOBAL, to modules loaded after it, whose inlined
// copies still read their own: one object read through two copies of the state. So the
// state and every function that reads it are hidden together: a header as a whole
// (GILONCE_PRIVATE_BEGIN/END), or each one (GILONCE_EXTENSION_PRIVATE) where hiding a
// class would force every class holding it to be hidden too.
#define GILONCE_EXTENSION_PRIVATE __attribute__((visibility("hidden")))
#define GILONCE_PRIVATE_BEGIN _Pragma("GCC visibility push(hidden)")
#define GILONCE_PRIVATE_END _Pragma("GCC visibility pop")
#else
#define GILONCE_COLD
#define GILONCE_EXTENSION_PRIVATE
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
