// Drives a hiredis asynchronous context (0.14 or 1.x) from Asio: hiredis
// asks for read/write readiness through its ev hooks, and we wait for it with
// stream_descriptor::async_wait on the executor given (a strand: hiredis
// contexts are not thread-safe). The socket stays owned by hiredis: the
// descriptor is released, never closed, when hiredis cleans up.
//
// hiredis 1.x added an ev hook, scheduleTimer, through which it asks for a
// timer when a connect or command timeout is set on the context
// (redisAsyncConnectWithOptions' timeouts, redisAsyncSetTimeout). The
// adapters set neither: their links time commands out themselves, on the
// strand, so the hook stays null and hiredis never asks for a timer.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <csignal>
#include <ctime>
#include <memory>
#include <system_error>

#include <pthread.h>
#include <sys/ioctl.h>

namespace gatehouse::adapters::redis::detail {

/// hiredis writes with write(2), which raises SIGPIPE when Redis has gone
/// away; by default that kills the host process. While alive, this blocks
/// SIGPIPE for the calling thread and discards one raised meanwhile, so the
/// host's signal setup is left as it was (the usual technique for libraries
/// that cannot use MSG_NOSIGNAL).
class sigpipe_guard {
public:
    sigpipe_guard() noexcept {
        sigemptyset(&sigpipe_);
        sigaddset(&sigpipe_, SIGPIPE);
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &sigpipe_, &previous_);
    }
    ~sigpipe_guard() {
        if (!was_pending_) {
            sigset_t pending;
            sigemptyset(&pending);
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE) == 1) {
                const timespec no_wait{0, 0};
                sigtimedwait(&sigpipe_, nullptr, &no_wait);
            }
        }
        pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    }
    sigpipe_guard(const sigpipe_guard&) = delete;
    sigpipe_guard& operator=(const sigpipe_guard&) = delete;

private:
    sigset_t sigpipe_{};
    sigset_t previous_{};
    bool was_pending_ = false;
};

class hiredis_asio_binding : public std::enable_shared_from_this<hiredis_asio_binding> {
public:
    /// Attaches `context` (freshly created, not yet attached). On success the
    /// binding keeps itself alive until hiredis calls its cleanup hook (when
    /// the context is freed). Returns false when attaching is impossible.
    static bool attach(redisAsyncContext* context, const asio::any_io_executor& executor) {
        if (context->ev.data != nullptr) return false;
        std::error_code ec;
        auto binding = std::shared_ptr<hiredis_asio_binding>(new hiredis_asio_binding(context, executor));
        binding->descriptor_.assign(context->c.fd, ec);
        if (ec) return false;
        binding->self_ = binding;
        context->ev.data = binding.get();
        context->ev.addRead = &hiredis_asio_binding::add_read;
        context->ev.delRead = &hiredis_asio_binding::del_read;
        context->ev.addWrite = &hiredis_asio_binding::add_write;
        context->ev.delWrite = &hiredis_asio_binding::del_write;
        context->ev.cleanup = &hiredis_asio_binding::cleanup;
#if HIREDIS_MAJOR >= 1
        context->ev.scheduleTimer = nullptr;  // see the header comment
#endif
        return true;
    }

private:
    hiredis_asio_binding(redisAsyncContext* context, const asio::any_io_executor& executor)
        : descriptor_(executor), context_(context) {}

    static hiredis_asio_binding* from(void* p) noexcept { return static_cast<hiredis_asio_binding*>(p); }

    static void add_read(void* p) {
        auto* b = from(p);
        b->want_read_ = true;
        b->arm_read();
    }
    static void del_read(void* p) { from(p)->want_read_ = false; }
    static void add_write(void* p) {
        auto* b = from(p);
        b->want_write_ = true;
        b->arm_write();
    }
    static void del_write(void* p) { from(p)->want_write_ = false; }

    static void cleanup(void* p) {
        auto* b = from(p);
        b->context_ = nullptr;
        b->want_read_ = b->want_write_ = false;
        // hiredis closes the socket itself: give the descriptor back without
        // closing it (release also cancels the outstanding waits).
        b->descriptor_.release();
        // Outstanding wait handlers hold their own reference.
        auto keep = std::move(b->self_);
    }

    void arm_read() {
        if (read_armed_ || !context_) return;
        read_armed_ = true;
        descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                               [self = shared_from_this()](const std::error_code& ec) {
                                   self->read_armed_ = false;
                                   if (ec || !self->context_ || !self->want_read_) return;
                                   // hiredis reads at most 16 KiB per call. Take
                                   // everything that has arrived before going back
                                   // to the loop, so that the commands the replies'
                                   // completions issue leave in one write (fewer,
                                   // larger round trips); bounded for fairness.
                                   for (int chunk = 0; chunk < 64 && self->context_ && self->want_read_; ++chunk) {
                                       redisAsyncHandleRead(self->context_);
                                       if (!self->context_ || !self->readable_now()) break;
                                   }
                                   // The context may have been freed inside.
                                   if (self->context_ && self->want_read_) self->arm_read();
                               });
    }

    bool readable_now() {
        int bytes = 0;
        return ::ioctl(descriptor_.native_handle(), FIONREAD, &bytes) == 0 && bytes > 0;
    }

    void arm_write() {
        if (write_armed_ || !context_) return;
        write_armed_ = true;
        descriptor_.async_wait(asio::posix::stream_descriptor::wait_write,
                               [self = shared_from_this()](const std::error_code& ec) {
                                   self->write_armed_ = false;
                                   if (ec || !self->context_ || !self->want_write_) return;
                                   {
                                       sigpipe_guard guard;
                                       redisAsyncHandleWrite(self->context_);
                                   }
                                   if (self->context_ && self->want_write_) self->arm_write();
                               });
    }

    asio::posix::stream_descriptor descriptor_;
    redisAsyncContext* context_;
    std::shared_ptr<hiredis_asio_binding> self_;
    bool want_read_ = false;
    bool want_write_ = false;
    bool read_armed_ = false;
    bool write_armed_ = false;
};

}  // namespace gatehouse::adapters::redis::detail
