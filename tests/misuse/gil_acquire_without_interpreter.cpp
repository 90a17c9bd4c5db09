// gil_acquire with no interpreter: before Py_Initialize, and after Py_Finalize. Both used to
// crash inside PyGILState_Ensure (SIGSEGV, no message); now the constructor throws a
// std::logic_error that says what is wrong. This program links libpython without starting
// it, tries both, and prints what each attempt did; ctest checks the lines.
#include <gilonce/gil_token.hpp>

#include <cstdio>
#include <stdexcept>

namespace {
// What one attempt did, as a line for ctest to match.
void attempt(const char* when) {
    try {
        gilonce::gil_acquire gil;
        std::printf("%s: acquired (unexpected)\n", when);
    } catch (const std::logic_error& error) {
        std::printf("%s: refused: %s\n", when, error.what());
    }
    std::fflush(stdout);
}
}  // namespace

int main() {
    attempt("before Py_Initialize");
    Py_Initialize();
    {
        gilonce::gil_acquire gil;  // the control: with an interpreter it works (and nests)
        std::printf("initialized: acquired\n");
    }
    if (Py_FinalizeEx() < 0) return 2;
    attempt("after Py_Finalize");
    return 0;
}
