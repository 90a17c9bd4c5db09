// gil_once_cell with two threads whose initializer releases the GIL: the race it is built
// for. Thread A starts initializing and releases the GIL (as an import would); thread B
// finds the cell empty, runs its own initializer and stores first. A's value loses.
//
//   step | thread A                               | thread B
//   -----+----------------------------------------+--------------------------------------
//   1    | holds GIL; cell empty; runs init       |
//   2    | init releases the GIL, waits for B     | takes GIL; cell empty; runs init
//   3    |                                        | stores its value; returns it
//   4    | takes GIL; cell full: A's value is     | (done)
//        | destroyed, A returns B's value         |
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <pybind11/embed.h>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"

namespace py = pybind11;

namespace {

// A fresh instance of a Python class: instances of classes defined in Python accept
// weak references, which prove whether an object was released.
py::object new_marker(const char* built_by) {
    py::dict ns;
    py::exec("class Marker:\n    pass\n", ns);
    py::object m = ns["Marker"]();
    m.attr("built_by") = built_by;
    return m;
}

// What each thread got back, and how many times an initializer ran.
template <class T>
struct race_result {
    int builds = 0;
    const T* seen_by_a = nullptr;
    const T* seen_by_b = nullptr;
};

// The two-thread race of the table above, for any stored type. `make(who)` builds a value
// on the current thread, with the GIL held.
template <class T, class Make>
race_result<T> race_two_initializers(gilonce::gil_once_cell<T>& cell, Make make) {
    race_result<T> result;
    harness::event a_released("A released the GIL inside its initializer");
    harness::event b_stored("B stored its value");
    harness::run_threads({
        {"A", [&](gilonce::gil_token gil) {
             result.seen_by_a = &cell.get_or_init(gil, [&] {
                 ++result.builds;
                 T value = make("A");
                 harness::without_gil([&] {
                     a_released.set();
                     b_stored.wait();
                 });
                 return value;
             });
         }},
        {"B", [&](gilonce::gil_token gil) {
             harness::without_gil([&] { a_released.wait(); });
             result.seen_by_b = &cell.get_or_init(gil, [&] {
                 ++result.builds;
                 return make("B");
             });
             b_stored.set();
         }},
    });
    return result;
}

// A C++ value that counts its live instances.
struct counted {
    static inline int alive = 0;
    std::string who;
    explicit counted(std::string w) : who(std::move(w)) { ++alive; }
    counted(counted&& o) noexcept : who(std::move(o.who)) { ++alive; }
    ~counted() { --alive; }
};

}  // namespace

TEST_CASE("two initializers that release the GIL: no deadlock, one Python object kept, the loser released") {
    gilonce::gil_once_cell<py::object> cell{"shared marker"};
    py::object weak_to_a;  // a weak reference to A's (losing) object
    auto make = [&](const char* who) {
        py::object m = new_marker(who);
        if (std::string(who) == "A") weak_to_a = py::module_::import("weakref").attr("ref")(m);
        return m;
    };
    auto result = race_two_initializers(cell, make);

    harness::traced_gil gil;
    CHECK(result.builds == 2);                       // the price of never blocking
    REQUIRE(result.seen_by_a == result.seen_by_b);   // both got the same stored value
    CHECK(result.seen_by_a == cell.get(gil.token()));
    CHECK(cell.get(gil.token())->attr("built_by").cast<std::string>() == "B");  // first completed write won
    CHECK(weak_to_a().is_none());                    // A's object was released at once
    py::object weak_to_b = py::module_::import("weakref").attr("ref")(*cell.get(gil.token()));
    (void)cell.take(gil.token(), gilonce::invalidates_references);
    CHECK(weak_to_b().is_none());                    // the cell held the only reference
    weak_to_a.release().dec_ref();                   // dropped here, while the GIL is held
}

TEST_CASE("two initializers that release the GIL: C API py_ref values, the loser decref'd") {
    gilonce::gil_once_cell<gilonce::py_ref> cell{"shared list"};
    PyObject* a_object = nullptr;
    auto make = [&](const char* who) {
        auto list = gilonce::py_ref::steal(Py_BuildValue("[s]", who));
        if (std::string(who) == "A") {
            a_object = list.get();
            Py_INCREF(a_object);  // keep it alive to read its refcount afterwards
        }
        return list;
    };
    auto result = race_two_initializers(cell, make);

    harness::traced_gil gil;
    CHECK(result.builds == 2);
    REQUIRE(result.seen_by_a == result.seen_by_b);
    REQUIRE(a_object != nullptr);
    CHECK(Py_REFCNT(a_object) == 1);  // only our extra reference: the cell dropped A's
    CHECK(cell.get(gil.token())->get() != a_object);
    Py_DECREF(a_object);
    (void)cell.take(gil.token(), gilonce::invalidates_references);
}

TEST_CASE("two initializers that release the GIL: C++ values, the loser destroyed") {
    gilonce::gil_once_cell<counted> cell{"shared value"};
    auto result = race_two_initializers(cell, [](const char* who) { return counted(who); });
    harness::traced_gil gil;
    CHECK(result.builds == 2);
    REQUIRE(result.seen_by_a == result.seen_by_b);
    CHECK(result.seen_by_a->who == "B");
    CHECK(counted::alive == 1);
    (void)cell.take(gil.token(), gilonce::invalidates_references);
    CHECK(counted::alive == 0);
}

TEST_CASE("many threads racing on one cell all see the first stored value") {
    gilonce::gil_once_cell<py::object> cell{"contended"};
    constexpr int n = 8;
    std::vector<const py::object*> seen(n, nullptr);
    std::vector<harness::scenario_thread> threads;
    int builds = 0;
    for (int i = 0; i < n; ++i) {
        threads.push_back({"T" + std::to_string(i), [&, i](gilonce::gil_token gil) {
                               seen[i] = &cell.get_or_init(gil, [&] {
                                   ++builds;
                                   py::object v = py::int_(i);
                                   // Release the GIL so other threads can interleave.
                                   harness::without_gil([] {});
                                   return v;
                               });
                           }});
    }
    harness::run_threads(threads);
    harness::traced_gil gil;
    CHECK(builds >= 1);
    for (int i = 0; i < n; ++i) CHECK(seen[i] == cell.get(gil.token()));
    (void)cell.take(gil.token(), gilonce::invalidates_references);
}
