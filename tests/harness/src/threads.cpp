// harness/threads.cpp: run named threads that hold the GIL (see threads.hpp).
#include "harness/threads.hpp"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <exception>
#include <stdexcept>
#include <thread>

#include "harness/gil.hpp"
#include "harness/trace.hpp"

namespace harness {

void run_threads(const std::vector<scenario_thread>& threads) {
    std::vector<std::exception_ptr> errors(threads.size());
    {
        // The joining thread must not hold the GIL, or no scenario thread could take it.
        // Not PyGILState_Check(): once a sub-interpreter has existed it answers 1 everywhere.
        PyThreadState* saved = gilonce::detail::this_thread_holds_the_gil() ? PyEval_SaveThread() : nullptr;
        std::vector<std::thread> running;
        for (std::size_t i = 0; i < threads.size(); ++i) {
            running.emplace_back([&, i] {
                set_thread_name(threads[i].name.c_str());
                try {
                    traced_gil gil;
                    threads[i].body(gil.token());
                } catch (...) {
                    errors[i] = std::current_exception();
                }
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
}

}  // namespace harness
