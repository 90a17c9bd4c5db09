# Builds and runs tests/package/consumer against gilonce, in MODE find_package (after
# installing gilonce into a scratch prefix) or add_subdirectory (from the source tree).
# Usage: cmake -DMODE=... -DSOURCE_DIR=... -DBUILD_DIR=... -DWORK_DIR=... -DPython_EXECUTABLE=...
#              -DCXX=... -DGENERATOR=... -DMAKE_PROGRAM=... [-DPYTHON_VERSION=3.13]
#              -P check_consumer.cmake
foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR Python_EXECUTABLE CXX GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(args -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} -DPython_EXECUTABLE=${Python_EXECUTABLE}
    -DGILONCE_CONSUMER_MODE=${MODE} -DGILONCE_SOURCE_DIR=${SOURCE_DIR})
if(MAKE_PROGRAM)
  list(APPEND args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(PYTHON_VERSION)
  list(APPEND args -DGILONCE_PYTHON_VERSION=${PYTHON_VERSION})
endif()
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
  list(APPEND args -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
endif()
run(${CMAKE_COMMAND} ${args})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
if(NOT last_output MATCHES "math.pi = 3.14159")
  message(FATAL_ERROR "consumer printed: ${last_output}")
endif()
message(STATUS "consumer via ${MODE}: ${last_output}")
