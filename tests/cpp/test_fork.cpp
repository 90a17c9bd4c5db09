// fork() while another thread is inside stage 2 of a lazy_type: the child process has only
// the forking thread, and glibc hands a new thread in the child the id (pthread_t) of a
// thread that existed in the parent. The child must neither hand out the type without its
// class attributes nor take its new thread for the one that was computing them.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>

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
