// What a user pays the first time, side by side in one run: each iteration starts from an
// empty cell (a fresh one, made in place) with the code already hot, then fills it once.
//   gil_once_cell           a fresh cell, get_or_init, destroyed (its value released)
//   function-local static   what the compiler emits for one: libstdc++'s real
//                           __cxa_guard_acquire / __cxa_guard_release on a fresh guard
//                           (without the __cxa_atexit registration a static with a
//                           destructor would add: the peer is measured slightly cheap)
//   std::call_once          a fresh std::once_flag
//   pybind11                a fresh gil_safe_call_once_and_store (it releases and retakes
//                           the GIL around std::call_once on every first use)
// And the two-stage type, cold: a fresh lazy_type with N class attributes that are
// instances of the type, against the same type built eagerly (PyType_FromSpec, then the
// instances written into its dict, as an extension's module init would).
// Each value is a new reference to one str made in main: the value's own cost is an incref.
#include <benchmark/benchmark.h>
#include <gilonce/gilonce.hpp>
#include <gilonce/lazy_type.hpp>
#include <pybind11/embed.h>
#include <pybind11/gil_safe_call_once.h>

#include <cxxabi.h>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "pybind11_storage.hpp"

namespace py = pybind11;

namespace {

py::object* value_source = nullptr;  // set in main
py::object make_value() { return *value_source; }

// A fresh T made in place each iteration: no allocator call in the measured path.
template <class T>
struct fresh {
    alignas(T) unsigned char bytes[sizeof(T)];
    template <class... Args>
    T& make(Args&&... args) { return *::new (bytes) T(std::forward<Args>(args)...); }
};

// ---- warm first use ---------------------------------------------------------------------

void first_use_gil_once_cell(benchmark::State& state) {
    const auto gil = gilonce::gil_token::assume_held();
    fresh<gilonce::gil_once_cell<py::object>> storage;
    for (auto _ : state) {
        auto& cell = storage.make("first use");
        benchmark::DoNotOptimize(&cell.get_or_init(gil, make_value));
        cell.~gil_once_cell();  // releases the value: this thread holds the GIL
    }
}

void first_use_function_local_static(benchmark::State& state) {
    fresh<py::object> value;
    for (auto _ : state) {
        __cxxabiv1::__guard guard = 0;  // what `static T value = init();` keeps beside it
        benchmark::DoNotOptimize(&guard);
        py::object* made = nullptr;
        if (__cxxabiv1::__cxa_guard_acquire(&guard) != 0) {
            made = &value.make(make_value());
            __cxxabiv1::__cxa_guard_release(&guard);
        }
        benchmark::DoNotOptimize(made);
        std::destroy_at(made);
    }
}

void first_use_std_call_once(benchmark::State& state) {
    fresh<std::once_flag> flag;
    fresh<py::object> value;
    for (auto _ : state) {
        std::once_flag& once = flag.make();
        py::object* made = nullptr;
        std::call_once(once, [&] { made = &value.make(make_value()); });
        benchmark::DoNotOptimize(made);
        std::destroy_at(made);
        once.~once_flag();
    }
}

void first_use_pybind11(benchmark::State& state) {
    fresh<py::gil_safe_call_once_and_store<py::object>> storage;
    for (auto _ : state) {
        auto& once = storage.make();
        py::object& stored = once.call_once_and_store_result(make_value).get_stored();
        benchmark::DoNotOptimize(stored);
        end_pybind11_storage(once, stored);
    }
}

// ---- the two-stage type, cold -----------------------------------------------------------

PyType_Slot item_slots[] = {{0, nullptr}};
// Immutable, as lazy_type makes it; a plain object layout, created by calling the type.
PyType_Spec item_spec = {"bench.Item", sizeof(PyObject), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, item_slots};

const std::vector<std::string>& attribute_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (int i = 0; i < 64; ++i) n.push_back("ITEM_" + std::to_string(i));
        return n;
    }();
    return names;
}

// Between iterations, out of the timing: the types of the last iteration are in reference
// cycles (type -> dict -> instance -> type) that only the collector frees. Automatic
// collection is off while the type benchmarks run (main), so that a collection never falls
// inside one peer's timing; the youngest generation, where these cycles are, is collected
// here after every iteration.
py::object* collect_young = nullptr;  // gc.collect, called with 0
void collect_untimed(benchmark::State& state) {
    state.PauseTiming();
    (*collect_young)(0);
    state.ResumeTiming();
}

void cold_lazy_type(benchmark::State& state) {
    const auto gil = gilonce::gil_token::assume_held();
    const auto n = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        state.PauseTiming();  // the attribute list is built once per type in real code
        auto type = std::make_unique<gilonce::lazy_type*>(nullptr);
        std::vector<gilonce::class_attribute> attributes;
        for (std::size_t i = 0; i < n; ++i)
            attributes.push_back({attribute_names()[i].c_str(), [slot = type.get()](gilonce::gil_token g) {
                                      PyTypeObject* t = (*slot)->get(g);
                                      return t ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(t)) : nullptr;
                                  }});
        auto* lazy = new gilonce::lazy_type(&item_spec, std::move(attributes));
        *type = lazy;
        state.ResumeTiming();
        PyTypeObject* made = lazy->get(gil);
        if (made == nullptr) {
            state.SkipWithError("lazy_type::get failed");
            PyErr_Clear();
        }
        benchmark::DoNotOptimize(made);
        delete lazy;
        collect_untimed(state);
    }
}

void cold_eager_type(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        PyObject* type = PyType_FromSpec(&item_spec);
        bool ok = type != nullptr;
        PyObject* dict = ok ? reinterpret_cast<PyTypeObject*>(type)->tp_dict : nullptr;
        for (std::size_t i = 0; ok && i < n; ++i) {
            PyObject* item = PyObject_CallNoArgs(type);
            ok = item != nullptr && PyDict_SetItemString(dict, attribute_names()[i].c_str(), item) == 0;
            Py_XDECREF(item);
        }
        if (ok) PyType_Modified(reinterpret_cast<PyTypeObject*>(type));
        if (!ok) {
            state.SkipWithError("eager type creation failed");
            PyErr_Clear();
        }
        benchmark::DoNotOptimize(type);
        Py_XDECREF(type);
        collect_untimed(state);
    }
}

}  // namespace

BENCHMARK(first_use_gil_once_cell);
BENCHMARK(first_use_function_local_static);
BENCHMARK(first_use_std_call_once);
BENCHMARK(first_use_pybind11);
// The cold benchmarks are registered in main: each iteration also pauses the timer and
// collects, so they get a shorter minimum time (or, with --smoke, a few iterations only).

int main(int argc, char** argv) {
    py::scoped_interpreter interpreter;  // the benchmarks run on this thread, holding the GIL
    value_source = new py::object(py::str("first use"));
    py::module_ gc = py::module_::import("gc");
    collect_young = new py::object(gc.attr("collect"));
    gc.attr("disable")();
    // --smoke (first_use.py --smoke): every benchmark runs, the cold ones 3 iterations each;
    // under a debug interpreter their minimum time would take minutes.
    bool smoke = false;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--smoke") {
            smoke = true;
            for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
            --argc;
            break;
        }
    }
    for (auto* cold : {benchmark::RegisterBenchmark("cold_lazy_type", cold_lazy_type),
                       benchmark::RegisterBenchmark("cold_eager_type", cold_eager_type)}) {
        for (int n : {0, 1, 4, 16, 64}) cold->Arg(n);
        if (smoke) cold->Iterations(3);
        else cold->MinTime(0.1);
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
