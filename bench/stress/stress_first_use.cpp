// stress_first_use: N threads race to the first use of a fresh gil_once_cell and a fresh
// two-stage lazy_type, round after round, with factories that release the GIL.
//
// The evidence a skeptic asks for, counted over every round: each thread got the object
// that was kept, no thread saw the type without its class attributes, nothing hung or
// crashed, and races really happened (rounds where more than one initializer ran).
// `--naive` runs the same rounds on stress/naive.hpp, which the same checks must catch.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gilonce.hpp>
#include <pybind11/embed.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "counted.hpp"
#include "crew.hpp"
#include "naive.hpp"
#include "watchdog.hpp"

namespace {

const char* const usage =
    "usage: stress_first_use [--threads N] [--rounds N] [--kind cell|type|both] [--naive] [--timeout S] [--help]\n"
    "  --threads N   threads racing in each round (default 8)\n"
    "  --rounds N    rounds per kind, each on a fresh cell or type (default 1000)\n"
    "  --kind K      cell, type or both (default both)\n"
    "  --naive       race the naive cell and type instead (stress/naive.hpp): must fail\n"
    "  --timeout S   a round that takes longer than S seconds is a hang (default 30)\n"
    "  --require-refcount  fail unless the interpreter counts references (python3.11d)\n"
    "exit: 0 every check passed and races happened; 1 a check failed or nothing raced;\n"
    "      2 bad arguments; 3 a round hung\n";

// ---- Options ------------------------------------------------------------------------------

struct options {
    long threads = 8;
    long rounds = 1000;
    bool cell = true;
    bool type = true;
    bool naive = false;
    bool require_refcount = false;
    long timeout = 30;
    bool help = false;
};

// A whole number in [low, high], or an error naming the option and the text.
long number(const char* option, const char* text, long low, long high) {
    char* end = nullptr;
    errno = 0;
    const long value = text != nullptr ? std::strtol(text, &end, 10) : 0;
    if (text == nullptr || *text == '\0' || *end != '\0' || errno != 0 || value < low || value > high)
        throw std::invalid_argument(std::string(option) + " needs a whole number from " + std::to_string(low) +
                                    " to " + std::to_string(high) + ", not '" + (text ? text : "(nothing)") + "'");
    return value;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
        if (arg == "--threads") o.threads = number("--threads", next, 1, 256), ++i;
        else if (arg == "--rounds") o.rounds = number("--rounds", next, 1, 100000000), ++i;
        else if (arg == "--timeout") o.timeout = number("--timeout", next, 1, 3600), ++i;
        else if (arg == "--naive") o.naive = true;
        else if (arg == "--require-refcount") o.require_refcount = true;
        else if (arg == "--help") o.help = true;
        else if (arg == "--kind") {
            const std::string kind = next ? next : "(nothing)";
            if (kind != "cell" && kind != "type" && kind != "both")
                throw std::invalid_argument("--kind needs cell, type or both, not '" + kind + "'");
            o.cell = kind != "type";
            o.type = kind != "cell";
            ++i;
        } else
            throw std::invalid_argument("unknown argument '" + arg + "'");
    }
    return o;
}

// ---- What the rounds count ----------------------------------------------------------------

struct tally {
    std::string kind;       // "cell", "type", "cell (naive)", ...
    bool is_type = false;
    long rounds = 0;
    long divergent = 0;     // thread results that are not the object kept for their round
    long incomplete = 0;    // type: thread results missing a class attribute
    long errors = 0;        // a failed call, or a round that left an object alive
    long raced = 0;         // rounds with more than one initializer run (type: stage 2)
    long raced_stage1 = 0;  // type: rounds with more than one type created (stage 1)
    long runs = 0;          // initializer runs in all (type: stage 2)
    long max_runs = 0;      // the most in one round
    std::string first_error;
    double seconds = 0;
    bool refs_counted = false;  // a debug interpreter: sys.gettotalrefcount() exists
    long refs_from_round = 0;   // the baseline was read before this round
    long long refs_leaked = 0;  // total references at the end minus the baseline

    void count_runs(long n) {
        runs += n;
        if (n > 1) ++raced;
        if (n > max_runs) max_runs = n;
    }
    void error(long round, const std::string& what) {
        if (errors++ == 0) first_error = "round " + std::to_string(round) + ": " + what;
    }
};

// The current Python error as text, cleared.
std::string python_error() {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    std::string text = "no Python error set";
    if (PyObject* s = value ? PyObject_Str(value) : nullptr) {
        if (const char* utf8 = PyUnicode_AsUTF8(s)) text = utf8;
        Py_DECREF(s);
    }
    PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return text;
}

// Widens the race window where an import or any Python code would: the GIL is released and
// this thread steps aside, so that one waiting for the GIL takes it and finds the value
// still missing. Nothing waits on anything here, and no verdict depends on it.
void let_others_in() {
    Py_BEGIN_ALLOW_THREADS
    std::this_thread::yield();
    Py_END_ALLOW_THREADS
}

// Whether a weak reference's object is still alive. PyWeakref_GetObject (a borrowed
// reference) is deprecated from 3.13, which adds PyWeakref_GetRef (a strong one).
bool referent_alive(PyObject* weak) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject* referent = nullptr;
    const int alive = PyWeakref_GetRef(weak, &referent);
    Py_XDECREF(referent);
    return alive == 1;
#else
    return PyWeakref_GetObject(weak) != Py_None;
#endif
}

// The reset between rounds: the round's cell or type is destroyed (by the caller, with the
// GIL held), a collection frees the cycles, and nothing the round made may still be alive.
void check_nothing_left(tally& t, long round, long alive_before, PyObject* weak_type) {
    PyGC_Collect();
    if (stress::live_instances != alive_before)
        t.error(round, std::to_string(stress::live_instances - alive_before) + " instances alive after the reset");
    if (weak_type != nullptr && referent_alive(weak_type))
        t.error(round, "the type outlived its lazy_type");
}

// ---- The cell: N threads, one fresh cell, values that are new objects ---------------------

template <class Cell>
void cell_round(stress::crew& threads, long size, PyObject* value_type, tally& t, long round) {
    const auto gil = gilonce::gil_token::assume_held();
    const long alive_before = stress::live_instances;
    auto cell = std::make_unique<Cell>("stress cell");
    long runs = 0;  // read and written under the GIL
    // What each thread got, held until compared: no address can be reused within a round.
    std::vector<gilonce::py_ref> got(size);
    for (const std::string& e : threads.run([&](int i, gilonce::gil_token g) {
             const gilonce::py_ref& kept = cell->get_or_init(g, [&] {
                 ++runs;
                 auto made = gilonce::py_ref::steal(PyObject_CallNoArgs(value_type));
                 let_others_in();
                 return made;
             });
             got[i] = gilonce::py_ref::borrow(kept.get());  // before any other thread runs
         }))
        t.error(round, e);
    const gilonce::py_ref* kept = cell->get(gil);
    for (const gilonce::py_ref& object : got)
        if (object && (kept == nullptr || object.get() != kept->get())) ++t.divergent;
    t.count_runs(runs);
    got.clear();
    cell.reset();
    check_nothing_left(t, round, alive_before, nullptr);
}

// ---- The type: N threads, one fresh lazy type whose class attributes are its instances ----

constexpr int attribute_count = 3;
constexpr const char* attribute_names[attribute_count] = {"RED", "GREEN", "LABEL"};

// One round's type and how often its user code ran; the factories reach the type here.
template <class Type>
struct color_round {
    std::unique_ptr<Type> type;
    long stage_one_runs = 0;  // the bases factory
    long stage_two_runs = 0;  // the first class attribute's factory
};

// Color, with RED and GREEN Colors (made from the early type) and LABEL a fresh str.
// Every class-attribute factory releases the GIL. The bases factory does nothing else, and
// does it in even rounds only: there stage 1 races too; in odd rounds one thread creates
// the type and the threads meet in stage 2.
template <class Type>
std::unique_ptr<Type> make_color(color_round<Type>& r, bool stage_one_releases) {
    auto instance = [&r](gilonce::gil_token gil) -> PyObject* {
        let_others_in();
        PyTypeObject* early = r.type->get(gil);
        return early != nullptr ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(early)) : nullptr;
    };
    std::vector<gilonce::class_attribute> attributes = {
        {attribute_names[0], [&r, instance](gilonce::gil_token gil) {
             ++r.stage_two_runs;  // the first factory: one run per computation of stage 2
             return instance(gil);
         }},
        {attribute_names[1], instance},
        {attribute_names[2], [](gilonce::gil_token) {
             let_others_in();
             return PyUnicode_FromString("a new str each time: never interned");
         }},
    };
    auto bases = [&r, stage_one_releases](gilonce::gil_token) -> PyObject* {
        ++r.stage_one_runs;
        if (stage_one_releases) let_others_in();
        return Py_NewRef(reinterpret_cast<PyObject*>(&PyBaseObject_Type));
    };
    return std::make_unique<Type>(&stress::color_spec, std::move(attributes), bases);
}

// What one thread got: the type, and each class attribute as it saw it (empty: missing),
// held until compared, so that no address can be reused within a round.
struct type_view {
    gilonce::py_ref type;
    gilonce::py_ref values[attribute_count];
    bool red_is_a_color_of_this_type = false;
};

// Requires: the GIL is held. Looks the attributes up as Python code would (getattr).
type_view look_at(PyTypeObject* type) {
    type_view view;
    view.type = gilonce::py_ref::borrow(reinterpret_cast<PyObject*>(type));
    for (int k = 0; k < attribute_count; ++k) {
        view.values[k] = gilonce::py_ref::steal(PyObject_GetAttrString(view.type.get(), attribute_names[k]));
        if (!view.values[k]) PyErr_Clear();
    }
    view.red_is_a_color_of_this_type = view.values[0] && Py_TYPE(view.values[0].get()) == type;
    return view;
}

template <class Type>
void type_round(stress::crew& threads, long size, tally& t, long round) {
    const auto gil = gilonce::gil_token::assume_held();
    const long alive_before = stress::live_instances;
    color_round<Type> r;
    r.type = make_color(r, round % 2 == 0);
    std::vector<type_view> seen(size);
    for (const std::string& e : threads.run([&](int i, gilonce::gil_token g) {
             PyTypeObject* type = r.type->get(g);
             if (type == nullptr) throw std::runtime_error(python_error());
             seen[i] = look_at(type);
         }))
        t.error(round, e);
    PyTypeObject* kept = r.type->get(gil);
    type_view final_view = kept != nullptr ? look_at(kept) : type_view{};
    if (kept == nullptr) t.error(round, python_error());
    for (const type_view& view : seen) {
        if (!view.type) continue;  // counted as an error
        if (view.type.get() != reinterpret_cast<PyObject*>(kept)) {
            ++t.divergent;  // another type object than the one kept
            continue;
        }
        bool complete = true;
        for (int k = 0; k < attribute_count; ++k) {
            if (!view.values[k]) complete = false;
            else if (view.values[k].get() != final_view.values[k].get()) ++t.divergent;
        }
        if (!complete) ++t.incomplete;
        else if (!view.red_is_a_color_of_this_type) ++t.divergent;  // RED is a Color of another type
    }
    t.count_runs(r.stage_two_runs);
    if (r.stage_one_runs > 1) ++t.raced_stage1;
    PyObject* weak_type = kept != nullptr ? PyWeakref_NewRef(reinterpret_cast<PyObject*>(kept), nullptr) : nullptr;
    seen.clear();
    final_view = type_view{};
    r.type.reset();
    check_nothing_left(t, round, alive_before, weak_type);
    Py_XDECREF(weak_type);
}

// ---- Rounds, report, verdict ----------------------------------------------------------------

// Requires: the GIL is held. The interpreter's total reference count after a full
// collection, or -1 on a release interpreter (only debug builds keep the total).
long long total_references() {
    PyObject* counter = PySys_GetObject("gettotalrefcount");  // borrowed
    if (counter == nullptr) return -1;
    PyGC_Collect();
    gilonce::py_ref total = gilonce::py_ref::steal(PyObject_CallNoArgs(counter));
    const long long n = total ? PyLong_AsLongLong(total.get()) : -1;
    if (n < 0) PyErr_Clear();
    return n;
}

template <class Round>
tally run_rounds(const char* kind, const options& o, stress::watchdog& dog, Round one_round) {
    tally t;
    t.kind = std::string(kind) + (o.naive ? " (naive)" : "");
    t.is_type = std::strcmp(kind, "type") == 0;
    // The first two rounds (one of each parity) warm up what is made once: gilonce's
    // ContextVar, each thread's context. After them the total must not move.
    const long warm_up = 2;
    long long baseline = -1;
    const auto start = std::chrono::steady_clock::now();
    for (long round = 1; round <= o.rounds; ++round) {
        if (round == warm_up + 1) baseline = total_references();
        dog.step(kind, round);
        one_round(t, round);
        ++t.rounds;
    }
    if (baseline >= 0) {
        t.refs_counted = true;
        t.refs_from_round = warm_up + 1;
        t.refs_leaked = total_references() - baseline;
    }
    t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return t;
}

// Prints the tally's line; returns whether it passes.
bool report(const tally& t, long threads) {
    const bool is_type = t.is_type;
    std::printf("%s: %ld rounds x %ld threads: %ld divergent", t.kind.c_str(), t.rounds, threads, t.divergent);
    if (is_type) std::printf(", %ld incomplete", t.incomplete);
    std::printf(", %ld errors; %ld rounds with >1 %s", t.errors, t.raced,
                is_type ? "class-attribute computation (stage 2)" : "initializer run");
    if (is_type) std::printf(", %ld with >1 type created (stage 1)", t.raced_stage1);
    std::printf(" (%ld runs in all, at most %ld in one round); wall %.2f s\n", t.runs, t.max_runs, t.seconds);
    if (t.errors > 0) std::printf("  first error: %s\n", t.first_error.c_str());
    if (t.raced == 0) std::printf("  the stress did not stress: no round ran more than one initializer\n");
    if (t.refs_counted)
        std::printf("  references: %+lld from round %ld to the end (sys.gettotalrefcount, after gc)\n", t.refs_leaked,
                    t.refs_from_round);
    else if (t.rounds > 2)
        std::printf("  references: not counted (a release interpreter; the pydebug preset counts them)\n");
    return t.divergent == 0 && t.incomplete == 0 && t.errors == 0 && t.raced > 0 &&
           (!t.refs_counted || t.refs_leaked == 0);
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    try {
        o = parse(argc, argv);
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "stress_first_use: %s\n%s", e.what(), usage);
        return 2;
    }
    if (o.help) {
        std::printf("%s", usage);
        return 0;
    }
    stress::watchdog dog(std::chrono::seconds(o.timeout));  // outlives the interpreter: covers shutdown
    dog.step("start-up");
    pybind11::scoped_interpreter python;  // this thread holds the GIL from here on
    auto value_type = gilonce::py_ref::steal(PyType_FromSpec(&stress::value_spec));
    if (!value_type) {
        std::fprintf(stderr, "stress_first_use: cannot create stress.Value: %s\n", python_error().c_str());
        return 1;
    }
    std::vector<tally> results;
    {
        stress::crew threads(static_cast<int>(o.threads));
        // Each thread's contextvars.Context is made on its first use and kept by its thread
        // state: make them all now, so that the reference count below sees no one-time cost
        // whichever round a thread first runs an initializer in.
        for (const std::string& e : threads.run([](int, gilonce::gil_token) { Py_XDECREF(PyContext_CopyCurrent()); })) {
            std::fprintf(stderr, "stress_first_use: warming the threads' contexts failed: %s\n", e.c_str());
            return 1;
        }
        using cell = gilonce::gil_once_cell<gilonce::py_ref>;
        if (o.cell)
            results.emplace_back(run_rounds("cell", o, dog, [&](tally& t, long round) {
                if (o.naive) cell_round<stress::naive_cell>(threads, o.threads, value_type.get(), t, round);
                else cell_round<cell>(threads, o.threads, value_type.get(), t, round);
            }));
        if (o.type)
            results.emplace_back(run_rounds("type", o, dog, [&](tally& t, long round) {
                if (o.naive) type_round<stress::naive_type>(threads, o.threads, t, round);
                else type_round<gilonce::lazy_type>(threads, o.threads, t, round);
            }));
        dog.step("shutdown");
    }
    bool ok = true;
    for (const tally& t : results) {
        ok = report(t, o.threads) && ok;
        if (o.require_refcount && !t.refs_counted) {
            std::printf(t.rounds <= 2 ? "  --require-refcount: nothing counted: the first 2 rounds only warm up\n"
                                      : "  --require-refcount: this interpreter does not count references\n");
            ok = false;
        }
    }
    std::printf("stress_first_use: %s\n", ok ? "PASS" : "FAIL");
    std::fflush(stdout);
    return ok ? 0 : 1;
}
