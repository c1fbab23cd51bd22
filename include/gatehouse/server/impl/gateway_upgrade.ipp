// The upgrade gate (gateway_core): credentials, the validator, admission
// limits, and the transport's open/message/close events.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>

namespace gatehouse::server::detail {

// ---------------------------------------------------------------------------
// gateway_core: upgrade

inline upgrade_decision gateway_core::on_upgrade(const upgrade_request& request) {
    const auto refuse = [this](upgrade_result result, const char* body) {
        upgrades_refused.fetch_add(1, std::memory_order_relaxed);
        count_upgrade(result);
        const int status = upgrade_result_status(result);
        upgrade_decision d;
        d.status = status;
        d.body = body;
        return d;
    };
    if (stopping.load(std::memory_order_acquire)) return refuse(upgrade_result::shutting_down, "Server shutting down");

    const std::string_view resource = request.resource();
    const auto question = resource.find('?');
    const std::string_view path = resource.substr(0, question);
    const std::string_view query = question == std::string_view::npos ? std::string_view{} : resource.substr(question + 1);
    if (path != options.path) return refuse(upgrade_result::not_found, "Not found");

    if (!connect_limiter_.allow(request.remote_address(), static_cast<double>(options.connect_burst),
                                options.connects_per_second))
        return refuse(upgrade_result::rate_limited, "Too many connection attempts");

    const std::string_view origin = request.header("Origin");
    if (!options.allowed_origins.empty() && !origin.empty() &&
        std::find(options.allowed_origins.begin(), options.allowed_origins.end(), origin) ==
            options.allowed_origins.end())
        return refuse(upgrade_result::forbidden_origin, "Origin not allowed");

    // Credentials: the Authorization header first, then the opt-in browser forms.
    auth::credential credential;
    std::string subprotocol;
    credential_sources sources;
    sources.accept_api_keys = options.accept_api_keys;
    sources.accept_query_token = options.accept_query_token;
    sources.accept_subprotocol_token = options.accept_subprotocol_token;
    sources.subprotocol_marker = options.subprotocol_marker;
    if (extract_credential(request.header("Authorization"), query, request.offered_subprotocols(), sources, credential,
                           subprotocol) != credential_outcome::found)
        return refuse(upgrade_result::unauthorized, "Invalid or missing credentials");

    auto connection = std::make_shared<connection_state>(shared_from_this(),
                                                         next_connection_id.fetch_add(1, std::memory_order_relaxed),
                                                         std::string(request.remote_address()));
    if (credential.kind == auth::credential_kind::reconnect) {
        // Consuming a reconnection token is store I/O: it happens after the
        // upgrade (§18 "asynchronous checks"); only its shape is checked here.
        if (!session::is_reconnect_token(credential.value))
            return refuse(upgrade_result::unauthorized, "Invalid or missing credentials");
        connection->upgrade->reconnect_token = std::move(credential.value);
    } else {
        auto slot = std::make_shared<validation_slot>();
        try {
            validator->async_validate(credential, [slot](std::error_code ec, auth::identity who) {
                std::shared_ptr<connection_state> waiting;
                {
                    std::lock_guard<std::mutex> lock(slot->mutex);
                    slot->done = true;
                    slot->error = ec;
                    slot->who = std::move(who);
                    waiting = slot->waiting.lock();
                }
                if (waiting) connection_state::post(waiting, [](connection_state& c) { c.validated(); });
            });
        } catch (...) {
            log(log_level::error, "token_validator threw during async_validate; upgrade refused");
            return refuse(upgrade_result::internal_error, "Internal error");
        }
        std::unique_lock<std::mutex> lock(slot->mutex);
        if (slot->done) {
            if (slot->error) return refuse(upgrade_result::unauthorized, "Invalid or missing credentials");
            connection->upgrade->identity = std::move(slot->who);
            connection->upgrade->identity_ready = true;
        } else {
            // The validator needs I/O: decide after the 101 (closing 4001 on failure).
            connection->upgrade->validation = std::move(slot);
        }
    }

    if (connection->upgrade->identity_ready &&
        options.account_session_policy == gateway_options::session_policy::refuse_newest) {
        const auto& who = connection->upgrade->identity;
        const auto sid = session_id_for(who, options.guid_salt);
        if (sessions.account_sessions(who.subject, sid) >= options.max_sessions_per_account)
            return refuse(upgrade_result::over_capacity, "Too many sessions for this account");
    }

    if (connections.fetch_add(1, std::memory_order_acq_rel) >= options.max_connections) {
        connections.fetch_sub(1, std::memory_order_acq_rel);
        return refuse(upgrade_result::over_capacity, "Server at capacity");
    }
    if (!addresses.admit(request.remote_address(), options.max_connections_per_address)) {
        connections.fetch_sub(1, std::memory_order_acq_rel);
        return refuse(upgrade_result::address_limit, "Too many connections from this address");
    }
    connection->address_counted = true;
    upgrades_accepted.fetch_add(1, std::memory_order_relaxed);
    count_upgrade(upgrade_result::accepted);
    upgrade_decision accept;
    accept.subprotocol = std::move(subprotocol);
    accept.context = std::move(connection);
    return accept;
}

inline void gateway_core::on_open(const std::shared_ptr<transport_connection>& t) {
    auto* raw = static_cast<connection_state*>(t->context());
    if (!raw) return;
    auto connection = raw->shared_from_this();
    connection->transport = t;
    if (metrics) {
        connection->counted_open = true;
        metrics->on_connection_open();
    }
    sessions.track_open(connection->id(), connection);
    if (stopping.load(std::memory_order_acquire)) {
        connection->close_with(1001, "server shutdown");
        return;
    }
    connection->start();
}

inline void gateway_core::on_message(const std::shared_ptr<transport_connection>& t, frame_kind kind,
                                     protocol::bytes_view bytes) {
    auto* connection = static_cast<connection_state*>(t->context());
    if (connection) connection->on_frame(kind, bytes);
}

inline void gateway_core::on_close(const std::shared_ptr<transport_connection>& t, std::uint16_t code) {
    auto* connection = static_cast<connection_state*>(t->context());
    if (!connection) return;
    const bool park = connection->parkable(code) && options.reconnect_queue_max_bytes > 0 &&
                      !stopping.load(std::memory_order_acquire);
    if (connection->address_counted) {
        connection->address_counted = false;
        addresses.release(connection->remote_address());
    }
    const auto ending = connection->ending(code);
    connection->on_closed();
    if (metrics && connection->counted_open) {
        connection->counted_open = false;
        metrics->on_connection_close(connection->close_code_sent() != 0 ? connection->close_code_sent() : code);
    }
    sessions.untrack_open(connection->id());
    unregister(*connection, park, connection->take_held(), ending);
    connections.fetch_sub(1, std::memory_order_acq_rel);
}

inline void gateway_core::refresh_failed(const std::error_code& ec) {
    session_refresh_failures.fetch_add(1, std::memory_order_relaxed);
    // One line a second at most: a store outage fails every session's refresh.
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now().time_since_epoch()).count();
    auto last = refresh_failure_logged.load(std::memory_order_relaxed);
    if (now - last < 1000 || !refresh_failure_logged.compare_exchange_strong(last, now)) return;
    log(log_level::warning, "session store: could not refresh a connected session (retrying; " +
                                std::to_string(session_refresh_failures.load(std::memory_order_relaxed)) +
                                " failures so far): " + ec.message());
}

}  // namespace gatehouse::server::detail
