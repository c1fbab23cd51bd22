// The dispatcher (gatehouse/server/detail/dispatcher.hpp): frame checks,
// channels and pending calls, responses (PROTOCOL.md §8.2, §18).
#pragma once

#include <gatehouse/server/detail/dispatcher.hpp>

namespace gatehouse::server::detail {

// ---------------------------------------------------------------------------
// pending_call

inline bool pending_call::complete(protocol::response_code code, bool binary, protocol::bytes_view payload) noexcept {
    if (answered_.exchange(true, std::memory_order_acq_rel)) return false;
    if (current_dispatcher == owner_dispatcher_ && !owner_.expired()) {
        // Inside a handler call on the owner's executor, and the owner is
        // alive (not another connection at a recycled address): no lock.
        owner_dispatcher_->deliver(*this, code, binary, payload);
        return true;
    }
    auto owner = owner_.lock();
    if (!owner) return false;
    try {
        owner->post_answer(shared_from_this(), code, binary, std::string(payload.as_chars()));
        return true;
    } catch (...) {
        return false;
    }
}

// ---------------------------------------------------------------------------
// dispatcher

inline void dispatcher::reply_error(const protocol::frame_view& frame, protocol::response_code code) {
    protocol::response_header header;
    header.flags = protocol::message_flags::response;
    header.channel = frame.channel;
    header.sequence = frame.sequence;
    header.message_id = frame.message_id;
    header.code = code;
    std::uint8_t bytes[protocol::response_header_size];
    protocol::encode_header(header, bytes);
    host_.send_response(protocol::bytes_view(bytes, sizeof bytes), code);
}

inline void dispatcher::reply_code(const protocol::request_header& request, protocol::response_code code,
                                   protocol::bytes_view payload) {
    protocol::response_header header;
    header.flags = protocol::message_flags::response;
    header.channel = request.channel;
    header.sequence = request.sequence;
    header.message_id = request.message_id;
    header.code = code;
    reply_buffer.clear();
    protocol::append_frame(reply_buffer, header,
                           code == protocol::response_code::ok ? payload : protocol::bytes_view{});
    host_.send_response(protocol::bytes_view(reply_buffer), code);
}

inline void dispatcher::send_text_refusal() {
    // §8.6: channel 0, the server's own sequence for channel 0 (from 1), a
    // fresh message id: the sender cannot correlate it, by design.
    protocol::response_header header;
    header.flags = protocol::message_flags::response;
    header.channel = 0;
    header.sequence = ++text_sequence_;
    header.message_id = routing::new_server_message_id();
    header.code = protocol::response_code::text_protocol_not_supported;
    std::uint8_t bytes[protocol::response_header_size];
    protocol::encode_header(header, bytes);
    host_.send_response(protocol::bytes_view(bytes, sizeof bytes), header.code);
}

inline bool dispatcher::rate_ok(steady::time_point now) {
    const auto& o = context_.options;
    if (!message_bucket_.take(static_cast<double>(o.message_burst), static_cast<double>(o.messages_per_minute) / 60.0,
                              now))
        return false;
    // The account's bucket (register_session) counts only while another
    // connection holds it too (the registry's reference plus two). Alone,
    // this connection's own bucket is the tighter one (validate_options:
    // the account's rate and burst are at least the connection's), so
    // the account's could not refuse: no lock on the common path.
    if (account_bucket_ && account_bucket_.use_count() > 2 &&
        !account_bucket_->take(static_cast<double>(o.account_message_burst),
                               static_cast<double>(o.account_messages_per_minute) / 60.0, now)) {
        context_.account_rate_limited.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    return true;
}

inline void dispatcher::on_frame(bool text, protocol::bytes_view bytes) {
    using protocol::message_flags;
    using protocol::response_code;
    if (auto* m = context_.metrics) m->on_message_in(bytes.size());
    if (closing_) return;
    if (text) {
        send_text_refusal();
        return;
    }
    const auto& o = context_.options;
    // The transport enforces the limit on real sockets; this covers any other transport.
    if (bytes.size() > o.max_message_size) {
        host_.close_with(1009, "message too big");
        return;
    }
    // 1. Parse; a frame without a readable header cannot be answered.
    protocol::frame_view frame;
    if (protocol::decode_frame(bytes, frame)) {
        context_.frames_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // 2. A response answers a server-to-client request (§12.3); late,
    //    duplicate or foreign ones are dropped (and counted).
    if (frame.is_response()) {
        if (!host_.client_response(frame)) context_.responses_unmatched.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // Nothing is routed before the session is attached (§18).
    if (!open_) {
        reply_error(frame, response_code::service_not_found);
        return;
    }
    if (o.max_payload_size != 0 && frame.payload.size() > o.max_payload_size) {
        reply_error(frame, response_code::request_too_large);
        return;
    }
    const bool is_event = frame.has(message_flags::event);
    const bool is_meta = frame.has(message_flags::meta);
    const bool is_client = frame.has(message_flags::client);
    const auto now = steady::now();
    // 4. Empty payload without Event or Meta.
    if (frame.payload.empty() && !is_event && !is_meta) {
        reply_error(frame, response_code::request_error);
        return;
    }
    // 5./6. Broadcast and peer routing (§12): counted against the rate
    // limit, then refused with 40 unless enabled (External mode).
    if (frame.service.is_broadcast() && !is_client) {
        reply_error(frame, response_code::request_error);
        return;
    }
    if (is_client) {
        if (!rate_ok(now)) {
            reply_error(frame, response_code::too_many_requests);
            return;
        }
        if (!o.peer_routing) {
            reply_error(frame, response_code::broadcast_not_allowed);
            return;
        }
        host_.peer_frame(frame, bytes);
        return;
    }
    const routing::endpoint* target = routes_.find(frame.service);
    if (!target) {
        reply_error(frame, response_code::service_not_found);
        return;
    }
    // 7. Channel limit.
    if (frame.channel > o.max_channel) {
        reply_error(frame, response_code::invalid_request_channel);
        return;
    }
    // 8. Meta: answered from the registration, not rate limited.
    if (is_meta) {
        const std::string body = routing::meta_json(*target, protocol::meta_type_from_channel(frame.channel));
        protocol::response_header header;
        header.flags = message_flags::response | message_flags::meta;
        header.channel = frame.channel;
        header.sequence = frame.sequence;
        header.message_id = frame.message_id;
        reply_buffer.clear();
        protocol::append_frame(reply_buffer, header, protocol::bytes_view(body));
        host_.send_response(protocol::bytes_view(reply_buffer), header.code);
        return;
    }
    // 9. Rate limit.
    if (!rate_ok(now)) {
        reply_error(frame, response_code::too_many_requests);
        return;
    }
    // 10. Route.
    enqueue(frame, target, now);
}

inline void dispatcher::enqueue(const protocol::frame_view& frame, const routing::endpoint* target,
                                steady::time_point now) {
    const auto& o = context_.options;
    channel_state* found = find_channel(frame.channel);
    if (!found) {
        channels_.emplace_back();
        found = &channels_.back();
        found->id = frame.channel;
    }
    auto& channel = *found;
    if (!channel.busy && channel.waiting.empty() && in_flight_ < o.max_in_flight) {
        // Fast path: nothing ahead of it; the payload view stays valid for the call.
        channel.busy = true;
        ++in_flight_;
        const bool outer = !pumping_;
        pumping_ = true;
        invoke(target, frame.request(), frame.payload, now);
        if (outer) {
            pumping_ = false;
            pump();
        }
        return;
    }
    if (queued_ >= o.max_queued_requests) {
        if (!channel.busy && channel.waiting.empty() && !channel.in_ready) erase_channel(frame.channel);
        reply_error(frame, protocol::response_code::too_many_requests);
        return;
    }
    channel.waiting.push_back({frame.request(), target, std::string(frame.payload.as_chars())});
    ++queued_;
    if (!channel.busy && !channel.in_ready) {
        channel.in_ready = true;
        ready_.push_back(frame.channel);
    }
}

inline void dispatcher::invoke(const routing::endpoint* target, const protocol::request_header& header,
                               protocol::bytes_view payload, steady::time_point now) {
    const auto deadline = now + context_.options.handler_timeout;
    std::shared_ptr<pending_call> call;
    if (spare_call_) {
        call = std::move(spare_call_);
        call->reset(header, deadline);
    } else {
        call = std::make_shared<pending_call>(host_.weak_host(), this, header, deadline);
    }
    routing::request request;
    request.session = session_;
    request.target = target;
    request.flags = header.flags;
    request.channel = header.channel;
    request.sequence = header.sequence;
    request.message_id = header.message_id;
    request.payload = payload;

    const dispatcher* previous = current_dispatcher;
    current_dispatcher = this;
    try {
        if (target->fn)
            target->fn(request, routing::responder(call));
        else
            target->forward->async_route(request, routing::responder(call));
    } catch (const std::exception& e) {
        context_.log(log_level::error, std::string("endpoint handler threw: ") + e.what());
        call->complete(protocol::response_code::backend_internal_error, false, {});
    } catch (...) {
        context_.log(log_level::error, "endpoint handler threw a non-standard exception");
        call->complete(protocol::response_code::backend_internal_error, false, {});
    }
    current_dispatcher = previous;
    if (call->delivered) {
        // Answered inline on this thread: when the handler kept no
        // responder, nobody else can reach the object any more.
        if (call.use_count() == 1 && !stopped_) spare_call_ = std::move(call);
        return;
    }
    if (!closing_) {
        timed_calls_.push_back(std::move(call));
        host_.deadline_changed();
    }
}

inline void dispatcher::deliver(pending_call& call, protocol::response_code code, bool binary,
                                protocol::bytes_view payload) {
    if (call.delivered || stopped_) return;
    call.delivered = true;
    const auto timeout = context_.options.handler_timeout;
    if (auto* m = context_.metrics)  // dispatch time = deadline - timeout: no extra state per call
        m->on_handler_latency(steady::now() - (call.deadline() - timeout));
    const auto& header = call.header();
    // Event-flagged requests are fire-and-forget: no reply for whatever the
    // handler answered (errors of §8.2 steps 1-9 are replied before this).
    if (!protocol::has_flags(header.flags, protocol::message_flags::event)) {
        protocol::response_header reply;
        reply.flags = protocol::message_flags::response;
        if (binary && code == protocol::response_code::ok) reply.flags |= protocol::message_flags::binary;
        reply.channel = header.channel;
        reply.sequence = header.sequence;
        reply.message_id = header.message_id;
        reply.code = code;
        reply_buffer.clear();
        protocol::append_frame(reply_buffer, reply,
                               code == protocol::response_code::ok ? payload : protocol::bytes_view{});
        host_.send_response(protocol::bytes_view(reply_buffer), code);
    }
    finish_channel(header.channel);
}

inline void dispatcher::finish_channel(std::uint16_t channel_id) {
    if (stopped_) return;
    if (auto* channel = find_channel(channel_id)) {
        channel->busy = false;
        if (!channel->waiting.empty()) {
            if (!channel->in_ready) {
                channel->in_ready = true;
                ready_.push_back(channel_id);
            }
        } else if (!channel->in_ready) {
            erase_channel(channel_id);
        }
    }
    if (in_flight_ > 0) --in_flight_;
    if (!pumping_) pump();
}

inline void dispatcher::pump() {
    if (pumping_) return;
    pumping_ = true;
    const auto max_in_flight = context_.options.max_in_flight;
    while (!ready_.empty() && in_flight_ < max_in_flight && !closing_) {
        const std::uint16_t channel_id = ready_.pop_front();
        auto* found = find_channel(channel_id);
        if (!found) continue;
        auto& channel = *found;
        channel.in_ready = false;
        if (channel.busy || channel.waiting.empty()) continue;
        queued_request next = channel.waiting.pop_front();
        --queued_;
        channel.busy = true;
        ++in_flight_;
        invoke(next.target, next.header, protocol::bytes_view(next.payload), steady::now());
    }
    pumping_ = false;
}

inline void dispatcher::sweep(steady::time_point now) {
    // Deadlines grow with insertion order (one timeout for all calls).
    while (!timed_calls_.empty() && !stopped_) {
        auto& front = timed_calls_.front();
        if (front->delivered) {
            timed_calls_.pop_front();
            continue;
        }
        if (front->deadline() > now) break;
        auto call = timed_calls_.pop_front();
        if (call->claim()) {
            context_.log(log_level::warning, "handler timed out; answered 60");
            deliver(*call, protocol::response_code::backend_internal_error, false, {});
        }
    }
}

inline void dispatcher::stop() noexcept {
    closing_ = true;
    stopped_ = true;
    channels_.clear();
    channels_.shrink_to_fit();
    ready_.clear();
    timed_calls_.clear();
    spare_call_.reset();
    in_flight_ = 0;
    queued_ = 0;
}

}  // namespace gatehouse::server::detail
