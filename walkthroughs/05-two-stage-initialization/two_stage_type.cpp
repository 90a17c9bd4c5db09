// Step 05: the two stages (see two_stage_type.hpp). The `harness::note` lines write the
// trace the main job narrates; they do not change what the code does.
#include "two_stage_type.hpp"

#include <algorithm>
#include <exception>

#include <gilonce/errors.hpp>

#include "color_object.hpp"
#include "harness/trace.hpp"

namespace step05 {
namespace {

// Records that this thread is computing class attributes, for as long as it lives: every
// exit path, error or not, removes the record (a later call is not mistaken for re-entry).
class computing_thread_record {
public:
    explicit computing_thread_record(std::vector<std::thread::id>& threads)
        : threads_(threads), id_(std::this_thread::get_id()) { threads_.push_back(id_); }
    ~computing_thread_record() { threads_.erase(std::find(threads_.begin(), threads_.end(), id_)); }
    computing_thread_record(const computing_thread_record&) = delete;
    computing_thread_record& operator=(const computing_thread_record&) = delete;

private:
    std::vector<std::thread::id>& threads_;
    std::thread::id id_;
};

}  // namespace

// --8<-- [start:stage1]
// Stage 1: create and ready the type, with no class attributes. Runs at most user code
// that must not need this type (the base). Not re-entrant: gil_once_cell reports it.
std::optional<gilonce::py_ref> two_stage_type::build_stage1(gilonce::gil_token gil) {
    harness::note(std::string("stage 1: creates and readies ") + name_);
    gilonce::py_ref base;
    if (make_base_) {
        base = gilonce::py_ref::steal(make_base_(gil));
        if (!base) return std::nullopt;
    }
    PyType_Spec spec = color_spec(name_);
    auto type = gilonce::py_ref::steal(PyType_FromSpecWithBases(&spec, base.get()));
    if (!type) return std::nullopt;
    return type;
}
// --8<-- [end:stage1]

// --8<-- [start:get_slow]
PyObject* two_stage_type::get_slow(gilonce::gil_token gil) {
    const gilonce::py_ref* ready = stage1_.get_or_try_init(gil, [&] { return build_stage1(gil); });
    if (ready == nullptr) return nullptr;
    if (complete_ != nullptr) return complete_;  // published while stage 1 released the GIL

    const auto me = std::this_thread::get_id();
    const bool this_thread_computes =
        std::find(computing_threads_.begin(), computing_threads_.end(), me) != computing_threads_.end();
    if (this_thread_computes) {
        harness::note("re-entrant call: gets the ready type early");
        return ready->get();  // a factory on this thread needs it to create an instance
    }

    // Stage 2, part 1: compute every class attribute, holding no lock but the GIL, which
    // any factory may release. Another thread may be doing the same meanwhile.
    computing_thread_record record(computing_threads_);
    std::vector<std::pair<std::string, gilonce::py_ref>> values;
    for (const class_attribute& attribute : attributes_) {
        const std::string what =
            std::string("cannot compute class attribute ") + name_ + "." + attribute.name;
        gilonce::py_ref value;
        try {
            value = gilonce::py_ref::steal(attribute.make(gil));
        } catch (const std::exception& e) {
            PyErr_Format(PyExc_RuntimeError, "C++ exception: %s", e.what());
        } catch (...) {
            PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
        }
        if (!value) {
            gilonce::raise_from_current(PyExc_RuntimeError, what.c_str());  // the cause is kept
            return nullptr;  // nothing published; `record` is removed on the way out
        }
        values.emplace_back(attribute.name, std::move(value));
    }

    // Stage 2, part 2: the GIL is held from here to the return, and this code neither
    // releases it nor calls Python code, so checking and publishing are one step for every
    // other thread, unless Python code runs inside a PyObject_SetAttr: the `__del__` of a
    // value it replaces, or (3.12+) a type watcher's.
    if (complete_ != nullptr) {
        harness::note("another thread published first: this thread's values are released");
        return complete_;  // `values` are released here, under the GIL
    }
    if (!publish(ready->get(), values)) return nullptr;
    complete_ = ready->get();
    return complete_;
}
// --8<-- [end:get_slow]

// --8<-- [start:publish]
// Sets every class attribute on the type. PyObject_SetAttr on a type also invalidates the
// type attribute cache (PyType_Modified), so lookups see the new attributes at once. On
// failure (memory), removes what it set: attributes are published all or none.
bool two_stage_type::publish(PyObject* type,
                             std::vector<std::pair<std::string, gilonce::py_ref>>& values) {
    harness::note(std::string("stage 2: publishes the class attributes of ") + name_);
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (PyObject_SetAttrString(type, values[i].first.c_str(), values[i].second.get()) < 0) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            for (std::size_t j = 0; j < i; ++j)
                if (PyObject_DelAttrString(type, values[j].first.c_str()) < 0) PyErr_Clear();
            PyErr_Restore(t, v, tb);
            return false;
        }
    }
    ++publications_;
    return true;
}
// --8<-- [end:publish]

}  // namespace step05
