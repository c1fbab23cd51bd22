# gatehouse's dependencies under the target names the package managers give
# them, found the way Conan (CMakeDeps), vcpkg or a parent project provides
# them and otherwise from Debian's files. Included by gatehouse's own build
# and by its installed package config, so both link the same names:
#
#   target                          from a manager / a parent      fallback (Debian)
#   asio::asio                      Conan, vcpkg: asio-config      FindAsio.cmake (libasio-dev)
#   websocketpp::websocketpp        Conan, vcpkg's last port,      its include folder
#                                   Debian's websocketpp-config
#   hiredis::hiredis                Conan, vcpkg, hiredis >= 1.0   pkg-config (libhiredis-dev)
#   OpenSSL::SSL, OpenSSL::Crypto   the manager's config           CMake's FindOpenSSL
#   nlohmann_json::nlohmann_json    its config everywhere
#   Threads::Threads                CMake's FindThreads
#
# A target that exists already is used as it is, never made again. Each
# function sets <ok> to TRUE or FALSE and, when FALSE, <why> to a sentence
# for the user; none of them stops the configure, so that the package config
# can report a missing component instead of failing outright.

set(_GATEHOUSE_DEPENDENCIES_DIR "${CMAKE_CURRENT_LIST_DIR}")

# The lowest versions gatehouse is built and tested with.
set(GATEHOUSE_MIN_ASIO 1.18)
set(GATEHOUSE_MIN_WEBSOCKETPP 0.8)
set(GATEHOUSE_MIN_OPENSSL 3)
set(GATEHOUSE_MIN_NLOHMANN_JSON 3)

function(gatehouse_find_asio ok why)
    if(NOT TARGET asio::asio)
        find_package(asio CONFIG QUIET)
        if(TARGET asio::asio AND asio_VERSION AND asio_VERSION VERSION_LESS GATEHOUSE_MIN_ASIO)
            set(${ok} FALSE PARENT_SCOPE)
            set(${why} "asio ${asio_VERSION} (${asio_DIR}) is older than ${GATEHOUSE_MIN_ASIO}" PARENT_SCOPE)
            return()
        endif()
    endif()
    if(NOT TARGET asio::asio)
        # Debian's libasio-dev has no package config: its headers, through
        # gatehouse's own find module.
        list(PREPEND CMAKE_MODULE_PATH "${_GATEHOUSE_DEPENDENCIES_DIR}")
        find_package(Asio ${GATEHOUSE_MIN_ASIO} MODULE QUIET)
        list(POP_FRONT CMAKE_MODULE_PATH)
    endif()
    if(TARGET asio::asio)
        set(${ok} TRUE PARENT_SCOPE)
    else()
        set(${ok} FALSE PARENT_SCOPE)
        set(${why} "standalone Asio >= ${GATEHOUSE_MIN_ASIO} not found (Debian: apt-get install libasio-dev; Conan: asio; vcpkg: asio)" PARENT_SCOPE)
    endif()
endfunction()

function(gatehouse_find_websocketpp ok why)
    if(NOT TARGET websocketpp::websocketpp)
        # No version in the request: Debian's version file asks for an exact match.
        find_package(websocketpp CONFIG QUIET)
        if(websocketpp_VERSION AND websocketpp_VERSION VERSION_LESS GATEHOUSE_MIN_WEBSOCKETPP)
            set(${ok} FALSE PARENT_SCOPE)
            set(${why} "websocketpp ${websocketpp_VERSION} (${websocketpp_DIR}) is older than ${GATEHOUSE_MIN_WEBSOCKETPP}" PARENT_SCOPE)
            return()
        endif()
    endif()
    if(NOT TARGET websocketpp::websocketpp)
        # A config that only sets WEBSOCKETPP_INCLUDE_DIR (older Debian
        # packages), or none: the headers.
        find_path(GATEHOUSE_WEBSOCKETPP_INCLUDE_DIR websocketpp/version.hpp HINTS ${WEBSOCKETPP_INCLUDE_DIR})
        mark_as_advanced(GATEHOUSE_WEBSOCKETPP_INCLUDE_DIR)
        if(GATEHOUSE_WEBSOCKETPP_INCLUDE_DIR)
            add_library(websocketpp::websocketpp INTERFACE IMPORTED)
            set_target_properties(websocketpp::websocketpp PROPERTIES
                INTERFACE_INCLUDE_DIRECTORIES "${GATEHOUSE_WEBSOCKETPP_INCLUDE_DIR}")
        endif()
    endif()
    if(TARGET websocketpp::websocketpp)
        set(${ok} TRUE PARENT_SCOPE)
    else()
        set(${ok} FALSE PARENT_SCOPE)
        set(${why} "websocketpp >= ${GATEHOUSE_MIN_WEBSOCKETPP} not found (Debian: apt-get install libwebsocketpp-dev; Conan: websocketpp with asio=standalone)" PARENT_SCOPE)
    endif()
endfunction()

# Also sets GATEHOUSE_HIREDIS_VERSION (empty when unknown) in the caller.
function(gatehouse_find_hiredis ok why)
    set(version "")
    if(NOT TARGET hiredis::hiredis)
        # Conan, vcpkg and hiredis >= 1.0's own CMake install. (Debian's
        # "Hiredis" config defines no target and is not used.)
        find_package(hiredis CONFIG QUIET)
        if(TARGET hiredis::hiredis)
            set(version "${hiredis_VERSION}")
        endif()
    endif()
    if(NOT TARGET hiredis::hiredis)
        find_package(PkgConfig QUIET)
        if(PkgConfig_FOUND)
            pkg_check_modules(GATEHOUSE_HIREDIS QUIET IMPORTED_TARGET hiredis)
        endif()
        if(GATEHOUSE_HIREDIS_FOUND)
            add_library(hiredis::hiredis INTERFACE IMPORTED)
            set_target_properties(hiredis::hiredis PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::GATEHOUSE_HIREDIS)
            set(version "${GATEHOUSE_HIREDIS_VERSION}")
        endif()
    endif()
    set(GATEHOUSE_HIREDIS_VERSION "${version}" PARENT_SCOPE)
    if(TARGET hiredis::hiredis)
        set(${ok} TRUE PARENT_SCOPE)
    else()
        set(${ok} FALSE PARENT_SCOPE)
        set(${why} "hiredis not found (Debian: apt-get install libhiredis-dev; Conan, vcpkg: hiredis)" PARENT_SCOPE)
    endif()
endfunction()

# Everything gatehouse::gatehouse needs.
function(gatehouse_find_core_dependencies ok why)
    set(${ok} FALSE PARENT_SCOPE)
    if(NOT TARGET Threads::Threads)
        find_package(Threads QUIET)
    endif()
    if(NOT TARGET Threads::Threads)
        set(${why} "no threads library (Threads::Threads)" PARENT_SCOPE)
        return()
    endif()
    if(NOT TARGET OpenSSL::SSL OR NOT TARGET OpenSSL::Crypto)
        find_package(OpenSSL ${GATEHOUSE_MIN_OPENSSL} QUIET)
    endif()
    if(NOT TARGET OpenSSL::SSL OR NOT TARGET OpenSSL::Crypto)
        set(${why} "OpenSSL >= ${GATEHOUSE_MIN_OPENSSL} not found (Debian: apt-get install libssl-dev; Conan, vcpkg: openssl)" PARENT_SCOPE)
        return()
    endif()
    if(NOT TARGET nlohmann_json::nlohmann_json)
        find_package(nlohmann_json ${GATEHOUSE_MIN_NLOHMANN_JSON} CONFIG QUIET)
    endif()
    if(NOT TARGET nlohmann_json::nlohmann_json)
        set(${why} "nlohmann-json >= ${GATEHOUSE_MIN_NLOHMANN_JSON} not found (Debian: apt-get install nlohmann-json3-dev; Conan: nlohmann_json; vcpkg: nlohmann-json)" PARENT_SCOPE)
        return()
    endif()
    gatehouse_find_asio(found reason)
    if(found)
        gatehouse_find_websocketpp(found reason)
    endif()
    if(NOT found)
        set(${why} "${reason}" PARENT_SCOPE)
        return()
    endif()
    set(${ok} TRUE PARENT_SCOPE)
endfunction()
