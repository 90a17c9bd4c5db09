// Instructions per call of every way of reading an already-initialized lazy value, counted
// by valgrind's callgrind: deterministic, where nanoseconds below one are layout noise.
// Each peer is read K times in a loop, two ways: inlined into the loop, and through an
// opaque call (noinline, noipa). bench/instruction_counts.py runs this binary under
// callgrind (every loop alone in one dump, for K and 2K calls) and divides the difference
// by K, so the client requests and the loop's set-up cancel out. Run it through that script.
#include <gilonce/gilonce.hpp>
#include <gilonce/lazy_type.hpp>
#include <pybind11/embed.h>
#include <pybind11/gil_safe_call_once.h>
#include <valgrind/callgrind.h>

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "pybind11_storage.hpp"

namespace py = pybind11;

namespace {

py::object make_value() { return py::str("cached"); }

// ---- the peers, each initialized before counting ------------------------------------

py::object* floor_value = nullptr;  // a plain global: no laziness at all
gilonce::gil_once_cell<py::object> cell{"counted value"};
std::once_flag once_flag;
py::object* call_once_value = nullptr;

PyType_Slot counted_slots[] = {{0, nullptr}};
PyType_Spec counted_spec = {"bench.Counted", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, counted_slots};
gilonce::lazy_type counted_type{&counted_spec, {}};  // a global, like the cell

// Each peer's read, written once and inlined into both ways of counting it.
#define GILONCE_READ __attribute__((always_inline)) inline const void*

GILONCE_READ read_nothing() { return &once_flag; }  // no read: the loop (and call) alone

GILONCE_READ read_plain_global() { return floor_value; }

GILONCE_READ read_function_local_static() {
    static const py::object value = make_value();
    return &value;
}

GILONCE_READ read_std_call_once() {
    std::call_once(once_flag, [] { call_once_value = new py::object(make_value()); });
    return call_once_value;
}

GILONCE_READ read_pybind11_call_once_and_store() {
    PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> storage;
    return &storage.call_once_and_store_result(make_value).get_stored();
}

GILONCE_READ read_gil_once_cell_get() { return cell.get(gilonce::gil_token::assume_held()); }

GILONCE_READ read_gil_once_cell_get_or_init() {
    return &cell.get_or_init(gilonce::gil_token::assume_held(), make_value);
}

GILONCE_READ read_gil_once_cell_get_or_try_init() {
    return cell.get_or_try_init(gilonce::gil_token::assume_held(),
                                []() -> std::optional<py::object> { return make_value(); });
}

// Counted before the interpreter joins the census: the checked path (the interpreter that
// filled it, found in the fast record).
gilonce::per_interpreter_cell<py::object> per_interpreter{"counted per-interpreter value"};
GILONCE_READ read_per_interpreter_cell_get_or_init() {
    return &per_interpreter.get_or_init(gilonce::gil_token::assume_held(), make_value);
}

// Counted after main has called gilonce::join_interpreter, the only interpreter to: the sole slot.
gilonce::per_interpreter_cell<py::object> joined_per_interpreter{"counted joined per-interpreter value"};
GILONCE_READ read_per_interpreter_cell_joined() {
    return &joined_per_interpreter.get_or_init(gilonce::gil_token::assume_held(), make_value);
}

GILONCE_READ read_lazy_type_get() { return counted_type.get(gilonce::gil_token::assume_held()); }

// Way 1: the read inlined into the caller's loop, as a hot accessor usually is. The empty
// asm with a memory clobber makes every iteration read again (as benchmark::DoNotOptimize).
template <const void* (*Read)()>
__attribute__((noinline, noipa)) void loop_inlined(long calls) {
    for (long i = 0; i < calls; ++i) {
        const void* value = Read();
        asm volatile("" : : "r"(value) : "memory");
    }
}

// Way 2: the read behind a call the optimizer cannot see through, as an accessor exported
// from another translation unit is.
template <const void* (*Read)()>
__attribute__((noinline, noipa)) const void* opaque() { return Read(); }

template <const void* (*Read)()>
__attribute__((noinline, noipa)) void loop_opaque(long calls) {
    for (long i = 0; i < calls; ++i) {
        const void* value = opaque<Read>();
        asm volatile("" : : "r"(value) : "memory");
    }
}

struct peer {
    const char* name;
    const void* (*first_call)();
    void (*inlined)(long);
    void (*through_call)(long);
    bool joined = false;  // counted after join_interpreter (which turns the census on for every cell)
};

#define GILONCE_PEER(name) {#name, opaque<read_##name>, loop_inlined<read_##name>, loop_opaque<read_##name>}
#define GILONCE_JOINED_PEER(name) \
    {#name, opaque<read_##name>, loop_inlined<read_##name>, loop_opaque<read_##name>, true}
const peer peers[] = {
    GILONCE_PEER(nothing),
    GILONCE_PEER(plain_global),
    GILONCE_PEER(function_local_static),
    GILONCE_PEER(std_call_once),
    GILONCE_PEER(pybind11_call_once_and_store),
    GILONCE_PEER(gil_once_cell_get),
    GILONCE_PEER(gil_once_cell_get_or_init),
    GILONCE_PEER(gil_once_cell_get_or_try_init),
    GILONCE_PEER(lazy_type_get),
    GILONCE_PEER(per_interpreter_cell_get_or_init),
    GILONCE_JOINED_PEER(per_interpreter_cell_joined),
};

// One dump per loop: callgrind collects only between the two toggles.
void count(const char* peer_name, const char* way, void (*loop)(long), long calls) {
    char label[128];
    std::snprintf(label, sizeof label, "%s %s %ld", peer_name, way, calls);
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    loop(calls);
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT(label);
}

// ---- warm first use: an empty cell each iteration, the code hot -------------------------
// As bench_first_use.cpp: a fresh cell, flag or guard made in place, filled, then emptied.
// The value is a new reference to one existing object: its own cost is an incref.
py::object make_cached_value() { return *floor_value; }

template <class T>
struct fresh {
    alignas(T) unsigned char bytes[sizeof(T)];
};

__attribute__((noinline, noipa)) void first_use_gil_once_cell(long calls) {
    for (long i = 0; i < calls; ++i) {
        gilonce::gil_once_cell<py::object> fresh_cell{"first use"};
        const py::object& value = fresh_cell.get_or_init(gilonce::gil_token::assume_held(), make_cached_value);
        asm volatile("" : : "r"(&value) : "memory");
    }  // the cell releases its value here: this thread holds the GIL
}

__attribute__((noinline, noipa)) void first_use_function_local_static(long calls) {
    fresh<py::object> value;
    for (long i = 0; i < calls; ++i) {
        __cxxabiv1::__guard guard = 0;  // what `static T value = init();` keeps beside it
        asm volatile("" : : "r"(&guard) : "memory");
        py::object* made = nullptr;
        if (__cxxabiv1::__cxa_guard_acquire(&guard) != 0) {
            made = ::new (value.bytes) py::object(make_cached_value());
            __cxxabiv1::__cxa_guard_release(&guard);
        }
        asm volatile("" : : "r"(made) : "memory");
        std::destroy_at(made);
    }
}

__attribute__((noinline, noipa)) void first_use_std_call_once(long calls) {
    fresh<py::object> value;
    for (long i = 0; i < calls; ++i) {
        std::once_flag once;
        py::object* made = nullptr;
        std::call_once(once, [&] { made = ::new (value.bytes) py::object(make_cached_value()); });
        asm volatile("" : : "r"(made) : "memory");
        std::destroy_at(made);
    }
}

__attribute__((noinline, noipa)) void first_use_pybind11_call_once_and_store(long calls) {
    fresh<py::gil_safe_call_once_and_store<py::object>> storage;
    for (long i = 0; i < calls; ++i) {
        auto* once = ::new (storage.bytes) py::gil_safe_call_once_and_store<py::object>();
        py::object& stored = once->call_once_and_store_result(make_cached_value).get_stored();
        asm volatile("" : : "r"(&stored) : "memory");
        end_pybind11_storage(*once, stored);
    }
}

struct first_use_peer {
    const char* name;
    void (*loop)(long);
};

const first_use_peer first_use_peers[] = {
    {"gil_once_cell", first_use_gil_once_cell},
    {"function_local_static", first_use_function_local_static},
    {"std_call_once", first_use_std_call_once},
    {"pybind11_call_once_and_store", first_use_pybind11_call_once_and_store},
};

// ---- first use of the two-stage type, per class attribute -----------------------------
// Instructions to create a fresh lazy_type with n attributes (instances of the type) and
// get it, and the same type built eagerly; the script checks that both grow linearly in n.

PyType_Spec item_spec = {"bench.Item", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
                         counted_slots};
const char* const item_names[] = {"I0",  "I1",  "I2",  "I3",  "I4",  "I5",  "I6",  "I7",  "I8",  "I9",  "I10",
                                  "I11", "I12", "I13", "I14", "I15", "I16", "I17", "I18", "I19", "I20", "I21",
                                  "I22", "I23", "I24", "I25", "I26", "I27", "I28", "I29", "I30", "I31"};
constexpr int max_items = sizeof item_names / sizeof item_names[0];

bool create_lazy(int n) {
    gilonce::lazy_type* self = nullptr;
    std::vector<gilonce::class_attribute> attributes;
    for (int i = 0; i < n; ++i)
        attributes.push_back({item_names[i], [&self](gilonce::gil_token gil) {
                                  PyTypeObject* t = self->get(gil);
                                  return t ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(t)) : nullptr;
                              }});
    gilonce::lazy_type type(&item_spec, std::move(attributes));
    self = &type;
    return type.get(gilonce::gil_token::assume_held()) != nullptr;
}

bool create_eager(int n) {
    PyObject* type = PyType_FromSpec(&item_spec);
    bool ok = type != nullptr;
    for (int i = 0; ok && i < n; ++i) {
        PyObject* item = PyObject_CallNoArgs(type);
        ok = item != nullptr &&
             PyDict_SetItemString(reinterpret_cast<PyTypeObject*>(type)->tp_dict, item_names[i], item) == 0;
        Py_XDECREF(item);
    }
    if (ok) PyType_Modified(reinterpret_cast<PyTypeObject*>(type));
    Py_XDECREF(type);
    return ok;
}

bool count_creation(const char* kind, bool (*create)(int), int n) {
    if (!create(n)) return false;  // once uncounted: the code and Python's caches warm
    char label[128];
    std::snprintf(label, sizeof label, "%s creation %d", kind, n);
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    const bool ok = create(n);
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT(label);
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2 || std::strtol(argv[1], nullptr, 10) < 1) {
        std::fprintf(stderr, "usage: %s CALLS (a positive count; run it through bench/instruction_counts.py)\n",
                     argv[0]);
        return 2;
    }
    const long calls = std::strtol(argv[1], nullptr, 10);
    py::scoped_interpreter interpreter;  // this thread holds the GIL throughout
    floor_value = new py::object(make_value());
    cell.get_or_init(gilonce::gil_token::assume_held(), make_value);  // get does not fill it
    if (!RUNNING_ON_VALGRIND) {
        std::fprintf(stderr, "%s: not under valgrind: nothing counted (use bench/instruction_counts.py)\n", argv[0]);
        return 3;
    }
    // Every peer takes its slow path once, then only the fast path is counted: first the
    // peers without a census, then, main joined, the joined ones.
    for (bool joined : {false, true}) {
        if (joined && gilonce::join_interpreter(gilonce::gil_token::assume_held()) != 0) {
            PyErr_Print();
            return 1;
        }
        for (const peer& p : peers) {
            if (p.joined == joined && p.first_call() == nullptr) {
                std::fprintf(stderr, "%s: the peer %s has no value after its first call\n", argv[0], p.name);
                return 1;
            }
        }
        for (const peer& p : peers) {
            if (p.joined != joined) continue;
            for (long n : {calls, 2 * calls}) {
                count(p.name, "inlined", p.inlined, n);
                count(p.name, "opaque", p.through_call, n);
            }
        }
    }
    for (const first_use_peer& p : first_use_peers) {
        p.loop(1);  // once uncounted: Python's and the loader's caches warm
        for (long n : {calls, 2 * calls}) count(p.name, "first_use", p.loop, n);
    }
    PyGC_Disable();  // no collection inside a count; the types are freed at exit
    for (int n : {0, 8, 16, max_items}) {
        if (!count_creation("lazy", create_lazy, n) || !count_creation("eager", create_eager, n)) {
            PyErr_Print();
            return 1;
        }
    }
    // Out without finalizing: the function-local static peer would otherwise be destroyed
    // after Py_Finalize (the naive static's own failure, a crash on 3.13).
    std::fflush(nullptr);
    std::_Exit(0);
}
