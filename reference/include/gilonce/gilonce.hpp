// gilonce/gilonce.hpp: the whole gilonce reference library in one include. On a
// free-threaded build (Py_GIL_DISABLED), the pieces that do not use the GIL as a lock:
// py_once_lock and lazy_type (gil_once_cell and per_interpreter_cell stop such a build).
#pragma once

#include "errors.hpp"
#include "gil_token.hpp"
#include "lazy_type.hpp"
#include "py_once_lock.hpp"
#include "py_ref.hpp"
#if !defined(Py_GIL_DISABLED)
#include "gil_once_cell.hpp"
#include "per_interpreter.hpp"
#include "per_interpreter_census.hpp"
#endif
