// harness/interpreters.cpp: sub-interpreters for scenarios (see interpreters.hpp).
#include "harness/interpreters.hpp"

#include <gilonce/detail/python.hpp>

#include <exception>
#include <memory>
#include <stdexcept>
#include <thread>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/trace.hpp"

namespace harness {

const char* own_gil_unavailable() noexcept {
    return has_own_gil_interpreters ? ""
                                    : "not possible on this interpreter: sub-interpreters with their own GIL "
                                      "(PEP 684) need CPython 3.12+, and this build uses " PY_VERSION;
}

long long current_interpreter_id() { return PyInterpreterState_GetID(PyInterpreterState_Get()); }

sub_interpreter::sub_interpreter() : previous_(PyThreadState_Get()), sub_(Py_NewInterpreter()), id_(-1) {
    if (sub_ == nullptr) {
        PyThreadState_Swap(previous_);
        throw std::runtime_error("Py_NewInterpreter failed");
    }
    id_ = current_interpreter_id();
    note_on("sub-interpreter " + std::to_string(id_), "entered sub-interpreter " + std::to_string(id_));
}

void sub_interpreter::end() {
    if (sub_ == nullptr) return;
    PyThreadState_Swap(sub_);
    Py_EndInterpreter(sub_);
    sub_ = nullptr;
    PyThreadState_Swap(previous_);
    note_on("sub-interpreter " + std::to_string(id_), "ended sub-interpreter " + std::to_string(id_));
}

sub_interpreter::~sub_interpreter() { end(); }

void run_in_own_gil_interpreters(const std::vector<scenario_thread>& threads) {
#if PY_VERSION_HEX >= 0x030C0000
    PyInterpreterState* main_interpreter = PyInterpreterState_Main();
    std::vector<std::exception_ptr> errors(threads.size());
    std::vector<std::string> gil_names(threads.size());
    // Interpreters are created in the threads' order, so their ids are too (1, 2, ...).
    std::vector<std::unique_ptr<event>> created;
    for (std::size_t i = 0; i < threads.size(); ++i)
        created.push_back(std::make_unique<event>("interpreter of " + threads[i].name + " created"));
    {
        PyThreadState* saved = gilonce::detail::this_thread_holds_the_gil() ? PyEval_SaveThread() : nullptr;
        std::vector<std::thread> running;
        for (std::size_t i = 0; i < threads.size(); ++i) {
            running.emplace_back([&, i] {
                set_thread_name(threads[i].name.c_str());
                try {
                    if (i > 0) created[i - 1]->wait();
                } catch (...) {
                    errors[i] = std::current_exception();
                    created[i]->set();
                    return;
                }
                // A thread state of the main interpreter, attached, to create the new one
                // from; Py_NewInterpreterFromConfig detaches it and attaches the new one.
                PyThreadState* main_state = PyThreadState_New(main_interpreter);
                record(event_kind::waits, gil_resource);
                PyEval_RestoreThread(main_state);
                record(event_kind::holds, gil_resource);
                PyInterpreterConfig config = {};
                config.use_main_obmalloc = 0;
                config.allow_fork = 0;
                config.allow_exec = 0;
                config.allow_threads = 1;
                config.allow_daemon_threads = 0;
                config.check_multi_interp_extensions = 1;
                config.gil = PyInterpreterConfig_OWN_GIL;
                PyThreadState* sub = nullptr;
                const PyStatus status = Py_NewInterpreterFromConfig(&sub, &config);
                created[i]->set();
                if (PyStatus_Exception(status)) {
                    // CPython has made main_state current again: this thread holds the main GIL.
                    errors[i] = std::make_exception_ptr(std::runtime_error(
                        std::string("Py_NewInterpreterFromConfig failed: ") +
                        (status.err_msg != nullptr ? status.err_msg : "?")));
                } else {
                    gil_names[i] = "GIL of interpreter " + std::to_string(current_interpreter_id());
                    record(event_kind::releases, gil_resource);  // handed over to the new one
                    current_gil = gil_names[i].c_str();
                    record(event_kind::holds, current_gil);
                    try {
                        threads[i].body(gilonce::gil_token::assume_held());
                    } catch (...) {
                        errors[i] = std::current_exception();
                    }
                    record(event_kind::releases, current_gil);
                    Py_EndInterpreter(sub);  // leaves no thread state attached
                    current_gil = gil_resource;
                    record(event_kind::waits, gil_resource);
                    PyEval_RestoreThread(main_state);
                    record(event_kind::holds, gil_resource);
                }
                PyThreadState_Clear(main_state);
                record(event_kind::releases, gil_resource);
                PyThreadState_DeleteCurrent();
            });
        }
        for (auto& t : running) t.join();
        if (saved != nullptr) PyEval_RestoreThread(saved);
    }
    for (std::size_t i = 0; i < threads.size(); ++i) {
        if (!errors[i]) continue;
        try {
            std::rethrow_exception(errors[i]);
        } catch (const std::exception& e) {
            throw std::runtime_error("thread " + threads[i].name + ": " + e.what());
        } catch (...) {
            throw std::runtime_error("thread " + threads[i].name + ": unknown exception");
        }
    }
#else
    (void)threads;
    throw std::logic_error(own_gil_unavailable());
#endif
}

}  // namespace harness
