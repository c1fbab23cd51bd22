// Build configuration shared by every gatehouse header.
//
// gatehouse is header-mostly. Heavier non-template code lives in each
// layer's `impl/*.ipp` files (gatehouse/server/impl/gateway.ipp, ...), as in
// Asio and Beast, which are, by default, compiled inline into
// every translation unit that includes the header (header-only mode). A host
// that prefers to compile them once defines GATEHOUSE_SEPARATE_COMPILATION for
// the whole program and includes <gatehouse/impl/src.hpp> in exactly one of
// its own translation units, as with Asio.
#pragma once

#if defined(GATEHOUSE_SEPARATE_COMPILATION)
#define GATEHOUSE_DECL
#else
#define GATEHOUSE_HEADER_ONLY 1
#define GATEHOUSE_DECL inline
#endif

#define GATEHOUSE_VERSION_MAJOR 0
#define GATEHOUSE_VERSION_MINOR 1
#define GATEHOUSE_VERSION_PATCH 0
