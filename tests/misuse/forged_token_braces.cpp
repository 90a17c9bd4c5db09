// Misuse that must not compile: a token made from `{}` in place of a real one. In C++17 a
// class whose only constructor is a private `= default` one is an aggregate, and this
// compiled, bypassing assume_held() and its check. CMake expects the compiler to refuse it.
#include <gilonce/gil_once_cell.hpp>

int forged(gilonce::gil_once_cell<int>& cell) {
    return cell.get_or_init({}, [] { return 1; });  // error: the constructor is private
}
