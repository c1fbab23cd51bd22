// Counts heap allocations made by this program, so a benchmark can report
// allocations per operation next to its time. Include in exactly one
// translation unit of a benchmark program: it replaces global operator new.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace gatehouse::bench {
inline std::atomic<std::size_t> allocation_count{0};
}

// noinline: once inlined, g++ pairs malloc/free with new/delete and warns
// (-Wmismatched-new-delete) although the pairing is consistent here.
[[gnu::noinline]] void* operator new(std::size_t size) {
    gatehouse::bench::allocation_count.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t size) { return operator new(size); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
