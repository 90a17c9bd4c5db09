// Step 04's scenarios (see scenarios.hpp), each in a fresh watchdog child.
#include "scenarios.hpp"

#include <string>

#include "color_object.hpp"
#include "harness/gil.hpp"
#include "harness/refcount.hpp"
#include "one_stage_lazy_type.hpp"
#include "recursive_color.hpp"

namespace step04 {
namespace {

constexpr const char* step = "04-recursive-class-attributes";

// "RuntimeError: message" for an exception object.
std::string describe(PyObject* exception) {
    if (exception == nullptr) return "nothing";
    std::string text = Py_TYPE(exception)->tp_name;
    if (auto s = gilonce::py_ref::steal(PyObject_Str(exception))) text += std::string(": ") + PyUnicode_AsUTF8(s.get());
    return text;
}

}  // namespace

harness::scenario_result recursive_attribute_is_a_clear_error() {
    harness::traced_gil gil;
    if (recursive_color.get(gil.token()) != nullptr)
        return harness::scenario_result::fail("the type was built with RED and GREEN");
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    auto error = gilonce::py_ref::steal(value);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    auto cause = gilonce::py_ref::steal(PyException_GetCause(error.get()));
    harness::note("get() failed: " + describe(error.get()));
    const std::string what = describe(error.get()) + "; caused by " + describe(cause.get());
    cause = gilonce::py_ref();
    error = gilonce::py_ref();  // nothing else holds the type the failed build made: it must be freed
    const long alive = harness::live_types_named(gil.token(), "step04.Color");
    if (alive < 0) return harness::scenario_result::fail("cannot count the live step04.Color types");
    return harness::scenario_result::pass(what + "; " + std::to_string(alive) + " step04.Color type objects alive");
}

harness::scenario_result attributes_that_are_not_colors_work() {
    harness::traced_gil gil;
    PyObject* type = plain_color.get(gil.token());
    if (type == nullptr) return harness::scenario_result::fail("the build failed");
    auto name = gilonce::py_ref::steal(PyObject_GetAttrString(type, "DEFAULT_NAME"));
    return harness::scenario_result::pass(std::string("step04.Color built; DEFAULT_NAME = ") +
                                          (name ? PyUnicode_AsUTF8(name.get()) : "?"));
}

const std::vector<harness::scenario>& scenarios() {
    static const std::vector<harness::scenario> list{
        {step, "recursive_attribute_is_a_clear_error",
         "Color.RED = Color('red') needs the type while the type and its attributes are "
         "being built in one stage: a RuntimeError naming step04.Color.RED",
         harness::verdict::finished,
         {"RuntimeError: cannot compute class attribute step04.Color.RED", "caused by RuntimeError: gil_once_cell 'step04.Color': re-entrant initialization",
          "; 0 step04.Color type objects alive"}, recursive_attribute_is_a_clear_error},
        {step, "attributes_that_are_not_colors_work",
         "the same one-stage build works as long as no attribute needs the class itself",
         harness::verdict::finished,
         {"step04.Color built; DEFAULT_NAME = red"}, attributes_that_are_not_colors_work},
    };
    return list;
}

}  // namespace step04
