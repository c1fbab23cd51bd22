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

// A standard header first: libstdc++'s <bits/c++config.h> must be seen
// before Asio's configuration (see below).
#include <cstddef>

// Asio decides how it allocates handler memory (asio::aligned_new/delete:
// std::aligned_alloc and free, or operator new and delete) from
// _GLIBCXX_HAVE_ALIGNED_ALLOC, which only exists once a libstdc++ header has
// been included. A translation unit that includes an Asio header before any
// standard header therefore allocates with operator new, the others free
// with free: heap corruption across translation units (AddressSanitizer
// reports alloc-dealloc-mismatch). Refuse that order where we can see it.
#if defined(ASIO_DETAIL_CONFIG_HPP) && defined(__GLIBCXX__) && defined(_GLIBCXX_HAVE_ALIGNED_ALLOC) && \
    __cplusplus >= 201703L && !defined(ASIO_HAS_STD_ALIGNED_ALLOC) && !defined(ASIO_DISABLE_STD_ALIGNED_ALLOC)
#error "gatehouse: an Asio header was included before any standard header in this translation unit, so Asio \
allocates here unlike elsewhere in the program; include a standard header (or gatehouse's) first"
#endif

#if defined(GATEHOUSE_SEPARATE_COMPILATION)
#define GATEHOUSE_DECL
#else
#define GATEHOUSE_HEADER_ONLY 1
#define GATEHOUSE_DECL inline
#endif

#include <gatehouse/version.hpp>
