// Step 06's naive statics and the per-interpreter form (see static_values.hpp).
#include "static_values.hpp"

#include <atomic>

#include "made_in.hpp"

namespace step06 {
namespace {

std::atomic<int> runs{0};

// StaticColor: a type whose RED is a StaticColor and whose MADE_IN is the id of the
// interpreter that built it. RED's factory records who built the type.
PyType_Slot static_color_slots[] = {{0, nullptr}};
PyType_Spec static_color_spec = {"step06.StaticColor", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT,
                                 static_color_slots};

PyObject* make_red(gilonce::gil_token gil) {
    PyTypeObject* type = static_color.get(gil);  // the ready type, in this computation
    if (type == nullptr) return nullptr;
    record_maker(type);
    return PyObject_CallNoArgs(reinterpret_cast<PyObject*>(type));
}

PyObject* made_in(gilonce::gil_token) { return PyLong_FromLongLong(PyInterpreterState_GetID(PyInterpreterState_Get())); }

}  // namespace

gilonce::lazy_type static_color(&static_color_spec, {{"RED", make_red}, {"MADE_IN", made_in}});
gilonce::gil_once_cell<gilonce::py_ref> static_palette{"step06.static_palette"};
gilonce::per_interpreter_cell<gilonce::py_ref> per_interpreter_palette{"step06.per_interpreter_palette"};
std::function<void()> palette_hook;

gilonce::py_ref make_palette() {
    runs.fetch_add(1);
    auto palette = gilonce::py_ref::steal(PyDict_New());
    auto id = gilonce::py_ref::steal(PyLong_FromLongLong(PyInterpreterState_GetID(PyInterpreterState_Get())));
    if (!palette || !id || PyDict_SetItemString(palette.get(), "made_in", id.get()) < 0) return {};
    record_maker(palette.get());
    if (palette_hook) palette_hook();  // a scenario's meeting point
    return palette;
}

int palette_runs() noexcept { return runs.load(); }

}  // namespace step06
