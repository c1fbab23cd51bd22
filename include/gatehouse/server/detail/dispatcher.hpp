// The dispatcher: one per connection, the request side of the message path
// (PROTOCOL.md §8.2, §18). It checks each frame in the order of §8.2, rate
// limits it, queues it on its channel (one request at a time per channel,
// max_in_flight across channels, max_queued_requests waiting), calls the
// endpoint's handler, answers it, and answers 60 for a handler that did not
// answer within handler_timeout.
//
// It knows nothing of the gateway, the session store or the transport: it
// talks to its connection through dispatch_host (send a response, close,
// and the few frames that are not its own: answers to server-to-client
// requests and Client-flagged frames), and counts through dispatch_context.
// tests/server/test_dispatcher.cpp drives it alone. Its definitions are in
// gatehouse/server/impl/dispatcher.ipp.
#pragma once

#include <gatehouse/protocol/header.hpp>
#include <gatehouse/protocol/meta.hpp>
#include <gatehouse/routing/endpoint.hpp>
#include <gatehouse/routing/event.hpp>
#include <gatehouse/routing/handler.hpp>
#include <gatehouse/routing/meta.hpp>
#include <gatehouse/server/detail/event_queue.hpp>
#include <gatehouse/server/detail/rate_limits.hpp>
#include <gatehouse/server/metrics.hpp>
#include <gatehouse/server/options.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::server::detail {

/// Where response frames are assembled before the transport copies them:
/// one per thread rather than one per connection (whose capacity would stay
/// with every connection that ever answered something).
inline thread_local std::string reply_buffer;

class pending_call;
class dispatcher;

/// What a dispatcher needs from the connection it serves. Called on the
/// connection's executor, from inside the dispatcher's own calls.
class dispatch_host {
public:
    /// Sends a response frame; `code` is its response code (for the metrics).
    virtual void send_response(protocol::bytes_view frame, protocol::response_code code) = 0;
    /// Closes the connection; the host then calls dispatcher::closing().
    virtual void close_with(std::uint16_t code, std::string_view reason) = 0;
    /// A response frame: the answer to one of the host's server-to-client
    /// requests (§12.3)? False when it matches none (the dispatcher counts it).
    virtual bool client_response(const protocol::frame_view& frame) = 0;
    /// A Client-flagged frame that passed the checks and the rate limit,
    /// with peer routing enabled (§12): the host routes it to a peer.
    virtual void peer_frame(const protocol::frame_view& frame, protocol::bytes_view bytes) = 0;
    /// A handler's answer is due by dispatcher::next_deadline(): the host
    /// calls dispatcher::sweep() by then.
    virtual void deadline_changed() = 0;
    /// An answer given on another thread: the host runs
    /// dispatcher::deliver(*call, code, binary, payload) on its executor
    /// (or drops it when it can no longer run anything).
    virtual void post_answer(std::shared_ptr<pending_call> call, protocol::response_code code, bool binary,
                             std::string payload) = 0;
    /// The host itself, for pending calls that outlive the handler call.
    virtual std::weak_ptr<dispatch_host> weak_host() noexcept = 0;

protected:
    ~dispatch_host() = default;
};

/// What the dispatchers of one gateway share: its options and where they
/// count. Outlives them (the gateway core holds it).
struct dispatch_context {
    const gateway_options& options;
    metrics_sink* metrics = nullptr;
    std::atomic<std::uint64_t>& frames_dropped;        ///< no readable header
    std::atomic<std::uint64_t>& responses_unmatched;   ///< a response that answers nothing
    std::atomic<std::uint64_t>& account_rate_limited;  ///< refused by the account's bucket

    void log(log_level level, std::string_view line) const {
        if (options.log) options.log(level, line);
    }
};

/// The dispatcher whose host is running a handler on this thread; lets an
/// answer given inside the handler call skip the post.
inline thread_local const dispatcher* current_dispatcher = nullptr;

/// One request handed to a handler: the dispatcher's side of its responder.
class pending_call final : public routing::detail::call_completion,
                           public std::enable_shared_from_this<pending_call> {
public:
    pending_call(std::weak_ptr<dispatch_host> owner, dispatcher* owner_dispatcher,
                 const protocol::request_header& header, steady::time_point deadline) noexcept
        : owner_(std::move(owner)), owner_dispatcher_(owner_dispatcher), header_(header), deadline_(deadline) {}

    bool complete(protocol::response_code code, bool binary, protocol::bytes_view payload) noexcept override;

    /// Makes an answered call, that nobody but its dispatcher holds, ready
    /// for another request (host executor).
    void reset(const protocol::request_header& header, steady::time_point deadline) noexcept {
        header_ = header;
        deadline_ = deadline;
        delivered = false;
        answered_.store(false, std::memory_order_relaxed);
    }

    /// Claims the answer for the dispatcher (timeout); false if already taken.
    bool claim() noexcept { return !answered_.exchange(true, std::memory_order_acq_rel); }
    bool answered() const noexcept { return answered_.load(std::memory_order_acquire); }

    const protocol::request_header& header() const noexcept { return header_; }
    steady::time_point deadline() const noexcept { return deadline_; }
    /// Host executor only.
    bool delivered = false;

private:
    std::weak_ptr<dispatch_host> owner_;
    /// Compared with current_dispatcher only: an answer given inside the
    /// handler call, on the owner's executor, needs no weak_ptr lock.
    dispatcher* const owner_dispatcher_;
    protocol::request_header header_;
    steady::time_point deadline_;
    std::atomic<bool> answered_{false};
};

/// The request side of one connection. Host executor only.
class dispatcher {
public:
    dispatcher(dispatch_host& host, const dispatch_context& context) noexcept : host_(host), context_(context) {}
    dispatcher(const dispatcher&) = delete;
    dispatcher& operator=(const dispatcher&) = delete;

    /// One frame from the peer (text or binary).
    void on_frame(bool text, protocol::bytes_view bytes);

    /// The session is attached: requests are routed from now on to
    /// routes(), with session() handed to handlers.
    void open() noexcept { open_ = true; }
    bool is_open() const noexcept { return open_; }
    /// The attached session, and after a refreshed credential its
    /// successor: handlers get `session` from now on.
    void set_session(std::shared_ptr<const routing::session_info> session) noexcept { session_ = std::move(session); }
    const std::shared_ptr<const routing::session_info>& session() const noexcept { return session_; }
    /// The session's endpoints (rebuilt by the host; the manifest lists them).
    routing::session_routes& routes() noexcept { return routes_; }
    const routing::session_routes& routes() const noexcept { return routes_; }
    /// The account's bucket, shared by its sessions on this node.
    void share_account_bucket(std::shared_ptr<account_bucket> bucket) noexcept { account_bucket_ = std::move(bucket); }

    /// The connection is closing: no more requests are taken or started;
    /// answers still go out while the host can send.
    void closing() noexcept { closing_ = true; }
    /// The connection is gone: everything queued or pending is dropped, and
    /// answers given later are ignored.
    void stop() noexcept;

    /// The deadline of the oldest unanswered call (zero: none).
    steady::time_point next_deadline() const noexcept {
        return timed_calls_.empty() ? steady::time_point{} : timed_calls_.front()->deadline();
    }
    /// Answers 60 for every call past its deadline at `now`.
    void sweep(steady::time_point now);
    /// A handler's answer (pending_call::complete; host executor).
    void deliver(pending_call& call, protocol::response_code code, bool binary, protocol::bytes_view payload);

    /// A bare response to `frame` with `code` (§8.2 errors).
    void reply_error(const protocol::frame_view& frame, protocol::response_code code);
    /// A response to `request` with `code`, and `payload` when it is ok.
    void reply_code(const protocol::request_header& request, protocol::response_code code,
                    protocol::bytes_view payload = {});

    /// Requests a handler is running for (at most max_in_flight).
    std::size_t in_flight() const noexcept { return in_flight_; }
    /// Requests waiting for their channel (at most max_queued_requests).
    std::size_t queued() const noexcept { return queued_; }

private:
    struct queued_request {
        protocol::request_header header;
        const routing::endpoint* target = nullptr;
        std::string payload;
    };
    /// A channel with a request being handled or waiting. Few at a time
    /// (at most max_in_flight busy), so a flat vector searched linearly: the
    /// common case (one request on channel 0, answered inline) allocates
    /// nothing per message.
    struct channel_state {
        std::uint16_t id = 0;
        bool busy = false;
        bool in_ready = false;
        lazy_fifo<queued_request> waiting;
    };
    channel_state* find_channel(std::uint16_t id) noexcept {
        for (auto& c : channels_)
            if (c.id == id) return &c;
        return nullptr;
    }
    void erase_channel(std::uint16_t id) noexcept {
        for (auto& c : channels_)
            if (c.id == id) {
                if (&c != &channels_.back()) c = std::move(channels_.back());
                channels_.pop_back();
                return;
            }
    }
    bool rate_ok(steady::time_point now);
    void send_text_refusal();
    void enqueue(const protocol::frame_view& frame, const routing::endpoint* target, steady::time_point now);
    /// `now`: the dispatch time (the handler timeout counts from it).
    void invoke(const routing::endpoint* target, const protocol::request_header& header, protocol::bytes_view payload,
                steady::time_point now);
    void pump();
    void finish_channel(std::uint16_t channel);

    dispatch_host& host_;
    const dispatch_context& context_;
    bool open_ = false;
    bool closing_ = false;
    bool stopped_ = false;
    bool pumping_ = false;
    std::uint32_t text_sequence_ = 0;
    std::shared_ptr<const routing::session_info> session_;
    routing::session_routes routes_;
    token_bucket message_bucket_;
    /// The account's bucket shared by its sessions here.
    std::shared_ptr<account_bucket> account_bucket_;

    std::vector<channel_state> channels_;
    lazy_fifo<std::uint16_t> ready_;
    std::size_t in_flight_ = 0;
    std::size_t queued_ = 0;
    lazy_fifo<std::shared_ptr<pending_call>> timed_calls_;
    /// A pending_call answered inline and owned by nobody else, reused by
    /// the next request (no allocation per request in the common case).
    std::shared_ptr<pending_call> spare_call_;
};

}  // namespace gatehouse::server::detail

#include <gatehouse/server/impl/dispatcher.ipp>
