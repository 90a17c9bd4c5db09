// bench/pybind11_storage.hpp: ends one fresh pybind11 `gil_safe_call_once_and_store` and its
// value, for the first-use loops of bench_first_use.cpp and instruction_counts.cpp, which
// build a fresh storage in place each iteration and must leave the next one empty.
#pragma once

#include <pybind11/gil_safe_call_once.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

// Ends one fresh pybind11 storage's life, with its value. pybind11 never destroys the value
// itself (a static lives forever), so the loop does; but with subinterpreter support
// (pybind11 3 on CPython 3.12+) the value lives in the interpreter's state dict, keyed by
// the storage's address, and only removing that entry destroys it and lets the next
// storage built at the same address start empty (otherwise it finds the old entry: no
// first use, and the loop would destroy the same value again).
inline void end_pybind11_storage(pybind11::gil_safe_call_once_and_store<pybind11::object>& once,
                                 pybind11::object& stored) {
#ifdef PYBIND11_CALL_ONCE_STORAGE_KEY_PREFIX
    const std::string key =
        PYBIND11_CALL_ONCE_STORAGE_KEY_PREFIX + std::to_string(reinterpret_cast<std::uintptr_t>(&once));
    if (PyDict_DelItemString(PyInterpreterState_GetDict(PyInterpreterState_Get()), key.c_str()) < 0)
        PyErr_Clear();
    (void)stored;
#else
    std::destroy_at(&stored);
#endif
    std::destroy_at(&once);
}
