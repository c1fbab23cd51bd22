# websocketpp 0.8.2 declares constructors and destructors with their
# template arguments (`~endpoint<connection,config>()`), which C++20 no
# longer allows (g++ 11 and later refuse it). This is the change Conan
# Center's websocketpp recipe makes (its support-gcc-12 patch, from
# zaphoyd/websocketpp#991), written as string replacements rather than a
# copied patch. Used by portfile.cmake, and by gatehouse's test that applies
# it to Debian's headers and compiles the server in C++20
# (tests/consumers/websocketpp_cxx20.cmake).
#
# gatehouse_websocketpp_cxx20_fix(<root>): <root> holds websocketpp/.
# (An edit is "file|from|to"; none may contain a semicolon, the list separator.)
function(gatehouse_websocketpp_cxx20_fix root)
    set(edits
        "websocketpp/endpoint.hpp|~endpoint<connection,config>()|~endpoint()"
        "websocketpp/logger/basic.hpp|    basic<concurrency,names>(|    basic("
        "websocketpp/logger/basic.hpp|~basic<concurrency,names>()|~basic()"
        "websocketpp/roles/server_endpoint.hpp|~server<config>()|~server()"
        "websocketpp/roles/server_endpoint.hpp|    server<config>(server<config> &) = delete|    server(server<config> &) = delete"
        "websocketpp/roles/server_endpoint.hpp|    server<config>(server<config> && o)|    server(server<config> && o)")
    foreach(edit IN LISTS edits)
        string(REPLACE "|" ";" parts "${edit}")
        list(GET parts 0 file)
        list(GET parts 1 from)
        list(GET parts 2 to)
        file(READ "${root}/${file}" text)
        string(FIND "${text}" "${from}" at)
        if(at EQUAL -1)
            message(FATAL_ERROR "websocketpp C++20 fix: \"${from}\" not found in ${file} (another websocketpp version?)")
        endif()
        string(REPLACE "${from}" "${to}" text "${text}")
        file(WRITE "${root}/${file}" "${text}")
    endforeach()
endfunction()
