// harness/python_bindings.hpp: expose a step's scenarios to Python (pytest), with outcomes
// as plain dicts, so the Python side checks the same verdicts as the C++ side.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <vector>

#include "harness/scenario.hpp"

namespace harness {

inline pybind11::dict outcome_to_dict(const outcome& out) {
    pybind11::list events;
    for (const auto& e : out.events) {
        pybind11::dict d;
        d["t_ms"] = e.t_ns / 1e6;
        d["thread"] = e.thread;
        d["kind"] = to_string(e.kind);
        d["resource"] = e.resource;
        d["text"] = e.text;
        events.append(d);
    }
    pybind11::dict d;
    d["verdict"] = to_string(out.observed);
    d["seconds"] = out.seconds;
    d["signal"] = out.signal;
    d["detail"] = out.detail;
    d["summary"] = out.summary();
    d["events"] = events;
    return d;
}

/// Adds `scenarios()` (a list of dicts: name, demonstrates, predicted) and
/// `play(name)` (runs one in a watchdog child; returns its outcome as a dict; an unknown
/// name raises KeyError) to module `m`. `list` must outlive the module.
inline void bind_scenarios(pybind11::module_& m, const std::vector<scenario>& list) {
    m.def("scenarios", [&list] {
        pybind11::list out;
        for (const auto& s : list) {
            pybind11::dict d;
            d["step"] = s.step;
            d["name"] = s.name;
            d["demonstrates"] = s.demonstrates;
            d["predicted"] = to_string(s.predicted);
            out.append(d);
        }
        return out;
    }, "The step's scenarios: name, what each demonstrates, the predicted verdict");
    m.def("play", [&list](const std::string& name) {
        for (const auto& s : list) {
            if (s.name != name) continue;
            outcome out;
            {
                pybind11::gil_scoped_release no_gil;  // the watchdog waits without the GIL
                out = play(s);
            }
            return outcome_to_dict(out);
        }
        throw pybind11::key_error("no scenario named '" + name + "' in this step");
    }, pybind11::arg("name"), "Run one scenario in a watchdog child; its outcome as a dict");
}

}  // namespace harness
