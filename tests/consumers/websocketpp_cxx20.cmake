# cmake -P websocketpp_cxx20.cmake: the overlay port's C++20 fix
# (ports/websocketpp/cxx20-fix.cmake) applied to a copy of the system's
# websocketpp headers. The server must fail to compile as C++20 before the
# fix (else the test proves nothing) and compile after it.
#   CXX, WEBSOCKETPP_INCLUDE, ASIO_INCLUDE, FIX, SCRATCH
foreach(var CXX WEBSOCKETPP_INCLUDE ASIO_INCLUDE FIX SCRATCH)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "websocketpp_cxx20.cmake: ${var} is not set")
    endif()
endforeach()
file(REMOVE_RECURSE "${SCRATCH}")
file(MAKE_DIRECTORY "${SCRATCH}/include")
file(COPY "${WEBSOCKETPP_INCLUDE}/websocketpp" DESTINATION "${SCRATCH}/include")
file(WRITE "${SCRATCH}/server.cpp" "#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>
int main() {
    websocketpp::server<websocketpp::config::asio> server;
    server.init_asio();
}
")
set(asio_flags "")
if(NOT ASIO_INCLUDE STREQUAL "/usr/include")  # the compiler's own; -isystem on it breaks <cstdlib>
    set(asio_flags -isystem ${ASIO_INCLUDE})
endif()
set(compile ${CXX} -std=c++20 -fsyntax-only -Wall -Wextra -DASIO_STANDALONE -D_WEBSOCKETPP_CPP11_STL_
    -I${SCRATCH}/include ${asio_flags} ${SCRATCH}/server.cpp)
execute_process(COMMAND ${compile} RESULT_VARIABLE before OUTPUT_QUIET ERROR_QUIET)
if(before EQUAL 0)
    message(FATAL_ERROR "websocketpp's server compiles as C++20 without the fix: these headers need none (update the test)")
endif()
include("${FIX}")
gatehouse_websocketpp_cxx20_fix("${SCRATCH}/include")
execute_process(COMMAND ${compile} RESULT_VARIABLE after ERROR_VARIABLE errors)
if(NOT after EQUAL 0)
    message(FATAL_ERROR "websocketpp's server does not compile as C++20 with the fix:\n${errors}")
endif()
message(STATUS "websocketpp C++20: refused before the fix, compiles after it")
