// Step 02: the three locked lazy types (see locked_lazy_types.hpp). The `harness::record`
// lines write the trace that the main job narrates and the watchdog reads; they do not
// change what the code does.
#include "locked_lazy_types.hpp"

#include <pybind11/gil_safe_call_once.h>
#include <pybind11/pybind11.h>

#include <mutex>

#include "color_type.hpp"
#include "pybind11_interposer.hpp"
#include "harness/gil.hpp"
#include "harness/trace.hpp"

namespace step02 {

bool trace_once_lock_waits = true;

namespace {
using harness::event_kind;
void waits_for(const char* lock) {
    if (trace_once_lock_waits) harness::record(event_kind::waits, lock);
}
}  // namespace

// --8<-- [start:static]
PyObject* get_type_with_static(gilonce::gil_token gil) {
    waits_for(static_guard);
    // BAD: the guard is held for the whole build, and the build may release the GIL.
    static PyObject* const type = [&] {
        harness::record(event_kind::holds, static_guard);
        PyObject* built = build_color_type(gil);
        harness::record(event_kind::releases, static_guard);
        return built;
    }();
    harness::record(event_kind::passes, static_guard);
    return type;
}
// --8<-- [end:static]

// --8<-- [start:call_once]
std::once_flag color_once;
PyObject* color_type_by_call_once = nullptr;

PyObject* get_type_with_call_once(gilonce::gil_token gil) {
    waits_for(once_flag_lock);
    // BAD: the same lock order problem, spelled with std::call_once.
    std::call_once(color_once, [&] {
        harness::record(event_kind::holds, once_flag_lock);
        color_type_by_call_once = build_color_type(gil);
        harness::record(event_kind::releases, once_flag_lock);
    });
    harness::record(event_kind::passes, once_flag_lock);
    return color_type_by_call_once;
}
// --8<-- [end:call_once]

// --8<-- [start:release_then_lock]
PyObject* get_type_release_then_lock(gilonce::gil_token) {
    PYBIND11_CONSTINIT static pybind11::gil_safe_call_once_and_store<pybind11::object> storage;
    pybind11_internals_traced trace_what_pybind11_does;  // see pybind11_interposer.hpp
    pybind11::object& type = storage
        .call_once_and_store_result([] {
            pybind11_internals_untraced the_build_traces_itself;
            return pybind11::reinterpret_steal<pybind11::object>(
                build_color_type(gilonce::gil_token::assume_held()));
        })
        .get_stored();
    return type.ptr();
}
// --8<-- [end:release_then_lock]

}  // namespace step02
