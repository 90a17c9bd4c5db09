// lazy_type and immutability, the CPython way: a spec that already says
// Py_TPFLAGS_IMMUTABLETYPE, a type immutable before any instance of it exists (PyType_Freeze's
// rule), bases that must be immutable too, and an explicitly mutable type.
#include <catch2/catch.hpp>

#include <gilonce/lazy_type.hpp>
#include <pybind11/embed.h>

#include <string>

#include "harness/gil.hpp"

namespace py = pybind11;

namespace {

PyType_Slot plain_slots[] = {{0, nullptr}};

std::string error_text() {
    py::error_already_set e;
    std::string out = e.type().attr("__name__").cast<std::string>() + ": " + py::str(e.value()).cast<std::string>();
    py::object cause = e.value().attr("__cause__");
    if (!cause.is_none())
        out += " <- " + py::type::of(cause).attr("__name__").cast<std::string>() + ": " + py::str(cause).cast<std::string>();
    return out;
}

bool immutable(PyTypeObject* type) { return PyType_HasFeature(type, Py_TPFLAGS_IMMUTABLETYPE); }

}  // namespace

TEST_CASE("immutability: a spec that already carries Py_TPFLAGS_IMMUTABLETYPE works, factories run once") {
    static PyType_Spec spec = {"immutabletest.FromSpec", sizeof(PyObject), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, plain_slots};
    static int calls = 0;
    static gilonce::lazy_type type(&spec, {{"ANSWER", [](gilonce::gil_token) {
                                                ++calls;
                                                return PyLong_FromLong(42);
                                            }}});
    harness::traced_gil gil;
    PyTypeObject* first = type.get(gil.token());
    INFO((first == nullptr ? error_text() : std::string("ok")));
    REQUIRE(first != nullptr);
    CHECK(type.get(gil.token()) == first);
    CHECK(calls == 1);
    CHECK(immutable(first));
    py::object t = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(first));
    CHECK(t.attr("ANSWER").cast<int>() == 42);
}

TEST_CASE("immutability: the type is immutable before a factory creates the first instance") {
    static PyType_Spec spec = {"immutabletest.Early", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
    static bool immutable_when_instantiated = false;
    static gilonce::lazy_type type(&spec, {{"ORIGIN", [](gilonce::gil_token gil) -> PyObject* {
                                                PyTypeObject* early = type.get(gil);
                                                if (early == nullptr) return nullptr;
                                                immutable_when_instantiated = immutable(early);
                                                return PyType_GenericNew(early, nullptr, nullptr);
                                            }}});
    harness::traced_gil gil;
    REQUIRE(type.get(gil.token()) != nullptr);
    CHECK(immutable_when_instantiated);
}

TEST_CASE("immutability: an immutable lazy_type refuses a mutable base with a TypeError naming both") {
    static PyType_Spec spec = {"immutabletest.OnMutable", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
    static gilonce::lazy_type type(&spec, {}, [](gilonce::gil_token) -> PyObject* {
        py::dict scope;
        py::exec("class MutableBase:\n    pass\n", scope);
        return py::object(scope["MutableBase"]).release().ptr();
    });
    harness::traced_gil gil;
    CHECK(type.get(gil.token()) == nullptr);
    CHECK(error_text() ==
          "TypeError: gilonce::lazy_type immutabletest.OnMutable: an immutable type needs immutable bases, and "
          "MutableBase is mutable");
}

TEST_CASE("immutability: with immutable = false the type stays an ordinary mutable class") {
    static PyType_Spec spec = {"immutabletest.Mutable", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
    static gilonce::lazy_type type(&spec, {{"ANSWER", [](gilonce::gil_token) { return PyLong_FromLong(42); }}},
                                   {}, /*immutable=*/false);
    harness::traced_gil gil;
    PyTypeObject* t = type.get(gil.token());
    REQUIRE(t != nullptr);
    CHECK_FALSE(immutable(t));
    py::object o = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(t));
    o.attr("ANSWER") = 43;
    CHECK(o.attr("ANSWER").cast<int>() == 43);
}

TEST_CASE("lazy_type: a C++ exception from the bases factory is a Python error, never a C++ one") {
    static PyType_Spec spec = {"immutabletest.BadBases", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
    static int calls = 0;
    static gilonce::lazy_type type(&spec, {}, [](gilonce::gil_token) -> PyObject* {
        if (++calls == 1) throw std::runtime_error("no bases today");
        throw 7;  // not even a std::exception
    });
    harness::traced_gil gil;
    PyTypeObject* t = reinterpret_cast<PyTypeObject*>(1);
    REQUIRE_NOTHROW(t = type.get(gil.token()));
    CHECK(t == nullptr);
    CHECK(error_text() == "RuntimeError: cannot compute the bases of immutabletest.BadBases <- RuntimeError: C++ exception: no bases today");
    REQUIRE_NOTHROW(t = type.get(gil.token()));
    CHECK(t == nullptr);
    CHECK(error_text() == "RuntimeError: cannot compute the bases of immutabletest.BadBases <- RuntimeError: unknown C++ exception");
}

TEST_CASE("lazy_type: a dunder class attribute, or one the spec defines, is a SystemError naming it") {
    static PyMethodDef methods[] = {{"taken", [](PyObject*, PyObject*) -> PyObject* { Py_RETURN_NONE; }, METH_NOARGS, nullptr},
                                    {nullptr, nullptr, 0, nullptr}};
    static PyType_Slot slots[] = {{Py_tp_methods, methods}, {0, nullptr}};
    static PyType_Spec spec = {"immutabletest.Clash", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, slots};
    static gilonce::lazy_type dunder(&spec, {{"__eq__", [](gilonce::gil_token) { return PyLong_FromLong(1); }}});
    static gilonce::lazy_type clash(&spec, {{"taken", [](gilonce::gil_token) { return PyLong_FromLong(1); }}});
    harness::traced_gil gil;
    CHECK(dunder.get(gil.token()) == nullptr);
    CHECK(error_text() == "SystemError: gilonce::lazy_type immutabletest.Clash: a class attribute has a dunder name (__eq__)");
    CHECK(clash.get(gil.token()) == nullptr);
    CHECK(error_text() == "SystemError: gilonce::lazy_type immutabletest.Clash: class attribute taken would replace what the spec defines");
}

TEST_CASE("immutability: a mutable grand-base is refused too, not only a mutable direct base") {
    // An immutable C type derived from a mutable Python class: its own flag says immutable,
    // but an attribute set on the Python class would show on every subclass.
    static PyType_Spec middle_spec = {"immutabletest.Middle", sizeof(PyObject), 0,
                                      Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE, plain_slots};
    static PyType_Spec spec = {"immutabletest.OnGrandBase", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
    static gilonce::lazy_type type(&spec, {}, [](gilonce::gil_token) -> PyObject* {
        py::dict scope;
        py::exec("class Grand:\n    __slots__ = ()\n", scope);
        py::object grand = scope["Grand"];
        return PyType_FromSpecWithBases(&middle_spec, grand.ptr());
    });
    harness::traced_gil gil;
    CHECK(type.get(gil.token()) == nullptr);
#if PY_VERSION_HEX >= 0x030E0000
    // From 3.14 CPython itself refuses to create Middle (3.12 and 3.13 only warn): the bases
    // factory fails, and the mutable grand-base never reaches lazy_type's own check.
    CHECK(error_text() ==
          "RuntimeError: cannot compute the bases of immutabletest.OnGrandBase <- "
          "TypeError: Creating immutable type immutabletest.Middle from mutable base Grand");
#else
    CHECK(error_text() ==
          "TypeError: gilonce::lazy_type immutabletest.OnGrandBase: an immutable type needs immutable bases, and "
          "Grand is mutable");
#endif
}

TEST_CASE("lazy_type: two class attributes with one name are a SystemError naming it") {
    static PyType_Spec spec = {"immutabletest.Twice", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
    static gilonce::lazy_type twice(&spec, {{"A", [](gilonce::gil_token) { return PyLong_FromLong(1); }},
                                            {"A", [](gilonce::gil_token) { return PyLong_FromLong(2); }}});
    harness::traced_gil gil;
    CHECK(twice.get(gil.token()) == nullptr);
    CHECK(error_text() == "SystemError: gilonce::lazy_type immutabletest.Twice: two class attributes have the same name (A)");
}

TEST_CASE("lazy_type: a factory returning a value with an exception set is a SystemError, nothing published") {
    static PyType_Spec spec = {"immutabletest.HalfFailed", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
    static int calls = 0;
    static gilonce::lazy_type half(&spec, {{"X", [](gilonce::gil_token) {
                                               if (++calls == 1) PyErr_SetString(PyExc_KeyError, "left behind");
                                               return PyLong_FromLong(1);
                                           }}});
    harness::traced_gil gil;
    CHECK(half.get(gil.token()) == nullptr);
    CHECK(error_text() == "SystemError: class attribute factory immutabletest.HalfFailed.X returned a value with an "
                          "exception set <- KeyError: 'left behind'");
    CHECK_FALSE(half.is_complete(gil.token()));
    CHECK(half.get(gil.token()) != nullptr);  // the next call computes again
}
