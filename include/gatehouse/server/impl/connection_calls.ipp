// The dispatcher (connection_state): frame checks, channels and pending
// calls, responses; server-to-client requests; client-to-client routing.
#pragma once

#include <gatehouse/server/detail/gateway_core.hpp>

namespace gatehouse::server::detail {

// ---------------------------------------------------------------------------
// connection_state: the dispatcher (PROTOCOL.md §8.2, §18)

inline void connection_state::reply_error(const protocol::frame_view& frame, protocol::response_code code) {
    protocol::response_header header;
    header.flags = protocol::message_flags::response;
    header.channel = frame.channel;
    header.sequence = frame.sequence;
    header.message_id = frame.message_id;
    header.code = code;
    std::uint8_t bytes[protocol::response_header_size];
    protocol::encode_header(header, bytes);
    send_response(protocol::bytes_view(bytes, sizeof bytes), code);
}

inline void connection_state::send_text_refusal() {
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
    send_response(protocol::bytes_view(bytes, sizeof bytes), header.code);
}

inline void connection_state::on_frame(frame_kind kind, protocol::bytes_view bytes) {
    using protocol::message_flags;
    using protocol::response_code;
    if (auto* m = core_->metrics) m->on_message_in(bytes.size());
    if (closing_) return;
    if (kind == frame_kind::text) {
        send_text_refusal();
        return;
    }
    const auto& o = core_->options;
    // The transport enforces the limit on real sockets; this covers any other transport.
    if (bytes.size() > o.max_message_size) {
        close_with(1009, "message too big");
        return;
    }
    // 1. Parse; a frame without a readable header cannot be answered.
    protocol::frame_view frame;
    if (protocol::decode_frame(bytes, frame)) {
        core_->frames_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // 2. A response answers a server-to-client request (§12.3); late,
    //    duplicate or foreign ones are dropped (and counted).
    if (frame.is_response()) {
        if (!complete_client_call(frame)) core_->responses_unmatched.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // Nothing is routed before the session is attached (§18).
    if (phase_ != phase::ready) {
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
    const auto rate_ok = [&] {
        if (!message_bucket_.take(static_cast<double>(o.message_burst),
                                  static_cast<double>(o.messages_per_minute) / 60.0, now))
            return false;
        // The account's bucket (register_session) counts only while another
        // connection holds it too (the registry's reference plus two). Alone,
        // this connection's own bucket is the tighter one (validate_options:
        // the account's rate and burst are at least the connection's), so
        // the account's could not refuse: no lock on the common path.
        if (account_bucket_ && account_bucket_.use_count() > 2 &&
            !account_bucket_->take(static_cast<double>(o.account_message_burst),
                                                      static_cast<double>(o.account_messages_per_minute) / 60.0, now)) {
            core_->account_rate_limited.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        return true;
    };
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
        if (!rate_ok()) {
            reply_error(frame, response_code::too_many_requests);
            return;
        }
        if (!o.peer_routing) {
            reply_error(frame, response_code::broadcast_not_allowed);
            return;
        }
        route_peer(frame, bytes);
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
        send_response(protocol::bytes_view(reply_buffer), header.code);
        return;
    }
    // 9. Rate limit.
    if (!rate_ok()) {
        reply_error(frame, response_code::too_many_requests);
        return;
    }
    // 10. Route.
    enqueue(frame, target, now);
}

inline void connection_state::enqueue(const protocol::frame_view& frame, const routing::endpoint* target,
                                      steady::time_point now) {
    const auto& o = core_->options;
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

inline void connection_state::invoke(const routing::endpoint* target, const protocol::request_header& header,
                                     protocol::bytes_view payload, steady::time_point now) {
    const auto deadline = now + core_->options.handler_timeout;
    std::shared_ptr<pending_call> call;
    if (spare_call_) {
        call = std::move(spare_call_);
        call->reset(header, deadline);
    } else {
        call = std::make_shared<pending_call>(weak_from_this(), this, header, deadline);
    }
    routing::request request;
    request.session = info_;
    request.target = target;
    request.flags = header.flags;
    request.channel = header.channel;
    request.sequence = header.sequence;
    request.message_id = header.message_id;
    request.payload = payload;

    const connection_state* previous = current_connection;
    current_connection = this;
    try {
        if (target->fn)
            target->fn(request, routing::responder(call));
        else
            target->forward->async_route(request, routing::responder(call));
    } catch (const std::exception& e) {
        core_->log(log_level::error, std::string("endpoint handler threw: ") + e.what());
        call->complete(protocol::response_code::backend_internal_error, false, {});
    } catch (...) {
        core_->log(log_level::error, "endpoint handler threw a non-standard exception");
        call->complete(protocol::response_code::backend_internal_error, false, {});
    }
    current_connection = previous;
    if (call->delivered) {
        // Answered inline on this thread: when the handler kept no
        // responder, nobody else can reach the object any more.
        if (call.use_count() == 1 && phase_ != phase::closed) spare_call_ = std::move(call);
        return;
    }
    if (!closing_) {
        timed_calls_.push_back(std::move(call));
        rearm_timer();
    }
}

inline void connection_state::deliver(pending_call& call, protocol::response_code code, bool binary,
                                      protocol::bytes_view payload) {
    if (call.delivered || phase_ == phase::closed) return;
    call.delivered = true;
    if (auto* m = core_->metrics)  // dispatch time = deadline - timeout: no extra state per call
        m->on_handler_latency(steady::now() - (call.deadline() - core_->options.handler_timeout));
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
        send_response(protocol::bytes_view(reply_buffer), code);
    }
    finish_channel(header.channel);
}

inline void connection_state::finish_channel(std::uint16_t channel_id) {
    if (phase_ == phase::closed) return;
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

inline void connection_state::pump() {
    if (pumping_) return;
    pumping_ = true;
    const auto max_in_flight = core_->options.max_in_flight;
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

inline void connection_state::sweep(steady::time_point now) {
    // Deadlines grow with insertion order (one timeout for all calls).
    while (!timed_calls_.empty() && phase_ != phase::closed) {
        auto& front = timed_calls_.front();
        if (front->delivered) {
            timed_calls_.pop_front();
            continue;
        }
        if (front->deadline() > now) break;
        auto call = timed_calls_.pop_front();
        if (call->claim()) {
            core_->log(log_level::warning, "handler timed out; answered 60");
            deliver(*call, protocol::response_code::backend_internal_error, false, {});
        }
    }
}

inline void connection_state::reply_code(const protocol::request_header& request, protocol::response_code code,
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
    send_response(protocol::bytes_view(reply_buffer), code);
}

// ---------------------------------------------------------------------------
// connection_state: server-to-client requests (§12.3)

inline connection_state::~connection_state() {
    core_->cancel_wake(*this);
    // Calls still pending complete with not_running as the map goes.
    if (!no_client_calls()) core_->client_calls_pending.fetch_sub(client_calls_->size(), std::memory_order_relaxed);
}

inline void connection_state::finish_client_call(const std::shared_ptr<client_call>& call, std::error_code ec,
                                                 client_reply reply) {
    call->complete(ec, std::move(reply));
    if (call->threw) {
        call->threw = false;
        core_->log(log_level::error, "a call_client completion threw; ignored");
    }
}

inline void connection_state::start_client_call(std::shared_ptr<client_call> call, const client_call_options& options,
                                                std::string payload) {
    if (closing_ || phase_ != phase::ready) {
        finish_client_call(call,
                           core_->stopping.load(std::memory_order_acquire) ? server_errc::not_running
                                                                           : server_errc::client_call_disconnected,
                           {});
        return;
    }
    if (client_calls().size() >= core_->options.max_client_calls_per_session) {
        finish_client_call(call, server_errc::too_many_client_calls, {});
        return;
    }
    // Unguessable: a peer (§12.1) must not be able to make the client answer
    // a forwarded frame with the id of a pending request.
    std::uint64_t id = 0;
    do {
        std::uint8_t random[8];
        secure_random(random, sizeof random);
        id = protocol::load_be64(random);
    } while (id == 0 || client_calls().count(id) != 0);
    client_calls().emplace(id, pending_client_call{std::move(call), steady::now() + options.timeout});
    core_->client_calls_pending.fetch_add(1, std::memory_order_relaxed);

    protocol::request_header header;
    header.flags = options.binary ? protocol::message_flags::binary : protocol::message_flags::none;
    header.channel = options.channel;
    header.sequence = 0;
    header.service = options.service;
    header.message_id = id;
    reply_buffer.clear();
    protocol::append_frame(reply_buffer, header, protocol::bytes_view(payload));
    send_frame(protocol::bytes_view(reply_buffer));  // a slow consumer closes: on_closed fails the call
    rearm_timer();
}

inline bool connection_state::complete_client_call(const protocol::frame_view& frame) {
    if (no_client_calls()) return false;
    const auto it = client_calls_->find(frame.message_id);
    if (it == client_calls_->end()) return false;
    auto call = std::move(it->second.call);
    client_calls_->erase(it);
    core_->client_calls_pending.fetch_sub(1, std::memory_order_relaxed);
    client_reply reply;
    reply.code = frame.code;
    reply.binary = frame.has(protocol::message_flags::binary);
    if (frame.code == protocol::response_code::ok) reply.payload.assign(frame.payload.as_chars());
    finish_client_call(call, {}, std::move(reply));
    return true;
}

inline void connection_state::client_call_timed_out(std::uint64_t message_id) {
    if (no_client_calls()) return;
    const auto it = client_calls_->find(message_id);
    if (it == client_calls_->end()) return;
    auto call = std::move(it->second.call);
    client_calls_->erase(it);
    core_->client_calls_pending.fetch_sub(1, std::memory_order_relaxed);
    core_->client_calls_timed_out.fetch_add(1, std::memory_order_relaxed);
    finish_client_call(call, server_errc::client_call_timeout, {});
}

inline void connection_state::fail_client_calls(std::error_code ec) {
    if (no_client_calls()) return;
    auto calls = std::move(*client_calls_);
    client_calls_.reset();
    core_->client_calls_pending.fetch_sub(calls.size(), std::memory_order_relaxed);
    for (auto& entry : calls) finish_client_call(entry.second.call, ec, {});
}

// ---------------------------------------------------------------------------
// connection_state: client-to-client routing (§12)

inline bool connection_state::accept_peer_frame(protocol::bytes_view bytes) {
    // Before its manifest a connection has not announced its peer GUID.
    if (closing_ || phase_ != phase::ready || !manifest_sent_) return false;
    send_frame(bytes);
    return !closing_;
}

inline void connection_state::peer_result(const protocol::request_header& header, const protocol::guid& target,
                                          bool delivered) {
    if (closing_) return;
    if (!delivered) {
        reply_code(header, protocol::response_code::client_not_found);
        return;
    }
    // The reference server's acknowledgement, PascalCase included (§12.1).
    std::string body = "{\"Status\":\"delivered\",\"TargetPeerGuid\":\"";
    body.append(target.to_string()).append("\",\"OriginalMessageId\":").append(std::to_string(header.message_id));
    body.push_back('}');
    reply_code(header, protocol::response_code::ok, protocol::bytes_view(body));
}

inline void connection_state::route_peer(const protocol::frame_view& frame, protocol::bytes_view bytes) {
    auto core = core_;
    // Forwarded unchanged (§12.1): the receiver learns nothing about the sender.
    auto data = std::make_shared<const std::string>(bytes.as_chars());
    if (frame.service.is_broadcast()) {
        if (!core->options.peer_broadcast) {
            reply_error(frame, protocol::response_code::broadcast_not_allowed);
            return;
        }
        std::vector<std::shared_ptr<connection_state>> targets;
        {
            std::lock_guard<std::mutex> lock(core->registry_mutex);
            targets.reserve(core->sessions.size());
            for (const auto& entry : core->sessions)
                if (entry.second.get() != this) targets.push_back(entry.second);
        }
        for (const auto& target : targets)
            connection_state::post(target, [data, core](connection_state& c) {
                if (c.accept_peer_frame(protocol::bytes_view(*data)))
                    core->peer_messages_forwarded.fetch_add(1, std::memory_order_relaxed);
            });
        return;  // no acknowledgement (§12.2)
    }
    auto target = frame.service.is_nil() ? nullptr : core->find_peer(frame.service);
    if (!target) {
        reply_error(frame, protocol::response_code::client_not_found);
        return;
    }
    const bool acknowledge = !frame.has(protocol::message_flags::event);
    std::weak_ptr<connection_state> sender = weak_from_this();
    connection_state::post(target, [data, core, sender, acknowledge, header = frame.request()](connection_state& c) {
        const bool delivered = c.accept_peer_frame(protocol::bytes_view(*data));
        if (delivered) core->peer_messages_forwarded.fetch_add(1, std::memory_order_relaxed);
        // Failed deliveries are answered 31 even to Event-flagged frames, like
        // every error of §8.2.
        if (delivered && !acknowledge) return;
        auto from = sender.lock();
        if (!from) return;
        connection_state::post(from, [header, delivered](connection_state& s) {
            s.peer_result(header, header.service, delivered);
        });
    });
}

}  // namespace gatehouse::server::detail
