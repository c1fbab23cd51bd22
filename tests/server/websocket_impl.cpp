// The one C++17 translation unit of the test program that compiles the
// gateway's websocketpp transport (see gatehouse/server/gateway.hpp).
#include <gatehouse/server/gateway_impl.hpp>
