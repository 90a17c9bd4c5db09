// gilonce::lazy_type and the garbage collector: what a traversal may ask for, and what it gets.
// A traversal must not run Python code, and CPython tells C code nothing about one in
// progress, so `get` cannot make itself safe there: `get_for_traverse` is. Each scenario
// runs in a watchdog child (fresh statics; a crash is seen as a signal): the collector while
// another thread's stage 2 waits with the GIL released, after a failed stage 2, before any
// type exists, and a finalizer during a collection, where `get` may compute.
#include <catch2/catch.hpp>

#include <gilonce/lazy_type.hpp>
#include <pybind11/embed.h>

#include <string>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "harness/trace.hpp"
#include "harness/watchdog.hpp"

namespace py = pybind11;
using harness::scenario_result;

namespace {

// A GC-tracked object with one reference, so instances can form cycles. Its traversal asks
// for the type of `watched` (the shape of PyO3 issue 6390, whose traversal compared
// Py_TYPE(self) with its lazily built type) and records what it got on thread B.
struct node_object {
    PyObject_HEAD
    PyObject* other;
};
gilonce::lazy_type* watched = nullptr;
struct seen_in_traversal {
    int calls = 0;
    PyTypeObject* type = nullptr;  // what the traversal got, the last time
    bool complete = false;
    bool error_set = false;
} seen_by_b;

int node_traverse(PyObject* self, visitproc visit, void* arg) {
    const auto gil = gilonce::gil_token::assume_held();  // the collector holds the GIL
    PyTypeObject* type = watched != nullptr ? watched->get_for_traverse(gil) : nullptr;
    if (std::string(harness::thread_name()) == "B") {
        ++seen_by_b.calls;
        seen_by_b.type = type;
        seen_by_b.complete = watched != nullptr && watched->is_complete(gil);
        seen_by_b.error_set = PyErr_Occurred() != nullptr;
    }
    Py_VISIT(Py_TYPE(self));  // a heap type's instances visit it, once
    Py_VISIT(reinterpret_cast<node_object*>(self)->other);
    return 0;
}
int node_clear(PyObject* self) {
    Py_CLEAR(reinterpret_cast<node_object*>(self)->other);
    return 0;
}
void node_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    node_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}
PyType_Slot node_slots[] = {{Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
                            {Py_tp_traverse, reinterpret_cast<void*>(node_traverse)},
                            {Py_tp_clear, reinterpret_cast<void*>(node_clear)},
                            {Py_tp_dealloc, reinterpret_cast<void*>(node_dealloc)},
                            {0, nullptr}};
PyType_Spec node_spec = {"gctest.Node", sizeof(node_object), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, node_slots};

// A new instance of `type` that refers to itself: a cycle only the collector can free.
PyObject* self_referring(PyTypeObject* type) {
    PyObject* made = PyObject_CallNoArgs(reinterpret_cast<PyObject*>(type));
    if (made != nullptr) reinterpret_cast<node_object*>(made)->other = Py_NewRef(made);
    return made;
}

int factory_runs_on_a = 0, factory_runs_elsewhere = 0;
std::function<void()> inside_origin;  // runs in ORIGIN's factory, after it made its instance
// Like many a factory, ORIGIN's replaces what it made before (here a list, GC-tracked). Run
// inside a traversal, it frees the old one there, whose GC header the collector is using.
PyObject* factory_cache = nullptr;

gilonce::lazy_type node(&node_spec, {
    {"ORIGIN", [](gilonce::gil_token gil) -> PyObject* {
         ++(std::string(harness::thread_name()) == "A" ? factory_runs_on_a : factory_runs_elsewhere);
         Py_XSETREF(factory_cache, PyList_New(0));
         PyTypeObject* type = node.get(gil);  // early, in this context
         PyObject* origin = type ? self_referring(type) : nullptr;
         if (origin != nullptr && inside_origin) inside_origin();
         return origin;
     }},
});

py::object gc_module() { return py::module_::import("gc"); }

// What the collection's own verdict was: the number of unreachable objects it found.
long collect() { return gc_module().attr("collect")().cast<long>(); }

}  // namespace

TEST_CASE("lazy_type: a collection while another thread's stage 2 has released the GIL: the traversal "
          "gets the ready type and nothing runs") {
    auto out = harness::run_in_child([] {
        static harness::event a_waits("A released the GIL inside ORIGIN's factory"),
            b_collected("B's collection finished");
        watched = &node;
        {
            harness::traced_gil gil;
            gc_module().attr("disable")();  // the only collection is B's
        }
        inside_origin = [] {
            if (std::string(harness::thread_name()) != "A") return;
            // Garbage the collection must find: a cycle of the type being built.
            Py_XDECREF(self_referring(node.get(gilonce::gil_token::assume_held())));
            harness::without_gil([] {
                a_waits.set();
                b_collected.wait();
            });
        };
        PyTypeObject* got_by_a = nullptr;
        bool a_sees_origin = false;
        long found = -1;
        harness::run_threads({
            {"A", [&](gilonce::gil_token gil) {
                 got_by_a = node.get(gil);
                 a_sees_origin = got_by_a && PyObject_HasAttrString(reinterpret_cast<PyObject*>(got_by_a), "ORIGIN");
             }},
            {"B", [&](gilonce::gil_token) {
                 harness::without_gil([] { a_waits.wait(); });
                 found = collect();
                 b_collected.set();
             }},
        });
        if (got_by_a == nullptr || !a_sees_origin) return scenario_result::fail("A did not get the complete type");
        if (seen_by_b.calls == 0) return scenario_result::fail("B's collection never traversed a node");
        return scenario_result::pass(
            std::string("traversal got ") + (seen_by_b.type == got_by_a ? "the type" : "another pointer") +
            (seen_by_b.complete ? ", complete" : ", incomplete") + (seen_by_b.error_set ? ", an exception" : "") +
            "; factories ran " + std::to_string(factory_runs_on_a) + " time(s) on A, " +
            std::to_string(factory_runs_elsewhere) + " elsewhere; the collection found " +
            (found >= 1 ? "the garbage cycle" : std::to_string(found) + " objects"));
    });
    INFO(out.summary() << "\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail ==
          "traversal got the type, incomplete; factories ran 1 time(s) on A, 0 elsewhere; the collection found "
          "the garbage cycle");
}

TEST_CASE("lazy_type: a collection after a failed stage 2 traverses its instances without computing") {
    auto out = harness::run_in_child([] {
        static int attempts = 0;
        static PyObject* survivor = nullptr;  // made by the failed run, kept alive
        static gilonce::lazy_type flaky(&node_spec, {
            {"ORIGIN", [](gilonce::gil_token gil) -> PyObject* {
                 ++attempts;
                 PyObject* origin = self_referring(flaky.get(gil));
                 if (attempts > 1 || origin == nullptr) return origin;
                 survivor = origin;
                 PyErr_SetString(PyExc_ValueError, "not yet");
                 return nullptr;
             }},
        });
        watched = &flaky;
        harness::set_thread_name("B");  // the traversal records on B: this thread
        harness::traced_gil gil;
        gc_module().attr("disable")();
        if (flaky.get(gil.token()) != nullptr) return scenario_result::fail("the first stage 2 succeeded");
        PyErr_Clear();
        collect();
        const bool same = seen_by_b.type == Py_TYPE(survivor);
        const std::string during = std::string(same ? "the type" : "another pointer") +
                                   (seen_by_b.complete ? ", complete" : ", incomplete") + ", " +
                                   std::to_string(attempts) + " attempt(s)";
        PyTypeObject* type = flaky.get(gil.token());
        if (type == nullptr || !PyObject_HasAttrString(reinterpret_cast<PyObject*>(type), "ORIGIN"))
            return scenario_result::fail("the retry did not complete the type");
        return scenario_result::pass("during the collection: " + during + "; the retry: " + std::to_string(attempts) +
                                     " attempt(s), complete");
    });
    INFO(out.summary() << "\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail == "during the collection: the type, incomplete, 1 attempt(s); the retry: 2 attempt(s), complete");
}

TEST_CASE("lazy_type: a traversal before the type exists gets null, creates nothing, sets no exception") {
    auto out = harness::run_in_child([] {
        static PyType_Spec holder_spec = {"gctest.Holder", sizeof(node_object), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                                          node_slots};
        watched = &node;  // never asked for with `get` in this child
        harness::set_thread_name("B");
        harness::traced_gil gil;
        gc_module().attr("disable")();
        // Another type's instance, whose traversal asks for `node` (as an m_traverse might).
        py::object holder_type = py::reinterpret_steal<py::object>(PyType_FromSpec(&holder_spec));
        py::object holder = py::reinterpret_steal<py::object>(self_referring(reinterpret_cast<PyTypeObject*>(holder_type.ptr())));
        collect();
        if (seen_by_b.calls == 0) return scenario_result::fail("the collection never traversed the holder");
        return scenario_result::pass(std::string(seen_by_b.type == nullptr ? "null" : "a type") +
                                     (seen_by_b.error_set ? ", an exception" : ", no exception") +
                                     (node.get_for_traverse(gil.token()) == nullptr ? "; still no type" : "; a type now") +
                                     "; factories ran " + std::to_string(factory_runs_on_a + factory_runs_elsewhere));
    });
    INFO(out.summary() << "\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail == "null, no exception; still no type; factories ran 0");
}

TEST_CASE("lazy_type: a finalizer run by a collection may call get, which builds the complete type") {
    auto out = harness::run_in_child([] {
        harness::traced_gil gil;
        py::dict scope;
        scope["gc"] = gc_module();
        scope["get_complete"] = py::cpp_function([] {
            PyTypeObject* type = node.get(gilonce::gil_token::assume_held());
            if (type == nullptr) throw py::error_already_set();
            return PyObject_HasAttrString(reinterpret_cast<PyObject*>(type), "ORIGIN") == 1;
        });
        // __del__ runs in the collection's finalizer phase, after the traversal.
        py::exec(R"(
gc.disable()
seen = []
class Cycle:
    def __del__(self):
        seen.append(get_complete())
c = Cycle()
c.me = c
del c
found = gc.collect()
)",
                 scope);
        return scenario_result::pass("the finalizer saw " + py::repr(scope["seen"]).cast<std::string>() +
                                     (node.is_complete(gil.token()) ? "; complete" : "; incomplete"));
    });
    INFO(out.summary() << "\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail == "the finalizer saw [True]; complete");
}
