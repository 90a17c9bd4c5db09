// harness/catch_main.cpp: Catch2's main, inside one embedded Python interpreter.
//
// The interpreter lives for the whole test run; the main thread releases the GIL before
// running the tests, so each test takes it explicitly (as extension code would) and
// threads started by a test can take it too.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <pybind11/embed.h>

int main(int argc, char* argv[]) {
    pybind11::scoped_interpreter interpreter;
    int result = 0;
    {
        pybind11::gil_scoped_release no_gil;
        result = Catch::Session().run(argc, argv);
    }
    return result;
}
