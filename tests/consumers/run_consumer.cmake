# cmake -P run_consumer.cmake: configure, build and run one consumer project.
#   MODE             find_package (install gatehouse into SCRATCH/prefix first)
#                    or add_subdirectory (the consumer adds GATEHOUSE_SOURCE)
#   CONSUMER         the consumer project's source folder
#   CXX, STANDARD    compiler and C++ standard for the consumer
#   BUILD_TYPE       the consumer's CMAKE_BUILD_TYPE (Release or Debug)
#   GATEHOUSE_SOURCE, GATEHOUSE_BUILD   gatehouse's source and build trees
#   SCRATCH          a folder this test owns (wiped first)
foreach(var MODE CONSUMER CXX STANDARD BUILD_TYPE GATEHOUSE_SOURCE GATEHOUSE_BUILD SCRATCH GENERATOR)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
    endif()
endforeach()

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        string(REPLACE ";" " " cmd "${ARGN}")
        message(FATAL_ERROR "failed (${rc}): ${cmd}")
    endif()
endfunction()

file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH})
set(args -S ${CONSUMER} -B ${SCRATCH}/build -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_CXX_STANDARD=${STANDARD} -DCMAKE_CXX_STANDARD_REQUIRED=ON
    -DCMAKE_CXX_EXTENSIONS=OFF -DCMAKE_BUILD_TYPE=${BUILD_TYPE})

if(MODE STREQUAL "find_package")
    run(${CMAKE_COMMAND} --install ${GATEHOUSE_BUILD} --prefix ${SCRATCH}/prefix)
    list(APPEND args -DCMAKE_PREFIX_PATH=${SCRATCH}/prefix)
elseif(MODE STREQUAL "add_subdirectory")
    list(APPEND args -DGATEHOUSE_SOURCE=${GATEHOUSE_SOURCE})
else()
    message(FATAL_ERROR "unknown MODE ${MODE}")
endif()

run(${CMAKE_COMMAND} ${args})
run(${CMAKE_COMMAND} --build ${SCRATCH}/build)
run(${SCRATCH}/build/consumer)
message(STATUS "consumer ${MODE} with ${CXX} C++${STANDARD} (${BUILD_TYPE}): built and ran")
