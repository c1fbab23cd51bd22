// Compiles the native client's WebSocket transport (websocketpp). Include this
// in exactly ONE translation unit of your program, compiled as C++17 (or with
// clang): g++ rejects websocketpp's headers in C++20 mode, which is why no
// other gatehouse header includes them. Every other translation unit, in any
// language mode, includes <gatehouse/client/client.hpp> only.
//
// With GATEHOUSE_SEPARATE_COMPILATION the transport is compiled by the
// translation unit that includes <gatehouse/impl/src.hpp> instead, and this
// header does nothing.
#pragma once

#include <gatehouse/client/client.hpp>

#if !defined(GATEHOUSE_SEPARATE_COMPILATION)
#if defined(__GNUC__) && !defined(__clang__) && __cplusplus > 201703L
#error "gatehouse/client/client_impl.hpp must be compiled as C++17 with g++ (websocketpp 0.8 does not compile as C++20 with g++); put it in a separate C++17 source file"
#endif
#include <gatehouse/client/impl/client_websocket.ipp>
#endif
