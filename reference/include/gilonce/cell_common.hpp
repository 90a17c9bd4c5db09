// gilonce/cell_common.hpp: what every gilonce cell shares, on every build: the errors a
// cell reports, and the tag a caller gives when it empties a cell. Kept apart from
// gil_once_cell.hpp, which a free-threaded build must not include, so that py_once_lock and
// lazy_type can use them there too.
#pragma once

#include <stdexcept>

namespace gilonce {

/// Thrown (or, from `get_or_try_init`, raised as a Python `RuntimeError`) when an
/// initializer asks for the value of the cell it is initializing: `gil_once_cell` tells by
/// the execution context (thread or greenlet, or a context copied from it while it runs:
/// see init_context.hpp), `py_once_lock` by the thread. Without this check the recursion
/// would never end (a stack overflow) or, for a cell that blocks, never start (a
/// self-deadlock).
class reentrant_init_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Thrown by `get_or_init` and `set` when the value offered is an empty handle (a null
/// `py_ref`, `pybind11::object` or `PyObject*`): a cell never stores "full with nothing".
/// A Python exception set by the initializer (the usual reason for an empty handle) is
/// left set.
class empty_value_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Tag for a cell's `take` and `clear`: the caller states that no reference or pointer obtained
/// from the cell is still in use, because `take` invalidates every one of them.
struct invalidates_references_t {
    explicit constexpr invalidates_references_t() = default;
};
/// The value of the tag: `cell.take(gil, gilonce::invalidates_references)`.
inline constexpr invalidates_references_t invalidates_references{};

}  // namespace gilonce
