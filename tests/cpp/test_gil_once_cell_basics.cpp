// gil_once_cell on one thread: storing, reading, failing and retrying, re-entrancy.
// Each contract line stated at the declaration in gil_once_cell.hpp has a test here or in
// test_gil_once_cell_threads.cpp (races) and test_gil_once_cell_lifetime.cpp (destruction).
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <pybind11/embed.h>

#include <string>

#include "harness/gil.hpp"

namespace py = pybind11;
using gilonce::gil_once_cell;

namespace {
// A value that counts its live instances, so a test can see a discarded value destroyed.
struct counted {
    static inline int alive = 0;
    int id;
    explicit counted(int i) : id(i) { ++alive; }
    counted(counted&& other) noexcept : id(other.id) { ++alive; }
    counted(const counted&) = delete;
    ~counted() { --alive; }
};

std::string fetch_python_error() {
    py::error_already_set err;
    return std::string(err.type().attr("__name__").cast<std::string>()) + ": " + err.what();
}
}  // namespace

TEST_CASE("an empty cell has no value, get_or_init fills it once") {
    harness::traced_gil gil;
    gil_once_cell<std::string> cell{"greeting"};
    CHECK(cell.get(gil.token()) == nullptr);
    int runs = 0;
    const std::string& first = cell.get_or_init(gil.token(), [&] { ++runs; return std::string("hello"); });
    const std::string& second = cell.get_or_init(gil.token(), [&] { ++runs; return std::string("other"); });
    CHECK(first == "hello");
    CHECK(&first == &second);
    CHECK(cell.get(gil.token()) == &first);
    CHECK(runs == 1);
    CHECK(std::string(cell.name()) == "greeting");
}

TEST_CASE("set stores into an empty cell and refuses (destroying the value) when full") {
    harness::traced_gil gil;
    counted::alive = 0;
    {
        gil_once_cell<counted> cell{"counted"};
        CHECK(cell.set(gil.token(), counted(1)));
        CHECK(counted::alive == 1);
        CHECK_FALSE(cell.set(gil.token(), counted(2)));
        CHECK(counted::alive == 1);  // the refused value is already gone
        CHECK(cell.get(gil.token())->id == 1);
    }
    CHECK(counted::alive == 0);  // destroyed with the cell: the GIL is held here
}

TEST_CASE("take (which invalidates references, said at the call) empties the cell and hands over the value") {
    harness::traced_gil gil;
    counted::alive = 0;
    gil_once_cell<counted> cell{"counted"};
    cell.get_or_init(gil.token(), [] { return counted(7); });
    std::optional<counted> taken = cell.take(gil.token(), gilonce::invalidates_references);
    REQUIRE(taken);
    CHECK(taken->id == 7);
    CHECK(cell.get(gil.token()) == nullptr);
    CHECK_FALSE(cell.take(gil.token(), gilonce::invalidates_references));
    cell.get_or_init(gil.token(), [] { return counted(8); });
    (void)cell.take(gil.token(), gilonce::invalidates_references);
    CHECK(cell.get(gil.token()) == nullptr);
    taken.reset();
    CHECK(counted::alive == 0);
}

TEST_CASE("an initializer that throws leaves the cell empty and the next call retries") {
    harness::traced_gil gil;
    gil_once_cell<py::object> cell{"flaky"};
    int runs = 0;
    auto flaky = [&]() -> py::object {
        if (++runs == 1) throw std::runtime_error("first attempt fails");
        return py::str("second attempt");
    };
    CHECK_THROWS_WITH(cell.get_or_init(gil.token(), flaky), "first attempt fails");
    CHECK(cell.get(gil.token()) == nullptr);
    CHECK(cell.get_or_init(gil.token(), flaky).cast<std::string>() == "second attempt");
    CHECK(runs == 2);
}

TEST_CASE("a Python exception from the initializer propagates as error_already_set and retries") {
    harness::traced_gil gil;
    gil_once_cell<py::object> cell{"imported"};
    CHECK_THROWS_AS(cell.get_or_init(gil.token(), [] { return py::module_::import("no_such_module_gilonce"); }),
                    py::error_already_set);
    CHECK(cell.get(gil.token()) == nullptr);
    CHECK(cell.get_or_init(gil.token(), [] { return py::module_::import("math"); }).attr("__name__").cast<std::string>() == "math");
}

TEST_CASE("get_or_try_init: a Python error leaves the cell empty, is returned as null, and retries") {
    harness::traced_gil gil;
    gil_once_cell<gilonce::py_ref> cell{"json.dumps"};
    auto import_attr = [](const char* module, const char* attr) {
        return [=]() -> std::optional<gilonce::py_ref> {
            auto m = gilonce::py_ref::steal(PyImport_ImportModule(module));
            if (!m) return std::nullopt;
            auto a = gilonce::py_ref::steal(PyObject_GetAttrString(m.get(), attr));
            if (!a) return std::nullopt;
            return a;
        };
    };
    CHECK(cell.get_or_try_init(gil.token(), import_attr("json", "no_such_attr")) == nullptr);
    REQUIRE(PyErr_Occurred());
    CHECK(fetch_python_error().find("AttributeError") == 0);
    CHECK(cell.get(gil.token()) == nullptr);
    const gilonce::py_ref* dumps = cell.get_or_try_init(gil.token(), import_attr("json", "dumps"));
    REQUIRE(dumps != nullptr);
    CHECK(PyCallable_Check(dumps->get()));
}

TEST_CASE("get_or_try_init: failing without an exception is a SystemError naming the cell") {
    harness::traced_gil gil;
    gil_once_cell<int> cell{"silent failure"};
    CHECK(cell.get_or_try_init(gil.token(), []() -> std::optional<int> { return std::nullopt; }) == nullptr);
    std::string error = fetch_python_error();
    CHECK(error.find("SystemError") == 0);
    CHECK(error.find("'silent failure'") != std::string::npos);
}

TEST_CASE("get_or_try_init: a value returned with an exception set is discarded, the error kept as cause") {
    harness::traced_gil gil;
    counted::alive = 0;
    gil_once_cell<counted> cell{"half failure"};
    CHECK(cell.get_or_try_init(gil.token(), []() -> std::optional<counted> {
        PyErr_SetString(PyExc_ValueError, "original problem");
        return counted(1);
    }) == nullptr);
    CHECK(counted::alive == 0);
    CHECK(cell.get(gil.token()) == nullptr);
    py::error_already_set err;
    CHECK(err.matches(PyExc_SystemError));
    CHECK(std::string(err.what()).find("'half failure'") != std::string::npos);
    CHECK(py::str(err.value().attr("__cause__")).cast<std::string>() == "original problem");
}

TEST_CASE("re-entrant initialization throws reentrant_init_error naming the cell") {
    harness::traced_gil gil;
    gil_once_cell<int> cell{"self-referential value"};
    int runs = 0;
    std::function<int()> init = [&]() -> int {
        ++runs;
        return cell.get_or_init(gil.token(), init) + 1;  // asks for itself: would recurse forever
    };
    try {
        cell.get_or_init(gil.token(), init);
        FAIL("no error");
    } catch (const gilonce::reentrant_init_error& e) {
        CHECK(std::string(e.what()).find("'self-referential value'") != std::string::npos);
        CHECK(std::string(e.what()).find("re-entrant") != std::string::npos);
    }
    CHECK(runs == 1);
    CHECK(cell.get(gil.token()) == nullptr);
    // The failed attempt left no trace: this thread may initialize the cell now.
    CHECK(cell.get_or_init(gil.token(), [] { return 5; }) == 5);
}

TEST_CASE("re-entrant get_or_try_init raises RuntimeError naming the cell") {
    harness::traced_gil gil;
    gil_once_cell<int> cell{"recursive C API value"};
    std::function<std::optional<int>()> init = [&]() -> std::optional<int> {
        const int* inner = cell.get_or_try_init(gil.token(), init);
        if (inner == nullptr) return std::nullopt;  // propagate the RuntimeError
        return *inner + 1;
    };
    CHECK(cell.get_or_try_init(gil.token(), init) == nullptr);
    std::string error = fetch_python_error();
    CHECK(error.find("RuntimeError") == 0);
    CHECK(error.find("'recursive C API value'") != std::string::npos);
}

TEST_CASE("initializing a different cell from an initializer is not re-entrancy") {
    harness::traced_gil gil;
    gil_once_cell<int> inner{"inner"}, outer{"outer"};
    int value = outer.get_or_init(gil.token(), [&] { return inner.get_or_init(gil.token(), [] { return 20; }) + 1; });
    CHECK(value == 21);
}

TEST_CASE("py_ref owns exactly one reference") {
    harness::traced_gil gil;
    PyObject* obj = PyList_New(0);
    REQUIRE(Py_REFCNT(obj) == 1);
    {
        auto a = gilonce::py_ref::borrow(obj);
        CHECK(Py_REFCNT(obj) == 2);
        gilonce::py_ref b = std::move(a);
        CHECK(!a);
        CHECK(Py_REFCNT(obj) == 2);
        gilonce::py_ref& same = b;
        b = std::move(same);  // self-move keeps the reference
        CHECK(b.get() == obj);
        CHECK(Py_REFCNT(obj) == 2);
    }
    CHECK(Py_REFCNT(obj) == 1);
    Py_DECREF(obj);
}

TEST_CASE("a cell constructed with a null name uses the default name") {
    harness::traced_gil gil;
    gil_once_cell<int> cell{nullptr};
    CHECK(std::string(cell.name()) == "gilonce::gil_once_cell");
}
