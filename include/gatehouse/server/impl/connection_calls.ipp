// A connection's calls beyond its dispatcher (connection_state):
// server-to-client requests (§12.3) and client-to-client routing (§12).
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>

namespace gatehouse::server::detail {

// ---------------------------------------------------------------------------
// connection_state: answers given on another thread

inline void connection_state::post_answer(std::shared_ptr<pending_call> call, protocol::response_code code,
                                          bool binary, std::string payload) {
    connection_state::post(shared_from_this(),
                           [call = std::move(call), code, binary, data = std::move(payload)](connection_state& c) {
                               c.dispatch_.deliver(*call, code, binary, protocol::bytes_view(data));
                           });
}

// ---------------------------------------------------------------------------
// connection_state: server-to-client requests (§12.3)

inline connection_state::~connection_state() {
    core_->wakes->cancel(*this);
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
        dispatch_.reply_code(header, protocol::response_code::client_not_found);
        return;
    }
    // The reference server's acknowledgement, PascalCase included (§12.1).
    std::string body = "{\"Status\":\"delivered\",\"TargetPeerGuid\":\"";
    body.append(target.to_string()).append("\",\"OriginalMessageId\":").append(std::to_string(header.message_id));
    body.push_back('}');
    dispatch_.reply_code(header, protocol::response_code::ok, protocol::bytes_view(body));
}

inline void connection_state::route_peer(const protocol::frame_view& frame, protocol::bytes_view bytes) {
    auto core = core_;
    // Forwarded unchanged (§12.1): the receiver learns nothing about the sender.
    auto data = std::make_shared<const std::string>(bytes.as_chars());
    if (frame.service.is_broadcast()) {
        if (!core->options.peer_broadcast) {
            dispatch_.reply_error(frame, protocol::response_code::broadcast_not_allowed);
            return;
        }
        for (const auto& target : core->sessions.live_connections(this))
            connection_state::post(target, [data, core](connection_state& c) {
                if (c.accept_peer_frame(protocol::bytes_view(*data)))
                    core->peer_messages_forwarded.fetch_add(1, std::memory_order_relaxed);
            });
        return;  // no acknowledgement (§12.2)
    }
    auto target = frame.service.is_nil() ? nullptr : core->peers.find(frame.service);
    if (!target) {
        dispatch_.reply_error(frame, protocol::response_code::client_not_found);
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
