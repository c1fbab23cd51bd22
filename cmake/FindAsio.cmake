# FindAsio: standalone Asio from its headers (Debian's libasio-dev, which has
# no package config), as the target asio::asio that Conan and vcpkg name it,
# with ASIO_STANDALONE set. Sets Asio_FOUND, Asio_VERSION, Asio_INCLUDE_DIR.
# Used by GatehouseDependencies.cmake when no asio config provides asio::asio.
find_path(Asio_INCLUDE_DIR NAMES asio.hpp)
if(Asio_INCLUDE_DIR AND EXISTS "${Asio_INCLUDE_DIR}/asio/version.hpp")
    file(STRINGS "${Asio_INCLUDE_DIR}/asio/version.hpp" _asio_version_line REGEX "#define ASIO_VERSION ")
    string(REGEX MATCH "[0-9]+" _asio_version "${_asio_version_line}")
    math(EXPR _asio_major "${_asio_version} / 100000")
    math(EXPR _asio_minor "${_asio_version} / 100 % 1000")
    math(EXPR _asio_patch "${_asio_version} % 100")
    set(Asio_VERSION "${_asio_major}.${_asio_minor}.${_asio_patch}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Asio REQUIRED_VARS Asio_INCLUDE_DIR VERSION_VAR Asio_VERSION)

if(Asio_FOUND AND NOT TARGET asio::asio)
    add_library(asio::asio INTERFACE IMPORTED)
    set_target_properties(asio::asio PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${Asio_INCLUDE_DIR}"
        INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE")
    find_package(Threads QUIET)
    if(TARGET Threads::Threads)
        set_property(TARGET asio::asio PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
    endif()
endif()
mark_as_advanced(Asio_INCLUDE_DIR)
