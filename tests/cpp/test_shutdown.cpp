// The reference headers at the end of an interpreter's life: a daemon thread torn down by
// pthread_exit inside an initializer during Py_Finalize, a static lazy_type destroyed after
// Py_Finalize, a cell in module state destroyed while Py_FinalizeEx clears modules, and the
// debug GIL check after a sub-interpreter existed. Each runs in a forked child (the child
// finalizes its interpreter, or may crash), and each verdict is what the child observed.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <gilonce/per_interpreter.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>

#include <sys/syscall.h>
#include <unistd.h>

#include "harness/event.hpp"
#include "harness/watchdog.hpp"

using harness::scenario_result;

namespace {

// A flag one thread raises and another waits for with a bound, usable with or without the
// GIL and during finalization (harness::event refuses a waiter that holds the GIL).
class flag {
public:
    void raise() {
        std::lock_guard<std::mutex> lock(mutex_);
        raised_ = true;
        changed_.notify_all();
    }
    bool wait(std::chrono::seconds bound = std::chrono::seconds(10)) {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, bound, [&] { return raised_; });
    }
    bool is_raised() {
        std::lock_guard<std::mutex> lock(mutex_);
        return raised_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool raised_ = false;
};

flag inside_user_code;      // the daemon thread is inside a factory/initializer, GIL released
flag finalization_started;  // Py_FinalizeEx is clearing modules (set from a capsule's destructor)
flag daemon_unwound;        // the daemon thread's stack was unwound through the user code

// Runs in the daemon thread inside a factory or initializer: releases the GIL, and wants it
// back only once Py_FinalizeEx runs, when CPython 3.11 ends the thread with pthread_exit.
void wait_for_finalization_without_gil() {
    struct unwind_witness {
        ~unwind_witness() { daemon_unwound.raise(); }
    } witness;
    Py_BEGIN_ALLOW_THREADS
    inside_user_code.raise();
    finalization_started.wait(std::chrono::seconds(30));
    Py_END_ALLOW_THREADS  // pthread_exit here: the interpreter is finalizing
}

#if PY_VERSION_HEX >= 0x030E0000
// 3.14: a daemon thread that wants the GIL back during finalization is parked for good
// (pause() in a loop), not ended with pthread_exit: it never unwinds, and never runs again.
constexpr bool daemon_threads_unwind = false;
#else
constexpr bool daemon_threads_unwind = true;  // 3.11-3.13: pthread_exit, a forced unwind
#endif
std::atomic<long> daemon_tid{0};

// The system call thread `tid` of this process is blocked in, or -1 (/proc/self/task/.../syscall).
// (Checked with the thread seen parked, not against time: a sample of a running thread.)
long blocked_in_syscall(long tid) {
    std::FILE* f = std::fopen(("/proc/self/task/" + std::to_string(tid) + "/syscall").c_str(), "r");
    long number = -1;
    if (f != nullptr) {
        if (std::fscanf(f, "%ld", &number) != 1) number = -1;
        std::fclose(f);
    }
    return number;
}

// Called while Py_FinalizeEx clears __main__ (after it marked the runtime finalizing), with
// the GIL held: wakes the daemon thread and waits until pthread_exit has unwound it.
void capsule_destroyed(PyObject*) {
    finalization_started.raise();
    if (!daemon_threads_unwind) {
        // 3.14: wait until it is seen parked, so that it acts while Py_FinalizeEx runs.
        for (int i = 0; i < 1000; ++i) {
            if (blocked_in_syscall(daemon_tid) == SYS_pause) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::fprintf(stderr, "the daemon thread was not seen parked in pause() within 10 s (in syscall %ld)\n", blocked_in_syscall(daemon_tid));
        std::_Exit(3);
    }
    if (!daemon_unwound.wait()) {
        std::fputs("the daemon thread was not unwound within 10 s\n", stderr);
        std::_Exit(3);
    }
}

// In the child: starts `daemon` (which must end up in wait_for_finalization_without_gil),
// finalizes the interpreter, and reports whether the daemon thread was unwound. The daemon
// is woken when Py_FinalizeEx clears __main__, or, with `wake_in_main` false, by whatever
// the scenario arranged to call capsule_destroyed later in finalization (module state, the
// interpreter's dict).
scenario_result finalize_under(void (*daemon)(), bool wake_in_main = true) {
    std::thread thread([daemon] {
        daemon_tid = static_cast<long>(syscall(SYS_gettid));
        daemon();
    });
    if (!inside_user_code.wait()) return scenario_result::fail("the daemon thread never reached the user code");
    PyGILState_Ensure();
    if (wake_in_main) {
        PyObject* capsule = PyCapsule_New(reinterpret_cast<void*>(1), "shutdown probe", capsule_destroyed);
        if (capsule == nullptr || PyObject_SetAttrString(PyImport_AddModule("__main__"), "_probe", capsule) < 0)
            return scenario_result::fail("could not install the capsule");
        Py_DECREF(capsule);
    }
    if (Py_FinalizeEx() != 0) return scenario_result::fail("Py_FinalizeEx failed");
    if (!finalization_started.is_raised()) {
        thread.detach();  // still waiting for a wake-up that never came: do not join it
        return scenario_result::fail("Py_FinalizeEx returned without waking the daemon thread");
    }
    if (daemon_threads_unwind) {
        thread.join();  // it ended through pthread_exit
        return scenario_result::pass("the daemon thread unwound through the user code; Py_FinalizeEx returned");
    }
    // Observed, not assumed: the thread was seen parked in pause() during Py_FinalizeEx
    // (capsule_destroyed), and still is, inside the user code.
    if (blocked_in_syscall(daemon_tid) != SYS_pause)
        return scenario_result::fail("the daemon thread is no longer parked in pause() after Py_FinalizeEx");
    if (daemon_unwound.wait(std::chrono::seconds(0))) return scenario_result::fail("the parked thread unwound");
    thread.detach();  // parked for good: the process ends around it
    return scenario_result::pass("the daemon thread was parked inside the user code (never resumed); Py_FinalizeEx returned");
}

PyType_Slot plain_slots[] = {{0, nullptr}};

// Runs `source` (Python) with `wait` bound to wait_for_finalization_without_gil, and returns
// a new reference to the global it defines named `name` (null if anything failed).
PyObject* python_calling_wait(const char* source, const char* name) {
    static PyMethodDef wait_def = {"wait", [](PyObject*, PyObject*) -> PyObject* {
                                       wait_for_finalization_without_gil();
                                       Py_RETURN_NONE;
                                   }, METH_NOARGS, nullptr};
    PyGILState_STATE state = PyGILState_Ensure();
    PyObject* scope = PyDict_New();
    PyObject* wait = PyCFunction_New(&wait_def, nullptr);
    PyObject* found = nullptr;
    if (scope != nullptr && wait != nullptr && PyDict_SetItemString(scope, "wait", wait) == 0) {
        PyObject* ran = PyRun_String(source, Py_file_input, scope, scope);
        found = ran != nullptr ? PyDict_GetItemString(scope, name) : nullptr;
        Py_XINCREF(found);
        Py_XDECREF(ran);
    }
    if (found == nullptr && PyErr_Occurred()) PyErr_Print();
    Py_XDECREF(wait);
    Py_XDECREF(scope);
    PyGILState_Release(state);
    return found;
}

}  // namespace

TEST_CASE("shutdown: a daemon thread ended inside a class-attribute factory during Py_Finalize unwinds cleanly") {
    auto out = harness::run_in_child([] {
        static PyType_Spec spec = {"shutdowntest.Slow", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
        // FIRST is computed, then abandoned: the test keeps a reference of its own, so a
        // decref made without the GIL would show in its reference count.
        static PyObject* first_value = nullptr;
        static gilonce::lazy_type slow(&spec, {
            {"FIRST", [](gilonce::gil_token) {
                 first_value = PyList_New(0);
                 return Py_NewRef(first_value);
             }},
            {"SECOND", [](gilonce::gil_token) -> PyObject* {
                 wait_for_finalization_without_gil();
                 return PyLong_FromLong(2);
             }},
        });
        scenario_result result = finalize_under([] {
            gilonce::gil_acquire gil;
            (void)slow.get(gil.token());
        });
        if (result.ok && Py_REFCNT(first_value) != 2)
            return scenario_result::fail("FIRST's value was decref'd after the thread was torn down: refcount " +
                                         std::to_string(Py_REFCNT(first_value)));
        return result;
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
}

TEST_CASE("shutdown: a daemon thread ended inside a cell initializer during Py_Finalize unwinds cleanly") {
    auto out = harness::run_in_child([] {
        static gilonce::gil_once_cell<gilonce::py_ref> cell{"shutdown probe"};
        return finalize_under([] {
            gilonce::gil_acquire gil;
            (void)cell.get_or_init(gil.token(), [] {
                wait_for_finalization_without_gil();
                return gilonce::py_ref::steal(PyList_New(0));
            });
        });
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
}

TEST_CASE("shutdown: a daemon thread ended while a failing factory's exception is normalized unwinds cleanly") {
    // Chaining "cannot compute class attribute" normalizes the factory's exception, which
    // runs its class's __init__ in Python; that __init__ releases the GIL.
    auto out = harness::run_in_child([] {
        static PyType_Spec spec = {"shutdowntest.Failing", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
        static PyObject* slow_error = nullptr;
        static gilonce::lazy_type failing(&spec, {
            {"ONLY", [](gilonce::gil_token) -> PyObject* {
                 PyErr_SetString(slow_error, "raised unnormalized");  // normalized later, by gilonce
                 return nullptr;
             }},
        });
        slow_error = python_calling_wait("class SlowError(Exception):\n"
                                         "    def __init__(self, *args):\n"
                                         "        wait()\n"
                                         "        super().__init__(*args)\n",
                                         "SlowError");
        if (slow_error == nullptr) return scenario_result::fail("could not define SlowError");
        return finalize_under([] {
            gilonce::gil_acquire gil;
            (void)failing.get(gil.token());
        });
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
}

TEST_CASE("shutdown: a daemon thread ended inside the release of a losing value unwinds cleanly") {
    // The daemon's initializer loses the race (a helper thread fills the cell meanwhile); its
    // value is released at once, and that release runs a destructor (here a capsule's) that
    // releases the GIL while Py_Finalize runs: the thread is torn down inside the release.
    auto out = harness::run_in_child([] {
        static gilonce::gil_once_cell<gilonce::py_ref> cell{"loser probe"};
        return finalize_under([] {
            gilonce::gil_acquire gil;
            (void)cell.get_or_init(gil.token(), [] {
                Py_BEGIN_ALLOW_THREADS
                std::thread([] {
                    gilonce::gil_acquire winner_gil;
                    cell.set(winner_gil.token(), gilonce::py_ref::steal(PyLong_FromLong(1)));
                }).join();
                Py_END_ALLOW_THREADS
                return gilonce::py_ref::steal(PyCapsule_New(reinterpret_cast<void*>(1), "loser", [](PyObject*) {
                    wait_for_finalization_without_gil();
                }));
            });
        });
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
}

TEST_CASE("shutdown: a daemon thread ended in a collection run while the re-entrancy record is restored unwinds cleanly") {
    // Restoring the record (PyContextVar_Reset) allocates; with garbage pending and a
    // threshold of 1 that allocation runs a collection, whose __del__ releases the GIL.
#if PY_VERSION_HEX >= 0x030C0000
    // From 3.12 an allocation only schedules a due collection, which runs at the next
    // eval-breaker check (in Python code), never inside the allocation: no collection runs
    // while the record is restored. (Here the pending one would run in Py_FinalizeEx, on the
    // main thread, whose __del__ would wait for a flag only finalization raises.)
    WARN("not possible on this interpreter: from CPython 3.12 an allocation in C code only "
         "schedules a collection (eval breaker); this scenario needs 3.11");
    return;
#endif
    auto out = harness::run_in_child([] {
        static PyObject* make_garbage = nullptr;
        static gilonce::gil_once_cell<gilonce::py_ref> cell{"record restore probe"};
        make_garbage = python_calling_wait("import gc\n"
                                           "class Cycle:\n"
                                           "    def __init__(self): self.me = self\n"
                                           "    def __del__(self): wait()\n"
                                           "def make_garbage():\n"
                                           "    gc.disable()\n"
                                           "    Cycle()\n"
                                           "    gc.set_threshold(1)\n",
                                           "make_garbage");
        if (make_garbage == nullptr) return scenario_result::fail("could not set up");
        return finalize_under([] {
            gilonce::gil_acquire gil;
            // A variable of the thread's own, so that restoring the record must allocate.
            PyObject* user_var = PyContextVar_New("user", nullptr);
            Py_XDECREF(PyContextVar_Set(user_var, Py_None));
            (void)cell.get_or_init(gil.token(), [] {
                Py_XDECREF(PyObject_CallNoArgs(make_garbage));
                PyGC_Enable();  // the next tracked allocation collects
                return gilonce::py_ref::steal(PyLong_FromLong(7));
            });
        });
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
}

TEST_CASE("shutdown: a daemon thread ended while gil_acquire takes the GIL unwinds cleanly") {
#if PY_VERSION_HEX >= 0x030E0000
    // Seen here on 3.14.10: a thread without a thread state that calls PyGILState_Ensure
    // while Py_FinalizeEx runs is neither ended nor parked in pause(): it waits on the GIL
    // (futex) until finalization is over. There is no unwind to test.
    WARN("not possible on this interpreter: CPython 3.14 does not end a thread that asks for "
         "the GIL during finalization (it is seen waiting in futex())");
    return;
#endif
    auto out = harness::run_in_child([] {
        return finalize_under([] {
            {
                struct unwind_witness {
                    ~unwind_witness() { daemon_unwound.raise(); }
                } witness;
                inside_user_code.raise();
                finalization_started.wait(std::chrono::seconds(30));
                gilonce::gil_acquire gil;  // PyGILState_Ensure ends this thread: Py_Finalize runs
            }
            std::fputs("gil_acquire returned during finalization\n", stderr);
        });
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
}

namespace {

// Owned by a factory's closure: a Python object, and whether it was destroyed.
struct owned_by_factory {
    static inline bool destroyed = false;
    gilonce::py_ref object;
    ~owned_by_factory() {
        if (object) destroyed = true;
    }
};

}  // namespace

TEST_CASE("shutdown: a lazy_type destroyed after Py_Finalize leaves its factories' Python objects alone") {
    auto out = harness::run_in_child([] {
        static PyType_Spec spec = {"shutdowntest.Owning", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
        alignas(gilonce::lazy_type) static unsigned char storage[sizeof(gilonce::lazy_type)];
        PyGILState_Ensure();
        auto owned = std::make_shared<owned_by_factory>();
        owned->object = gilonce::py_ref::steal(PyList_New(0));
        auto* type = new (storage) gilonce::lazy_type(&spec, {
            {"LIST", [owned](gilonce::gil_token) { return Py_NewRef(owned->object.get()); }},
        });
        owned.reset();  // the closure is the only owner now
        if (type->get(gilonce::gil_token::assume_held()) == nullptr) return scenario_result::fail("get failed");
        if (Py_FinalizeEx() != 0) return scenario_result::fail("Py_FinalizeEx failed");
        type->~lazy_type();  // what a static lazy_type's destructor does at exit
        if (owned_by_factory::destroyed)
            return scenario_result::fail("the factory's Python object was released after Py_Finalize");
        return scenario_result::pass("leaked, not released");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail == "leaked, not released");
}

namespace {

// A cell in a module's state, as PEP 630 asks: created in the state memory, destroyed by
// m_free when Py_FinalizeEx clears the modules.
struct stored_value {
    static inline bool destroyed = false;
    static inline bool destroyed_with_gil = false;
    gilonce::py_ref object;
    explicit stored_value(gilonce::py_ref o) : object(std::move(o)) {}
    stored_value(stored_value&&) = default;
    ~stored_value() {
        if (!object) return;
        destroyed = true;
        destroyed_with_gil = gilonce::detail::this_thread_holds_the_gil();
    }
};
using state_cell = gilonce::gil_once_cell<stored_value>;

void free_state(void* module) {
    static_cast<state_cell*>(PyModule_GetState(static_cast<PyObject*>(module)))->~state_cell();
}
PyModuleDef state_module_def = {PyModuleDef_HEAD_INIT, "shutdown_state", nullptr, sizeof(state_cell),
                                nullptr, nullptr, nullptr, nullptr, free_state};

}  // namespace

TEST_CASE("shutdown: a cell in module state releases its value when Py_FinalizeEx clears modules") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        PyObject* module = PyModule_Create(&state_module_def);
        if (module == nullptr) return scenario_result::fail("PyModule_Create failed");
        auto* cell = new (PyModule_GetState(module)) state_cell("module state cell");
        cell->get_or_init(gilonce::gil_token::assume_held(),
                          [] { return stored_value(gilonce::py_ref::steal(PyList_New(0))); });
        if (PyDict_SetItemString(PyImport_GetModuleDict(), "shutdown_state", module) < 0)
            return scenario_result::fail("could not register the module");
        Py_DECREF(module);  // sys.modules owns it: freed while Py_FinalizeEx clears modules
        if (Py_FinalizeEx() != 0) return scenario_result::fail("Py_FinalizeEx failed");
        if (!stored_value::destroyed) return scenario_result::fail("the module state's value was leaked");
        if (!stored_value::destroyed_with_gil) return scenario_result::fail("the value was destroyed without the GIL");
        return scenario_result::pass("released during Py_FinalizeEx, with the GIL");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail == "released during Py_FinalizeEx, with the GIL");
}

namespace {

// ---- per_interpreter_cell at finalization ------------------------------------------------
// Py_FinalizeEx clears the interpreter's dict, and with it the per-interpreter table: every
// entry is destroyed, the one whose cell the daemon thread is filling too. A value kept in
// that table wakes the daemon from its destructor, so the daemon acts while the table goes.

struct wakes_the_daemon {
    static inline bool released_with_gil = false;
    bool armed = true;
    wakes_the_daemon() = default;
    wakes_the_daemon(wakes_the_daemon&& other) noexcept : armed(std::exchange(other.armed, false)) {}
    ~wakes_the_daemon() {
        if (!armed) return;
        released_with_gil = gilonce::detail::this_thread_holds_the_gil();
        capsule_destroyed(nullptr);  // wakes the daemon; returns once it is unwound (or parked)
    }
};
gilonce::per_interpreter_cell<wakes_the_daemon> table_waker{"shutdown table waker"};
gilonce::per_interpreter_cell<gilonce::py_ref> filled_at_finalization{"filled at finalization"};

}  // namespace

TEST_CASE("shutdown: a daemon thread inside a per_interpreter_cell initializer while Py_FinalizeEx destroys the interpreter's table") {
    auto out = harness::run_in_child([] {
        PyGILState_STATE state = PyGILState_Ensure();
        (void)table_waker.get_or_init(gilonce::gil_token::assume_held(), [] { return wakes_the_daemon(); });
        PyGILState_Release(state);
        scenario_result result = finalize_under([] {
            gilonce::gil_acquire gil;
            (void)filled_at_finalization.get_or_init(gil.token(), [] {
                wait_for_finalization_without_gil();
                return gilonce::py_ref::steal(PyList_New(0));
            });
        }, /*wake_in_main=*/false);
        if (!result.ok) return result;
        if (!wakes_the_daemon::released_with_gil)
            return scenario_result::fail("the interpreter's table was not released with the GIL held");
        // Nothing of the ended computation is left over: a new interpreter computes its own.
        Py_Initialize();
        const gilonce::py_ref* again = filled_at_finalization.get_or_try_init(gilonce::gil_token::assume_held(), [] {
            return std::optional<gilonce::py_ref>(gilonce::py_ref::steal(PyUnicode_FromString("recomputed")));
        });
        if (again == nullptr || PyUnicode_CompareWithASCIIString(again->get(), "recomputed") != 0) {
            PyErr_Print();
            return scenario_result::fail("the re-initialized interpreter did not compute its own value");
        }
        return scenario_result::pass(result.detail + "; the table went with the daemon's entry in it; "
                                     "the next interpreter computed its own value");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("; the table went with the daemon's entry in it; the next interpreter computed its own value") !=
          std::string::npos);
}

namespace {

// ---- a module-state lazy_type at finalization ----------------------------------------------
// The daemon thread is in stage 2 (a factory, GIL released) of the module's Color when
// Py_FinalizeEx collects the module (module -> state -> Color -> module, a cycle): m_clear
// wakes it there, then clears the type; m_free destroys the lazy_type.

struct finalizing_state {
    bool constructed;  // false until exec ran: the state memory starts zeroed
    gilonce::lazy_type color;
};
PyType_Spec finalizing_color_spec = {"shutdown_color.Color", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
PyObject* finalizing_module = nullptr;  // borrowed: sys.modules owns it
PyObject* computed_first = nullptr;     // FIRST's value; the test keeps a reference of its own
bool cleared_before_finalization = false;
bool cleared_while_finalizing = false;
bool freed_state = false;
bool freed_with_gil = false;

bool interpreter_is_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

finalizing_state* finalizing_state_of(PyObject* module) {
    auto* state = static_cast<finalizing_state*>(PyModule_GetState(module));
    return state != nullptr && state->constructed ? state : nullptr;
}

int finalizing_exec(PyObject* module) {
    auto* state = static_cast<finalizing_state*>(PyModule_GetState(module));
    ::new (&state->color) gilonce::lazy_type(&finalizing_color_spec, {
        {"FIRST", [](gilonce::gil_token) {
             computed_first = PyList_New(0);
             return Py_NewRef(computed_first);
         }},
        {"SLOW", [](gilonce::gil_token) -> PyObject* {
             wait_for_finalization_without_gil();
             return PyLong_FromLong(2);
         }},
    }, {}, true, module);
    state->constructed = true;
    return 0;
}

int finalizing_traverse(PyObject* module, visitproc visit, void* arg) {
    finalizing_state* state = finalizing_state_of(module);
    return state != nullptr ? state->color.traverse(visit, arg) : 0;
}

int finalizing_clear(PyObject* module) {
    finalizing_state* state = finalizing_state_of(module);
    if (state == nullptr) return 0;
    if (!finalization_started.is_raised()) {
        if (!interpreter_is_finalizing()) {
            cleared_before_finalization = true;  // the daemon is still in get: leave the type alone
            return 0;
        }
        cleared_while_finalizing = true;
        capsule_destroyed(nullptr);  // wakes the daemon, in get; returns once it is unwound (or parked)
    }
    state->color.clear(gilonce::gil_token::assume_held(), gilonce::invalidates_references);
    return 0;
}

void finalizing_free(void* module) {
    finalizing_clear(static_cast<PyObject*>(module));
    if (finalizing_state* state = finalizing_state_of(static_cast<PyObject*>(module))) {
        freed_with_gil = gilonce::detail::this_thread_holds_the_gil();
        state->color.~lazy_type();
        state->constructed = false;
        freed_state = true;
    }
}

PyModuleDef_Slot finalizing_slots[] = {{Py_mod_exec, reinterpret_cast<void*>(finalizing_exec)}, {0, nullptr}};
PyModuleDef finalizing_def = {PyModuleDef_HEAD_INIT, "shutdown_color", nullptr, sizeof(finalizing_state), nullptr,
                              finalizing_slots, finalizing_traverse, finalizing_clear, finalizing_free};

// Requires: the GIL is held. Makes the module (multi-phase, as an import would) and puts it
// in sys.modules, its only owner; `finalizing_module` borrows it.
bool install_finalizing_module() {
    PyObject* machinery = PyImport_ImportModule("importlib.machinery");
    PyObject* spec = machinery ? PyObject_CallMethod(machinery, "ModuleSpec", "sO", "shutdown_color", Py_None) : nullptr;
    Py_XDECREF(machinery);
    PyObject* module = spec ? PyModule_FromDefAndSpec(&finalizing_def, spec) : nullptr;
    Py_XDECREF(spec);
    if (module == nullptr || PyModule_ExecDef(module, &finalizing_def) != 0 ||
        PyDict_SetItemString(PyImport_GetModuleDict(), "shutdown_color", module) < 0) {
        PyErr_Print();
        Py_XDECREF(module);
        return false;
    }
    finalizing_module = module;
    Py_DECREF(module);
    return true;
}

// The daemon: asks for the module's Color. With `hold_module`, it owns a reference to the
// module for the call, as a Python-level call in progress does (never released: the thread
// never returns from the call).
template <bool hold_module>
void ask_for_module_color() {
    gilonce::gil_acquire gil;
    if (hold_module) Py_INCREF(finalizing_module);
    (void)finalizing_state_of(finalizing_module)->color.get(gil.token());
}

}  // namespace

TEST_CASE("shutdown: a daemon thread in a module-state lazy_type's stage 2 while Py_FinalizeEx runs m_clear and m_free") {
    auto out = harness::run_in_child([] {
        PyGILState_STATE state = PyGILState_Ensure();
        const bool installed = install_finalizing_module();
        PyGILState_Release(state);
        if (!installed) return scenario_result::fail("could not make the module");
        scenario_result result = finalize_under(ask_for_module_color<false>, /*wake_in_main=*/false);
        std::fprintf(stderr, "m_clear before finalization %d, while finalizing %d; m_free ran %d (with the GIL %d)\n",
                     cleared_before_finalization, cleared_while_finalizing, freed_state, freed_with_gil);
        if (!result.ok) return result;
        if (!cleared_while_finalizing || !freed_state || !freed_with_gil)
            return scenario_result::fail("m_clear and m_free did not both run, with the GIL, while finalizing");
        if (Py_REFCNT(computed_first) != 2)
            return scenario_result::fail("FIRST's value was decref'd after the thread was torn down: refcount " +
                                         std::to_string(Py_REFCNT(computed_first)));
        return scenario_result::pass(result.detail + "; m_clear and m_free ran with the daemon in get; "
                                     "its computed attribute leaked, not released");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("; m_clear and m_free ran with the daemon in get; its computed attribute leaked, not released") !=
          std::string::npos);
}

TEST_CASE("shutdown: a daemon thread that holds the module inside its lazy_type's stage 2 keeps the module state alive") {
    // As a call from Python would: the thread's reference is never released (its frames are
    // abandoned), so the module and its state are leaked, never cleared under the thread.
    auto out = harness::run_in_child([] {
        PyGILState_STATE state = PyGILState_Ensure();
        const bool installed = install_finalizing_module();
        PyGILState_Release(state);
        if (!installed) return scenario_result::fail("could not make the module");
        scenario_result result = finalize_under(ask_for_module_color<true>);
        std::fprintf(stderr, "m_clear before finalization %d, while finalizing %d; m_free ran %d\n",
                     cleared_before_finalization, cleared_while_finalizing, freed_state);
        if (!result.ok) return result;
        if (cleared_before_finalization || cleared_while_finalizing || freed_state)
            return scenario_result::fail("the module state was cleared although the daemon thread holds the module");
        return scenario_result::pass(result.detail + "; the module and its state leaked with the thread's reference");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("; the module and its state leaked with the thread's reference") != std::string::npos);
}

#if GILONCE_CHECKS
TEST_CASE("shutdown: the GILONCE_CHECKS GIL check is not fooled once a sub-interpreter has existed") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        PyThreadState* main_state = PyThreadState_Get();
        PyThreadState* sub = Py_NewInterpreter();
        if (sub == nullptr) return scenario_result::fail("Py_NewInterpreter failed");
        Py_EndInterpreter(sub);
        PyThreadState_Swap(main_state);
        PyEval_SaveThread();  // this thread no longer holds the GIL
        const bool fooled = PyGILState_Check() == 1;
        std::fprintf(stderr, "PyGILState_Check() without the GIL: %d\n", fooled ? 1 : 0);
        (void)gilonce::gil_token::assume_held();  // must abort
        return scenario_result::pass("a token was made without the GIL");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::crashed);
    CHECK(out.signal == SIGABRT);
    CHECK(out.child_stderr.find("PyGILState_Check() without the GIL: 1") != std::string::npos);  // the trap is real
    CHECK(out.child_stderr.find("the GIL is not held") != std::string::npos);
}
#endif
