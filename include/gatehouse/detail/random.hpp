// The library's one random source: OpenSSL's CSPRNG (RAND_bytes). Session
// ids, reconnection tokens, peer GUIDs, server-to-client message ids, event
// ids, the random bits of server message ids and the cluster's message-id
// starts all come from it.
//
// It fails closed: when RAND_bytes fails, every draw throws
// gatehouse::random_unavailable; nothing falls back to a predictable
// generator. (On Linux RAND_bytes fails only when the kernel's getrandom is
// unavailable. On an I/O thread the exception abandons the operation that
// drew, and the built-in transport logs it.)
//
// One RAND_bytes call costs about 1.3 µs here (OpenSSL 3.0), whatever its
// size up to a few KiB: small draws on hot paths (an event id per push)
// come from a per-thread block of 1 KiB instead, refilled from RAND_bytes
// (about 20 ns per 16 bytes). Drawn bytes are wiped from the block, and a
// fork invalidates every block (pthread_atfork), so a child never repeats
// its parent's draws. Secrets (tokens, session ids) are drawn directly.
#pragma once

#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace gatehouse {

/// The system's random source failed: no id or token can be issued.
class random_unavailable : public std::runtime_error {
public:
    random_unavailable() : std::runtime_error("gatehouse: the system random source (OpenSSL RAND_bytes) failed") {}
};

namespace detail {

/// Fills `out` with `size` bytes straight from RAND_bytes.
inline void random_bytes(void* out, std::size_t size) {
    auto* p = static_cast<unsigned char*>(out);
    while (size > 0) {
        const std::size_t chunk = size < (std::size_t{1} << 30) ? size : (std::size_t{1} << 30);
        if (RAND_bytes(p, static_cast<int>(chunk)) != 1) throw random_unavailable();
        p += chunk;
        size -= chunk;
    }
}

/// Bumped in the child of every fork: blocks filled before are stale.
inline std::atomic<unsigned>& random_fork_generation() noexcept {
    static std::atomic<unsigned> generation{0};
    return generation;
}

inline void random_watch_forks() {
    static const int registered = pthread_atfork(nullptr, nullptr, [] {
        random_fork_generation().fetch_add(1, std::memory_order_relaxed);
    });
    (void)registered;  // without the handler (ENOMEM) a fork child would repeat ids, not secrets
}

struct random_block {
    static constexpr std::size_t capacity = 1024;
    unsigned char bytes[capacity];
    std::size_t used = capacity;  ///< empty until the first draw
    unsigned generation = 0;
};

/// Fills `out` (at most 64 bytes; more are drawn directly) from this
/// thread's block. For identifiers on hot paths, not for secrets.
inline void random_bytes_fast(void* out, std::size_t size) {
    if (size > 64) return random_bytes(out, size);
    random_watch_forks();
    thread_local random_block block;
    const unsigned generation = random_fork_generation().load(std::memory_order_relaxed);
    if (block.used + size > random_block::capacity || block.generation != generation) {
        random_bytes(block.bytes, random_block::capacity);
        block.used = 0;
        block.generation = generation;
    }
    std::memcpy(out, block.bytes + block.used, size);
    std::memset(block.bytes + block.used, 0, size);
    block.used += size;
}

/// A random value of an integral type, from random_bytes_fast.
template <class T>
T random_value_fast() {
    T value{};
    random_bytes_fast(&value, sizeof value);
    return value;
}

}  // namespace detail
}  // namespace gatehouse
