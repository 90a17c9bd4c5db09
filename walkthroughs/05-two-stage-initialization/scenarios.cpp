// Step 05's scenarios (see scenarios.hpp), each in a fresh watchdog child.
#include "scenarios.hpp"

#include <string>

#include "color_object.hpp"
#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "lazy_colors.hpp"

namespace step05 {
namespace {

constexpr const char* step = "05-two-stage-initialization";
using result = harness::scenario_result;

std::string text_of(PyObject* o) {
    if (o == nullptr) return "nothing";
    auto s = gilonce::py_ref::steal(PyObject_Str(o));
    return std::string(Py_TYPE(o)->tp_name) + ": " + (s ? PyUnicode_AsUTF8(s.get()) : "?");
}

// The current exception and its cause, as one line; clears the exception.
std::string take_error() {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    auto error = gilonce::py_ref::steal(value);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (!error) return "no error";
    auto cause = gilonce::py_ref::steal(PyException_GetCause(error.get()));
    return text_of(error.get()) + " (cause: " + text_of(cause.get()) + ")";
}

bool has_attribute(PyObject* type, const char* name) { return PyObject_HasAttrString(type, name) == 1; }

// "" if `type` has all three class attributes with the right values, else what is wrong.
std::string check_complete(PyObject* type) {
    if (type == nullptr) return "got no type";
    for (const char* name : {"DEFAULT_NAME", "RED", "GREEN"})
        if (!has_attribute(type, name)) return std::string("the type has no ") + name;
    auto red = gilonce::py_ref::steal(PyObject_GetAttrString(type, "RED"));
    if (PyObject_IsInstance(red.get(), type) != 1) return "Color.RED is not a Color";
    auto again = gilonce::py_ref::steal(PyObject_GetAttrString(type, "RED"));
    if (red.get() != again.get()) return "Color.RED is not Color.RED";
    return {};
}

result recursive_attributes_work() {
    harness::traced_gil gil;
    std::string problem = check_complete(color.get(gil.token()));
    if (!problem.empty()) return result::fail(problem);
    auto red = gilonce::py_ref::steal(PyObject_GetAttrString(color.get(gil.token()), "RED"));
    auto repr = gilonce::py_ref::steal(PyObject_Repr(red.get()));
    return result::pass(std::string("Color.RED is a Color, Color.RED is Color.RED: ") + PyUnicode_AsUTF8(repr.get()));
}

// --8<-- [start:race]
// A and C start stage 2 and release the GIL in DEFAULT_NAME; B runs all of stage 2 and
// publishes; then A and C finish theirs, find the attributes published and drop their own.
result racing_threads_never_see_missing_attributes() {
    static harness::event a_released("A released the GIL in stage 2");
    static harness::event c_released("C released the GIL in stage 2");
    static harness::event b_done("B got the complete type");
    default_name_hook = [] {
        const std::string me = harness::thread_name();
        if (me == "B") return;
        harness::without_gil([&] {
            (me == "A" ? a_released : c_released).set();
            b_done.wait();
        });
    };
    std::string seen[3];
    const long colors_before = live_colors();  // a parent process may hold Colors of its own
    harness::run_threads({
        {"A", [&](gilonce::gil_token gil) { seen[0] = check_complete(color.get(gil)); }},
        {"C", [&](gilonce::gil_token gil) {
             harness::without_gil([] { a_released.wait(); });
             seen[2] = check_complete(color.get(gil));
         }},
        {"B", [&](gilonce::gil_token gil) {
             harness::without_gil([] { c_released.wait(); });
             seen[1] = check_complete(color.get(gil));
             b_done.set();
         }},
    });
    harness::traced_gil gil;
    const char* names[] = {"A", "B", "C"};
    for (int i = 0; i < 3; ++i)
        if (!seen[i].empty()) return result::fail(std::string("thread ") + names[i] + ": " + seen[i]);
    if (color.publications() != 1)
        return result::fail("published " + std::to_string(color.publications()) + " times");
    const long new_colors = live_colors() - colors_before;
    if (new_colors != 2)  // RED and GREEN as published; A's and C's were released
        return result::fail(std::to_string(new_colors) + " new Color instances alive, expected 2");
    return result::pass("A, B and C each got the complete type; published once; "
                        "the 4 Colors computed by A and C were released");
}
// --8<-- [end:race]

result factory_error_then_retry(const char* how) {
    fail_with = how;
    harness::traced_gil gil;
    if (flaky_color.get(gil.token()) != nullptr) return result::fail("the first call succeeded");
    const std::string error = take_error();
    // The failed attempt left the ready type without any attribute: nothing was published.
    // (Stage 1 succeeded; asking for the type now is a fresh call, not a re-entrant one.)
    PyObject* type = flaky_color.get(gil.token());
    if (type == nullptr) return result::fail("the retry failed: " + take_error());
    if (!has_attribute(type, "RED") || !has_attribute(type, "DEFAULT_NAME"))
        return result::fail("the retry returned a type without its attributes");
    if (flaky_color.publications() != 1) return result::fail("published more than once");
    return result::pass(error + "; the retry on the same thread computed and published them");
}

// --8<-- [start:unpublished]
result python_error_in_factory_names_class_and_attribute() { return factory_error_then_retry("python"); }
result cpp_exception_in_factory_names_class_and_attribute() { return factory_error_then_retry("c++"); }
// --8<-- [end:unpublished]

result stage1_reentry_is_an_error() {
    harness::traced_gil gil;
    if (base_asking_color.get(gil.token()) != nullptr) return result::fail("stage 1 re-entry succeeded");
    return result::pass(take_error());
}

}  // namespace

const std::vector<harness::scenario>& scenarios() {
    using harness::verdict;
    static const std::vector<harness::scenario> list{
        {step, "recursive_attributes_work",
         "Color.RED = Color('red') works: its factory gets the ready type early, on its own thread",
         verdict::finished,
         {"Color.RED is a Color, Color.RED is Color.RED"}, recursive_attributes_work},
        {step, "racing_threads_never_see_missing_attributes",
         "three threads race through stage 2 while two release the GIL: each gets the type "
         "with all its attributes, published once; the losers' values are released",
         verdict::finished,
         {"A, B and C each got the complete type; published once", "the 4 Colors computed by A and C were released"}, racing_threads_never_see_missing_attributes},
        {step, "python_error_in_factory_names_class_and_attribute",
         "a factory's Python error becomes RuntimeError naming the class and the attribute; "
         "nothing is published; the next call retries",
         verdict::finished,
         {"RuntimeError: cannot compute class attribute step05.FlakyColor.RED (cause: ValueError: no red paint today)", "the retry on the same thread computed and published them"}, python_error_in_factory_names_class_and_attribute},
        {step, "cpp_exception_in_factory_names_class_and_attribute",
         "a factory's C++ exception is reported the same way",
         verdict::finished,
         {"RuntimeError: cannot compute class attribute step05.FlakyColor.RED (cause: RuntimeError: C++ exception: no red paint today)", "the retry on the same thread computed and published them"}, cpp_exception_in_factory_names_class_and_attribute},
        {step, "stage1_reentry_is_an_error",
         "stage 1 is not re-entrant: asking for the type while creating it is a RuntimeError",
         verdict::finished,
         {"RuntimeError: gil_once_cell 'step05.BaseAskingColor': re-entrant initialization"}, stage1_reentry_is_an_error},
    };
    return list;
}

}  // namespace step05
