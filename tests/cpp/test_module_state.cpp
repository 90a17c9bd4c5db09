// gil_once_cell and lazy_type as members of module state (PEP 489 multi-phase init, PEP 630
// isolation): each module object, so each interpreter, gets its own cell and its own
// two-stage type, guarded by that interpreter's GIL; m_traverse / m_clear / m_free release
// everything, also when module and type keep each other alive (the type holds its module).
// Each case runs in a forked child (it makes sub-interpreters or finalizes), and each
// verdict is what the child observed: object identities and live-instance counts.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <gilonce/lazy_type.hpp>

#include <cstdio>
#include <new>
#include <string>

#include "harness/watchdog.hpp"

using harness::scenario_result;

namespace {

// ---- the instances: a GC type, so that a type whose class attribute is its own instance
// (type -> dict -> RED -> type) can be collected at all -----------------------------------

long live_colors = 0;  // instances alive, in this process (each case is a fresh child)
long freed_states = 0;  // module states whose m_free ran

int color_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));  // a heap type's instance owns a reference to its type
    return 0;
}

PyObject* color_new(PyTypeObject* type, PyObject*, PyObject*) {
    PyObject* self = type->tp_alloc(type, 0);
    if (self != nullptr) ++live_colors;
    return self;
}

void color_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    type->tp_free(self);
    Py_DECREF(type);
    --live_colors;
}

PyType_Slot color_slots[] = {{Py_tp_new, reinterpret_cast<void*>(color_new)},
                             {Py_tp_dealloc, reinterpret_cast<void*>(color_dealloc)},
                             {Py_tp_traverse, reinterpret_cast<void*>(color_traverse)},
                             {0, nullptr}};
PyType_Spec color_spec = {"state_probe.Color", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                          color_slots};

// ---- module state -----------------------------------------------------------------------

struct probe_state {
    bool constructed;  // false until exec ran: the state memory starts zeroed
    gilonce::gil_once_cell<gilonce::py_ref> cached;
    gilonce::lazy_type color;
};

extern PyModuleDef probe_def;

probe_state* state_of(PyObject* module) {
    auto* state = static_cast<probe_state*>(PyModule_GetState(module));
    return state != nullptr && state->constructed ? state : nullptr;
}

PyObject* make_red(probe_state* state, gilonce::gil_token gil) {
    PyTypeObject* type = state->color.get(gil);  // the ready type, in this computation
    return type != nullptr ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(type)) : nullptr;
}

int probe_exec(PyObject* module) {
    auto* state = static_cast<probe_state*>(PyModule_GetState(module));
    ::new (&state->cached) gilonce::gil_once_cell<gilonce::py_ref>("state_probe.cached");
    ::new (&state->color) gilonce::lazy_type(
        &color_spec, {{"RED", [state](gilonce::gil_token gil) { return make_red(state, gil); }}}, {}, true, module);
    state->constructed = true;
    return 0;
}

int probe_traverse(PyObject* module, visitproc visit, void* arg) {
    probe_state* state = state_of(module);
    if (state == nullptr) return 0;
    if (int r = state->cached.traverse(visit, arg)) return r;
    return state->color.traverse(visit, arg);
}

int probe_clear(PyObject* module) {
    if (probe_state* state = state_of(module)) {
        const auto gil = gilonce::gil_token::assume_held();
        state->cached.clear(gil, gilonce::invalidates_references);
        state->color.clear(gil, gilonce::invalidates_references);
    }
    return 0;
}

void probe_free(void* module) {
    probe_clear(static_cast<PyObject*>(module));
    if (probe_state* state = state_of(static_cast<PyObject*>(module))) {
        state->color.~lazy_type();
        state->cached.~gil_once_cell();
        state->constructed = false;
        ++freed_states;
    }
}

PyModuleDef_Slot probe_slots[] = {{Py_mod_exec, reinterpret_cast<void*>(probe_exec)}, {0, nullptr}};
PyModuleDef probe_def = {PyModuleDef_HEAD_INIT, "state_probe", nullptr, sizeof(probe_state), nullptr,
                         probe_slots, probe_traverse, probe_clear, probe_free};

// Requires: the GIL is held. A new module object from probe_def, executed (as an import of
// a multi-phase module would make it in the current interpreter); null with an exception.
PyObject* new_probe_module() {
    PyObject* machinery = PyImport_ImportModule("importlib.machinery");
    PyObject* spec = machinery ? PyObject_CallMethod(machinery, "ModuleSpec", "sO", "state_probe", Py_None) : nullptr;
    Py_XDECREF(machinery);
    PyObject* module = spec ? PyModule_FromDefAndSpec(&probe_def, spec) : nullptr;
    Py_XDECREF(spec);
    if (module != nullptr && PyModule_ExecDef(module, &probe_def) != 0) Py_CLEAR(module);
    return module;
}

// The module's Color (borrowed), checked to be complete: RED is an instance of it.
PyTypeObject* color_of(PyObject* module, std::string& problem) {
    PyTypeObject* type = state_of(module)->color.get(gilonce::gil_token::assume_held());
    if (type == nullptr) {
        problem = "Color could not be built";
        return nullptr;
    }
    PyObject* red = PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "RED");
    if (red == nullptr || Py_TYPE(red) != type) problem = "Color.RED is missing or not a Color of this module";
    if (PyType_GetModuleByDef(type, &probe_def) != module) problem = "PyType_GetModuleByDef does not find this module";
    Py_XDECREF(red);
    PyErr_Clear();
    return problem.empty() ? type : nullptr;
}

}  // namespace

TEST_CASE("module state: each interpreter's module builds its own Color, and ending the interpreter frees it") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        std::string problem;
        PyObject* main_module = new_probe_module();
        PyTypeObject* main_color = main_module ? color_of(main_module, problem) : nullptr;
        if (main_color == nullptr) return scenario_result::fail("main interpreter: " + problem);
        const long main_colors = live_colors;
        PyThreadState* main_state = PyThreadState_Get();

        PyThreadState* sub = Py_NewInterpreter();
        if (sub == nullptr) return scenario_result::fail("Py_NewInterpreter failed");
        PyObject* sub_module = new_probe_module();
        PyTypeObject* sub_color = sub_module ? color_of(sub_module, problem) : nullptr;
        if (sub_color == nullptr) return scenario_result::fail("sub-interpreter: " + problem);
        const bool distinct = sub_color != main_color;
        const long both_colors = live_colors;
        Py_DECREF(sub_module);
        Py_EndInterpreter(sub);  // its modules, types and instances go with it
        PyThreadState_Swap(main_state);

        const bool main_intact = color_of(main_module, problem) == main_color;
        std::fprintf(stderr, "distinct types: %d; live Colors: main %ld, with the sub-interpreter's %ld, after it ended %ld; "
                     "states freed: %ld; main's Color intact: %d\n",
                     distinct, main_colors, both_colors, live_colors, freed_states, main_intact);
        if (!distinct) return scenario_result::fail("the sub-interpreter got the main interpreter's Color");
        if (both_colors != main_colors + 1) return scenario_result::fail("the sub-interpreter's Color.RED was not made");
        if (live_colors != main_colors || freed_states != 1)
            return scenario_result::fail("ending the sub-interpreter did not free its module state and Color");
        if (!main_intact) return scenario_result::fail("main interpreter: " + problem);
        return scenario_result::pass("own Color per interpreter; the sub-interpreter's freed with it");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail == "own Color per interpreter; the sub-interpreter's freed with it");
}

TEST_CASE("module state: m_traverse and m_clear let the collector free a module and its Color (a reference cycle)") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        std::string problem;
        PyObject* module = new_probe_module();
        PyTypeObject* color = module ? color_of(module, problem) : nullptr;
        if (color == nullptr) return scenario_result::fail(problem);
        PyObject* cached = state_of(module)->cached
                               .get_or_init(gilonce::gil_token::assume_held(),
                                            [] { return gilonce::py_ref::steal(PyList_New(0)); })
                               .get();
        // The collector must see what the state owns: gc.get_referents(module) lists it.
        PyObject* gc = PyImport_ImportModule("gc");
        PyObject* referents = gc ? PyObject_CallMethod(gc, "get_referents", "O", module) : nullptr;
        const bool type_seen = referents && PySequence_Contains(referents, reinterpret_cast<PyObject*>(color)) == 1;
        const bool cached_seen = referents && PySequence_Contains(referents, cached) == 1;
        Py_XDECREF(referents);
        // module -> state -> Color -> module (the type holds its module): only the collector frees it.
        Py_DECREF(module);
        const long before = live_colors;
        PyObject* collected = gc ? PyObject_CallMethod(gc, "collect", nullptr) : nullptr;
        Py_XDECREF(collected);
        Py_XDECREF(gc);
        std::fprintf(stderr, "referents: Color %d, cached %d; live Colors %ld -> %ld; states freed %ld\n", type_seen,
                     cached_seen, before, live_colors, freed_states);
        if (!type_seen || !cached_seen) return scenario_result::fail("m_traverse does not visit what the state owns");
        if (live_colors != 0 || freed_states != 1) return scenario_result::fail("the cycle was not collected");
        return scenario_result::pass("visited and collected");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail == "visited and collected");
}

TEST_CASE("module state: after Py_Finalize and Py_Initialize the new module builds a new Color") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        std::string problem;
        PyObject* first = new_probe_module();
        PyTypeObject* first_color = first ? color_of(first, problem) : nullptr;
        if (first_color == nullptr) return scenario_result::fail("first interpreter: " + problem);
        Py_DECREF(first);  // what is left is freed by Py_Finalize
        if (Py_FinalizeEx() != 0) return scenario_result::fail("Py_FinalizeEx failed");
        const long after_finalize = live_colors;
        const long freed = freed_states;
        Py_Initialize();
        PyObject* second = new_probe_module();
        PyTypeObject* second_color = second ? color_of(second, problem) : nullptr;
        std::fprintf(stderr, "after Py_Finalize: live Colors %ld, states freed %ld; second Color built: %d\n",
                     after_finalize, freed, second_color != nullptr);
        if (freed != 1 || after_finalize != 0) return scenario_result::fail("Py_Finalize did not free the module state");
        if (second_color == nullptr) return scenario_result::fail("re-initialized interpreter: " + problem);
        return scenario_result::pass("freed at finalization, rebuilt after re-initialization");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail == "freed at finalization, rebuilt after re-initialization");
}
