# Stand-in dependency configs, written the way the package managers write
# them, over Debian's real headers and libraries: the file names, folders
# and target names of Conan 2's CMakeDeps (for Conan Center's asio,
# websocketpp with asio=standalone, hiredis, openssl and nlohmann_json
# recipes) or of vcpkg's ports. Each config records its use in the global
# property GATEHOUSE_STANDINS_USED, so the consumer can check it was the one
# found. included by run_consumer.cmake (script mode).
#
# gatehouse_write_standins(<style> <prefix> <names variable>)
#   cmakedeps: every file flat in <prefix> (Conan's generators folder, which
#              conan_toolchain.cmake puts on CMAKE_PREFIX_PATH)
#   vcpkg:     <prefix>/share/<port>/ (vcpkg's installed/<triplet>); OpenSSL
#              comes from CMake's FindOpenSSL there, as vcpkg's wrapper does

function(_standin_write path content)
    file(WRITE "${path}" "# Stand-in written by gatehouse's tests/consumers/standins.cmake.\n${content}")
endfunction()

function(_standin_version path version)
    _standin_write("${path}" "set(PACKAGE_VERSION \"${version}\")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
    if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
        set(PACKAGE_VERSION_EXACT TRUE)
    endif()
endif()
")
endfunction()

function(gatehouse_write_standins style prefix names_var)
    set(record "set_property(GLOBAL APPEND PROPERTY GATEHOUSE_STANDINS_USED \${CMAKE_FIND_PACKAGE_NAME})\n")
    # The bodies, as the managers' configs behave: targets made once, the
    # dependencies found first.
    set(asio_body "${record}if(NOT TARGET asio::asio)
    add_library(asio::asio INTERFACE IMPORTED)
    set_target_properties(asio::asio PROPERTIES INTERFACE_INCLUDE_DIRECTORIES /usr/include
        INTERFACE_COMPILE_DEFINITIONS ASIO_STANDALONE INTERFACE_LINK_LIBRARIES pthread)
endif()
set(asio_FOUND TRUE)
")
    set(websocketpp_body "${record}include(CMakeFindDependencyMacro)
find_dependency(asio CONFIG)
if(NOT TARGET websocketpp::websocketpp)
    add_library(websocketpp::websocketpp INTERFACE IMPORTED)
    set_target_properties(websocketpp::websocketpp PROPERTIES INTERFACE_INCLUDE_DIRECTORIES /usr/include
        INTERFACE_COMPILE_DEFINITIONS \"ASIO_STANDALONE;_WEBSOCKETPP_CPP11_STL_\"
        INTERFACE_LINK_LIBRARIES asio::asio)
endif()
set(websocketpp_FOUND TRUE)
")
    set(hiredis_body "${record}find_library(_standin_hiredis_lib NAMES hiredis REQUIRED)
if(NOT TARGET hiredis::hiredis)
    add_library(hiredis::hiredis UNKNOWN IMPORTED)
    set_target_properties(hiredis::hiredis PROPERTIES IMPORTED_LOCATION \"\${_standin_hiredis_lib}\"
        INTERFACE_INCLUDE_DIRECTORIES /usr/include)
endif()
set(hiredis_FOUND TRUE)
")
    set(openssl_body "${record}find_library(_standin_ssl_lib NAMES ssl REQUIRED)
find_library(_standin_crypto_lib NAMES crypto REQUIRED)
if(NOT TARGET OpenSSL::Crypto)
    add_library(OpenSSL::Crypto UNKNOWN IMPORTED)
    set_target_properties(OpenSSL::Crypto PROPERTIES IMPORTED_LOCATION \"\${_standin_crypto_lib}\")
    add_library(OpenSSL::SSL UNKNOWN IMPORTED)
    set_target_properties(OpenSSL::SSL PROPERTIES IMPORTED_LOCATION \"\${_standin_ssl_lib}\"
        INTERFACE_LINK_LIBRARIES OpenSSL::Crypto)
endif()
set(OpenSSL_FOUND TRUE)
set(OPENSSL_FOUND TRUE)
")
    set(json_body "${record}if(NOT TARGET nlohmann_json::nlohmann_json)
    add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
    set_target_properties(nlohmann_json::nlohmann_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES /usr/include)
endif()
set(nlohmann_json_FOUND TRUE)
")
    file(REMOVE_RECURSE "${prefix}")
    if(style STREQUAL "cmakedeps")
        # CMakeDeps: <name>-config.cmake for a lowercase file name, else <Name>Config.cmake.
        _standin_write("${prefix}/asio-config.cmake" "${asio_body}")
        _standin_version("${prefix}/asio-config-version.cmake" 1.28.1)
        _standin_write("${prefix}/websocketpp-config.cmake" "${websocketpp_body}")
        _standin_version("${prefix}/websocketpp-config-version.cmake" 0.8.2)
        _standin_write("${prefix}/hiredis-config.cmake" "${hiredis_body}")
        _standin_version("${prefix}/hiredis-config-version.cmake" 1.2.0)
        _standin_write("${prefix}/OpenSSLConfig.cmake" "${openssl_body}")
        _standin_version("${prefix}/OpenSSLConfigVersion.cmake" 3.0.0)
        _standin_write("${prefix}/nlohmann_json-config.cmake" "${json_body}")
        _standin_version("${prefix}/nlohmann_json-config-version.cmake" 3.11.2)
        set(${names_var} asio websocketpp hiredis OpenSSL nlohmann_json PARENT_SCOPE)
    elseif(style STREQUAL "vcpkg")
        _standin_write("${prefix}/share/asio/asio-config.cmake" "${asio_body}")
        _standin_version("${prefix}/share/asio/asio-config-version.cmake" 1.32.0)
        _standin_write("${prefix}/share/websocketpp/websocketpp-config.cmake" "${websocketpp_body}")
        _standin_version("${prefix}/share/websocketpp/websocketpp-config-version.cmake" 0.8.2)
        _standin_write("${prefix}/share/hiredis/hiredis-config.cmake" "${hiredis_body}")
        _standin_version("${prefix}/share/hiredis/hiredis-config-version.cmake" 1.3.0)
        _standin_write("${prefix}/share/nlohmann_json/nlohmann_jsonConfig.cmake" "${json_body}")
        _standin_version("${prefix}/share/nlohmann_json/nlohmann_jsonConfigVersion.cmake" 3.12.0)
        set(${names_var} asio websocketpp hiredis nlohmann_json PARENT_SCOPE)
    else()
        message(FATAL_ERROR "gatehouse_write_standins: unknown style ${style}")
    endif()
endfunction()
