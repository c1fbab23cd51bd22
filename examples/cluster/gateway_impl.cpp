// The one C++17 translation unit that compiles the gateway's websocketpp
// transport; the rest of the program may be C++17 or C++20.
#include <gatehouse/server/gateway_impl.hpp>
