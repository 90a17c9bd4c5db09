// Step 07's A and B (see mutual_types.hpp): each PARTNER factory calls the other type's get
// and makes an instance of it.
#include "mutual_types.hpp"

#include <string>

#include "harness/trace.hpp"

namespace step07 {
namespace {

PyType_Slot slots[] = {{0, nullptr}};
PyType_Spec spec_a = {"step07.A", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, slots};
PyType_Spec spec_b = {"step07.B", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, slots};
partner_made made[2];

// --8<-- [start:partner_factory]
// `mine`'s PARTNER: an instance of `other`, asked for with other.get (its stage 1 and 2 if
// no one has run them, or the early type if this thread is computing it).
PyObject* make_partner(char mine, gilonce::lazy_type& other, gilonce::gil_token gil) {
    if (partner_hook) partner_hook(mine);
    PyTypeObject* type = other.get(gil);
    PyObject* partner = type != nullptr ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(type)) : nullptr;
    partner_made& record = made_for(mine);
    ++record.runs;
    (harness::thread_name()[0] == 'X' ? record.by_x : record.by_y) = partner;
    return partner;
}
// --8<-- [end:partner_factory]

}  // namespace

gilonce::lazy_type type_a(&spec_a, {{"PARTNER", [](gilonce::gil_token gil) { return make_partner('A', type_b, gil); }}});
gilonce::lazy_type type_b(&spec_b, {{"PARTNER", [](gilonce::gil_token gil) { return make_partner('B', type_a, gil); }}});
std::function<void(char)> partner_hook;

partner_made& made_for(char type) { return made[type == 'A' ? 0 : 1]; }

}  // namespace step07
