// gilonce::lazy_type: each line of its contract, in a watchdog child (every child starts
// with unbuilt types) or, for single-threaded checks, in-process on a type of its own.
#include <catch2/catch.hpp>

#include <gilonce/lazy_type.hpp>
#include <pybind11/embed.h>

#include <string>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "harness/watchdog.hpp"

namespace py = pybind11;
using harness::scenario_result;

namespace {

// A plain object type that counts its live instances; class attributes are instances of
// it (Point.ORIGIN = Point()).
long live_points = 0;
PyObject* point_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
    PyObject* self = PyType_GenericNew(type, args, kwds);
    if (self != nullptr) ++live_points;
    return self;
}
void point_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    --live_points;
    type->tp_free(self);
    Py_DECREF(type);
}
PyType_Slot point_slots[] = {{Py_tp_doc, const_cast<char*>("A point, for tests.")},
                             {Py_tp_new, reinterpret_cast<void*>(point_new)},
                             {Py_tp_dealloc, reinterpret_cast<void*>(point_dealloc)},
                             {0, nullptr}};
PyType_Spec point_spec = {"lazytest.Point", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
                          point_slots};

int live_points_made = 0;    // instances made by factories
std::function<void()> on_origin;  // runs inside ORIGIN's factory, before it creates the instance

gilonce::lazy_type point(&point_spec, {
    {"ORIGIN", [](gilonce::gil_token gil) -> PyObject* {
         if (on_origin) on_origin();
         PyTypeObject* type = point.get(gil);
         if (type == nullptr) return nullptr;
         ++live_points_made;
         return PyObject_CallNoArgs(reinterpret_cast<PyObject*>(type));
     }},
    {"UNIT", [](gilonce::gil_token gil) -> PyObject* {
         PyTypeObject* type = point.get(gil);
         return type ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(type)) : nullptr;
     }},
});

std::string error_text() {
    py::error_already_set e;
    std::string out = std::string(e.type().attr("__name__").cast<std::string>()) + ": " +
                      py::str(e.value()).cast<std::string>();
    py::object cause = e.value().attr("__cause__");
    if (!cause.is_none())
        out += " <- " + py::type::of(cause).attr("__name__").cast<std::string>() + ": " + py::str(cause).cast<std::string>();
    return out;
}

}  // namespace

TEST_CASE("lazy_type: class attributes that are instances of the type itself") {
    auto out = harness::run_in_child([] {
        harness::traced_gil gil;
        PyTypeObject* type = point.get(gil.token());
        if (type == nullptr) return scenario_result::fail(error_text());
        py::object t = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(type));
        if (!py::isinstance(t.attr("ORIGIN"), t)) return scenario_result::fail("ORIGIN is not a Point");
        if (!t.attr("ORIGIN").is(t.attr("ORIGIN"))) return scenario_result::fail("ORIGIN is not ORIGIN");
        if (point.get(gil.token()) != type) return scenario_result::fail("a second call gave another type");
        if (!point.is_complete(gil.token())) return scenario_result::fail("not complete");
        return scenario_result::pass(std::string(point.name()));
    });
    INFO(out.summary());
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail == "lazytest.Point");
}

TEST_CASE("lazy_type: the type is immutable once complete, Python subclasses are not") {
    auto out = harness::run_in_child([] {
        harness::traced_gil gil;
        py::object t = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(point.get(gil.token())));
        std::string seen;
        for (const char* code : {"T.ORIGIN = 1", "del T.ORIGIN", "T.NEW = 1"}) {
            py::dict scope;
            scope["T"] = t;
            try {
                py::exec(code, scope);
                return scenario_result::fail(std::string(code) + " succeeded");
            } catch (py::error_already_set& e) {
                if (!e.matches(PyExc_TypeError)) return scenario_result::fail(std::string(code) + ": " + e.what());
            }
        }
        py::dict scope;
        scope["T"] = t;
        py::exec("class Sub(T):\n    pass\nSub.NEW = 1\nok = Sub.NEW == 1 and Sub.ORIGIN is T.ORIGIN\n", scope);
        if (!scope["ok"].cast<bool>()) return scenario_result::fail("the subclass is not usable");
        return scenario_result::pass();
    });
    INFO(out.summary());
    CHECK(out.observed == harness::verdict::finished);
}

TEST_CASE("lazy_type: racing threads all get the complete type, published once, losers released") {
    auto out = harness::run_in_child([] {
        static harness::event a_released("A released the GIL in stage 2"), b_done("B got the type");
        on_origin = [] {
            if (std::string(harness::thread_name()) != "A") return;
            harness::without_gil([] {
                a_released.set();
                b_done.wait();
            });
        };
        PyTypeObject* seen[2] = {nullptr, nullptr};
        bool had_origin[2] = {false, false};
        harness::run_threads({
            {"A", [&](gilonce::gil_token gil) {
                 seen[0] = point.get(gil);
                 had_origin[0] = seen[0] && PyObject_HasAttrString(reinterpret_cast<PyObject*>(seen[0]), "ORIGIN");
             }},
            {"B", [&](gilonce::gil_token gil) {
                 harness::without_gil([] { a_released.wait(); });
                 seen[1] = point.get(gil);
                 had_origin[1] = seen[1] && PyObject_HasAttrString(reinterpret_cast<PyObject*>(seen[1]), "ORIGIN");
                 b_done.set();
             }},
        });
        harness::traced_gil gil;
        if (!seen[0] || seen[0] != seen[1]) return scenario_result::fail("different types");
        if (!had_origin[0] || !had_origin[1]) return scenario_result::fail("a thread got the type without ORIGIN");
        // A's ORIGIN and UNIT were released: only the two published instances are alive.
        return scenario_result::pass("factories ran " + std::to_string(live_points_made) +
                                     " times for ORIGIN; " + std::to_string(live_points) + " instances alive");
    });
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail == "factories ran 2 times for ORIGIN; 2 instances alive");
}

TEST_CASE("lazy_type: a failing factory names the class and attribute, nothing published, retry works") {
    static PyType_Spec spec = {"lazytest.Flaky", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, point_slots};
    static int calls = 0;
    static gilonce::lazy_type flaky(&spec, {
        {"FIRST", [](gilonce::gil_token) { return PyLong_FromLong(1); }},
        {"SECOND", [](gilonce::gil_token) -> PyObject* {
             ++calls;
             if (calls == 1) {
                 PyErr_SetString(PyExc_ValueError, "not yet");
                 return nullptr;
             }
             if (calls == 2) throw std::runtime_error("still not");
             return PyLong_FromLong(2);
         }},
    });
    harness::traced_gil gil;
    CHECK(flaky.get(gil.token()) == nullptr);
    CHECK(error_text() == "RuntimeError: cannot compute class attribute lazytest.Flaky.SECOND <- ValueError: not yet");
    CHECK_FALSE(flaky.is_complete(gil.token()));
    CHECK(flaky.get(gil.token()) == nullptr);
    CHECK(error_text() ==
          "RuntimeError: cannot compute class attribute lazytest.Flaky.SECOND <- RuntimeError: C++ exception: still not");
    PyTypeObject* type = flaky.get(gil.token());  // same thread: a fresh attempt, not re-entry
    REQUIRE(type != nullptr);
    py::object t = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(type));
    CHECK(t.attr("FIRST").cast<int>() == 1);
    CHECK(t.attr("SECOND").cast<int>() == 2);
}

TEST_CASE("lazy_type: a factory that returns NULL without an exception is named as the cause") {
    static PyType_Spec spec = {"lazytest.Silent", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, point_slots};
    static gilonce::lazy_type silent(&spec, {{"X", [](gilonce::gil_token) -> PyObject* { return nullptr; }}});
    static PyType_Spec based_spec = {"lazytest.SilentBases", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, point_slots};
    static gilonce::lazy_type silent_bases(&based_spec, {}, [](gilonce::gil_token) -> PyObject* { return nullptr; });
    static gilonce::lazy_type noisy_bases(&based_spec, {}, [](gilonce::gil_token) -> PyObject* {
        PyErr_SetString(PyExc_ValueError, "and a value");
        return Py_NewRef(reinterpret_cast<PyObject*>(&PyBaseObject_Type));
    });
    harness::traced_gil gil;
    CHECK(silent.get(gil.token()) == nullptr);
    CHECK(error_text() == "RuntimeError: cannot compute class attribute lazytest.Silent.X <- SystemError: class "
                          "attribute factory lazytest.Silent.X returned NULL without setting an exception");
    CHECK(silent_bases.get(gil.token()) == nullptr);
    CHECK(error_text() == "RuntimeError: cannot compute the bases of lazytest.SilentBases <- SystemError: bases "
                          "factory of lazytest.SilentBases returned NULL without setting an exception");
    CHECK(noisy_bases.get(gil.token()) == nullptr);
    CHECK(error_text() == "SystemError: bases factory of lazytest.SilentBases returned a value with an exception set "
                          "<- ValueError: and a value");
}

TEST_CASE("lazy_type: a bases factory asking for the type is a RuntimeError naming it") {
    static PyType_Spec spec = {"lazytest.SelfBased", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, point_slots};
    static gilonce::lazy_type self_based(&spec, {}, [](gilonce::gil_token gil) -> PyObject* {
        PyTypeObject* itself = self_based.get(gil);
        Py_XINCREF(itself);
        return reinterpret_cast<PyObject*>(itself);
    });
    harness::traced_gil gil;
    CHECK(self_based.get(gil.token()) == nullptr);
    const std::string text = error_text();
    // Stage 1's cell names itself: a gil_once_cell, or under the free-threaded protocol a
    // py_once_lock (built into lazy_type_ft_protocol_tests).
    const std::string stage_one = GILONCE_DETAIL_NO_GIL_PROTOCOL ? "py_once_lock" : "gil_once_cell";
    INFO(text);
    CHECK(text.rfind("RuntimeError: cannot compute the bases of lazytest.SelfBased <- RuntimeError: " + stage_one +
                     " 'lazytest.SelfBased': re-entrant initialization", 0) == 0);
}

TEST_CASE("lazy_type: a bases factory gives the type its base") {
    static PyType_Spec spec = {"lazytest.Derived", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, point_slots};
    static PyType_Spec base_spec = {"lazytest.Base", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, point_slots};
    static gilonce::lazy_type base(&base_spec, {});
    static gilonce::lazy_type derived(&spec, {}, [](gilonce::gil_token gil) -> PyObject* {
        PyTypeObject* b = base.get(gil);
        Py_XINCREF(b);
        return reinterpret_cast<PyObject*>(b);
    });
    harness::traced_gil gil;
    PyTypeObject* d = derived.get(gil.token());
    REQUIRE(d != nullptr);
    CHECK(PyType_IsSubtype(d, base.get(gil.token())));
}

TEST_CASE("raise_from_current chains the current exception as __cause__, or raises alone") {
    harness::traced_gil gil;
    PyErr_SetString(PyExc_KeyError, "inner");
    gilonce::raise_from_current(PyExc_RuntimeError, "outer");
    CHECK(error_text() == "RuntimeError: outer <- KeyError: 'inner'");
    gilonce::raise_from_current(PyExc_ValueError, "alone");
    CHECK(error_text() == "ValueError: alone");
}

TEST_CASE("lazy_type: misuse is a SystemError naming the problem, not a crash") {
    harness::traced_gil gil;
    static gilonce::lazy_type no_spec(nullptr, {});
    CHECK(no_spec.get(gil.token()) == nullptr);
    CHECK(error_text() == "SystemError: gilonce::lazy_type: constructed with a null PyType_Spec");
    static PyType_Spec spec = {"lazytest.Misused", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, point_slots};
    static gilonce::lazy_type no_factory(&spec, {{"X", nullptr}});
    CHECK(no_factory.get(gil.token()) == nullptr);
    CHECK(error_text() == "SystemError: gilonce::lazy_type lazytest.Misused: a class attribute has no factory (X)");
    static gilonce::lazy_type no_name(&spec, {{nullptr, [](gilonce::gil_token) { return PyLong_FromLong(1); }}});
    CHECK(no_name.get(gil.token()) == nullptr);
    CHECK(error_text() == "SystemError: gilonce::lazy_type lazytest.Misused: a class attribute has a null name");
}
