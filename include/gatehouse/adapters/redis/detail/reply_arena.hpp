// Replies parsed by hiredis's reader (redisReader), built in an arena instead
// of one calloc per object: hiredis 0.14 lets a reader use its own object
// functions (redisReaderCreateWithFunctions). The objects are ordinary
// redisReply values, as hiredis's own functions build them.
//
// Lifetime: a reader builds one reply at a time, and starts the next only
// when asked for it; so once the owner is done with a reply, reset() frees
// it and everything else in the arena. Never pass these replies to
// freeReplyObject.
#pragma once

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace gatehouse::adapters::redis::detail {

class reply_arena {
public:
    reply_arena() = default;
    reply_arena(const reply_arena&) = delete;
    reply_arena& operator=(const reply_arena&) = delete;

    /// A reader whose replies live in this arena (nullptr when out of
    /// memory). The arena must outlive it; free it with redisReaderFree.
    redisReader* create_reader() {
        redisReader* reader = redisReaderCreateWithFunctions(&functions);
        if (reader != nullptr) reader->privdata = this;
        return reader;
    }

    /// Frees every reply built so far. Keeps a few blocks for the next ones.
    void reset() noexcept {
        if (blocks_.size() > kept_blocks) blocks_.resize(kept_blocks);
        large_.clear();
        block_ = 0;
        used_ = 0;
    }

private:
    static constexpr std::size_t block_size = 16 * 1024;
    static constexpr std::size_t kept_blocks = 4;
    static constexpr std::size_t alignment = alignof(std::max_align_t);

    /// Memory for `size` bytes, aligned for any object; nullptr when out of
    /// memory (hiredis then reports an out-of-memory error).
    void* allocate(std::size_t size) noexcept {
        size = (size + alignment - 1) & ~(alignment - 1);
        if (size > block_size / 4) {
            // Large strings get their own allocation, freed by reset().
            auto* p = new (std::nothrow) unsigned char[size];
            if (p == nullptr) return nullptr;
            try {
                large_.emplace_back(p);
            } catch (...) {
                delete[] p;
                return nullptr;
            }
            return p;
        }
        if (used_ + size > block_size) {
            ++block_;
            used_ = 0;
        }
        if (block_ == blocks_.size()) {
            auto* p = new (std::nothrow) unsigned char[block_size];
            if (p == nullptr) return nullptr;
            try {
                blocks_.emplace_back(p);
            } catch (...) {
                delete[] p;
                return nullptr;
            }
        }
        void* p = blocks_[block_].get() + used_;
        used_ += size;
        return p;
    }

    static reply_arena& of(const redisReadTask* task) noexcept { return *static_cast<reply_arena*>(task->privdata); }

    /// A zeroed reply of `type`, linked into its parent array as hiredis does.
    static redisReply* make(const redisReadTask* task, int type) noexcept {
        void* memory = of(task).allocate(sizeof(redisReply));
        if (memory == nullptr) return nullptr;
        auto* r = static_cast<redisReply*>(std::memset(memory, 0, sizeof(redisReply)));
        r->type = type;
        if (task->parent != nullptr) {
            auto* parent = static_cast<redisReply*>(task->parent->obj);
            parent->element[task->idx] = r;
        }
        return r;
    }

    static void* create_string(const redisReadTask* task, char* text, std::size_t length) noexcept {
        auto* chars = static_cast<char*>(of(task).allocate(length + 1));
        if (chars == nullptr) return nullptr;
        std::memcpy(chars, text, length);
        chars[length] = '\0';
        redisReply* r = make(task, task->type);
        if (r == nullptr) return nullptr;
        r->str = chars;
        r->len = length;
        return r;
    }

    static void* create_array(const redisReadTask* task, int elements) noexcept {
        redisReply** slots = nullptr;
        if (elements > 0) {
            const auto count = static_cast<std::size_t>(elements);
            slots = static_cast<redisReply**>(of(task).allocate(count * sizeof(redisReply*)));
            if (slots == nullptr) return nullptr;
            std::memset(static_cast<void*>(slots), 0, count * sizeof(redisReply*));
        }
        redisReply* r = make(task, REDIS_REPLY_ARRAY);
        if (r == nullptr) return nullptr;
        r->elements = elements > 0 ? static_cast<std::size_t>(elements) : 0;
        r->element = slots;
        return r;
    }

    static void* create_integer(const redisReadTask* task, long long value) noexcept {
        redisReply* r = make(task, REDIS_REPLY_INTEGER);
        if (r != nullptr) r->integer = value;
        return r;
    }

    static void* create_nil(const redisReadTask* task) noexcept { return make(task, REDIS_REPLY_NIL); }

    static void free_object(void*) noexcept {}  // reset() frees

    static inline redisReplyObjectFunctions functions{&create_string, &create_array, &create_integer, &create_nil,
                                                      &free_object};

    std::vector<std::unique_ptr<unsigned char[]>> blocks_;
    std::vector<std::unique_ptr<unsigned char[]>> large_;
    std::size_t block_ = 0;  // the block being filled
    std::size_t used_ = 0;   // bytes used in it
};

}  // namespace gatehouse::adapters::redis::detail
