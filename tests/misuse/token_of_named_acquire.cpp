// The control for the misuse checks: the same includes and flags, used as meant, compile.
// Without it, a misuse check could pass because of a broken include path.
#include <gilonce/gil_once_cell.hpp>

int proper(gilonce::gil_once_cell<int>& cell) {
    gilonce::gil_acquire gil;
    return cell.get_or_init(gil.token(), [] { return 1; });
}
