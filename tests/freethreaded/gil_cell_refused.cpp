// Must NOT compile with Py_GIL_DISABLED defined (ctest "free-threaded: gil_once_cell is
// refused"): gil_once_cell uses the GIL as its lock, and the error must name the replacement.
#include <gilonce/gil_once_cell.hpp>
