// An atomically replaceable shared_ptr<const T>: readers take a snapshot,
// writers publish a new one; neither waits for the other's real work.
#pragma once

#include <atomic>
#include <memory>
#include <utility>

namespace gatehouse::auth::detail {

template <class T>
class atomic_shared_ptr {
public:
    atomic_shared_ptr() = default;
    explicit atomic_shared_ptr(std::shared_ptr<const T> p) : ptr_(std::move(p)) {}
    atomic_shared_ptr(const atomic_shared_ptr&) = delete;
    atomic_shared_ptr& operator=(const atomic_shared_ptr&) = delete;

#if defined(__cpp_lib_atomic_shared_ptr)
    std::shared_ptr<const T> load() const noexcept { return ptr_.load(std::memory_order_acquire); }
    void store(std::shared_ptr<const T> p) noexcept { ptr_.store(std::move(p), std::memory_order_release); }
    std::shared_ptr<const T> exchange(std::shared_ptr<const T> p) noexcept {
        return ptr_.exchange(std::move(p), std::memory_order_acq_rel);
    }

private:
    std::atomic<std::shared_ptr<const T>> ptr_;
#else
    // C++17: the free functions. libstdc++ guards them with a small pool of
    // mutexes, each held only for a pointer copy and a reference-count update,
    // never while a new snapshot is being built.
    std::shared_ptr<const T> load() const noexcept { return std::atomic_load_explicit(&ptr_, std::memory_order_acquire); }
    void store(std::shared_ptr<const T> p) noexcept {
        std::atomic_store_explicit(&ptr_, std::move(p), std::memory_order_release);
    }
    std::shared_ptr<const T> exchange(std::shared_ptr<const T> p) noexcept {
        return std::atomic_exchange_explicit(&ptr_, std::move(p), std::memory_order_acq_rel);
    }

private:
    std::shared_ptr<const T> ptr_;
#endif
};

}  // namespace gatehouse::auth::detail
