// Leaks counted, not guessed: under a debug interpreter (the pydebug preset, python3.11d)
// the total reference count must come back to its baseline, exactly, after every race,
// failure and retry of gil_once_cell and lazy_type (regrtest -R style: harness/refcount.hpp).
// Deliberate leaks show the count is not vacuous: it sees exactly one reference per leaked
// value. Under a release interpreter every test says it did not run and ctest shows it skipped.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <pybind11/embed.h>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/refcount.hpp"
#include "harness/threads.hpp"

namespace py = pybind11;
using gilonce::gil_token;
using gilonce::py_ref;

namespace {

// Without a total, a test stops here and says so (WARN is printed even when a test passes).
bool refs_counted(gil_token gil) {
    if (harness::refs_counted(gil)) return true;
    WARN(harness::refs_not_counted);
    return false;
}

// What every sound round must give: a zero for each batch.
std::vector<Py_ssize_t> zeros(harness::batch_plan plan = {}) { return std::vector<Py_ssize_t>(plan.batches, 0); }
std::vector<Py_ssize_t> each_batch(Py_ssize_t per_round, harness::batch_plan plan = {}) {
    return std::vector<Py_ssize_t>(plan.batches, per_round * plan.rounds);
}

// The name of the Python exception set now, and clears it ("" if none).
std::string take_error() {
    if (!PyErr_Occurred()) return "";
    py::error_already_set e;
    return py::str(e.type().attr("__name__")).cast<std::string>();
}

// ---------------------------------------------------------------------------------------
// gil_once_cell: the two-thread race of test_gil_once_cell_threads.cpp, on a fresh cell.

// A computes its value, releases the GIL and waits until B has stored its own: A's value
// loses. Returns how many initializers ran: 2, or the round did not race.
template <class T, class Make>
int race(gilonce::gil_once_cell<T>& cell, Make make) {
    harness::event a_released("A released the GIL inside its initializer"), b_stored("B stored its value");
    int builds = 0;
    harness::run_threads({
        {"A", [&](gil_token gil) {
             cell.get_or_init(gil, [&] {
                 ++builds;
                 T value = make();
                 harness::without_gil([&] {
                     a_released.set();
                     b_stored.wait();
                 });
                 return value;
             });
         }},
        {"B", [&](gil_token gil) {
             harness::without_gil([&] { a_released.wait(); });
             cell.get_or_init(gil, [&] {
                 ++builds;
                 return make();
             });
             b_stored.set();
         }},
    });
    return builds;
}

}  // namespace

TEST_CASE("gil_once_cell race: the losing py_ref and pybind11::object are released, the stored one with the cell") {
    harness::traced_gil gil;
    if (!refs_counted(gil.token())) return;
    // Values that own other objects: a leaked one would leave several references behind.
    // Each cell is destroyed at the end of its round, with the GIL held.
    auto py_ref_round = [](gil_token) {
        gilonce::gil_once_cell<py_ref> cell{"py_ref race"};
        REQUIRE(race(cell, [] { return py_ref::steal(Py_BuildValue("[{si}]", "who", 1)); }) == 2);
    };
    auto object_round = [](gil_token) {
        gilonce::gil_once_cell<py::object> cell{"object race"};
        REQUIRE(race(cell, [] { return py::object(py::make_tuple(py::dict(), py::str("v"))); }) == 2);
    };
    CHECK(harness::batch_deltas(gil.token(), py_ref_round) == zeros());
    CHECK(harness::batch_deltas(gil.token(), object_round) == zeros());
}

TEST_CASE("gil_once_cell<PyObject*> race: the count sees the loser, not owned by the cell, left: one reference per round") {
    // As documented, not a bug: a cell never decrefs a raw pointer, so a losing one is the
    // caller's to release. Here nobody does, and the count must show exactly that.
    harness::traced_gil gil;
    if (!refs_counted(gil.token())) return;
    auto round = [](gil_token g) {
        gilonce::gil_once_cell<PyObject*> cell{"raw race"};
        // A fresh int (not a cached small one) owns nothing else: one reference each.
        REQUIRE(race(cell, [] { return PyLong_FromLong(100000); }) == 2);
        Py_DECREF(*cell.take(g, gilonce::invalidates_references));  // the winner: released
    };
    CHECK(harness::batch_deltas(gil.token(), round) == each_batch(1));
}

TEST_CASE("gil_once_cell: failing initializers release what they made, and the retry's value goes with the cell") {
    harness::traced_gil gil;
    if (!refs_counted(gil.token())) return;
    auto fresh = [] { return py_ref::steal(Py_BuildValue("[{si}]", "who", 1)); };
    auto round = [&](gil_token g) {
        gilonce::gil_once_cell<py_ref> cell{"flaky"};
        using maybe = std::optional<py_ref>;
        // A Python error.
        REQUIRE(cell.get_or_try_init(g, []() -> maybe {
                    PyErr_SetString(PyExc_ValueError, "not yet");
                    return std::nullopt;
                }) == nullptr);
        REQUIRE(take_error() == "ValueError");
        // A value returned with an exception set: the value is released, a SystemError raised.
        REQUIRE(cell.get_or_try_init(g, [&]() -> maybe {
                    PyErr_SetString(PyExc_ValueError, "half done");
                    return fresh();
                }) == nullptr);
        REQUIRE(take_error() == "SystemError");
        // A C++ exception after a value was made.
        REQUIRE_THROWS_AS(cell.get_or_init(g, [&]() -> py_ref {
                              py_ref made = fresh();
                              throw std::runtime_error("no");
                          }),
                          std::runtime_error);
        // An empty handle: its Python error stays set.
        REQUIRE_THROWS_AS(cell.get_or_init(g, [] { return py_ref::steal(PyLong_FromString("x", nullptr, 10)); }),
                          gilonce::empty_value_error);
        REQUIRE(take_error() == "ValueError");
        // Re-entry, after the outer initializer has made a value.
        REQUIRE(cell.get_or_try_init(g, [&]() -> maybe {
                    py_ref made = fresh();
                    if (cell.get_or_try_init(g, fresh) == nullptr) return std::nullopt;
                    return made;
                }) == nullptr);
        REQUIRE(take_error() == "RuntimeError");
        REQUIRE(cell.get(g) == nullptr);
        REQUIRE(cell.get_or_init(g, fresh).get() != nullptr);  // the retry
    };
    CHECK(harness::batch_deltas(gil.token(), round) == zeros());
}

// ---------------------------------------------------------------------------------------
// lazy_type: N class attributes, half of them instances of the type itself.

namespace {

const char* const attribute_names[16] = {"A0", "A1", "A2",  "A3",  "A4",  "A5",  "A6",  "A7",
                                         "A8", "A9", "A10", "A11", "A12", "A13", "A14", "A15"};
// Collectable (see harness::collectable_slots): each round's type must be freed.
PyType_Spec thing_spec = {"refcount.Thing", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                          harness::collectable_slots};

enum class factories { sound, leak_one_each };

// One round: a lazy_type with n class attributes is made, completed, checked and destroyed.
// Sound factories make even attributes instances of the type (from the early type) and odd
// ones fresh tuples owning a list. Leaky ones return a small int (cached by CPython, so it
// owns nothing and outlives the round) and keep one reference too many: one per attribute.
// With `race`, threads A and B both compute the attributes (A pauses in its first factory
// until B has published), so one complete set loses. Returns how many times factories ran.
int lazy_type_round(gil_token gil, int n, bool race, factories kind) {
    std::unique_ptr<gilonce::lazy_type> lazy;
    harness::event a_released("A released the GIL in its first factory"), b_done("B got the complete type");
    int calls = 0;
    std::vector<gilonce::class_attribute> attributes;
    for (int i = 0; i < n; ++i) {
        attributes.push_back({attribute_names[i], [&, i](gil_token g) -> PyObject* {
                                  ++calls;
                                  if (race && i == 0 && std::string(harness::thread_name()) == "A")
                                      harness::without_gil([&] {
                                          a_released.set();
                                          b_done.wait();
                                      });
                                  if (kind == factories::leak_one_each) return Py_XNewRef(PyLong_FromLong(i));
                                  if (i % 2 == 1) return Py_BuildValue("(i[])", i);
                                  PyTypeObject* early = lazy->get(g);
                                  return early ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(early)) : nullptr;
                              }});
    }
    lazy = std::make_unique<gilonce::lazy_type>(&thing_spec, std::move(attributes));
    PyTypeObject* seen[2] = {nullptr, nullptr};
    if (race) {
        harness::run_threads({
            {"A", [&](gil_token g) { seen[0] = lazy->get(g); }},
            {"B", [&](gil_token g) {
                 harness::without_gil([&] { a_released.wait(); });
                 seen[1] = lazy->get(g);
                 b_done.set();
             }},
        });
        REQUIRE(seen[0] == seen[1]);
    } else {
        seen[0] = lazy->get(gil);
    }
    REQUIRE(seen[0] != nullptr);
    REQUIRE(lazy->is_complete(gil));
    auto* type = reinterpret_cast<PyObject*>(seen[0]);
    for (int i = 0; i < n; ++i) {
        py_ref value = py_ref::steal(PyObject_GetAttrString(type, attribute_names[i]));
        REQUIRE(value);
        if (kind == factories::sound && i % 2 == 0) REQUIRE(Py_TYPE(value.get()) == seen[0]);
    }
    return calls;  // `lazy` is destroyed here, with the GIL held: its type goes to the collector
}

}  // namespace

TEST_CASE("lazy_type: 1, 4 and 16 class attributes, half of them its own instances, made and destroyed, nothing left") {
    harness::traced_gil gil;
    if (!refs_counted(gil.token())) return;
    for (int n : {1, 4, 16}) {
        INFO(n << " class attributes");
        auto round = [n](gil_token g) { REQUIRE(lazy_type_round(g, n, false, factories::sound) == n); };
        CHECK(harness::batch_deltas(gil.token(), round) == zeros());
    }
}

TEST_CASE("lazy_type race: two threads compute the class attributes, the losing set is released") {
    harness::traced_gil gil;
    if (!refs_counted(gil.token())) return;
    for (int n : {1, 4, 16}) {
        INFO(n << " class attributes");
        auto round = [n](gil_token g) { REQUIRE(lazy_type_round(g, n, true, factories::sound) == 2 * n); };
        CHECK(harness::batch_deltas(gil.token(), round) == zeros());
    }
}

TEST_CASE("lazy_type: the count sees a factory keeping one reference too many, N per round (2N when two threads compute)") {
    // The leak PyO3 had: one reference per class attribute. The count must see each one.
    harness::traced_gil gil;
    if (!refs_counted(gil.token())) return;
    for (int n : {1, 4, 16}) {
        INFO(n << " class attributes");
        auto alone = [n](gil_token g) { REQUIRE(lazy_type_round(g, n, false, factories::leak_one_each) == n); };
        auto raced = [n](gil_token g) { REQUIRE(lazy_type_round(g, n, true, factories::leak_one_each) == 2 * n); };
        CHECK(harness::batch_deltas(gil.token(), alone) == each_batch(n));
        CHECK(harness::batch_deltas(gil.token(), raced) == each_batch(2 * n));
    }
}

TEST_CASE("lazy_type: failing class attribute and bases factories, then a retry: nothing left") {
    harness::traced_gil gil;
    if (!refs_counted(gil.token())) return;
    for (int n : {1, 4, 16}) {
        INFO(n << " class attributes");
        auto round = [n](gil_token g) {
            std::unique_ptr<gilonce::lazy_type> lazy;
            int bases_calls = 0, last_calls = 0;
            std::vector<gilonce::class_attribute> attributes;
            for (int i = 0; i < n; ++i) {
                // The last one fails four ways before it works; the others (instances of the
                // type among them) are computed each time and must be released each time.
                attributes.push_back({attribute_names[i], [&, i](gil_token g2) -> PyObject* {
                                          if (i == n - 1) {
                                              switch (++last_calls) {
                                                  case 1: PyErr_SetString(PyExc_ValueError, "not yet"); return nullptr;
                                                  case 2: throw std::runtime_error("still not");
                                                  case 3:
                                                      PyErr_SetString(PyExc_ValueError, "half done");
                                                      return Py_BuildValue("(i[])", i);
                                                  case 4: PyErr_SetNone(PyExc_KeyboardInterrupt); return nullptr;
                                              }
                                          }
                                          if (i % 2 == 1) return Py_BuildValue("(i[])", i);
                                          PyTypeObject* early = lazy->get(g2);
                                          return early ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(early)) : nullptr;
                                      }});
            }
            lazy = std::make_unique<gilonce::lazy_type>(&thing_spec, std::move(attributes), [&](gil_token) -> PyObject* {
                if (++bases_calls == 1) {
                    PyErr_SetString(PyExc_ValueError, "no bases yet");
                    return nullptr;
                }
                return Py_NewRef(reinterpret_cast<PyObject*>(&PyBaseObject_Type));
            });
            for (const char* expected : {"RuntimeError", "RuntimeError", "RuntimeError", "SystemError", "KeyboardInterrupt"}) {
                REQUIRE(lazy->get(g) == nullptr);
                REQUIRE(take_error() == expected);
                REQUIRE_FALSE(lazy->is_complete(g));
            }
            REQUIRE(lazy->get(g) != nullptr);
            REQUIRE(bases_calls == 2);
            REQUIRE(last_calls == 5);
        };
        CHECK(harness::batch_deltas(gil.token(), round) == zeros());
    }
}

TEST_CASE("lazy_type: a type whose class attribute is its own instance is freed only if the collector tracks instances") {
    // CPython, not gilonce: Thing.SELF = Thing() is a cycle through the instance, and an
    // instance the collector does not track (no Py_TPFLAGS_HAVE_GC) hides its reference to
    // the type, so the type and all it owns are never freed: here, every round. A lazy_type
    // in module state, released in m_clear, needs a collectable type (collectable_slots).
    harness::traced_gil gil;
    if (!refs_counted(gil.token())) return;
    static PyType_Slot untracked_slots[] = {{Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)}, {0, nullptr}};
    static PyType_Spec untracked_spec = {"refcount.Untracked", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, untracked_slots};
    auto round = [](gil_token g) {
        std::unique_ptr<gilonce::lazy_type> lazy;
        lazy = std::make_unique<gilonce::lazy_type>(&untracked_spec, std::vector<gilonce::class_attribute>{
            {"SELF", [&lazy](gil_token g2) -> PyObject* {
                 PyTypeObject* early = lazy->get(g2);
                 return early ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(early)) : nullptr;
             }}});
        REQUIRE(lazy->get(g) != nullptr);
    };
    const std::vector<Py_ssize_t> deltas = harness::batch_deltas(gil.token(), round);
    CHECK(deltas.front() >= harness::batch_plan{}.rounds);  // at least the type, each round
    CHECK(deltas == std::vector<Py_ssize_t>(deltas.size(), deltas.front()));  // the same, each batch
}
