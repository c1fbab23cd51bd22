// gatehouse::server::detail::deadline_queue: the gateway's one timer
// structure for every connection (pings, pong-less keep-alive, token expiry,
// handler and server-to-client call timeouts, the manifest delay).
//
// Why: a steady_timer per connection and per purpose costs ~300 bytes each
// (timer, handler, std::function) on an idle connection that only needs to
// wake every ping_interval. Here each owner embeds one `deadline_hook` (its
// earliest wake-up) and the queue is a binary min-heap of hook pointers,
// 8 bytes per armed owner. Re-arming moves the hook in place; nothing is
// allocated once the heap's vector has grown.
//
// Not thread-safe: the gateway guards it with a mutex (owners live on
// different strands when there is more than one I/O thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <utility>
#include <vector>

namespace gatehouse::server::detail {

template <class Owner>
class deadline_queue;

/// Embedded in an owner; belongs to at most one deadline_queue.
template <class Owner>
struct deadline_hook {
    explicit deadline_hook(Owner* o) noexcept : owner(o) {}
    deadline_hook(const deadline_hook&) = delete;
    deadline_hook& operator=(const deadline_hook&) = delete;

    bool armed() const noexcept { return index != not_armed; }
    /// When it is due (meaningful while armed).
    std::chrono::steady_clock::time_point due() const noexcept { return due_; }

private:
    friend class deadline_queue<Owner>;
    static constexpr std::size_t not_armed = static_cast<std::size_t>(-1);
    Owner* const owner;
    std::chrono::steady_clock::time_point due_{};
    std::size_t index = not_armed;
};

template <class Owner>
class deadline_queue {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using hook = deadline_hook<Owner>;

    /// Arms `h` for `due`, or moves it there when armed already.
    void schedule(hook& h, time_point due) {
        if (h.armed()) {
            const bool earlier = due < h.due_;
            h.due_ = due;
            if (earlier)
                sift_up(h.index);
            else
                sift_down(h.index);
            return;
        }
        h.due_ = due;
        h.index = heap_.size();
        heap_.push_back(&h);
        sift_up(h.index);
    }

    /// Disarms `h`; nothing when it is not armed.
    void cancel(hook& h) noexcept {
        if (!h.armed()) return;
        const std::size_t at = h.index;
        hook* const moved = heap_.back();
        heap_.pop_back();
        h.index = hook::not_armed;
        if (moved == &h) return;
        place(at, moved);
        // The hook moved from the back may belong above or below its new place.
        sift_up(at);
        sift_down(moved->index);
    }

    bool empty() const noexcept { return heap_.empty(); }
    std::size_t size() const noexcept { return heap_.size(); }
    /// The earliest due time. Not empty().
    time_point next_due() const noexcept { return heap_.front()->due_; }

    /// Disarms the earliest hook if it is due at `now` and returns its
    /// owner; nullptr otherwise. Equal deadlines come out in no set order.
    Owner* pop_due(time_point now) noexcept {
        if (heap_.empty() || heap_.front()->due_ > now) return nullptr;
        hook* h = heap_.front();
        cancel(*h);
        return h->owner;
    }

    /// Gives the vector's memory back when the queue emptied after a peak.
    void shrink_if_sparse() {
        if (heap_.capacity() > 64 && heap_.size() < heap_.capacity() / 4) heap_.shrink_to_fit();
    }

private:
    void place(std::size_t at, hook* h) noexcept {
        heap_[at] = h;
        h->index = at;
    }
    void sift_up(std::size_t at) noexcept {
        hook* h = heap_[at];
        while (at > 0) {
            const std::size_t parent = (at - 1) / 2;
            if (!(h->due_ < heap_[parent]->due_)) break;
            place(at, heap_[parent]);
            at = parent;
        }
        place(at, h);
    }
    void sift_down(std::size_t at) noexcept {
        hook* h = heap_[at];
        const std::size_t n = heap_.size();
        for (;;) {
            std::size_t child = 2 * at + 1;
            if (child >= n) break;
            if (child + 1 < n && heap_[child + 1]->due_ < heap_[child]->due_) ++child;
            if (!(heap_[child]->due_ < h->due_)) break;
            place(at, heap_[child]);
            at = child;
        }
        place(at, h);
    }

    std::vector<hook*> heap_;
};

}  // namespace gatehouse::server::detail
