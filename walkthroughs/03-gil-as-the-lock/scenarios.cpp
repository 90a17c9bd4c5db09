// Step 03's scenarios (see scenarios.hpp), each in a fresh watchdog child.
#include "scenarios.hpp"

#include <string>

#include "gil_lazy_type.hpp"
#include "minimal_gil_once_cell.hpp"
#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/refcount.hpp"
#include "harness/threads.hpp"

namespace step03 {
namespace {

constexpr const char* step = "03-gil-as-the-lock";

std::string fetch_error_text() {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    std::string text = type ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "no error";
    if (PyObject* s = value ? PyObject_Str(value) : nullptr) {
        text += std::string(": ") + PyUnicode_AsUTF8(s);
        Py_DECREF(s);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return text;
}

// The small form's race: A's initializer releases the GIL, B fills the cell meanwhile.
minimal_gil_once_cell minimal_cell;
harness::event a_in_init("A released the GIL in its initializer");
harness::event b_stored("B stored its object");
PyObject* made_by[2] = {nullptr, nullptr};  // A's and B's objects: the scenario keeps a reference

// A new list naming the thread that made it (["A"]), plus one reference kept in made_by.
PyObject* make_list(int who) {
    harness::note("the cell is empty: runs its initializer, makes a list");
    made_by[who] = Py_BuildValue("[s]", harness::thread_name());
    Py_XINCREF(made_by[who]);
    return made_by[who];
}

// --8<-- [start:two_threads]
harness::event a_released("A released the GIL in a factory");
harness::event b_done("B got the type");
int builds = 0;

gil_lazy_type slow_color("step03.Color", {
    {"DEFAULT_NAME", [](gilonce::gil_token) -> PyObject* {
         ++builds;
         if (std::string(harness::thread_name()) == "A") {
             harness::without_gil([] {  // as an import or any Python code may
                 a_released.set();
                 b_done.wait();
             });
         }
         return PyUnicode_FromString("red");
     }},
    {"BUILT_BY", [](gilonce::gil_token) { return PyUnicode_FromString(harness::thread_name()); }},
});
// --8<-- [end:two_threads]

// --8<-- [start:recursion]
bool factory_recurses = true;

gil_lazy_type recursive_color("step03.Color", {
    {"RED", [](gilonce::gil_token gil) -> PyObject* {
         if (!factory_recurses) Py_RETURN_NONE;
         // Color.RED = Color(...) needs the type: ask for it while it is being built.
         PyTypeObject* type = recursive_color.get(gil);
         if (type == nullptr) return nullptr;  // the RuntimeError propagates
         Py_INCREF(type);
         return reinterpret_cast<PyObject*>(type);
     }},
});
// --8<-- [end:recursion]

}  // namespace

harness::scenario_result two_threads_share_one_type() {
    PyTypeObject* seen_by_a = nullptr;
    PyTypeObject* seen_by_b = nullptr;
    harness::run_threads({
        {"A", [&](gilonce::gil_token gil) {
             seen_by_a = slow_color.get(gil);
             // The key moment, seen from A: the type it got is not the one it built.
             auto built_by = gilonce::py_ref::steal(
                 PyObject_GetAttrString(reinterpret_cast<PyObject*>(seen_by_a), "BUILT_BY"));
             if (built_by && PyUnicode_CompareWithASCIIString(built_by.get(), "A") != 0)
                 harness::note("cell already full (B's type): the type A built is released");
         }},
        {"B", [&](gilonce::gil_token gil) {
             harness::without_gil([] { a_released.wait(); });
             seen_by_b = slow_color.get(gil);
             b_done.set();
         }},
    });
    harness::traced_gil gil;
    if (seen_by_a == nullptr || seen_by_a != seen_by_b)
        return harness::scenario_result::fail("A and B got different type objects");
    // The losing type object was released: after a collection (a type refers to itself
    // through __mro__, so only the cyclic GC frees it) one step03.Color type is left.
    const long alive = harness::live_types_named(gil.token(), "step03.Color");
    if (alive != 1)
        return harness::scenario_result::fail(std::to_string(alive) + " step03.Color type objects alive");
    auto built_by = gilonce::py_ref::steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(seen_by_a), "BUILT_BY"));
    const std::string winner = built_by ? PyUnicode_AsUTF8(built_by.get()) : "?";
    return harness::scenario_result::pass("both threads got the same type object, built " +
                                          std::to_string(builds) + " times; kept: the one " +
                                          winner + " built; the other was released");
}

harness::scenario_result minimal_cell_keeps_the_first_stored() {
    PyObject* seen_by_a = nullptr;
    PyObject* seen_by_b = nullptr;
    // --8<-- [start:minimal_race]
    harness::run_threads({
        {"A", [&](gilonce::gil_token) {
             seen_by_a = minimal_cell.get_or_init([] {
                 PyObject* list = make_list(0);
                 harness::without_gil([] {  // as an import or any Python code may
                     a_in_init.set();
                     b_stored.wait();
                 });
                 return list;
             });
             harness::note(seen_by_a == made_by[1] ? "re-check: the cell is full (B's list): A's list released" : "kept its own list");
         }},
        {"B", [&](gilonce::gil_token) {
             harness::without_gil([] { a_in_init.wait(); });
             seen_by_b = minimal_cell.get_or_init([] { return make_list(1); });
             harness::note(seen_by_b == made_by[1] ? "re-check: the cell was still empty: stored its list" : "got another list");
             b_stored.set();
         }},
    });
    // --8<-- [end:minimal_race]
    harness::traced_gil gil;
    if (made_by[0] == nullptr || made_by[1] == nullptr)
        return harness::scenario_result::fail("an initializer did not run (or failed)");
    if (seen_by_a != made_by[1] || seen_by_b != made_by[1])
        return harness::scenario_result::fail("A or B did not get B's list, the first stored");
    // Each list has the scenario's own reference; the cell holds one more on B's only.
    const Py_ssize_t a_refs = Py_REFCNT(made_by[0]);
    const Py_ssize_t b_refs = Py_REFCNT(made_by[1]);
    if (a_refs != 1 || b_refs != 2)
        return harness::scenario_result::fail("references: A's list " + std::to_string(a_refs) + ", B's " +
                                              std::to_string(b_refs) + " (expected 1 and 2)");
    return harness::scenario_result::pass(
        "both initializers ran; A and B got B's list, the first stored; A's list was released (1 reference "
        "left: the scenario's), B's is held by the cell (2)");
}

harness::scenario_result reentrant_call_is_a_clear_error() {
    harness::traced_gil gil;
    if (recursive_color.get(gil.token()) != nullptr)
        return harness::scenario_result::fail("the recursive build succeeded");
    const std::string error = fetch_error_text();
    harness::note("first call failed: " + error);
    factory_recurses = false;
    PyTypeObject* type = recursive_color.get(gil.token());
    if (type == nullptr) return harness::scenario_result::fail("retry failed: " + fetch_error_text());
    return harness::scenario_result::pass(error + "; the next call built the type");
}

const std::vector<harness::scenario>& scenarios() {
    static const std::vector<harness::scenario> list{
        {step, "minimal_cell_keeps_the_first_stored",
         "the small form (check, run, re-check, store) in step 02's race: nobody waits, both initializers "
         "run, the first object stored is the one both threads get and the other is released",
         harness::verdict::finished,
         {"both initializers ran; A and B got B's list, the first stored", "A's list was released"},
         minimal_cell_keeps_the_first_stored},
        {step, "two_threads_share_one_type",
         "step 02's deadlocking race finishes: nobody waits, the type is built twice and "
         "the first one stored is the one everybody gets",
         harness::verdict::finished,
         {"both threads got the same type object, built 2 times", "the other was released"}, two_threads_share_one_type},
        {step, "reentrant_call_is_a_clear_error",
         "a factory that asks for the type gets a RuntimeError naming it, not a hang or an "
         "abort; the recursive class attribute is still impossible",
         harness::verdict::finished,
         {"RuntimeError: gil_once_cell 'step03.Color': re-entrant initialization", "the next call built the type"}, reentrant_call_is_a_clear_error},
    };
    return list;
}

}  // namespace step03
