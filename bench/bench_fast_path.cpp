// The cost of reading an already-initialized lazy value, for every way of caching it.
//
// Once a value exists, every call pays only the fast path, so that is what must be cheap.
// Peers, all measured in this one binary on the same py::object:
//   floor                   a plain global read: no laziness at all
//   gil_once_cell get       gilonce: a load and a branch, the GIL is the lock
//   gil_once_cell get_or_init  the same fast path through the call users write
//   gil_once_cell get_or_try_init, lazy_type get  the other two fast paths
//   function-local static   the compiler's guard variable (acquire load and branch)
//   std::call_once          libstdc++ sets up a thread-local callable, then pthread_once
//   pybind11 call_once_and_store  pybind11's gil_safe_call_once_and_store
// bench/ratios.py runs it with repetitions and prints each median as a ratio to the floor.
// Below a nanosecond, timing depends on where each loop lands in memory: CMakeLists.txt
// aligns every function and loop head to 64 bytes, so each measured loop starts on its own
// cache line; ratios.py states the spread. Instruction counts (instruction_counts.cpp) are
// the figure to trust at this size; these timings only show that nothing is slower.
#include <benchmark/benchmark.h>
#include <gilonce/gilonce.hpp>
#include <gilonce/lazy_type.hpp>
#include <pybind11/embed.h>
#include <pybind11/gil_safe_call_once.h>

#include <mutex>
#include <optional>

namespace py = pybind11;

namespace {

py::object make_value() { return py::str("cached"); }

py::object* floor_value = nullptr;  // a plain global, set before the benchmarks run
gilonce::gil_once_cell<py::object> cell{"bench value"};
std::once_flag once_flag;
py::object* call_once_value = nullptr;
PyType_Slot timed_slots[] = {{0, nullptr}};
PyType_Spec timed_spec = {"bench.Timed", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, timed_slots};
gilonce::lazy_type timed_type{&timed_spec, {}};

// Leaked on purpose, like the other peers' values: a `static py::object` would be decref'd
// by the exit handlers after Py_Finalize (the naive static's own failure; the debug
// interpreter, pydebug preset, turns it into a crash). The guard measured is the same.
const py::object& function_local_static() {
    static const py::object* value = new py::object(make_value());
    return *value;
}

const py::object& with_call_once() {
    std::call_once(once_flag, [] { call_once_value = new py::object(make_value()); });
    return *call_once_value;
}

const py::object& with_pybind11_call_once() {
    PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> storage;
    return storage.call_once_and_store_result(make_value).get_stored();
}

void floor_global_read(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(*floor_value);
}

// The peers below return the cached object by const reference; each loop keeps its address
// observable (as bench_first_use.cpp does): Google Benchmark 1.8 deprecates DoNotOptimize
// on a const reference, and the address is all the asm needs either way.
void gil_once_cell_get(benchmark::State& state) {
    const auto gil = gilonce::gil_token::assume_held();
    cell.get_or_init(gil, make_value);
    for (auto _ : state) benchmark::DoNotOptimize(cell.get(gil));
}

void gil_once_cell_get_or_init(benchmark::State& state) {
    const auto gil = gilonce::gil_token::assume_held();
    for (auto _ : state) benchmark::DoNotOptimize(&cell.get_or_init(gil, make_value));
}

void gil_once_cell_get_or_try_init(benchmark::State& state) {
    const auto gil = gilonce::gil_token::assume_held();
    auto init = []() -> std::optional<py::object> { return make_value(); };
    for (auto _ : state) benchmark::DoNotOptimize(cell.get_or_try_init(gil, init));
}

void lazy_type_get(benchmark::State& state) {
    const auto gil = gilonce::gil_token::assume_held();
    if (timed_type.get(gil) == nullptr) state.SkipWithError("lazy_type::get failed");
    for (auto _ : state) benchmark::DoNotOptimize(timed_type.get(gil));
}

void function_local_static_read(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(&function_local_static());
}

void std_call_once_read(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(&with_call_once());
}

void pybind11_call_once_and_store_read(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(&with_pybind11_call_once());
}

}  // namespace

BENCHMARK(floor_global_read);
BENCHMARK(gil_once_cell_get);
BENCHMARK(gil_once_cell_get_or_init);
BENCHMARK(gil_once_cell_get_or_try_init);
BENCHMARK(lazy_type_get);
BENCHMARK(function_local_static_read);
BENCHMARK(std_call_once_read);
BENCHMARK(pybind11_call_once_and_store_read);

int main(int argc, char** argv) {
    py::scoped_interpreter interpreter;  // the benchmarks run on this thread, holding the GIL
    floor_value = new py::object(make_value());
    // Initialize every peer first: only the fast path is measured.
    function_local_static();
    with_call_once();
    with_pybind11_call_once();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
