# Helpers to declare tests the same way everywhere (tests/ and walkthroughs/).

# gilonce_catch_test(<name> LABEL <label> SOURCES <files...> [LIBRARIES <libs...>]
#                    [SKIP_MESSAGE <regex>])
# A Catch2 binary running inside one embedded interpreter; each TEST_CASE is a ctest test.
# A test whose output matches SKIP_MESSAGE (it said it could not run) is shown as skipped.
function(gilonce_catch_test name)
  cmake_parse_arguments(ARG "" "LABEL;SKIP_MESSAGE" "SOURCES;LIBRARIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES} $<TARGET_OBJECTS:gilonce_catch_main>)
  target_link_libraries(${name} PRIVATE gilonce_harness pybind11::embed Catch2::Catch2 ${ARG_LIBRARIES})
  gilonce_project_target(${name})
  set(skip "")
  if(ARG_SKIP_MESSAGE)
    set(skip SKIP_REGULAR_EXPRESSION "${ARG_SKIP_MESSAGE}")
  endif()
  # --warn NoTests: a ctest entry whose name matches no test case fails instead of passing
  # with nothing run (a ';' in a test name, for one, splits it into two such entries).
  catch_discover_tests(${name} TEST_PREFIX "${ARG_LABEL}: " EXTRA_ARGS --warn NoTests
    PROPERTIES LABELS ${ARG_LABEL} TIMEOUT 120 ${skip})
endfunction()

# The environment pytest needs to import modules from <dirs>, and, in a sanitized build,
# the sanitizer runtime loaded ahead of the (uninstrumented) interpreter. libstdc++ is
# preloaded too: ASan's __cxa_throw interceptor must find the real one at start-up, and
# python itself does not link libstdc++.
function(gilonce_pytest_environment out_var)
  string(REPLACE ";" ":" path "${ARGN}")
  set(env "PYTHONPATH=${path}")
  if(GILONCE_SANITIZE)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE asan_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libstdc++.so
                    OUTPUT_VARIABLE cxx_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
    list(APPEND env "LD_PRELOAD=${asan_runtime}:${cxx_runtime}")
  endif()
  set(${out_var} "${env}" PARENT_SCOPE)
endfunction()

# gilonce_pytest(<test name> LABEL <label> PATHS <test files or dirs...> MODULE_DIRS <dirs...>)
function(gilonce_pytest name)
  cmake_parse_arguments(ARG "" "LABEL" "PATHS;MODULE_DIRS" ${ARGN})
  gilonce_pytest_environment(env ${ARG_MODULE_DIRS})
  add_test(NAME "${name}"
    COMMAND ${Python_EXECUTABLE} -m pytest -p no:cacheprovider -q ${ARG_PATHS})
  set_tests_properties("${name}" PROPERTIES LABELS ${ARG_LABEL} TIMEOUT 300 ENVIRONMENT "${env}")
endfunction()

# gilonce_step(<module> LESSON <sources...> CATCH <test sources...> PYTEST <test files...>)
# One walkthrough step, from its own folder: its lesson code and scenarios (a static
# library), its pybind11 module <module> (from module.cpp), its Catch2 tests and its pytest
# tests, all under the ctest label <module>. A Catch2 test that prints "not possible on
# this interpreter" (a scenario this build cannot play) is shown as skipped.
function(gilonce_step module)
  cmake_parse_arguments(ARG "" "" "LESSON;CATCH;PYTEST" ${ARGN})
  add_library(${module}_lesson STATIC ${ARG_LESSON})
  target_include_directories(${module}_lesson PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${module}_lesson PUBLIC gilonce_harness)
  gilonce_project_target(${module}_lesson)

  pybind11_add_module(${module} module.cpp)
  target_link_libraries(${module} PRIVATE ${module}_lesson)
  gilonce_project_target(${module})

  gilonce_catch_test(${module}_tests LABEL ${module} SOURCES ${ARG_CATCH} LIBRARIES ${module}_lesson
    SKIP_MESSAGE "not possible on this interpreter")
  gilonce_pytest("${module}: pytest" LABEL ${module}
    PATHS ${ARG_PYTEST} MODULE_DIRS $<TARGET_FILE_DIR:${module}>)
endfunction()
