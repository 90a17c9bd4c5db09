// fork() while another thread is inside stage 2 of a lazy_type: the child process has only
// the forking thread, and glibc hands a new thread in the child the id (pthread_t) of a
// thread that existed in the parent. The child must neither hand out the type without its
// class attributes nor take its new thread for the one that was computing them. The same
// for a module-state lazy_type and a per_interpreter_cell, filled before the fork or being
// filled by another thread when it happens.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <gilonce/per_interpreter.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness/event.hpp"
#include "harness/watchdog.hpp"

using harness::scenario_result;

namespace {

// The premise of the test is absent: this C library did not reuse the thread id.
const std::string no_id_reuse =
    "the forked child's new thread did not reuse the id of the parent's thread A (this C library "
    "does not reuse thread ids after fork), so there is no id to confuse";


harness::event computing("A is computing the class attributes, without the GIL");
harness::event forked("the process was forked");
std::atomic<int> factory_calls{0};

PyType_Slot plain_slots[] = {{0, nullptr}};
PyType_Spec spec = {"forktest.Forked", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
gilonce::lazy_type forked_type(&spec, {
    {"VALUE", [](gilonce::gil_token) -> PyObject* {
         if (factory_calls++ == 0) {  // thread A, in the parent: stays in stage 2 across the fork
             Py_BEGIN_ALLOW_THREADS
             computing.set();
             forked.wait();
             Py_END_ALLOW_THREADS
         }
         return PyLong_FromLong(42);
     }},
});

std::string thread_id_text(std::thread::id id) {
    std::ostringstream out;
    out << id;
    return out.str();
}

// The forked child writes its new thread's id into this pipe (the parent reads it back).
int id_pipe[2] = {-1, -1};

bool child_reported_id(const std::string& id) {
    char buffer[64] = {};
    const ssize_t n = read(id_pipe[0], buffer, sizeof buffer - 1);
    return n > 0 && std::string(buffer, static_cast<std::size_t>(n)) == id;
}

// In the forked child: a new thread asks for the type. Exit status 0: complete; 1: without
// its attribute; 2: an error. Prints the new thread's id.
[[noreturn]] void child_asks_for_the_type() {
    PyOS_AfterFork_Child();
    PyEval_SaveThread();
    int status = 2;
    std::thread([&] {
        const std::string id = thread_id_text(std::this_thread::get_id());
        std::fprintf(stderr, "child thread id %s\n", id.c_str());
        if (write(id_pipe[1], id.data(), id.size()) < 0) std::perror("write");
        gilonce::gil_acquire gil;
        PyTypeObject* type = forked_type.get(gil.token());
        if (type == nullptr) {
            PyErr_Print();
            return;
        }
        status = PyObject_HasAttrString(reinterpret_cast<PyObject*>(type), "VALUE") ? 0 : 1;
    }).join();
    std::fflush(stderr);
    _exit(status);
}

}  // namespace

TEST_CASE("fork: a child never gets the type without its class attributes, nor takes a new thread for the computing one") {
    auto out = harness::run_in_child([] {
        std::string a_id;
        std::thread a([&] {
            a_id = thread_id_text(std::this_thread::get_id());
            gilonce::gil_acquire gil;
            (void)forked_type.get(gil.token());
        });
        computing.wait();
        if (pipe(id_pipe) != 0) return scenario_result::fail("pipe failed");
        PyGILState_STATE state = PyGILState_Ensure();
        PyOS_BeforeFork();
        const pid_t pid = fork();
        if (pid == 0) child_asks_for_the_type();
        PyOS_AfterFork_Parent();
        PyGILState_Release(state);
        forked.set();
        a.join();
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid) return scenario_result::fail("fork or waitpid failed");
        close(id_pipe[1]);
        // The premise of the test, checked below: the child's new thread got A's id (glibc
        // reuses the stack, and so the pthread_t, of a thread that is gone in the child).
        std::fprintf(stderr, "parent thread A id %s\n", a_id.c_str());
        if (!WIFEXITED(status)) return scenario_result::fail("the forked child crashed");
        if (WEXITSTATUS(status) == 0 && !child_reported_id(a_id))
            return scenario_result::pass(no_id_reuse);  // reported as not run, below
        switch (WEXITSTATUS(status)) {
            case 0: return scenario_result::pass("the child's new thread computed and got the complete type");
            case 1: return scenario_result::fail("the child's new thread got the type without VALUE");
            default: return scenario_result::fail("the child's new thread got an error");
        }
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    if (out.detail == no_id_reuse) {
        // glibc 2.43 (Debian unstable) no longer gives the child's new thread the id of a
        // thread that is gone: the hazard this test guards against cannot be set up there.
        WARN("not possible on this interpreter: " << no_id_reuse);
        return;
    }
    CHECK(out.detail == "the child's new thread computed and got the complete type");
}

namespace {

// ---- a module-state lazy_type and a per_interpreter_cell across fork() --------------------
// Thread A, in the parent, can be held inside both at once: Color's factory asks for the
// per-interpreter value, whose initializer waits for the fork with the GIL released.

harness::event state_computing("A is inside Color's factory and the per-interpreter initializer, without the GIL");
harness::event state_forked("the process was forked (module state)");
bool hold_for_the_fork = false;  // the parent's first per-interpreter initializer waits for the fork
int initializer_calls = 0;       // GIL-guarded

gilonce::per_interpreter_cell<gilonce::py_ref> forked_value{"forked per-interpreter value"};

// The per-interpreter value: a str naming the process that computed it.
const gilonce::py_ref* per_interpreter_value(gilonce::gil_token gil) {
    return forked_value.get_or_try_init(gil, []() -> std::optional<gilonce::py_ref> {
        if (hold_for_the_fork && initializer_calls++ == 0) {
            Py_BEGIN_ALLOW_THREADS
            state_computing.set();
            state_forked.wait();
            Py_END_ALLOW_THREADS
        }
        gilonce::py_ref made = gilonce::py_ref::steal(PyUnicode_FromFormat("made in %d", static_cast<int>(getpid())));
        if (!made) return std::nullopt;
        return made;
    });
}

struct fork_state {
    bool constructed;  // false until exec ran: the state memory starts zeroed
    gilonce::lazy_type color;
};
PyType_Spec fork_color_spec = {"forkstate.Color", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};
PyObject* fork_module = nullptr;  // owned for the process's life (no m_free: processes end with _exit)

int fork_exec(PyObject* module) {
    auto* state = static_cast<fork_state*>(PyModule_GetState(module));
    ::new (&state->color) gilonce::lazy_type(&fork_color_spec, {
        {"RED", [state](gilonce::gil_token gil) -> PyObject* {
             if (per_interpreter_value(gil) == nullptr) return nullptr;  // A waits for the fork in there
             PyTypeObject* early = state->color.get(gil);
             return early ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(early)) : nullptr;
         }},
    }, {}, true, module);
    state->constructed = true;
    return 0;
}
PyModuleDef_Slot fork_slots[] = {{Py_mod_exec, reinterpret_cast<void*>(fork_exec)}, {0, nullptr}};
PyModuleDef fork_def = {PyModuleDef_HEAD_INIT, "forkstate", nullptr, sizeof(fork_state), nullptr, fork_slots,
                        nullptr, nullptr, nullptr};

// Requires: the GIL is held. Makes fork_module, as an import of a multi-phase module would.
bool make_fork_module() {
    PyObject* machinery = PyImport_ImportModule("importlib.machinery");
    PyObject* module_spec = machinery ? PyObject_CallMethod(machinery, "ModuleSpec", "sO", "forkstate", Py_None) : nullptr;
    Py_XDECREF(machinery);
    fork_module = module_spec ? PyModule_FromDefAndSpec(&fork_def, module_spec) : nullptr;
    Py_XDECREF(module_spec);
    if (fork_module != nullptr && PyModule_ExecDef(fork_module, &fork_def) != 0) Py_CLEAR(fork_module);
    if (fork_module == nullptr) PyErr_Print();
    return fork_module != nullptr;
}

// What one thread got: the module's Color (checked complete) and the per-interpreter value.
struct got_state {
    PyTypeObject* color = nullptr;
    PyObject* value = nullptr;
    std::string problem;
};

got_state ask_for_state(gilonce::gil_token gil) {
    got_state got;
    auto* state = static_cast<fork_state*>(PyModule_GetState(fork_module));
    got.color = state->color.get(gil);
    if (got.color == nullptr) {
        PyErr_Print();
        got.problem = "Color: an error";
        return got;
    }
    PyObject* red = PyObject_GetAttrString(reinterpret_cast<PyObject*>(got.color), "RED");
    if (red == nullptr || Py_TYPE(red) != got.color) got.problem = "Color without its RED";
    else if (PyType_GetModuleByDef(got.color, &fork_def) != fork_module) got.problem = "Color does not find its module";
    Py_XDECREF(red);
    PyErr_Clear();
    const gilonce::py_ref* value = per_interpreter_value(gil);
    if (value == nullptr) {
        PyErr_Print();
        got.problem += got.problem.empty() ? "per-interpreter value: an error" : "; per-interpreter value: an error";
    } else {
        got.value = value->get();
    }
    return got;
}

// In the forked child: the forking thread and a new thread ask for both. Prints what they
// got; exit status 0: both complete and the same in both threads, 1: not.
[[noreturn]] void child_asks_for_the_state() {
    alarm(20);  // a hang ends this process (SIGALRM), seen by the parent as a signal
    PyOS_AfterFork_Child();
    got_state forking = ask_for_state(gilonce::gil_token::assume_held());
    PyThreadState* saved = PyEval_SaveThread();
    got_state fresh;
    std::thread([&] {
        gilonce::gil_acquire gil;
        fresh = ask_for_state(gil.token());
    }).join();
    PyEval_RestoreThread(saved);
    const char* value = forking.value ? PyUnicode_AsUTF8(forking.value) : "none";
    std::fprintf(stderr, "child %d: forking thread: %s; new thread: %s; same Color %d, same value %d, value %s\n",
                 static_cast<int>(getpid()), forking.problem.empty() ? "complete" : forking.problem.c_str(),
                 fresh.problem.empty() ? "complete" : fresh.problem.c_str(), forking.color == fresh.color,
                 forking.value == fresh.value, value ? value : "?");
    std::fflush(stderr);
    // Filled before the fork: the parent's value, copied; being filled: computed here.
    const bool made_here = value != nullptr && std::string(value) == "made in " + std::to_string(getpid());
    std::fprintf(stderr, "the value was computed %s\n", made_here ? "in the child" : "before the fork");
    const bool sound = forking.problem.empty() && fresh.problem.empty() && forking.color == fresh.color &&
                       forking.value == fresh.value && made_here == hold_for_the_fork;
    _exit(sound ? 0 : 1);
}

// Forks (the caller holds no GIL), lets the child check, and reads its verdict.
// Returns "" or what went wrong.
std::string fork_and_check() {
    PyGILState_STATE state = PyGILState_Ensure();
    PyOS_BeforeFork();
    const pid_t pid = fork();
    if (pid == 0) child_asks_for_the_state();
    PyOS_AfterFork_Parent();
    PyGILState_Release(state);
    state_forked.set();
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return "fork or waitpid failed";
    if (WIFSIGNALED(status)) return "the forked child was ended by signal " + std::to_string(WTERMSIG(status));
    if (WEXITSTATUS(status) != 0) return "the forked child saw an incomplete or inconsistent state";
    return "";
}

// The value's text, and whether this process computed it.
std::string made_where(PyObject* value) {
    const char* text = value ? PyUnicode_AsUTF8(value) : nullptr;
    return text ? text : "?";
}

}  // namespace

TEST_CASE("fork: a child forked while a module-state Color and a per_interpreter_cell are filled gets them, complete") {
    auto out = harness::run_in_child([] {
        PyGILState_STATE state = PyGILState_Ensure();
        std::string parent_value;
        if (make_fork_module()) {
            got_state got = ask_for_state(gilonce::gil_token::assume_held());
            parent_value = got.problem.empty() ? made_where(got.value) : "";
        }
        PyGILState_Release(state);
        if (parent_value.empty()) return scenario_result::fail("the parent could not fill them");
        if (std::string problem = fork_and_check(); !problem.empty()) return scenario_result::fail(problem);
        return scenario_result::pass("the child's threads got the complete Color and the value " + parent_value +
                                     " (the parent's, copied)");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("the child's threads got the complete Color and the value made in ") != std::string::npos);
    CHECK(out.child_stderr.find("the value was computed before the fork") != std::string::npos);
    CHECK(out.child_stderr.find("forking thread: complete; new thread: complete; same Color 1, same value 1") != std::string::npos);
}

TEST_CASE("fork: a child forked while another thread is inside a module-state Color's factory and a per_interpreter_cell's initializer recomputes both") {
    auto out = harness::run_in_child([] {
        PyGILState_STATE state = PyGILState_Ensure();
        const bool made = make_fork_module();
        PyGILState_Release(state);
        if (!made) return scenario_result::fail("could not make the module");
        hold_for_the_fork = true;
        std::string a_got;
        std::thread a([&] {
            gilonce::gil_acquire gil;
            got_state got = ask_for_state(gil.token());
            a_got = got.problem.empty() ? made_where(got.value) : got.problem;
        });
        state_computing.wait();
        std::string problem = fork_and_check();
        a.join();
        if (!problem.empty()) return scenario_result::fail(problem);
        if (a_got.rfind("made in ", 0) != 0) return scenario_result::fail("thread A, in the parent: " + a_got);
        return scenario_result::pass("the child's threads computed the complete Color and their own value; "
                                     "A, in the parent, finished with " + a_got);
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail.find("the child's threads computed the complete Color and their own value") != std::string::npos);
    CHECK(out.child_stderr.find("the value was computed in the child") != std::string::npos);
    CHECK(out.child_stderr.find("forking thread: complete; new thread: complete; same Color 1, same value 1") != std::string::npos);
}
