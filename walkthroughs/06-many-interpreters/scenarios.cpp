// Step 06's scenarios (see scenarios.hpp), each in a fresh watchdog child. Every verdict is
// what the child saw: addresses compared with the record of who made each object
// (made_in.hpp), exceptions caught, flags read -- never an object of an ended interpreter
// dereferenced.
#include "scenarios.hpp"


#include <atomic>
#include <chrono>
#include <string>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/interpreters.hpp"
#include "harness/threads.hpp"
#include "made_in.hpp"
#include "static_values.hpp"

namespace step06 {
namespace {

constexpr const char* step = "06-many-interpreters";
using result = harness::scenario_result;
using gilonce::py_ref;

// The current exception as "Type: message"; clears it.
std::string take_error() {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    auto error = py_ref::steal(value);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (!error) return "no error";
    auto text = py_ref::steal(PyObject_Str(error.get()));
    return std::string(Py_TYPE(error.get())->tp_name) + ": " + (text ? PyUnicode_AsUTF8(text.get()) : "?");
}

// Imports `name` from `directory` (put first on this interpreter's sys.path).
py_ref import_from(const char* directory, const char* name) {
    PyObject* path = PySys_GetObject("path");  // borrowed
    auto entry = py_ref::steal(PyUnicode_FromString(directory));
    if (path == nullptr || !entry || PyList_Insert(path, 0, entry.get()) < 0) return {};
    return py_ref::steal(PyImport_ImportModule(name));
}

// colors.Color of `module`, built on first access (a new reference), or empty.
py_ref color_of(const py_ref& module) { return py_ref::steal(PyObject_GetAttrString(module.get(), "Color")); }

// "" if `color` is complete and its RED is one of its own instances, else what is wrong.
std::string check_colors_type(PyObject* color) {
    if (color == nullptr) return "no Color: " + take_error();
    auto red = py_ref::steal(PyObject_GetAttrString(color, "RED"));
    if (!red) return "no Color.RED: " + take_error();
    if (reinterpret_cast<PyObject*>(Py_TYPE(red.get())) != color) return "Color.RED is not this Color's instance";
    return {};
}

bool is_built(const py_ref& colors_module) {
    auto flag = py_ref::steal(PyObject_CallMethod(colors_module.get(), "is_built", nullptr));
    return flag && PyObject_IsTrue(flag.get()) == 1;
}

// ---- the bugs: C++ statics --------------------------------------------------------------

// --8<-- [start:ended_sub_interpreter]
// A sub-interpreter builds the static type and ends; the main interpreter then asks.
result static_type_outlives_its_sub_interpreter() {
    harness::traced_gil gil;
    long long sub_id;
    PyTypeObject* built_in_sub;
    {
        harness::sub_interpreter sub;  // current on this thread until it ends
        sub_id = sub.id();
        built_in_sub = static_color.get(gil.token());
        if (built_in_sub == nullptr) return result::fail(take_error());
    }  // Py_EndInterpreter: the sub-interpreter's modules and builtins are gone
    PyTypeObject* seen_by_main = static_color.get(gil.token());  // the fast path
    const std::optional<maker> made = maker_of(seen_by_main);
    if (seen_by_main != built_in_sub || !made || made->interpreter != sub_id)
        return result::pass("main got a StaticColor of its own");
    return result::fail("main got the StaticColor built by " + describe_maker(seen_by_main) +
                        ", which had ended: an object of a finished interpreter");
}
// --8<-- [end:ended_sub_interpreter]

// --8<-- [start:reinitialization]
// The static type is built, the interpreter is finalized and initialized again.
result static_type_survives_reinitialization() {
    PyGILState_Ensure();  // not released: Py_FinalizeEx ends this interpreter with it
    PyTypeObject* before = static_color.get(gilonce::gil_token::assume_held());
    if (before == nullptr) return result::fail(take_error());
    if (Py_FinalizeEx() != 0) return result::fail("Py_FinalizeEx failed");
    harness::note_on("the main interpreter", "Py_FinalizeEx returned; Py_Initialize makes a new main interpreter");
    Py_Initialize();  // this thread now holds the new interpreter's GIL
    next_generation();
    PyTypeObject* after = static_color.get(gilonce::gil_token::assume_held());  // the fast path
    const std::optional<maker> made = maker_of(after);  // a new type would be generation 2
    if (after != before || !made || made->generation != 1)
        return result::pass("the new interpreter built a StaticColor of its own");
    return result::fail("after Py_Finalize and Py_Initialize, get() returned the StaticColor built by " +
                        describe_maker(after) + ": the finalized interpreter's object (generation now " +
                        std::to_string(generation()) + ")");
}
// --8<-- [end:reinitialization]

// ---- bug 3: two GILs, so two threads inside one initializer -----------------------------

// Threads X and Y ask one cell for its value; `run` runs them: in own-GIL interpreters (the
// bug), or in the main interpreter under its one GIL (the control, test_step06.cpp).
using thread_runner = void (*)(const std::vector<harness::scenario_thread>&);

// What one thread saw inside the palettes' initializer.
struct seen_inside {
    int threads_inside = 0;  // initializers running at that moment, this one included
    bool holds_gil = false;  // this thread's thread state is attached: it holds its GIL
    long long gil_of = -1;   // the interpreter of that thread state (whose GIL it is)
};

// The palettes' hook for bug 3. X, inside the initializer, waits *holding its GIL* until Y
// is inside too; Y, inside, waits holding its GIL until X has stored (so the stores take
// turns: the overlap is observed, not left to chance). With one GIL, Y can never get in:
// X's wait ends at `bound` and `missed` says so.
struct inside_at_once {
    harness::event x_inside{"X is inside the initializer"};
    harness::event y_inside{"Y is inside the initializer"};
    harness::event x_stored{"X has stored its value"};
    std::chrono::milliseconds bound;
    std::atomic<int> inside{0};
    seen_inside x, y;
    std::string missed;  // "" if both were inside at once

    explicit inside_at_once(std::chrono::milliseconds wait_bound) : bound(wait_bound) {
        palette_hook = [this] { at_initializer(); };
    }
    ~inside_at_once() { palette_hook = nullptr; }
    inside_at_once(const inside_at_once&) = delete;
    inside_at_once& operator=(const inside_at_once&) = delete;

    // --8<-- [start:inside_at_once]
    // Runs inside make_palette, the cell's initializer, with this thread's GIL held.
    void at_initializer() {
        const bool is_x = std::string(harness::thread_name()) == "X";
        seen_inside& me = is_x ? x : y;
        inside.fetch_add(1);
        me.holds_gil = gilonce::detail::this_thread_holds_the_gil();
        me.gil_of = PyInterpreterState_GetID(PyThreadState_GetInterpreter(PyThreadState_Get()));
        try {
            if (is_x) {  // stays inside, holding its GIL, until Y is inside too
                x_inside.set();
                harness::note("inside the initializer, holding its GIL; waits for 'Y is inside the initializer'");
                y_inside.wait_holding_own_gil(bound);
                me.threads_inside = inside.load();
            } else {  // X is inside (Y asked only after x_inside) and waits for y_inside
                me.threads_inside = inside.load();
                harness::note("inside the initializer, holding its GIL, with " + std::to_string(me.threads_inside) + " inside");
                y_inside.set();
                x_stored.wait_holding_own_gil(bound);
            }
        } catch (const std::runtime_error& e) {  // a missed overlap is reported, not thrown
            missed = e.what();
        }
        inside.fetch_sub(1);
    }
    // --8<-- [end:inside_at_once]
};

// --8<-- [start:two_gils]
// X and Y ask `cell` for its value, Y only once X is inside the initializer. Fills what
// each got and its interpreter's id.
template <class Cell>
void ask_from_x_and_y(thread_runner run, Cell& cell, inside_at_once& at_once, const void* (&got)[2],
                      long long (&ids)[2]) {
    run({
        {"X", [&](gilonce::gil_token gil) {
             struct done {  // however X ends, Y must not wait for it in vain
                 inside_at_once& a;
                 ~done() {
                     if (!a.x_inside.is_set()) a.x_inside.set();
                     a.x_stored.set();
                 }
             } guard{at_once};
             ids[0] = harness::current_interpreter_id();
             got[0] = cell.get_or_init(gil, make_palette).get();
         }},
        {"Y", [&](gilonce::gil_token gil) {
             ids[1] = harness::current_interpreter_id();
             harness::without_gil([&] { at_once.x_inside.wait(at_once.bound); });
             got[1] = cell.get_or_init(gil, make_palette).get();
         }},
    });
}

// "X holding the GIL of interpreter 1 and Y the GIL of interpreter 2", from what each saw.
std::string gils_held(const inside_at_once& a) {
    auto one = [](const seen_inside& s) {
        return s.holds_gil ? "the GIL of interpreter " + std::to_string(s.gil_of) : std::string("no GIL");
    };
    return "X holding " + one(a.x) + " and Y " + one(a.y);
}

// The bug's scenario, with X and Y run by `run` and X's wait for Y bounded by `bound`.
result two_initializers_in_one_static_cell(thread_runner run, std::chrono::milliseconds bound) {
    inside_at_once at_once(bound);
    const void* got[2] = {nullptr, nullptr};
    long long ids[2] = {-1, -1};
    ask_from_x_and_y(run, static_palette, at_once, got, ids);
    const std::string runs = std::to_string(palette_runs()) + (palette_runs() == 1 ? " run" : " runs");
    if (!at_once.missed.empty())
        return result::pass("Y did not enter the cell's initializer while X was inside it (" + at_once.missed +
                            "); " + runs + "; Y got the object made by " + describe_maker(got[1]));
    const std::optional<maker> y_got = maker_of(got[1]);
    if (!y_got || y_got->interpreter == ids[1]) return result::pass("Y got a value of its own");
    return result::fail("X and Y were inside the cell's initializer at the same moment (" +
                        std::to_string(at_once.y.threads_inside) + " seen by Y, " +
                        std::to_string(at_once.x.threads_inside) + " by X), " + gils_held(at_once) +
                        "; both had found the cell empty (" + runs + "); Y (interpreter " + std::to_string(ids[1]) +
                        ") was handed the object made by " + describe_maker(got[1]));
}

// Two interpreters with their own GILs ask for one static cell at once.
result own_gil_interpreters_share_one_static_cell() {
    return two_initializers_in_one_static_cell(harness::run_in_own_gil_interpreters, std::chrono::seconds(5));
}
// --8<-- [end:two_gils]

// --8<-- [start:single_phase_refused]
// An own-GIL interpreter imports the single-phase module, then the multi-phase one.
result single_phase_module_refused_by_own_gil_interpreter() {
    std::string legacy, isolated;
    harness::run_in_own_gil_interpreters({{"A", [&](gilonce::gil_token) {
        py_ref module = import_from(STEP06_LEGACY_DIR, "step06_legacy");
        legacy = module ? "step06_legacy imported" : take_error();
        py_ref colors = import_from(COLORS_DIR, "colors");
        py_ref color = colors ? color_of(colors) : py_ref();
        const std::string problem = check_colors_type(color.get());
        isolated = problem.empty() ? "colors imported and built its Color" : problem;
    }}});
    return result::pass(legacy + "; " + isolated);
}
// --8<-- [end:single_phase_refused]

// ---- the fixes: module state, and per_interpreter_cell for the statics that stay --------

// --8<-- [start:module_state_sub]
// A sub-interpreter and the main interpreter each import colors and build its Color.
result module_state_gives_each_interpreter_its_own_color() {
    harness::traced_gil gil;
    py_ref main_colors = import_from(COLORS_DIR, "colors");
    if (!main_colors) return result::fail(take_error());
    harness::sub_interpreter sub;
    py_ref sub_colors = import_from(COLORS_DIR, "colors");
    py_ref sub_color = sub_colors ? color_of(sub_colors) : py_ref();
    std::string problem = check_colors_type(sub_color.get());
    if (!problem.empty()) return result::fail("sub-interpreter: " + problem);
    PyThreadState* sub_state = PyThreadState_Swap(sub.previous());  // to main; sub lives on
    const bool built_before = is_built(main_colors);
    py_ref main_color = color_of(main_colors);
    problem = check_colors_type(main_color.get());
    if (!problem.empty()) return result::fail("main: " + problem);
    if (built_before || main_color.get() == sub_color.get())
        return result::fail("main was handed the sub-interpreter's Color");
    PyThreadState_Swap(sub_state);
    sub_color = py_ref();  // the sub-interpreter's objects are released in it
    sub_colors = py_ref();
    sub.end();
    problem = check_colors_type(main_color.get());
    if (!problem.empty()) return result::fail("main, after the sub-interpreter ended: " + problem);
    return result::pass("the sub-interpreter and main each built their own Color (main's was not built "
                        "until main asked); main's still works after the sub-interpreter ended");
}
// --8<-- [end:module_state_sub]

// --8<-- [start:module_state_reinit]
// colors is imported and its Color built; the interpreter is finalized and initialized again.
result module_state_rebuilds_after_reinitialization() {
    PyGILState_Ensure();
    py_ref colors = import_from(COLORS_DIR, "colors");
    py_ref color = colors ? color_of(colors) : py_ref();
    std::string problem = check_colors_type(color.get());
    if (!problem.empty()) return result::fail("before Py_Finalize: " + problem);
    color = py_ref();
    colors = py_ref();
    if (Py_FinalizeEx() != 0) return result::fail("Py_FinalizeEx failed");
    harness::note_on("the main interpreter", "Py_FinalizeEx returned; Py_Initialize makes a new main interpreter");
    Py_Initialize();
    colors = import_from(COLORS_DIR, "colors");
    if (!colors) return result::fail(take_error());
    const bool built_before = is_built(colors);
    color = color_of(colors);
    problem = check_colors_type(color.get());
    if (!problem.empty()) return result::fail("after Py_Initialize: " + problem);
    if (built_before) return result::fail("the new interpreter's colors had a Color before it asked");
    return result::pass("after Py_Finalize and Py_Initialize, the new module had no Color until asked, "
                        "then built a complete one");
}
// --8<-- [end:module_state_reinit]

// --8<-- [start:inside_getenv]
#if PY_VERSION_HEX >= 0x030C0000
// Each thread's profile function: on the call of os.getenv (Color.DEFAULT's factory runs
// it while the class attributes are computed), says "I am inside" and waits, holding its
// own GIL, until every other thread is inside too; `met` counts the threads that saw all
// three inside, so "at the same moment" is observed, not assumed. A thread that fails
// before it gets there sets its event anyway (see the scenario), with `gave_up`.
struct building_together {
    harness::event inside[3] = {harness::event("A is building its Color"), harness::event("B is building its Color"),
                                harness::event("C is building its Color")};
    std::atomic<bool> gave_up{false};
    std::atomic<int> met{0};
};
building_together* together = nullptr;

int wait_inside_getenv(PyObject*, PyFrameObject* frame, int what, PyObject*) {
    if (what != PyTrace_CALL) return 0;
    auto code = py_ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetCode(frame)));
    if (PyUnicode_CompareWithASCIIString(reinterpret_cast<PyCodeObject*>(code.get())->co_name, "getenv") != 0) return 0;
    PyEval_SetProfile(nullptr, nullptr);  // once
    const int me = harness::thread_name()[0] - 'A';
    together->inside[me].set();
    try {  // no C++ exception may cross CPython's frames: a Python error instead
        for (const harness::event& other : together->inside) other.wait_holding_own_gil(std::chrono::seconds(5));
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return -1;
    }
    if (!together->gave_up) together->met.fetch_add(1);
    return 0;
}
#endif
// --8<-- [end:inside_getenv]

// --8<-- [start:own_gil_colors]
// Three own-GIL interpreters import colors and build their Colors at the same moment.
result own_gil_interpreters_build_their_own_colors_at_once() {
#if PY_VERSION_HEX >= 0x030C0000
    building_together events;
    together = &events;
    const void* color[3] = {};
    const void* red[3] = {};
    std::string problems[3];
    auto body = [&](int i) {
        return [&, i](gilonce::gil_token) {
            // However this body ends, the others must not wait for it in vain.
            struct release_others {
                building_together& e;
                int i;
                ~release_others() {
                    if (!e.inside[i].is_set()) e.gave_up = true, e.inside[i].set();
                }
            } guard{events, i};
            py_ref colors = import_from(COLORS_DIR, "colors");
            if (!colors) {
                problems[i] = take_error();
                return;
            }
            PyEval_SetProfile(wait_inside_getenv, nullptr);
            py_ref type = color_of(colors);  // builds it: Color.DEFAULT calls os.getenv
            PyEval_SetProfile(nullptr, nullptr);
            problems[i] = check_colors_type(type.get());
            auto r = type ? py_ref::steal(PyObject_GetAttrString(type.get(), "RED")) : py_ref();
            color[i] = type.get();
            red[i] = r.get();
        };
    };
    harness::run_in_own_gil_interpreters({{"A", body(0)}, {"B", body(1)}, {"C", body(2)}});
    for (int i = 0; i < 3; ++i)
        if (!problems[i].empty()) return result::fail(std::string(1, char('A' + i)) + ": " + problems[i]);
    if (events.met != 3)
        return result::fail(std::to_string(events.met.load()) + " of 3 threads met inside their Color's construction");
    for (int i = 0; i < 3; ++i)
        for (int j = i + 1; j < 3; ++j)
            if (color[i] == color[j] || red[i] == red[j]) return result::fail("two interpreters share a Color");
    return result::pass("A, B and C were each building their own Color at the same moment, each holding "
                        "its own interpreter's GIL; three Colors, three REDs, each RED an instance of its "
                        "own interpreter's Color");
#else
    return result::fail(harness::own_gil_unavailable());
#endif
}
// --8<-- [end:own_gil_colors]

// --8<-- [start:per_interpreter_cell]
// The static that stays, as a per_interpreter_cell: a sub-interpreter, then re-initialization.
result per_interpreter_cell_gives_each_interpreter_its_own_value() {
    PyGILState_Ensure();
    auto gil = gilonce::gil_token::assume_held();
    std::string sub_made;
    {
        harness::sub_interpreter sub;
        sub_made = describe_maker(per_interpreter_palette.get_or_init(gil, make_palette).get());
    }
    const void* main_value = per_interpreter_palette.get_or_init(gil, make_palette).get();
    const std::optional<maker> main_made = maker_of(main_value);
    if (!main_made || main_made->interpreter != 0) return result::fail("main got " + describe_maker(main_value));
    if (Py_FinalizeEx() != 0) return result::fail("Py_FinalizeEx failed");
    Py_Initialize();
    next_generation();
    const void* new_value = per_interpreter_palette.get_or_init(gilonce::gil_token::assume_held(), make_palette).get();
    const std::optional<maker> new_made = maker_of(new_value);
    if (!new_made || new_made->generation != 2)
        return result::fail("after re-initialization: " + describe_maker(new_value));
    return result::pass("the sub-interpreter got its own value (" + sub_made + "), main its own (" +
                        describe_maker(main_value) + "), and after Py_Finalize and Py_Initialize a new "
                        "one (" + describe_maker(new_value) + ")");
}
// --8<-- [end:per_interpreter_cell]

// --8<-- [start:per_interpreter_two_gils]
// Bug 3's overlap again, on a per_interpreter_cell: X and Y inside their initializers at once.
result own_gil_interpreters_fill_their_own_per_interpreter_cell() {
    inside_at_once at_once(std::chrono::seconds(5));
    const void* got[2] = {nullptr, nullptr};
    long long ids[2] = {-1, -1};
    ask_from_x_and_y(harness::run_in_own_gil_interpreters, per_interpreter_palette, at_once, got, ids);
    if (!at_once.missed.empty()) return result::fail("X and Y were not inside at once: " + at_once.missed);
    for (int i = 0; i < 2; ++i) {
        const std::optional<maker> made = maker_of(got[i]);
        if (!made || made->interpreter != ids[i])
            return result::fail(std::string(i == 0 ? "X" : "Y") + " was handed " + describe_maker(got[i]));
    }
    return result::pass("X and Y were inside their initializers at the same moment, " + gils_held(at_once) + " (" +
                        std::to_string(palette_runs()) + " runs), and each got its own interpreter's value");
}
// --8<-- [end:per_interpreter_two_gils]

}  // namespace

const std::vector<harness::scenario>& scenarios() {
    using harness::verdict;
    const std::string own_gil = harness::own_gil_unavailable();
    static const std::vector<harness::scenario> list{
        {step, "static_type_outlives_its_sub_interpreter",
         "a static lazy_type built in a sub-interpreter is handed to the main interpreter after the "
         "sub-interpreter has ended",
         verdict::wrong_result,
         {"main got the StaticColor built by interpreter 1, generation 1, which had ended"},
         static_type_outlives_its_sub_interpreter},
        {step, "static_type_survives_reinitialization",
         "after Py_Finalize and Py_Initialize, a static lazy_type's fast path hands the new interpreter "
         "the finalized one's type",
         verdict::wrong_result,
         {"get() returned the StaticColor built by interpreter 0, generation 1", "generation now 2"},
         static_type_survives_reinitialization},
        {step, "own_gil_interpreters_share_one_static_cell",
         "two own-GIL sub-interpreters, two GILs guarding one static gil_once_cell: both threads are inside "
         "its initializer at once, each holding its own GIL, and one is handed the other interpreter's object",
         verdict::wrong_result,
         {"X and Y were inside the cell's initializer at the same moment (2 seen by Y, 2 by X)",
          "X holding the GIL of interpreter 1 and Y the GIL of interpreter 2",
          "both had found the cell empty (2 runs)",
          "Y (interpreter 2) was handed the object made by interpreter 1, generation 1"},
         own_gil_interpreters_share_one_static_cell, {}, own_gil},
        one_gil_control(),  // the same threads under one GIL: played on every build
        {step, "single_phase_module_refused_by_own_gil_interpreter",
         "an isolated sub-interpreter (its own GIL and allocator) refuses the single-phase module and "
         "imports the multi-phase colors",
         verdict::finished,
         {"ImportError: module step06_legacy does not support loading in subinterpreters",
          "colors imported and built its Color"},
         single_phase_module_refused_by_own_gil_interpreter, {}, own_gil},
        {step, "module_state_gives_each_interpreter_its_own_color",
         "with the lazy type in module state, a sub-interpreter and the main interpreter each build their "
         "own Color, and main's outlives the sub-interpreter",
         verdict::finished,
         {"the sub-interpreter and main each built their own Color", "main's still works after the sub-interpreter ended"},
         module_state_gives_each_interpreter_its_own_color},
        {step, "module_state_rebuilds_after_reinitialization",
         "after Py_Finalize and Py_Initialize, the new interpreter's colors module builds a new Color",
         verdict::finished,
         {"the new module had no Color until asked, then built a complete one"},
         module_state_rebuilds_after_reinitialization},
        {step, "own_gil_interpreters_build_their_own_colors_at_once",
         "three own-GIL sub-interpreters build their Colors at the same moment, each under its own GIL, "
         "and never see another's",
         verdict::finished,
         {"A, B and C were each building their own Color at the same moment", "three Colors, three REDs"},
         own_gil_interpreters_build_their_own_colors_at_once, {}, own_gil},
        {step, "per_interpreter_cell_gives_each_interpreter_its_own_value",
         "a per_interpreter_cell gives a sub-interpreter and main their own values, and recomputes after "
         "re-initialization",
         verdict::finished,
         {"the sub-interpreter got its own value (interpreter 1, generation 1)",
          "main its own (interpreter 0, generation 1)", "a new one (interpreter 0, generation 2)"},
         per_interpreter_cell_gives_each_interpreter_its_own_value},
        {step, "own_gil_interpreters_fill_their_own_per_interpreter_cell",
         "bug 3's two threads again, on a per_interpreter_cell: inside their initializers at once, each "
         "interpreter gets its own value",
         verdict::finished,
         {"X and Y were inside their initializers at the same moment",
          "X holding the GIL of interpreter 1 and Y the GIL of interpreter 2 (2 runs)",
          "each got its own interpreter's value"},
         own_gil_interpreters_fill_their_own_per_interpreter_cell, {}, own_gil},
    };
    return list;
}

const harness::scenario& one_gil_control() {
    static const harness::scenario control{
        step, "one_gil_keeps_y_out_of_the_initializer",
        "own_gil_interpreters_share_one_static_cell's threads in the main interpreter, under its one GIL: "
        "while X waits inside the initializer holding the GIL, Y cannot get in",
        harness::verdict::finished,
        {"Y did not enter the cell's initializer while X was inside it",
         "'Y is inside the initializer' was never set (waited 250 ms)", "1 run;",
         "Y got the object made by interpreter 0, generation 1"},
        [] { return two_initializers_in_one_static_cell(harness::run_threads, std::chrono::milliseconds(250)); }};
    return control;
}

}  // namespace step06
