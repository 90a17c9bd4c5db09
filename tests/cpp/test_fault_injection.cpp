// Allocation failures along the initialization paths, the way CPython's own tests inject
// them: a PyMem_SetAllocator hook makes the Nth allocation (PYMEM_DOMAIN_MEM and _OBJ) fail,
// for every N until an initialization completes without reaching the Nth. Each time the
// caller must get an error (not a crash), nothing may be published, and the next call must
// succeed; under a debug interpreter (pydebug), nothing may leak either: the total reference
// count is back at its baseline after each point. Runs in a forked child: the hook is
// process-wide. The cells' own bookkeeping allocates with operator new, which this binary
// (fault_injection_tests, on its own for that reason) replaces so that the Nth C++
// allocation of one thread can fail as well.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <gilonce/per_interpreter.hpp>

#include <cstdlib>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/refcount.hpp"
#include "harness/watchdog.hpp"

using harness::scenario_result;

// ---- operator new, replaced: the Nth C++ allocation of the armed thread fails ------------
// Every form is replaced (on malloc and free), so that a sanitizer's own new and delete never
// see a block of ours. None is inlined: GCC 12 at -O3, seeing malloc or free inlined on one
// side of a pair, warns of a mismatch (-Wmismatched-new-delete) that the replacement makes right.
thread_local long cxx_allocations_until_failure = -1;  // -1: never fail; per thread

static bool this_cxx_allocation_fails() noexcept {
    if (cxx_allocations_until_failure < 0) return false;
    return cxx_allocations_until_failure-- == 0;
}
[[gnu::noinline]] void* operator new(std::size_t n) {
    void* p = this_cxx_allocation_fails() ? nullptr : std::malloc(n != 0 ? n : 1);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}
[[gnu::noinline]] void* operator new[](std::size_t n) { return ::operator new(n); }
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return this_cxx_allocation_fails() ? nullptr : std::malloc(n != 0 ? n : 1);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept { return ::operator new(n, tag); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

PyMemAllocatorEx original_mem, original_obj;
long allocations_until_failure = -1;  // -1: never fail

bool this_allocation_fails() {
    if (allocations_until_failure < 0) return false;
    return allocations_until_failure-- == 0;
}
void* failing_malloc(void* ctx, size_t n) {
    auto* real = static_cast<PyMemAllocatorEx*>(ctx);
    return this_allocation_fails() ? nullptr : real->malloc(real->ctx, n);
}
void* failing_calloc(void* ctx, size_t count, size_t size) {
    auto* real = static_cast<PyMemAllocatorEx*>(ctx);
    return this_allocation_fails() ? nullptr : real->calloc(real->ctx, count, size);
}
void* failing_realloc(void* ctx, void* p, size_t n) {
    auto* real = static_cast<PyMemAllocatorEx*>(ctx);
    return this_allocation_fails() ? nullptr : real->realloc(real->ctx, p, n);
}
void passing_free(void* ctx, void* p) {
    auto* real = static_cast<PyMemAllocatorEx*>(ctx);
    real->free(real->ctx, p);
}

void install_failing_allocators() {
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &original_mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &original_obj);
    static PyMemAllocatorEx mem{&original_mem, failing_malloc, failing_calloc, failing_realloc, passing_free};
    static PyMemAllocatorEx obj{&original_obj, failing_malloc, failing_calloc, failing_realloc, passing_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
}

// The error a failed initialization must leave: MemoryError, or a clear error of gilonce's
// that names what failed. (CPython 3.11's PyType_FromSpec returns null without an exception
// when one of its own allocations fails; the cell reports that as a SystemError naming it.)
std::string unexpected_error() {
    if (!PyErr_Occurred()) return "no exception set";
    if (PyErr_ExceptionMatches(PyExc_MemoryError) || PyErr_ExceptionMatches(PyExc_SystemError) ||
        PyErr_ExceptionMatches(PyExc_RuntimeError))
        return {};
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    std::string name = type ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "?";
    PyErr_Restore(type, value, tb);
    return "unexpected " + name;
}

PyType_Slot plain_slots[] = {{0, nullptr}};

// Where the interpreter counts references, the references each injection point left behind
// (its failure, retry and clean-up), measured with no allocation failing.
class ref_balance {
public:
    explicit ref_balance(gilonce::gil_token gil) : gil_(gil), counted_(harness::refs_counted(gil)) {
        if (counted_) last_ = harness::settled_total_refs(gil_);
    }
    // References left since the previous call (always 0 when not counted).
    Py_ssize_t left() {
        if (!counted_) return 0;
        const Py_ssize_t now = harness::settled_total_refs(gil_);
        const Py_ssize_t delta = now - last_;
        last_ = now;
        return delta;
    }
    std::string verdict() const {
        return counted_ ? "; references balanced after each" : "; references not counted (a release interpreter)";
    }

private:
    gilonce::gil_token gil_;
    bool counted_;
    Py_ssize_t last_ = 0;
};

// Each injection point runs in a contextvars.Context of its own, as a new thread or task
// would, made and dropped while no allocation fails. Why: when the allocation of its token
// fails, CPython's PyContextVar_Set (3.11, and main as of 2026) sets the variable anyway and
// returns NULL, so the record of a computation that never started stays in the context;
// and when PyContextVar_Reset cannot allocate, the record of an ended one stays. Both are
// harmless (their entries are no longer live: see gilonce/detail/context_record.hpp) and
// are freed with the context; anything else left behind is still counted.
class fresh_context {
public:
    fresh_context() : context_(PyContext_New()) {
        if (context_ == nullptr || PyContext_Enter(context_) < 0) throw std::runtime_error("cannot enter a new context");
    }
    ~fresh_context() {
        if (PyContext_Exit(context_) < 0) PyErr_Clear();
        Py_DECREF(context_);
    }
    fresh_context(const fresh_context&) = delete;
    fresh_context& operator=(const fresh_context&) = delete;

private:
    PyObject* context_;
};

}  // namespace

TEST_CASE("fault injection: every failed allocation on the cell's path is an error, nothing stored, the retry works") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        install_failing_allocators();
        auto gil = gilonce::gil_token::assume_held();
        {  // a first round creates what lives on (the record's ContextVar) before counting
            gilonce::gil_once_cell<gilonce::py_ref> warm{"warm-up"};
            (void)warm.get_or_init(gil, [] { return gilonce::py_ref::steal(PyList_New(3)); });
        }
        ref_balance refs(gil);
        int injected = 0;
        for (long n = 0;; ++n) {
            if (Py_ssize_t left = refs.left())
                return scenario_result::fail("allocation " + std::to_string(n - 1) + ": " + std::to_string(left) + " references left");
            fresh_context context;
            gilonce::gil_once_cell<gilonce::py_ref> cell{"fault probe"};
            allocations_until_failure = n;
            const gilonce::py_ref* value = cell.get_or_try_init(gil, []() -> std::optional<gilonce::py_ref> {
                gilonce::py_ref made = gilonce::py_ref::steal(PyList_New(3));
                if (!made) return std::nullopt;
                return made;
            });
            const bool reached = allocations_until_failure < 0;  // the Nth allocation happened
            allocations_until_failure = -1;
            if (!reached) {
                if (value == nullptr) return scenario_result::fail("failed although no allocation failed");
                return scenario_result::pass("allocation failures injected at " + std::to_string(injected) +
                                             " points; each an error, nothing stored, retry ok" + refs.verdict());
            }
            ++injected;
            if (value != nullptr) continue;  // the failure was absorbed (a free list): still sound
            if (std::string why = unexpected_error(); !why.empty())
                return scenario_result::fail("allocation " + std::to_string(n) + ": " + why);
            PyErr_Clear();
            if (cell.get(gil) != nullptr) return scenario_result::fail("stored after a failure");
            if (cell.get_or_try_init(gil, [] { return std::optional<gilonce::py_ref>(gilonce::py_ref::steal(PyLong_FromLong(1))); }) == nullptr)
                return scenario_result::fail("the retry after allocation " + std::to_string(n) + " failed");
        }
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("each an error, nothing stored, retry ok") != std::string::npos);
}

TEST_CASE("fault injection: every failed allocation on the two-stage type's path is an error, nothing published, the retry works") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        install_failing_allocators();
        auto gil = gilonce::gil_token::assume_held();
        // Types keep their spec's name: the names and specs outlive every type made here.
        // Collectable (harness::collectable_slots): ITSELF makes each type a cycle that only
        // the collector frees, and each must be freed for its references to be counted.
        static std::vector<std::unique_ptr<std::string>> names;
        static std::vector<std::unique_ptr<PyType_Spec>> specs;
        gilonce::lazy_type* type = nullptr;
        auto make_type = [&type](const std::string& name) {
            names.push_back(std::make_unique<std::string>(name));
            specs.push_back(std::make_unique<PyType_Spec>(PyType_Spec{names.back()->c_str(), static_cast<int>(sizeof(PyObject)),
                                                                      0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                                                                      harness::collectable_slots}));
            type = new gilonce::lazy_type(specs.back().get(), {
                {"ITSELF", [&type](gilonce::gil_token g) -> PyObject* {
                     PyTypeObject* early = type->get(g);
                     return early ? PyType_GenericNew(early, nullptr, nullptr) : nullptr;
                 }},
                {"LIST", [](gilonce::gil_token) { return PyList_New(2); }},
            });
        };
        make_type("faulttest.Warm");  // what lives on is created before counting
        if (type->get(gil) == nullptr) return scenario_result::fail("the warm-up failed");
        delete type;
        ref_balance refs(gil);
        int injected = 0;
        for (long n = 0;; ++n) {
            if (Py_ssize_t left = refs.left())
                return scenario_result::fail("allocation " + std::to_string(n - 1) + ": " + std::to_string(left) + " references left");
            fresh_context context;
            make_type("faulttest.T" + std::to_string(n));
            allocations_until_failure = n;
            PyTypeObject* got = type->get(gil);
            const bool reached = allocations_until_failure < 0;
            allocations_until_failure = -1;
            if (!reached) {
                if (got == nullptr) return scenario_result::fail("failed although no allocation failed");
                delete type;
                return scenario_result::pass("allocation failures injected at " + std::to_string(injected) +
                                             " points; each an error, nothing published, retry ok" + refs.verdict());
            }
            ++injected;
            if (got == nullptr) {
                if (std::string why = unexpected_error(); !why.empty())
                    return scenario_result::fail("allocation " + std::to_string(n) + ": " + why);
                PyErr_Clear();
                if (type->is_complete(gil)) return scenario_result::fail("published after a failure");
                got = type->get(gil);
                if (got == nullptr) return scenario_result::fail("the retry after allocation " + std::to_string(n) + " failed");
            }
            if (!PyObject_HasAttrString(reinterpret_cast<PyObject*>(got), "LIST"))
                return scenario_result::fail("a type without its class attributes after allocation " + std::to_string(n));
            delete type;
        }
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("each an error, nothing published, retry ok") != std::string::npos);
}

TEST_CASE("interrupts: a KeyboardInterrupt raised while a factory runs Python code stays a KeyboardInterrupt") {
    // Ctrl-C during a lazy initialization: the signal is handled in the factory's Python
    // code (on the main thread, where Python runs signal handlers). Wrapping it in a
    // RuntimeError would hide it from `except KeyboardInterrupt`.
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        static PyType_Spec spec = {"faulttest.Interrupted", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
        static bool interrupt = true;
        static gilonce::lazy_type type(&spec, {{"SLOW", [](gilonce::gil_token) -> PyObject* {
            if (interrupt) PyErr_SetInterrupt();  // as if SIGINT arrived now
            PyObject* globals = PyDict_New();
            PyObject* result = globals ? PyRun_String("total = sum(range(1000))", Py_file_input, globals, globals) : nullptr;
            Py_XDECREF(globals);
            if (result == nullptr) return nullptr;  // the handler raised KeyboardInterrupt here
            Py_DECREF(result);
            return PyLong_FromLong(1);
        }}});
        auto gil = gilonce::gil_token::assume_held();
        if (type.get(gil) != nullptr) return scenario_result::fail("no interrupt was seen");
        if (!PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
            return scenario_result::fail("the interrupt was not a KeyboardInterrupt any more");
        PyErr_Clear();
        if (type.is_complete(gil)) return scenario_result::fail("published after the interrupt");
        interrupt = false;
        if (type.get(gil) == nullptr) return scenario_result::fail("the retry failed");
        return scenario_result::pass("KeyboardInterrupt kept; nothing published; the retry computed the type");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail == "KeyboardInterrupt kept; nothing published; the retry computed the type");
}

// ---- the two allocators, as one kind of injection point --------------------------------

namespace {

// Arms the failure of the Nth allocation of one kind; `disarm` says whether it happened.
struct injector {
    const char* kind;
    void (*arm)(long n);
    bool (*disarm)();
};
const injector python_allocations{"Python allocation", [](long n) { allocations_until_failure = n; }, [] {
                                      const bool reached = allocations_until_failure < 0;
                                      allocations_until_failure = -1;
                                      return reached;
                                  }};
const injector cxx_allocations{"C++ allocation", [](long n) { cxx_allocations_until_failure = n; }, [] {
                                   const bool reached = cxx_allocations_until_failure < 0;
                                   cxx_allocations_until_failure = -1;
                                   return reached;
                               }};

std::optional<gilonce::py_ref> make_list() {
    gilonce::py_ref made = gilonce::py_ref::steal(PyList_New(3));
    if (!made) return std::nullopt;
    return made;
}

}  // namespace

TEST_CASE("fault injection: every failed C++ allocation on a cell's path, inside another cell's initializer, is a Python error, the retry works") {
    // The record of a computation is a heap node; inside another initializer, the record
    // already holds the outer computation's entry when the inner one's node is allocated.
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        install_failing_allocators();
        auto gil = gilonce::gil_token::assume_held();
        {
            gilonce::gil_once_cell<gilonce::py_ref> warm{"warm-up"};
            (void)warm.get_or_init(gil, [] { return gilonce::py_ref::steal(PyList_New(3)); });
        }
        ref_balance refs(gil);
        int injected = 0;
        for (long n = 0;; ++n) {
            if (Py_ssize_t left = refs.left())
                return scenario_result::fail("allocation " + std::to_string(n - 1) + ": " + std::to_string(left) + " references left");
            fresh_context context;
            gilonce::gil_once_cell<gilonce::py_ref> outer{"outer probe"};
            gilonce::gil_once_cell<gilonce::py_ref> inner{"C++ fault probe"};
            std::string problem;
            bool reached = false;
            const gilonce::py_ref* done = outer.get_or_try_init(gil, [&]() -> std::optional<gilonce::py_ref> {
                const gilonce::py_ref* value = nullptr;
                cxx_allocations.arm(n);
                try {
                    value = inner.get_or_try_init(gil, make_list);
                } catch (const std::exception& error) {
                    problem = std::string("a C++ exception escaped get_or_try_init: ") + error.what();
                }
                reached = cxx_allocations.disarm();
                if (problem.empty() && value == nullptr) {
                    if (!reached) problem = "failed although no allocation failed";
                    else if (std::string why = unexpected_error(); !why.empty()) problem = why;
                    PyErr_Clear();
                    if (problem.empty() && inner.get(gil) != nullptr) problem = "stored after a failure";
                    if (problem.empty() && inner.get_or_try_init(gil, make_list) == nullptr) problem = "the retry failed";
                }
                PyErr_Clear();
                return gilonce::py_ref::steal(PyLong_FromLong(1));
            });
            if (done == nullptr && problem.empty()) problem = "the outer cell failed";
            PyErr_Clear();
            if (!problem.empty()) return scenario_result::fail("C++ allocation " + std::to_string(n) + ": " + problem);
            if (!reached)
                return scenario_result::pass("C++ allocation failures injected at " + std::to_string(injected) +
                                             " points; each a Python error, nothing stored, retry ok" + refs.verdict());
            ++injected;
        }
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("each a Python error, nothing stored, retry ok") != std::string::npos);
}

// ---- per_interpreter_cell: its first use in an interpreter --------------------------------
// The first use makes the interpreter's table (a key, a capsule, its insertion into the
// interpreter's dict; the table itself with operator new), the cell's entry and its map
// node, the cell's own record, and the fast slot's record. Each point is a first use: the
// table is dropped before it, as the interpreter's end drops it.

namespace {

// Requires: the GIL is held and no allocation fails. Removes gilonce's per-interpreter
// tables from this interpreter's dict: their capsules destroy them, releasing their values.
void drop_per_interpreter_tables() {
    PyObject* dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    PyObject* keys = dict ? PyDict_Keys(dict) : nullptr;
    if (keys == nullptr) throw std::runtime_error("cannot read the interpreter's dict");
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); ++i) {
        PyObject* key = PyList_GET_ITEM(keys, i);
        const char* text = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : nullptr;
        if (text != nullptr && std::string(text).rfind("gilonce.per_interpreter/", 0) == 0 && PyDict_DelItem(dict, key) < 0)
            PyErr_Clear();
    }
    Py_DECREF(keys);
    PyErr_Clear();
}

enum class flavour { c_api, cpp };

// One first use of a fresh cell, with allocation `n` of one kind failing. Returns "" when
// the point is sound, else what went wrong; `reached` tells whether the Nth allocation happened.
std::string per_interpreter_point(gilonce::gil_token gil, const injector& faults, flavour how, long n, bool& reached) {
    // Never destroyed: the interpreter's table may keep a pointer to it (static storage).
    auto* cell = new gilonce::per_interpreter_cell<gilonce::py_ref>("per-interpreter fault probe");
    const gilonce::py_ref* value = nullptr;
    std::string thrown;
    faults.arm(n);
    try {
        if (how == flavour::c_api)
            value = cell->get_or_try_init(gil, make_list);
        else
            value = &cell->get_or_init(gil, [] { return make_list().value_or(gilonce::py_ref()); });
    } catch (const std::exception& error) {
        thrown = error.what();
    }
    reached = faults.disarm();
    if (!reached) return value != nullptr ? "" : "failed although no allocation failed";
    if (value != nullptr) return "";  // the failure was absorbed (a free list): still sound
    if (how == flavour::c_api && !thrown.empty()) return "a C++ exception escaped get_or_try_init: " + thrown;
    if (how == flavour::cpp) {
        if (thrown.find("'per-interpreter fault probe'") == std::string::npos && thrown != std::bad_alloc().what())
            return "a C++ error that neither names the cell nor is std::bad_alloc: " + thrown;
    } else if (std::string why = unexpected_error(); !why.empty()) {
        return why;
    }
    PyErr_Clear();
    if (cell->get(gil) != nullptr) return "stored after a failure";
    if (PyErr_Occurred()) return "get failed after the failure";
    const gilonce::py_ref* retried = cell->get_or_try_init(gil, make_list);
    if (retried == nullptr) return "the retry failed";
    if (cell->get(gil) != retried) return "the retry's value is not the one stored";
    return "";
}

scenario_result per_interpreter_points(const injector& faults) {
    PyGILState_Ensure();
    install_failing_allocators();
    auto gil = gilonce::gil_token::assume_held();
    {  // what lives on (the record's ContextVar) is created before counting
        static gilonce::per_interpreter_cell<gilonce::py_ref> warm{"warm-up"};
        (void)warm.get_or_init(gil, [] { return gilonce::py_ref::steal(PyList_New(3)); });
        drop_per_interpreter_tables();
    }
    ref_balance refs(gil);
    std::string report;
    for (flavour how : {flavour::c_api, flavour::cpp}) {
        const std::string label = std::string(how == flavour::c_api ? "get_or_try_init" : "get_or_init") + ", " + faults.kind;
        int injected = 0;
        for (long n = 0;; ++n) {
            drop_per_interpreter_tables();
            if (Py_ssize_t left = refs.left())
                return scenario_result::fail(label + " " + std::to_string(n - 1) + ": " + std::to_string(left) + " references left");
            bool reached = false;
            std::string problem;
            {
                fresh_context context;
                problem = per_interpreter_point(gil, faults, how, n, reached);
            }
            if (!problem.empty()) return scenario_result::fail(label + " " + std::to_string(n) + ": " + problem);
            if (!reached) break;
            ++injected;
        }
        report += (report.empty() ? "" : "; ") + label + ": " + std::to_string(injected) + " points";
    }
    return scenario_result::pass("failures injected at " + report + "; each an error, nothing stored, retry ok" + refs.verdict());
}

}  // namespace

TEST_CASE("fault injection: every failed allocation on a per_interpreter_cell's first use in an interpreter is an error, nothing stored, the retry works") {
    auto out = harness::run_in_child([] { return per_interpreter_points(python_allocations); });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("each an error, nothing stored, retry ok") != std::string::npos);
}

TEST_CASE("fault injection: every failed C++ allocation on a per_interpreter_cell's first use (table, entry, records) is an error, the retry works") {
    auto out = harness::run_in_child([] { return per_interpreter_points(cxx_allocations); });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("each an error, nothing stored, retry ok") != std::string::npos);
}

// ---- a module-state lazy_type: its first get, with the module argument --------------------
// The type is made with PyType_FromModuleAndSpec and holds its module; the module's state
// holds the type (m_traverse / m_clear break the cycle). A fresh module per point.

namespace {

struct fault_state {
    bool constructed;  // false until exec ran: the state memory starts zeroed
    gilonce::lazy_type color;
};
PyType_Spec fault_color_spec = {"faultstate.Color", static_cast<int>(sizeof(PyObject)), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, harness::collectable_slots};

fault_state* fault_state_of(PyObject* module) {
    auto* state = static_cast<fault_state*>(PyModule_GetState(module));
    return state != nullptr && state->constructed ? state : nullptr;
}

int fault_exec(PyObject* module) {
    auto* state = static_cast<fault_state*>(PyModule_GetState(module));
    ::new (&state->color) gilonce::lazy_type(&fault_color_spec, {
        {"ITSELF", [state](gilonce::gil_token g) -> PyObject* {
             PyTypeObject* early = state->color.get(g);
             return early ? PyType_GenericNew(early, nullptr, nullptr) : nullptr;
         }},
        {"LIST", [](gilonce::gil_token) { return PyList_New(2); }},
    }, {}, true, module);
    state->constructed = true;
    return 0;
}
int fault_traverse(PyObject* module, visitproc visit, void* arg) {
    fault_state* state = fault_state_of(module);
    return state != nullptr ? state->color.traverse(visit, arg) : 0;
}
int fault_clear(PyObject* module) {
    if (fault_state* state = fault_state_of(module))
        state->color.clear(gilonce::gil_token::assume_held(), gilonce::invalidates_references);
    return 0;
}
void fault_free(void* module) {
    fault_clear(static_cast<PyObject*>(module));
    if (fault_state* state = fault_state_of(static_cast<PyObject*>(module))) {
        state->color.~lazy_type();
        state->constructed = false;
    }
}
PyModuleDef_Slot fault_slots[] = {{Py_mod_exec, reinterpret_cast<void*>(fault_exec)}, {0, nullptr}};
PyModuleDef fault_def = {PyModuleDef_HEAD_INIT, "faultstate", nullptr, sizeof(fault_state), nullptr,
                         fault_slots, fault_traverse, fault_clear, fault_free};

// Requires: the GIL is held and no allocation fails. A new, executed module object.
PyObject* new_fault_module() {
    PyObject* machinery = PyImport_ImportModule("importlib.machinery");
    PyObject* spec = machinery ? PyObject_CallMethod(machinery, "ModuleSpec", "sO", "faultstate", Py_None) : nullptr;
    Py_XDECREF(machinery);
    PyObject* module = spec ? PyModule_FromDefAndSpec(&fault_def, spec) : nullptr;
    Py_XDECREF(spec);
    if (module != nullptr && PyModule_ExecDef(module, &fault_def) != 0) Py_CLEAR(module);
    if (module == nullptr) throw std::runtime_error("cannot make the module");
    return module;
}

scenario_result module_state_points(const injector& faults) {
    PyGILState_Ensure();
    install_failing_allocators();
    auto gil = gilonce::gil_token::assume_held();
    {  // what lives on is created before counting
        PyObject* warm = new_fault_module();
        if (fault_state_of(warm)->color.get(gil) == nullptr) return scenario_result::fail("the warm-up failed");
        Py_DECREF(warm);
    }
    ref_balance refs(gil);
    int injected = 0;
    for (long n = 0;; ++n) {
        if (Py_ssize_t left = refs.left())
            return scenario_result::fail(std::string(faults.kind) + " " + std::to_string(n - 1) + ": " + std::to_string(left) +
                                         " references left");
        fresh_context context;
        PyObject* module = new_fault_module();
        gilonce::lazy_type& type = fault_state_of(module)->color;
        std::string problem;
        PyTypeObject* got = nullptr;
        faults.arm(n);
        try {
            got = type.get(gil);
        } catch (const std::exception& error) {
            problem = std::string("a C++ exception escaped get: ") + error.what();
        }
        const bool reached = faults.disarm();
        if (!problem.empty()) {
        } else if (got == nullptr && reached) {
            if (std::string why = unexpected_error(); !why.empty()) problem = why;
            PyErr_Clear();
            if (problem.empty() && type.is_complete(gil)) problem = "published after a failure";
            if (problem.empty() && (got = type.get(gil)) == nullptr) problem = "the retry failed";
        } else if (got == nullptr) {
            problem = "failed although no allocation failed";
        }
        if (problem.empty() && !PyObject_HasAttrString(reinterpret_cast<PyObject*>(got), "LIST"))
            problem = "a type without its class attributes";
        if (problem.empty() && PyType_GetModuleByDef(got, &fault_def) != module)
            problem = "PyType_GetModuleByDef does not find the type's module";
        PyErr_Clear();
        Py_DECREF(module);  // module -> state -> type -> module: the collector frees them (refs.left)
        if (!problem.empty()) return scenario_result::fail(std::string(faults.kind) + " " + std::to_string(n) + ": " + problem);
        if (!reached)
            return scenario_result::pass(std::string(faults.kind) + " failures injected at " + std::to_string(injected) +
                                         " points; each an error, nothing published, retry ok" + refs.verdict());
        ++injected;
    }
}

}  // namespace

TEST_CASE("fault injection: every failed allocation on a module-state lazy_type's first get is an error, nothing published, the retry works") {
    auto out = harness::run_in_child([] { return module_state_points(python_allocations); });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("each an error, nothing published, retry ok") != std::string::npos);
}

TEST_CASE("fault injection: every failed C++ allocation on a module-state lazy_type's first get is an error, nothing published, the retry works") {
    auto out = harness::run_in_child([] { return module_state_points(cxx_allocations); });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("each an error, nothing published, retry ok") != std::string::npos);
}
