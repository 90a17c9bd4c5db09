// Step 05: the two stages (see two_stage_type.hpp). `build_stage1` and `get_slow` are the
// whole algorithm; the helpers after them compute the attributes (naming a failure) and
// publish them (all or none). The `harness::note` lines write the trace the main job
// narrates; they do not change what the code does.
#include "two_stage_type.hpp"

#include <algorithm>
#include <exception>

#include <gilonce/errors.hpp>

#include "color_object.hpp"
#include "harness/trace.hpp"

namespace step05 {
namespace {

// --8<-- [start:record]
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
// --8<-- [end:record]

}  // namespace

// --8<-- [start:core]
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
    return type;  // ready: instances can be created from here on
}

PyObject* two_stage_type::get_slow(gilonce::gil_token gil) {
    const gilonce::py_ref* ready = stage1_.get_or_try_init(gil, [&] { return build_stage1(gil); });
    if (ready == nullptr) return nullptr;
    if (complete_ != nullptr) return complete_;  // published while stage 1 released the GIL

    // A factory's call on a thread that is computing the attributes: the ready type, early.
    const auto me = std::this_thread::get_id();
    if (std::count(computing_threads_.begin(), computing_threads_.end(), me) != 0) {
        harness::note("re-entrant call: gets the ready type early");
        return ready->get();
    }

    // Stage 2, part 1: compute every class attribute with no lock but the GIL, which any
    // factory may release; other threads may be computing a set of their own meanwhile.
    computing_thread_record record(computing_threads_);  // removed on every way out
    attribute_values values;
    if (!compute_attributes(gil, values)) return nullptr;  // nothing published

    // Stage 2, part 2: check and publish as one step. From here to the return this code
    // neither releases the GIL nor calls Python code (but see publish): the first complete
    // set is published, and a later one is released.
    if (complete_ != nullptr) {
        harness::note("another thread published first: this thread's values are released");
        return complete_;  // `values` are released here, under the GIL
    }
    if (!publish(ready->get(), values)) return nullptr;
    complete_ = ready->get();
    return complete_;
}
// --8<-- [end:core]

// --8<-- [start:helpers]
// Calls every factory in order. On a failure (a Python error, or a C++ exception turned
// into one) raises a RuntimeError naming the class attribute, with that error as cause.
bool two_stage_type::compute_attributes(gilonce::gil_token gil, attribute_values& values) {
    for (const class_attribute& attribute : attributes_) {
        gilonce::py_ref value;
        try {
            value = gilonce::py_ref::steal(attribute.make(gil));
        } catch (const std::exception& e) {
            PyErr_Format(PyExc_RuntimeError, "C++ exception: %s", e.what());
        } catch (...) {
            PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
        }
        if (!value) {
            const std::string what =
                std::string("cannot compute class attribute ") + name_ + "." + attribute.name;
            gilonce::raise_from_current(PyExc_RuntimeError, what.c_str());  // the cause is kept
            return false;
        }
        values.emplace_back(attribute.name, std::move(value));
    }
    return true;
}

// Sets every class attribute on the type. PyObject_SetAttr on a type also invalidates the
// type attribute cache (PyType_Modified), so lookups see the new attributes at once. On
// failure (memory), removes what it set: attributes are published all or none. Python code
// can still run in here: the `__del__` of a value it replaces, or (3.12+) a type watcher.
bool two_stage_type::publish(PyObject* type, attribute_values& values) {
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
// --8<-- [end:helpers]

}  // namespace step05
