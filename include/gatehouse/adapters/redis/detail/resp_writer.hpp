// RESP formatting of commands (what hiredis's redisFormatCommandArgv does,
// without its allocations), written through a cursor into room reserved
// beforehand in a buffer reused for every command; and the ring of commands
// waiting for their replies. Both belong to redis_link.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::adapters::redis::detail {

class resp_writer {
public:
    /// Room a command needs at most: the array header, then per argument.
    static constexpr std::size_t header_room = 1 + 20 + 2;
    static constexpr std::size_t arg_room(std::size_t size) noexcept { return 1 + 20 + 2 + size + 2; }

    explicit resp_writer(char* at) noexcept : p_(at) {}
    char* position() const noexcept { return p_; }

    void array(std::size_t count) noexcept { length_line('*', count); }

    void arg(std::string_view a) noexcept {
        length_line('$', a.size());
        put(a);
        crlf();
    }

    /// An argument of `size` bytes that the caller writes at the pointer
    /// returned (exactly `size` of them), then closes with end_arg.
    char* begin_arg(std::size_t size) noexcept {
        length_line('$', size);
        char* at = p_;
        p_ += size;
        return at;
    }
    void end_arg() noexcept { crlf(); }

    /// Bytes already in RESP (arguments formatted by another writer).
    void raw(std::string_view resp) noexcept { put(resp); }

    void number(long long v) noexcept {
        char digits[24];
        const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
        arg(std::string_view(digits, static_cast<std::size_t>(end - digits)));
    }

private:
    void length_line(char mark, std::size_t n) noexcept {
        *p_++ = mark;
        p_ = std::to_chars(p_, p_ + 20, n).ptr;
        crlf();
    }
    void put(std::string_view s) noexcept {
        std::memcpy(p_, s.data(), s.size());
        p_ += s.size();
    }
    void crlf() noexcept {
        *p_++ = '\r';
        *p_++ = '\n';
    }

    char* p_;
};

/// A FIFO queue on a ring of slots that grows by doubling and never shrinks:
/// once warm, queueing costs no allocation (std::deque allocates a block
/// every few elements of this size).
template <class T>
class command_ring {
public:
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }
    T& front() noexcept { return slots_[head_]; }
    T& operator[](std::size_t i) noexcept { return slots_[(head_ + i) & (slots_.size() - 1)]; }

    void push_back(T value) {
        if (size_ == slots_.size()) grow();
        slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(value);
        ++size_;
    }

    T pop_front() {
        T value = std::move(slots_[head_]);
        slots_[head_] = T{};
        head_ = (head_ + 1) & (slots_.size() - 1);
        --size_;
        return value;
    }

private:
    void grow() {
        std::vector<T> bigger(slots_.empty() ? 64 : slots_.size() * 2);
        for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move((*this)[i]);
        slots_ = std::move(bigger);
        head_ = 0;
    }

    std::vector<T> slots_;  // size: zero or a power of two
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

}  // namespace gatehouse::adapters::redis::detail
