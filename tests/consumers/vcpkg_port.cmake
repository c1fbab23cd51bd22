# cmake -P vcpkg_port.cmake: runs ports/gatehouse/portfile.cmake as vcpkg
# would, in script mode, with small stand-ins for the vcpkg helpers it calls
# (vcpkg itself cannot run here: it downloads its tool and the ports' sources).
# The stand-ins run the same CMake configure and install as vcpkg's helpers,
# without vcpkg's toolchain file; then the package tree is checked.
#   PORT_DIR               ports/gatehouse
#   CURRENT_PACKAGES_DIR   where the package goes (share/, include/)
#   CURRENT_INSTALLED_DIR  the dependencies (vcpkg's installed/<triplet>)
#   CURRENT_BUILDTREES_DIR a scratch build folder
#   FEATURES               the port's features to turn on (";"-list, may be empty)
#   CXX, GENERATOR
cmake_minimum_required(VERSION 3.19)  # string(JSON), IN_LIST
foreach(var PORT_DIR CURRENT_PACKAGES_DIR CURRENT_INSTALLED_DIR CURRENT_BUILDTREES_DIR CXX GENERATOR)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "vcpkg_port.cmake: ${var} is not set")
    endif()
endforeach()

file(READ "${PORT_DIR}/vcpkg.json" manifest)
string(JSON PORT GET "${manifest}" name)
string(JSON VERSION GET "${manifest}" version)
set(TARGET_TRIPLET x64-linux)
set(VCPKG_TARGET_IS_LINUX ON)

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        string(REPLACE ";" " " cmd "${ARGN}")
        message(FATAL_ERROR "failed (${rc}): ${cmd}")
    endif()
endfunction()

function(vcpkg_check_features)
    cmake_parse_arguments(A "" "OUT_FEATURE_OPTIONS" "FEATURES;INVERTED_FEATURES" ${ARGN})
    set(out "")
    list(LENGTH A_FEATURES n)
    math(EXPR last "${n} - 1")
    foreach(i RANGE 0 ${last} 2)
        math(EXPR j "${i} + 1")
        list(GET A_FEATURES ${i} feature)
        list(GET A_FEATURES ${j} option)
        if(feature IN_LIST FEATURES)
            list(APPEND out "-D${option}=ON")
        else()
            list(APPEND out "-D${option}=OFF")
        endif()
    endforeach()
    set(${A_OUT_FEATURE_OPTIONS} "${out}" PARENT_SCOPE)
endfunction()

function(vcpkg_cmake_configure)
    cmake_parse_arguments(A "" "SOURCE_PATH" "OPTIONS;OPTIONS_RELEASE;OPTIONS_DEBUG" ${ARGN})
    if(NOT VCPKG_BUILD_TYPE STREQUAL "release")
        message(FATAL_ERROR "the portfile should build release only (headers only)")
    endif()
    file(REMOVE_RECURSE "${CURRENT_BUILDTREES_DIR}")
    run(${CMAKE_COMMAND} -S "${A_SOURCE_PATH}" -B "${CURRENT_BUILDTREES_DIR}" -G "${GENERATOR}"
        -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
        "-DCMAKE_INSTALL_PREFIX=${CURRENT_PACKAGES_DIR}" "-DCMAKE_PREFIX_PATH=${CURRENT_INSTALLED_DIR}"
        ${A_OPTIONS} ${A_OPTIONS_RELEASE})
endfunction()

function(vcpkg_cmake_install)
    run(${CMAKE_COMMAND} --build "${CURRENT_BUILDTREES_DIR}" --target install)
endfunction()

function(vcpkg_cmake_config_fixup)
    cmake_parse_arguments(A "" "PACKAGE_NAME;CONFIG_PATH" "" ${ARGN})
    set(from "${CURRENT_PACKAGES_DIR}/${A_CONFIG_PATH}")
    set(to "${CURRENT_PACKAGES_DIR}/share/${A_PACKAGE_NAME}")
    if(NOT EXISTS "${from}/${A_PACKAGE_NAME}Config.cmake")
        message(FATAL_ERROR "vcpkg_cmake_config_fixup: no ${A_PACKAGE_NAME}Config.cmake in ${A_CONFIG_PATH}")
    endif()
    if(NOT from STREQUAL to)
        file(MAKE_DIRECTORY "${to}")
        file(GLOB files "${from}/*")
        file(COPY ${files} DESTINATION "${to}")
        file(REMOVE_RECURSE "${from}")
    endif()
endfunction()

function(vcpkg_install_copyright)
    cmake_parse_arguments(A "" "" "FILE_LIST" ${ARGN})
    set(text "")
    foreach(f IN LISTS A_FILE_LIST)
        file(READ "${f}" part)
        string(APPEND text "${part}")
    endforeach()
    file(WRITE "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright" "${text}")
endfunction()

include("${PORT_DIR}/portfile.cmake")

foreach(f share/gatehouse/gatehouseConfig.cmake share/gatehouse/gatehouseConfigVersion.cmake
          share/gatehouse/GatehouseDependencies.cmake share/gatehouse/usage share/gatehouse/copyright
          include/gatehouse/gatehouse.hpp include/gatehouse/version.hpp)
    if(NOT EXISTS "${CURRENT_PACKAGES_DIR}/${f}")
        message(FATAL_ERROR "the port did not install ${f}")
    endif()
endforeach()
foreach(f lib debug share/doc)
    if(EXISTS "${CURRENT_PACKAGES_DIR}/${f}")
        message(FATAL_ERROR "the port left ${f} (headers only: vcpkg's post-build checks refuse it)")
    endif()
endforeach()
if("redis" IN_LIST FEATURES AND NOT EXISTS "${CURRENT_PACKAGES_DIR}/share/gatehouse/gatehouse-redis-targets.cmake")
    message(FATAL_ERROR "feature redis, yet no gatehouse::redis")
endif()
if(NOT "redis" IN_LIST FEATURES AND EXISTS "${CURRENT_PACKAGES_DIR}/share/gatehouse/gatehouse-redis-targets.cmake")
    message(FATAL_ERROR "no feature redis, yet gatehouse::redis was installed")
endif()
message(STATUS "vcpkg port ${PORT} ${VERSION} (features: ${FEATURES}): installed")
