// Step 02 without any harness: an ordinary C API extension function whose function-local
// `static` is initialized by calling back into Python, and two ordinary Python threads
// that call it. No trace, no events in C++: Python code alone releases the GIL (a
// threading.Event wait), and the watchdog's evidence is what it observes in /proc.
#include "plain_extension.hpp"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace step02 {
namespace {

// --8<-- [start:plain_static]
// cached(init): the value init() returned the first time. BAD: the function-local static's
// guard is held while init() runs Python code, which may release the GIL.
PyObject* cached(PyObject*, PyObject* init) {
    static PyObject* const value = PyObject_CallNoArgs(init);
    if (value == nullptr) return nullptr;
    return Py_NewRef(value);
}
// --8<-- [end:plain_static]

PyMethodDef methods[] = {{"cached", cached, METH_O, "cached(init): init()'s first result"},
                         {nullptr, nullptr, 0, nullptr}};
PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "plain_extension", "a function-local static, plainly", -1,
                          methods, nullptr, nullptr, nullptr, nullptr};

// --8<-- [start:plain_driver]
// Two ordinary Python threads. The first runs init() inside the static's initializer and
// waits there for an Event (releasing the GIL); the second sets that Event and calls
// cached() at once, still holding the GIL. A huge switch interval keeps the GIL from
// changing hands anywhere else, so the order is the one written here, every time.
constexpr const char* driver = R"(
import sys, threading
import plain_extension
sys.setswitchinterval(1000)
first_inside, second_done = threading.Event(), threading.Event()

def init():
    first_inside.set()
    second_done.wait()   # releases the GIL inside the static's initializer
    return "built by the first thread"

def second():
    first_inside.wait()
    second_done.set()    # the first thread now wants the GIL back...
    plain_extension.cached(init)   # ...while this one holds it and waits for the guard

threads = [threading.Thread(target=plain_extension.cached, args=(init,)),
           threading.Thread(target=second)]
for t in threads: t.start()
for t in threads: t.join()
)";
// --8<-- [end:plain_driver]

}  // namespace

harness::scenario_result two_python_threads_and_a_plain_static() {
    PyGILState_STATE state = PyGILState_Ensure();
    PyObject* module = PyModule_Create(&module_def);
    if (module == nullptr || PyDict_SetItemString(PyImport_GetModuleDict(), "plain_extension", module) < 0)
        return harness::scenario_result::fail("could not create the module");
    Py_DECREF(module);
    const int failed = PyRun_SimpleString(driver);
    PyGILState_Release(state);
    if (failed != 0) return harness::scenario_result::fail("the driver raised (see stderr)");
    return harness::scenario_result::pass("both Python threads returned");
}

}  // namespace step02
