# websocketpp::websocketpp on standalone Asio and OpenSSL (gatehouse's
# overlay port).
include(CMakeFindDependencyMacro)
find_dependency(asio CONFIG)
find_dependency(OpenSSL)
get_filename_component(_websocketpp_root "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
set(WEBSOCKETPP_INCLUDE_DIR "${_websocketpp_root}/include")
if(NOT TARGET websocketpp::websocketpp)
    add_library(websocketpp::websocketpp INTERFACE IMPORTED)
    set_target_properties(websocketpp::websocketpp PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${WEBSOCKETPP_INCLUDE_DIR}"
        INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;_WEBSOCKETPP_CPP11_STL_"
        INTERFACE_LINK_LIBRARIES "asio::asio;OpenSSL::SSL;OpenSSL::Crypto")
endif()
unset(_websocketpp_root)
set(websocketpp_FOUND TRUE)
