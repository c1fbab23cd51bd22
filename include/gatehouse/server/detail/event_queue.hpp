// The events waiting for one session: held behind a connection's manifest
// or take, or parked while its client is away. Ordered by push sequence.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <memory>
#include <string>
#include <utility>

namespace gatehouse::server::detail {

using steady = std::chrono::steady_clock;

/// An event on its way to a session: pushed frames are shared by every
/// target; `sequence` is the push order (assigned under the registry lock),
/// which queues keep across a reconnection.
struct queued_event {
    std::uint64_t sequence = 0;
    steady::time_point pushed_at{};
    std::shared_ptr<const std::string> frame;
    bool replayed = false;  ///< held for a parked session
};

/// A FIFO that allocates nothing until its first element: libstdc++'s
/// std::deque allocates ~576 bytes on construction, even when it stays
/// empty, and most connections never queue anything (idle sessions, handlers
/// answering inline). Once used, the storage stays until clear() or
/// release_if_empty().
template <class T>
class lazy_fifo {
public:
    lazy_fifo() noexcept = default;
    lazy_fifo(lazy_fifo&& other) noexcept : items_(std::move(other.items_)) {}
    lazy_fifo& operator=(lazy_fifo&& other) noexcept {
        items_ = std::move(other.items_);
        return *this;
    }
    lazy_fifo(const lazy_fifo&) = delete;
    lazy_fifo& operator=(const lazy_fifo&) = delete;

    bool empty() const noexcept { return !items_ || items_->empty(); }
    std::size_t size() const noexcept { return items_ ? items_->size() : 0; }
    T& front() { return items_->front(); }
    const T& front() const { return items_->front(); }
    void push_back(T item) { storage().push_back(std::move(item)); }
    T pop_front() {
        T item = std::move(items_->front());
        items_->pop_front();
        return item;
    }
    /// Frees the storage too.
    void clear() noexcept { items_.reset(); }
    void release_if_empty() noexcept {
        if (items_ && items_->empty()) items_.reset();
    }
    /// The underlying deque, created on demand (for ordered insertion).
    std::deque<T>& storage() {
        if (!items_) items_ = std::make_unique<std::deque<T>>();
        return *items_;
    }

private:
    std::unique_ptr<std::deque<T>> items_;
};

/// Events ordered by push sequence, with their total size.
class event_queue {
public:
    event_queue() = default;
    event_queue(event_queue&& other) noexcept
        : events_(std::move(other.events_)), bytes_(std::exchange(other.bytes_, 0)) {}
    event_queue& operator=(event_queue&& other) noexcept {
        events_ = std::move(other.events_);
        bytes_ = std::exchange(other.bytes_, 0);
        return *this;
    }
    event_queue(const event_queue&) = delete;
    event_queue& operator=(const event_queue&) = delete;

    /// Inserts in sequence order (late arrivals are rare and land near the back).
    void insert(queued_event event) {
        bytes_ += event.frame->size();
        auto& events = events_.storage();
        auto at = events.end();
        while (at != events.begin() && std::prev(at)->sequence > event.sequence) --at;
        events.insert(at, std::move(event));
    }
    /// The storage is freed with the last event: queues are mostly empty.
    queued_event pop_front() {
        queued_event front = events_.pop_front();
        events_.release_if_empty();
        bytes_ -= front.frame->size();
        return front;
    }
    bool empty() const noexcept { return events_.empty(); }
    std::size_t size() const noexcept { return events_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }
    const queued_event& front() const { return events_.front(); }
    void clear() noexcept {
        events_.clear();
        bytes_ = 0;
    }

private:
    lazy_fifo<queued_event> events_;
    std::size_t bytes_ = 0;
};

}  // namespace gatehouse::server::detail
