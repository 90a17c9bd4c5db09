// Step 06's naive forms: the reference library's own sound pieces, gilonce::lazy_type and
// gilonce::gil_once_cell, declared as C++ statics. A static is one value for the whole
// process, so it is only as sound as "one interpreter, one GIL, for as long as the process
// lives" -- the assumption this step breaks three ways.
#pragma once

#include <gilonce/gilonce.hpp>
#include <gilonce/per_interpreter.hpp>

#include <functional>

namespace step06 {

// --8<-- [start:static_forms]
// BAD once a process has more than one interpreter, or one after another: a C++ static is
// one value for the whole process, whichever interpreter filled it.
extern gilonce::lazy_type static_color;                         // StaticColor; RED is one
extern gilonce::gil_once_cell<gilonce::py_ref> static_palette;  // a cached dict
// --8<-- [end:static_forms]

// --8<-- [start:per_interpreter_form]
// For a static that cannot move into module state: one value per interpreter.
extern gilonce::per_interpreter_cell<gilonce::py_ref> per_interpreter_palette;
// --8<-- [end:per_interpreter_form]

/// The palettes' initializer: a new dict {"made_in": <interpreter id>}, recorded with
/// record_maker. It calls `palette_hook` (if set) with the GIL held, where a scenario
/// waits for events (bug 3: still holding its own interpreter's GIL).
/// Requires: the GIL is held. Returns a new reference, or an empty py_ref with an error set.
gilonce::py_ref make_palette();
extern std::function<void()> palette_hook;
/// How many times make_palette ran (each run found its cell empty). Atomic: two
/// interpreters with their own GILs may run it at once.
int palette_runs() noexcept;

}  // namespace step06
