# websocketpp (Debian's libwebsocketpp-dev, header-only) as the imported
# target websocketpp::websocketpp. Its own package config only sets
# WEBSOCKETPP_INCLUDE_DIR, so gatehouse (and its installed package config,
# which includes this file) make the target themselves.
if(NOT TARGET websocketpp::websocketpp)
    find_package(websocketpp 0.8 CONFIG QUIET)
    find_path(GATEHOUSE_WEBSOCKETPP_INCLUDE_DIR websocketpp/version.hpp HINTS ${WEBSOCKETPP_INCLUDE_DIR})
    if(NOT GATEHOUSE_WEBSOCKETPP_INCLUDE_DIR)
        message(FATAL_ERROR "gatehouse: websocketpp headers not found (Debian: apt-get install libwebsocketpp-dev)")
    endif()
    add_library(websocketpp::websocketpp INTERFACE IMPORTED)
    set_target_properties(websocketpp::websocketpp PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${GATEHOUSE_WEBSOCKETPP_INCLUDE_DIR}")
    mark_as_advanced(GATEHOUSE_WEBSOCKETPP_INCLUDE_DIR)
endif()
