# cmake -P run_consumer.cmake: configure, build and run one consumer project.
#   MODE             find_package (install gatehouse into SCRATCH/prefix first),
#                    add_subdirectory or fetchcontent (the consumer adds
#                    GATEHOUSE_SOURCE)
#   STANDINS         optional, with find_package: cmakedeps or vcpkg. Writes
#                    stand-in dependency configs in that manager's style
#                    (standins.cmake), installs gatehouse against them
#                    (cmakedeps: configured as Conan would, with
#                    CMAKE_FIND_PACKAGE_PREFER_CONFIG=ON as conan_toolchain.cmake
#                    sets it; vcpkg: through ports/gatehouse/portfile.cmake,
#                    vcpkg_port.cmake) and configures the consumer against the
#                    same configs
#   EXTRA_ARGS       optional: more arguments for the consumer's configure,
#                    separated by "|"
#   EXPECT_FAILURE   optional: the consumer's configure must fail, printing
#                    something that matches this regular expression
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

if(MODE STREQUAL "find_package" AND STANDINS)
    include(${CMAKE_CURRENT_LIST_DIR}/standins.cmake)
    gatehouse_write_standins(${STANDINS} ${SCRATCH}/deps standin_names)
    set(dep_args -DCMAKE_PREFIX_PATH=${SCRATCH}/deps)
    if(STANDINS STREQUAL "cmakedeps")
        list(APPEND dep_args -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON)
    endif()
    if(STANDINS STREQUAL "vcpkg")
        # gatehouse through its port (ports/gatehouse/portfile.cmake, feature
        # redis), installed into the same tree as the stand-ins.
        run(${CMAKE_COMMAND} -DPORT_DIR=${GATEHOUSE_SOURCE}/ports/gatehouse
            -DCURRENT_PACKAGES_DIR=${SCRATCH}/deps -DCURRENT_INSTALLED_DIR=${SCRATCH}/deps
            -DCURRENT_BUILDTREES_DIR=${SCRATCH}/buildtree -DFEATURES=redis
            -DCXX=${CXX} -DGENERATOR=${GENERATOR}
            -P ${CMAKE_CURRENT_LIST_DIR}/vcpkg_port.cmake)
    else()
        # gatehouse itself, as Conan's build of it would configure it,
        # installed beside the stand-ins.
        run(${CMAKE_COMMAND} -S ${GATEHOUSE_SOURCE} -B ${SCRATCH}/gatehouse-build -G ${GENERATOR}
            -DCMAKE_CXX_COMPILER=${CXX} -DGATEHOUSE_BUILD_TESTS=OFF -DGATEHOUSE_BUILD_EXAMPLES=OFF
            -DGATEHOUSE_BUILD_BENCHMARKS=OFF -DGATEHOUSE_INSTALL=ON ${dep_args})
        run(${CMAKE_COMMAND} --install ${SCRATCH}/gatehouse-build --prefix ${SCRATCH}/deps)
    endif()
    string(REPLACE ";" "," standin_list "${standin_names}")
    list(APPEND args ${dep_args} "-DGATEHOUSE_STANDINS=${standin_list}")
elseif(MODE STREQUAL "find_package")
    run(${CMAKE_COMMAND} --install ${GATEHOUSE_BUILD} --prefix ${SCRATCH}/prefix)
    list(APPEND args -DCMAKE_PREFIX_PATH=${SCRATCH}/prefix)
elseif(MODE STREQUAL "add_subdirectory" OR MODE STREQUAL "fetchcontent")
    list(APPEND args -DGATEHOUSE_SOURCE=${GATEHOUSE_SOURCE})
else()
    message(FATAL_ERROR "unknown MODE ${MODE}")
endif()
if(EXTRA_ARGS)
    string(REPLACE "|" ";" extra "${EXTRA_ARGS}")
    list(APPEND args ${extra})
endif()

if(EXPECT_FAILURE)
    execute_process(COMMAND ${CMAKE_COMMAND} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(rc EQUAL 0)
        message(FATAL_ERROR "the consumer's configure succeeded; it must fail with: ${EXPECT_FAILURE}")
    endif()
    string(REGEX REPLACE "[ \t\r\n]+" " " flat "${out}")
    if(NOT flat MATCHES "${EXPECT_FAILURE}")
        message(FATAL_ERROR "the consumer's configure failed, but not with \"${EXPECT_FAILURE}\":\n${out}")
    endif()
    message(STATUS "consumer ${MODE}: configure failed as expected (${EXPECT_FAILURE})")
    return()
endif()

run(${CMAKE_COMMAND} ${args})
run(${CMAKE_COMMAND} --build ${SCRATCH}/build)
run(${SCRATCH}/build/consumer)
message(STATUS "consumer ${MODE} with ${CXX} C++${STANDARD} (${BUILD_TYPE}): built and ran")
