// Allocation failures along the initialization paths, the way CPython's own tests inject
// them: a PyMem_SetAllocator hook makes the Nth allocation (PYMEM_DOMAIN_MEM and _OBJ) fail,
// for every N until an initialization completes without reaching the Nth. Each time the
// caller must get an error (not a crash), nothing may be published, and the next call must
// succeed; under a debug interpreter (pydebug), nothing may leak either: the total reference
// count is back at its baseline after each point. Runs in a forked child: the hook is
// process-wide.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/refcount.hpp"
#include "harness/watchdog.hpp"

using harness::scenario_result;

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
// harmless (their serials are no longer live: see init_context.hpp) and are freed with the
// context; anything else left behind is still counted.
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
