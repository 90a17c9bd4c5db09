// gil_once_cell's contract against misuse: an initializer returning an empty handle never
// leaves the cell "full with nothing"; `take` invalidates references, so the call must say
// so; there is no `reset` that would do it silently.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <pybind11/embed.h>

#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "harness/gil.hpp"

namespace py = pybind11;
using gilonce::gil_once_cell;
using gilonce::gil_token;

namespace {

template <class Cell, class = void>
struct has_reset : std::false_type {};
template <class Cell>
struct has_reset<Cell, std::void_t<decltype(std::declval<Cell&>().reset(std::declval<gil_token>()))>> : std::true_type {};
template <class Cell, class = void>
struct takes_without_tag : std::false_type {};
template <class Cell>
struct takes_without_tag<Cell, std::void_t<decltype(std::declval<Cell&>().take(std::declval<gil_token>()))>>
    : std::true_type {};

}  // namespace

TEST_CASE("take must be told that it invalidates references, there is no silent reset") {
    STATIC_REQUIRE_FALSE(has_reset<gil_once_cell<int>>::value);
    STATIC_REQUIRE_FALSE(takes_without_tag<gil_once_cell<int>>::value);
    harness::traced_gil gil;
    gil_once_cell<int> cell{"tagged"};
    const int& first = cell.get_or_init(gil.token(), [] { return 1; });
    CHECK(first == 1);
    CHECK(cell.take(gil.token(), gilonce::invalidates_references) == 1);  // `first` is dangling now
    CHECK(cell.get(gil.token()) == nullptr);
}

TEST_CASE("an initializer returning an empty py_ref is an error, the cell stays empty and retries") {
    harness::traced_gil gil;
    gil_once_cell<gilonce::py_ref> cell{"empty py_ref"};
    CHECK_THROWS_MATCHES(cell.get_or_init(gil.token(), [] { return gilonce::py_ref(); }), gilonce::empty_value_error,
                         Catch::Message("gil_once_cell 'empty py_ref': initializer returned an empty handle"));
    CHECK(cell.get(gil.token()) == nullptr);
    const gilonce::py_ref& stored = cell.get_or_init(gil.token(), [] { return gilonce::py_ref::steal(PyLong_FromLong(5)); });
    CHECK(PyLong_AsLong(stored.get()) == 5);
}

TEST_CASE("an initializer returning an empty pybind11::object is an error, its Python exception stays set") {
    harness::traced_gil gil;
    gil_once_cell<py::object> cell{"empty object"};
    auto failing_import = [] { return py::reinterpret_steal<py::object>(PyImport_ImportModule("no_such_module_here")); };
    CHECK_THROWS_AS(cell.get_or_init(gil.token(), failing_import), gilonce::empty_value_error);
    CHECK(PyErr_ExceptionMatches(PyExc_ModuleNotFoundError));
    PyErr_Clear();
    CHECK(cell.get(gil.token()) == nullptr);
    CHECK_THROWS_AS(cell.set(gil.token(), py::object()), gilonce::empty_value_error);
    CHECK(cell.get(gil.token()) == nullptr);
}

TEST_CASE("get_or_try_init: an empty handle is a SystemError naming the cell, a null PyObject* likewise") {
    harness::traced_gil gil;
    gil_once_cell<gilonce::py_ref> cell{"try empty"};
    CHECK(cell.get_or_try_init(gil.token(), [] { return std::optional<gilonce::py_ref>(gilonce::py_ref()); }) == nullptr);
    REQUIRE(PyErr_ExceptionMatches(PyExc_SystemError));
    PyErr_Clear();
    CHECK(cell.get(gil.token()) == nullptr);
    gil_once_cell<PyObject*> raw{"raw pointer"};
    CHECK_THROWS_AS(raw.get_or_init(gil.token(), []() -> PyObject* { return nullptr; }), gilonce::empty_value_error);
    CHECK(raw.get(gil.token()) == nullptr);
    gil_once_cell<int> zero{"zero is a value"};
    CHECK(zero.get_or_init(gil.token(), [] { return 0; }) == 0);
}

TEST_CASE("get_or_try_init: an empty handle with an exception set is the initializer's own failure, in every cell") {
    // The shape of the headers' examples: `return py_ref::steal(PyObject_GetAttrString(...))`.
    harness::traced_gil gil;
    py::module_ json = py::module_::import("json");
    const auto missing_attribute = [&]() -> std::optional<gilonce::py_ref> {
        return gilonce::py_ref::steal(PyObject_GetAttrString(json.ptr(), "no_such_attribute"));
    };
    const auto check_own_error = [&](const char* cell) {
        INFO(cell);
        REQUIRE(PyErr_ExceptionMatches(PyExc_AttributeError));
        PyObject* error = gilonce::detail::take_exception();
        CHECK(PyException_GetCause(error) == nullptr);  // not wrapped
        Py_DECREF(error);
    };
    gil_once_cell<gilonce::py_ref> cell{"missing attribute"};
    CHECK(cell.get_or_try_init(gil.token(), missing_attribute) == nullptr);
    check_own_error("gil_once_cell");
    CHECK(cell.get(gil.token()) == nullptr);
    gilonce::py_once_lock<gilonce::py_ref> lock{"missing attribute"};
    CHECK(lock.get_or_try_init(gil.token(), missing_attribute) == nullptr);
    check_own_error("py_once_lock");
    CHECK(lock.get(gil.token()) == nullptr);
    static gilonce::per_interpreter_cell<gilonce::py_ref> per_interpreter{"missing attribute"};  // cells of one process
    CHECK(per_interpreter.get_or_try_init(gil.token(), missing_attribute) == nullptr);
    check_own_error("per_interpreter_cell");
    // Without an exception, an empty handle is still a SystemError naming the cell.
    CHECK(cell.get_or_try_init(gil.token(), [] { return std::optional<gilonce::py_ref>(gilonce::py_ref()); }) == nullptr);
    REQUIRE(PyErr_ExceptionMatches(PyExc_SystemError));
    PyObject* error = gilonce::detail::take_exception();
    PyObject* text = PyObject_Str(error);
    CHECK(std::string(PyUnicode_AsUTF8(text)) ==
          "gil_once_cell 'missing attribute': initializer returned an empty handle without setting an exception");
    Py_DECREF(text);
    Py_DECREF(error);
}

TEST_CASE("an initializer returning a null PyTypeObject* (any raw pointer) is an empty handle too") {
    harness::traced_gil gil;
    gil_once_cell<PyTypeObject*> cell{"type pointer"};
    CHECK_THROWS_AS(cell.get_or_init(gil.token(), []() -> PyTypeObject* { return nullptr; }), gilonce::empty_value_error);
    CHECK(cell.get(gil.token()) == nullptr);
    CHECK(cell.get_or_init(gil.token(), [] { return &PyLong_Type; }) == &PyLong_Type);
}

TEST_CASE("a Python exception already set when get_or_init is called is not taken for a failure of the cell") {
    harness::traced_gil gil;
    gil_once_cell<int> cell{"pending exception"};
    PyErr_SetString(PyExc_KeyError, "set by the caller");
    int value = 0;
    CHECK_NOTHROW(value = cell.get_or_init(gil.token(), [] { return 3; }));
    CHECK(value == 3);
    CHECK(PyErr_ExceptionMatches(PyExc_KeyError));  // still the caller's
    PyErr_Clear();
}

TEST_CASE("a context copied from a finished computation of a destroyed cell is an ordinary caller of a new cell at its address") {
    // Entries are fresh objects compared by identity, and the copy keeps the old one alive:
    // a new cell at the same address never takes it for one of its own computations.
    harness::traced_gil gil;
    using cell_type = gil_once_cell<int>;
    alignas(cell_type) static unsigned char storage[sizeof(cell_type)];
    auto* old_cell = new (storage) cell_type("reused address");
    PyObject* copied = nullptr;
    CHECK_THROWS_AS(old_cell->get_or_init(gil.token(), [&]() -> int {
        copied = PyContext_CopyCurrent();  // made while the old cell's computation runs
        throw std::runtime_error("the old computation fails");
    }), std::runtime_error);
    old_cell->~cell_type();
    auto* new_cell = new (storage) cell_type("reused address");
    REQUIRE(copied != nullptr);
    int nested = 0;
    const int value = new_cell->get_or_init(gil.token(), [&] {
        // While the new cell's first computation runs, ask for it from the old copy.
        REQUIRE(PyContext_Enter(copied) == 0);
        CHECK_NOTHROW(nested = new_cell->get_or_init(gil.token(), [] { return 2; }));
        REQUIRE(PyContext_Exit(copied) == 0);
        return 1;
    });
    CHECK(nested == 2);
    CHECK(value == 2);  // the nested call stored first
    new_cell->~cell_type();
    Py_DECREF(copied);
}
