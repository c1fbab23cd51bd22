// The one C++17 translation unit that compiles the websocketpp transports of
// the gateway and of the client (g++ rejects websocketpp's headers as C++20).
#include <gatehouse/client/client_impl.hpp>
#include <gatehouse/server/gateway_impl.hpp>
