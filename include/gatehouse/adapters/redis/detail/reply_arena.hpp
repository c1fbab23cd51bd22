// Replies parsed by hiredis's reader (redisReader), built in an arena instead
// of one calloc per object: hiredis (0.14 and 1.x) lets a reader use its own
// object functions (redisReaderCreateWithFunctions). The objects are ordinary
// redisReply values, as hiredis's own functions build them.
//
// hiredis 1.x added members to redisReplyObjectFunctions (createDouble,
// createBool) and changed createArray's count to size_t: the table is filled
// member by member, and the differences are guarded on HIREDIS_MAJOR. The
// adapters speak RESP2 (they never send HELLO 3), so Redis sends none of
// RESP3's types; should one arrive anyway, it is built as hiredis 1.x builds
// it (DOUBLE, BOOL, MAP, SET, PUSH, BIGNUM, VERB) and the adapters, which
// check every reply's type, refuse it as a bad reply.
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

#if !defined(HIREDIS_MAJOR) || (HIREDIS_MAJOR == 0 && HIREDIS_MINOR < 14)
#error "gatehouse's Redis adapters need hiredis 0.14 or later"
#endif
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

    /// `length` bytes of `text` in the arena, NUL-terminated.
    static char* copy_text(const redisReadTask* task, const char* text, std::size_t length) noexcept {
        auto* chars = static_cast<char*>(of(task).allocate(length + 1));
        if (chars == nullptr) return nullptr;
        std::memcpy(chars, text, length);
        chars[length] = '\0';
        return chars;
    }

    /// STRING, STATUS, ERROR (and in 1.x BIGNUM, VERB).
    static void* create_string(const redisReadTask* task, char* text, std::size_t length) noexcept {
#if HIREDIS_MAJOR >= 1
        if (task->type == REDIS_REPLY_VERB) {
            // "txt:..." (the reader has checked the 4-byte header): the
            // type goes to vtype, the rest is the string, as hiredis does.
            if (length < 4) return nullptr;
            char* chars = copy_text(task, text + 4, length - 4);
            if (chars == nullptr) return nullptr;
            redisReply* r = make(task, REDIS_REPLY_VERB);
            if (r == nullptr) return nullptr;
            std::memcpy(r->vtype, text, 3);
            r->vtype[3] = '\0';
            r->str = chars;
            r->len = length - 4;
            return r;
        }
#endif
        char* chars = copy_text(task, text, length);
        if (chars == nullptr) return nullptr;
        redisReply* r = make(task, task->type);
        if (r == nullptr) return nullptr;
        r->str = chars;
        r->len = length;
        return r;
    }

#if HIREDIS_MAJOR >= 1
    using element_count = std::size_t;  // 1.x: size_t (a MAP's count is already doubled)
#else
    using element_count = int;  // 0.14: int, -1 never reaches here (a nil array is createNil)
#endif

    /// ARRAY (and in 1.x MAP, SET, PUSH: the task's type is kept).
    static void* create_array(const redisReadTask* task, element_count elements) noexcept {
        redisReply** slots = nullptr;
        const std::size_t count = elements > 0 ? static_cast<std::size_t>(elements) : 0;
        if (count > 0) {
            slots = static_cast<redisReply**>(of(task).allocate(count * sizeof(redisReply*)));
            if (slots == nullptr) return nullptr;
            std::memset(static_cast<void*>(slots), 0, count * sizeof(redisReply*));
        }
        redisReply* r = make(task, task->type);
        if (r == nullptr) return nullptr;
        r->elements = count;
        r->element = slots;
        return r;
    }

    static void* create_integer(const redisReadTask* task, long long value) noexcept {
        redisReply* r = make(task, REDIS_REPLY_INTEGER);
        if (r != nullptr) r->integer = value;
        return r;
    }

    static void* create_nil(const redisReadTask* task) noexcept { return make(task, REDIS_REPLY_NIL); }

#if HIREDIS_MAJOR >= 1
    /// RESP3 double: the value, and its text as Redis sent it.
    static void* create_double(const redisReadTask* task, double value, char* text, std::size_t length) noexcept {
        char* chars = copy_text(task, text, length);
        if (chars == nullptr) return nullptr;
        redisReply* r = make(task, REDIS_REPLY_DOUBLE);
        if (r == nullptr) return nullptr;
        r->dval = value;
        r->str = chars;
        r->len = length;
        return r;
    }

    /// RESP3 boolean, in `integer` (0 or 1).
    static void* create_bool(const redisReadTask* task, int value) noexcept {
        redisReply* r = make(task, REDIS_REPLY_BOOL);
        if (r != nullptr) r->integer = value != 0;
        return r;
    }
#endif

    static void free_object(void*) noexcept {}  // reset() frees

    /// By member, not by position: hiredis versions differ in the members
    /// and their order (1.x put createDouble before createNil).
    static redisReplyObjectFunctions make_functions() noexcept {
        redisReplyObjectFunctions f{};
        f.createString = &create_string;
        f.createArray = &create_array;
        f.createInteger = &create_integer;
        f.createNil = &create_nil;
#if HIREDIS_MAJOR >= 1
        f.createDouble = &create_double;
        f.createBool = &create_bool;
#endif
        f.freeObject = &free_object;
        return f;
    }

    static inline redisReplyObjectFunctions functions = make_functions();

    std::vector<std::unique_ptr<unsigned char[]>> blocks_;
    std::vector<std::unique_ptr<unsigned char[]>> large_;
    std::size_t block_ = 0;  // the block being filled
    std::size_t used_ = 0;   // bytes used in it
};

}  // namespace gatehouse::adapters::redis::detail
