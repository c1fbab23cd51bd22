// Implementation of gatehouse/server/gateway.hpp: the composition root. The
// gateway's parts (see gatehouse/server/detail/gateway_core.hpp) are defined
// in the files included below; here are the option checks and the public
// gateway: construction, listen/run/stop, push, groups, presence,
// revocation. Nothing here knows websocketpp; the transport seam is
// gatehouse/server/transport.hpp.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>
#include <gatehouse/server/impl/gateway_upgrade.ipp>
#include <gatehouse/server/impl/gateway_registry.ipp>
#include <gatehouse/server/impl/gateway_parking.ipp>
#include <gatehouse/server/impl/gateway_cluster.ipp>
#include <gatehouse/server/impl/connection_attach.ipp>
#include <gatehouse/server/impl/connection_send.ipp>
#include <gatehouse/server/impl/connection_calls.ipp>
#include <gatehouse/server/impl/gateway_metrics.ipp>

namespace gatehouse::server {

namespace detail {
inline void validate_options(const gateway_options& o) {
    const auto fail = [](const std::string& why) { throw std::invalid_argument("gatehouse gateway_options: " + why); };
    if (o.guid_salt.empty()) fail("guid_salt must not be empty (it salts every service GUID)");
    if (o.path.empty() || o.path.front() != '/') fail("path must start with '/'");
    if (o.path.find('?') != std::string::npos) fail("path must not contain a query");
    if (o.max_connections == 0) fail("max_connections must be at least 1");
    if (o.max_sessions_per_account == 0) fail("max_sessions_per_account must be at least 1");
    if (o.account_session_policy != gateway_options::session_policy::refuse_newest &&
        o.account_session_policy != gateway_options::session_policy::replace_oldest)
        fail("account_session_policy must be refuse_newest or replace_oldest");
    if (o.max_connections_per_address == 0) fail("max_connections_per_address must be at least 1");
    if (!(o.connects_per_second > 0)) fail("connects_per_second must be positive");
    if (o.connect_burst == 0) fail("connect_burst must be at least 1");
    if (o.manifest_delay.count() < 0) fail("manifest_delay must not be negative");
    if (o.max_message_size < protocol::request_header_size) fail("max_message_size must be at least 31 bytes");
    if (o.max_payload_size > o.max_message_size) fail("max_payload_size must not exceed max_message_size");
    if (o.messages_per_minute == 0) fail("messages_per_minute must be at least 1");
    if (o.message_burst == 0) fail("message_burst must be at least 1");
    if (o.account_messages_per_minute < o.messages_per_minute)
        fail("account_messages_per_minute must be at least messages_per_minute (it is shared by the account's "
             "sessions)");
    if (o.account_message_burst < o.message_burst) fail("account_message_burst must be at least message_burst");
    if (o.session_refresh_interval.count() < 0)
        fail("session_refresh_interval must not be negative (0: derived from the store's idle_timeout)");
    if (o.session_refresh_interval > std::chrono::hours(24)) fail("session_refresh_interval must be at most 24 hours");
    if (o.observer && (o.observer_queue_limit == 0 || o.observer_queue_limit > (std::size_t{1} << 24)))
        fail("observer_queue_limit must be 1 to 16777216");
    if (o.max_presence_results == 0 || o.max_presence_results > 100000)
        fail("max_presence_results must be 1 to 100000");
    if (o.max_in_flight == 0) fail("max_in_flight must be at least 1");
    if (o.handler_timeout.count() <= 0) fail("handler_timeout must be positive");
    if (o.ping_interval.count() < 0) fail("ping_interval must not be negative (0 disables pings)");
    if (o.ping_interval.count() > 0 && o.pong_timeout.count() <= 0) fail("pong_timeout must be positive");
    if (o.max_send_queue_bytes < o.max_message_size) fail("max_send_queue_bytes must be at least max_message_size");
    if (o.io_threads == 0 || o.io_threads > 256) fail("io_threads must be between 1 and 256");
    if (o.tls_certificate_file.empty() != o.tls_private_key_file.empty())
        fail("tls_certificate_file and tls_private_key_file must be set together");
    if (o.subprotocol_marker.empty()) fail("subprotocol_marker must not be empty");
    if (o.node_id.size() > 256) fail("node_id must be at most 256 bytes");
    if (o.reconnect_window.count() <= 0) fail("reconnect_window must be positive");
    if (o.reconnect_queue_max_bytes > 0) {
        if (o.reconnect_queue_max_events == 0) fail("reconnect_queue_max_events must be at least 1");
        if (o.reconnect_queue_max_age.count() <= 0) fail("reconnect_queue_max_age must be positive");
        if (o.reconnect_queue_total_bytes < o.reconnect_queue_max_bytes)
            fail("reconnect_queue_total_bytes must be at least reconnect_queue_max_bytes");
        // A replay is written at once, right after the manifest.
        if (o.reconnect_queue_max_bytes > o.max_send_queue_bytes / 2)
            fail("reconnect_queue_max_bytes must be at most half of max_send_queue_bytes");
    }
    if (o.event_queue_store) {
        if (o.reconnect_queue_max_bytes == 0)
            fail("event_queue_store needs parking: reconnect_queue_max_bytes must be positive");
        // The store records this node as a session's holder: the bus's id, else node_id.
        if (!o.event_bus && (o.node_id.empty() || o.node_id.size() > 64))
            fail("with event_queue_store and no event_bus, node_id must be 1 to 64 bytes");
    }
    if (o.max_client_calls_per_session == 0) fail("max_client_calls_per_session must be at least 1");
    if (o.peer_broadcast && !o.peer_routing) fail("peer_broadcast needs peer_routing");
    const auto check_http_path = [&](const std::string& value, const char* name) {
        if (value.empty()) return;
        if (value.front() != '/') fail(std::string(name) + " must start with '/' (empty disables it)");
        if (value.find('?') != std::string::npos) fail(std::string(name) + " must not contain a query");
        if (value.compare(0, o.path.size(), o.path) == 0 || o.path.compare(0, value.size(), value) == 0)
            fail(std::string(name) + " must not overlap the WebSocket path");
    };
    check_http_path(o.metrics_path, "metrics_path");
    check_http_path(o.health_path, "health_path");
    if (!o.metrics_path.empty() && o.metrics_path == o.health_path)
        fail("metrics_path and health_path must differ");
    for (const auto& address : o.metrics_allowed_addresses)
        if (address.empty()) fail("metrics_allowed_addresses must not contain an empty address");
}

/// The built-in `connect:/connect/refresh` (§18): `{"accessToken": "..."}`
/// is validated like an upgrade credential; the same account gets the new
/// expiry (and identity), anything else is answered 52.
inline void add_refresh_endpoint(const std::shared_ptr<gateway_core>& core) {
    routing::endpoint_options o;
    o.service = "connect";
    o.path = "/connect/refresh";
    o.description = "Swap in a new access token for this session: {\"accessToken\": \"...\"}";
    o.request_schema = {{"type", "object"},
                        {"required", {"accessToken"}},
                        {"properties", {{"accessToken", {{"type", "string"}}}}}};
    o.response_schema = {{"type", "object"}, {"properties", {{"expiresAt", {{"type", "string"}}}}}};
    std::weak_ptr<gateway_core> weak = core;
    core->endpoints.add(std::move(o), [weak](const routing::request& req, routing::responder answer) {
        auto core = weak.lock();
        if (!core) return;
        const auto body = nlohmann::json::parse(req.payload.as_chars(), nullptr, false);
        const auto token = body.is_object() ? body.find("accessToken") : body.end();
        if (!body.is_object() || token == body.end() || !token->is_string() || token->get<std::string>().empty()) {
            answer.fail(protocol::response_code::backend_bad_request);
            return;
        }
        auth::credential credential{auth::credential_kind::bearer, token->get<std::string>()};
        auto pending = std::make_shared<routing::responder>(std::move(answer));
        core->validator->async_validate(
            credential, [weak, pending, session_id = req.session->session_id,
                         account = req.session->account_id](std::error_code ec, auth::identity fresh) {
                if (ec || fresh.subject != account) {
                    pending->fail(protocol::response_code::backend_unauthorized);
                    return;
                }
                auto core = weak.lock();
                auto connection = core ? core->sessions.find(session_id) : nullptr;
                if (!connection) return;  // the responder answers 60 as it goes
                nlohmann::json reply = nlohmann::json::object();
                if (fresh.expires_at) reply["expiresAt"] = routing::iso8601_utc(*fresh.expires_at);
                connection_state::post(connection, [fresh = std::move(fresh)](connection_state& c) mutable {
                    c.refreshed(std::move(fresh));
                });
                pending->reply(reply.dump());
            });
    });
}

inline bool valid_group_name(std::string_view group) noexcept { return !group.empty() && group.size() <= 128; }

inline std::shared_ptr<const std::string> make_event(std::string_view event_name, const nlohmann::json& body,
                                                     std::error_code& ec) {
    if (event_name.empty()) {
        ec = server_errc::event_name_missing;
        return nullptr;
    }
    if (!body.is_null() && !body.is_object()) {
        ec = server_errc::event_body_not_object;
        return nullptr;
    }
    ec.clear();
    return std::make_shared<const std::string>(routing::event_frame(routing::event_json(event_name, body)));
}
}  // namespace detail

GATEHOUSE_DECL gateway::gateway(gateway_options options, std::shared_ptr<auth::token_validator> validator,
                                std::shared_ptr<session::session_store> store) {
    detail::validate_options(options);
    if (!validator) throw std::invalid_argument("gatehouse gateway: a token_validator is required");
    if (!store) throw std::invalid_argument("gatehouse gateway: a session_store is required");
    const auto idle = store->timing().idle_timeout;
    if (idle.count() > 0 && options.session_refresh_interval >= idle)
        throw std::invalid_argument(
            "gatehouse gateway_options: session_refresh_interval must be shorter than the session store's "
            "idle_timeout (or 0: a quarter of it)");
    core_ = std::make_shared<detail::gateway_core>(std::move(options), std::move(validator), std::move(store));
    if (core_->options.refresh_endpoint) detail::add_refresh_endpoint(core_);
    if (core_->options.observer) {
        std::weak_ptr<detail::gateway_core> weak = core_;
        core_->observer_events = std::make_unique<detail::session_event_dispatcher>(
            core_->options.observer, core_->queue_node, core_->options.observer_queue_limit,
            [weak](std::string_view line) {
                if (auto core = weak.lock()) core->log(log_level::error, line);
            });
    }
}

GATEHOUSE_DECL gateway::~gateway() {
    if (network_) {
        network_->stop();
        network_.reset();
    }
    // What the closes above reported reaches the observer before we go.
    if (core_->observer_events) core_->observer_events->shutdown();
    auth::revocation_subscription watch;
    {
        const auto reg = core_->sessions.lock();
        std::swap(watch, reg->revocation_watch);
    }
    watch.reset();
    // Connections hold the core; the registry holds connections. Break the
    // cycle for connections a transport never closed (released here, outside
    // the registry's lock).
    core_->sessions.clear();
    // Released outside the scheduler's lock: the transport may hold the last
    // reference to a connection, whose destructor takes the lock.
    core_->wakes->release_driver().reset();
    core_->peers.clear();
}

GATEHOUSE_DECL routing::endpoint_registry& gateway::endpoints() { return core_->endpoints; }

GATEHOUSE_DECL const routing::endpoint& gateway::add_endpoint(routing::endpoint_options options, routing::handler fn) {
    return core_->endpoints.add(std::move(options), std::move(fn));
}

GATEHOUSE_DECL void gateway::add_routed_service(std::vector<routing::endpoint_options> endpoints,
                                                std::shared_ptr<routing::router> target) {
    core_->endpoints.add_routed(std::move(endpoints), std::move(target));
}

GATEHOUSE_DECL std::error_code gateway::listen() {
    if (!network_) network_ = detail::make_websocket_transport(core_);
    subscribe_bus();
    return network_->listen();
}

GATEHOUSE_DECL void gateway::subscribe_bus() {
    if (core_->bus && !subscribed_) {
        subscribed_ = true;
        std::weak_ptr<detail::gateway_core> weak = core_;
        core_->bus->subscribe(
            [weak](const cluster::bus_message& m) {
                if (auto core = weak.lock()) core->on_bus_message(m);
            },
            [weak](std::error_code ec) {
                // The bus keeps trying by itself: receiving starts when its
                // backend is back.
                if (!ec) return;
                if (auto core = weak.lock())
                    core->log(log_level::warning, "cluster: not receiving from the event bus yet: " + ec.message());
            });
    }
}

GATEHOUSE_DECL std::uint16_t gateway::local_port() const { return network_ ? network_->local_port() : 0; }

GATEHOUSE_DECL void gateway::run() {
    if (network_) network_->run();
}

GATEHOUSE_DECL void gateway::stop() {
    core_->stopping.store(true, std::memory_order_release);
    {
        // Nobody can come back to this node any more.
        const auto reg = core_->sessions.lock();
        while (!reg->parked.empty()) {
            const auto it = reg->parked.begin();
            core_->queued_events_dropped.fetch_add(it->second.queue.size(), std::memory_order_relaxed);
            core_->forget_parked_locked(reg, it, session_end_reason::node_stopping);
        }
    }
    if (network_)
        network_->stop();
    else
        core_->close_all(1001, "server shutdown");  // another transport: it drains itself
}

GATEHOUSE_DECL transport_events& gateway::transport_side() {
    // Another transport: the cluster's messages must reach it too.
    subscribe_bus();
    return *core_;
}

GATEHOUSE_DECL std::error_code gateway::push_to_session(std::string_view session_id, std::string_view event_name,
                                                        const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return ec;
    const std::string sid(session_id);
    if (core_->push_local_session(sid, frame)) return {};
    // Not held here: the node that holds it, if any, gets it.
    if (!core_->bus) return server_errc::session_not_found;
    if (!core_->queue_store) {
        core_->bus_publish(cluster::message_kind::to_session, sid, *frame);
        return {};
    }
    // No live node holds it: it may be parked by a node that died. Its queue
    // in the store takes the event (refused, or not_found, when it is not).
    core_->route_to_session(sid, std::move(frame), 0);
    return {};
}

GATEHOUSE_DECL std::size_t gateway::push_to_account(std::string_view account_id, std::string_view event_name,
                                                    const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    const std::string account(account_id);
    const auto targets = core_->push_local_account(account, frame);
    core_->bus_publish(cluster::message_kind::to_account, account, *frame);
    return targets;
}

GATEHOUSE_DECL std::size_t gateway::push_to_group(std::string_view group, std::string_view event_name,
                                                  const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    const std::string name(group);
    const auto targets = core_->push_local_group(name, frame);
    core_->bus_publish(cluster::message_kind::to_group, name, *frame);
    return targets;
}

GATEHOUSE_DECL std::size_t gateway::push_to_all(std::string_view event_name, const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    const auto targets = core_->push_local_all(frame);
    core_->bus_publish(cluster::message_kind::to_all, {}, *frame);
    return targets;
}

GATEHOUSE_DECL std::error_code gateway::join_group(std::string_view session_id, std::string_view group) {
    if (!detail::valid_group_name(group)) return server_errc::invalid_group_name;
    const std::string sid(session_id), name(group);
    const auto reg = core_->sessions.lock();
    const bool held = detail::registry::join_group(
        reg, sid, name, [&] { core_->bus_interest(cluster::interest_kind::group, name, true); });
    return held ? std::error_code{} : make_error_code(server_errc::session_not_found);
}

GATEHOUSE_DECL std::error_code gateway::leave_group(std::string_view session_id, std::string_view group) {
    if (!detail::valid_group_name(group)) return server_errc::invalid_group_name;
    const std::string sid(session_id), name(group);
    const auto reg = core_->sessions.lock();
    const bool held = detail::registry::leave_group(
        reg, sid, name, [&] { core_->bus_interest(cluster::interest_kind::group, name, false); });
    return held ? std::error_code{} : make_error_code(server_errc::session_not_found);
}

GATEHOUSE_DECL std::vector<std::string> gateway::group_members(std::string_view group) const {
    return core_->sessions.group_members(std::string(group));
}

namespace detail {
inline bool valid_presence_limit(const gateway_options& o, std::size_t limit) noexcept {
    return limit >= 1 && limit <= o.max_presence_results;
}
}  // namespace detail

GATEHOUSE_DECL std::vector<session_presence> gateway::local_sessions(std::string_view account_id,
                                                                     std::size_t limit) const {
    std::vector<session_presence> out;
    if (!detail::valid_presence_limit(core_->options, limit)) return out;
    const auto reg = core_->sessions.lock();
    detail::registry::presence(reg, std::string(account_id), core_->queue_node, limit, out);
    return out;
}

GATEHOUSE_DECL std::optional<session_presence> gateway::local_session(std::string_view session_id) const {
    return core_->sessions.presence_of(std::string(session_id), core_->queue_node);
}

GATEHOUSE_DECL bool gateway::online_here(std::string_view account_id) const {
    return core_->sessions.holds_account(std::string(account_id));
}

GATEHOUSE_DECL std::size_t gateway::group_size(std::string_view group) const {
    return core_->sessions.group_size(std::string(group));
}

GATEHOUSE_DECL void gateway::account_presence(std::string_view account_id, presence_handler done, std::size_t limit) {
    if (!done) return;
    if (!detail::valid_presence_limit(core_->options, limit)) {
        done(server_errc::invalid_limit, {});
        return;
    }
    const std::string account(account_id);
    auto found = std::make_shared<std::vector<session_presence>>();
    {
        const auto reg = core_->sessions.lock();
        detail::registry::presence(reg, account, core_->queue_node, limit, *found);
    }
    if (!core_->bus || found->size() >= limit) {
        done({}, std::move(*found));
        return;
    }
    // The other nodes' sessions: the shared store names the node holding
    // each one (a lifetime that ended names none); the bus says which of
    // those nodes are alive.
    std::weak_ptr<detail::gateway_core> weak = core_;
    core_->store->list_account(account, [weak, found, limit, done = std::move(done)](
                                            std::error_code ec, std::vector<session::session_record> records) mutable {
        auto core = weak.lock();
        if (!core || ec) {
            done(core ? ec : make_error_code(server_errc::not_running), std::move(*found));
            return;
        }
        struct pending_query {
            std::vector<session_presence> result;
            std::vector<session_presence> candidates;
            std::size_t waiting = 0;
            std::size_t limit = 0;
            std::error_code error;
            std::mutex mutex;
            presence_handler done;
        };
        auto query = std::make_shared<pending_query>();
        query->result = std::move(*found);
        query->limit = limit;
        query->done = std::move(done);
        std::sort(records.begin(), records.end(),
                  [](const auto& a, const auto& b) { return a.created_at < b.created_at; });
        std::vector<std::string> nodes;
        for (auto& r : records) {
            if (r.node_id.empty() || r.node_id == core->queue_node) continue;
            session_presence p;
            p.session_id = std::move(r.session_id);
            p.account_id = std::move(r.account_id);
            p.node_id = r.node_id;
            p.where = session_presence::state::held;
            query->candidates.push_back(std::move(p));
            if (std::find(nodes.begin(), nodes.end(), r.node_id) == nodes.end()) nodes.push_back(r.node_id);
        }
        if (nodes.empty()) {
            query->done({}, std::move(query->result));
            return;
        }
        auto alive = std::make_shared<std::vector<std::string>>();
        query->waiting = nodes.size();
        for (const auto& node : nodes) {
            core->bus->node_alive(node, [query, alive, node](std::error_code alive_ec, bool is_alive) {
                std::unique_lock<std::mutex> lock(query->mutex);
                if (alive_ec)
                    query->error = alive_ec;
                else if (is_alive)
                    alive->push_back(node);
                if (--query->waiting != 0) return;
                for (auto& c : query->candidates) {
                    if (query->result.size() >= query->limit) break;
                    if (std::find(alive->begin(), alive->end(), c.node_id) != alive->end())
                        query->result.push_back(std::move(c));
                }
                auto finish = std::move(query->done);
                auto result = std::move(query->result);
                const auto error = query->error;
                lock.unlock();
                finish(error, std::move(result));
            });
        }
    });
}

GATEHOUSE_DECL std::error_code gateway::set_permissions(std::string_view session_id, std::vector<std::string> roles,
                                                        std::vector<std::string> permissions, std::string_view reason) {
    auto target = core_->sessions.find(session_id);
    if (!target) {
        const auto reg = core_->sessions.lock();
        return reg->parked.count(std::string(session_id)) ? server_errc::session_parked
                                                            : server_errc::session_not_found;
    }
    detail::connection_state::post(target, [roles = std::move(roles), permissions = std::move(permissions),
                                            reason = std::string(reason)](detail::connection_state& c) mutable {
        c.change_permissions(std::move(roles), std::move(permissions), reason);
    });
    return {};
}

GATEHOUSE_DECL std::error_code gateway::disconnect(std::string_view session_id, std::uint16_t code,
                                                   std::string_view reason) {
    auto target = core_->sessions.find(session_id);
    if (!target) {
        const auto reg = core_->sessions.lock();
        const auto it = reg->parked.find(std::string(session_id));
        if (it == reg->parked.end()) return server_errc::session_not_found;
        core_->queued_events_dropped.fetch_add(it->second.queue.size(), std::memory_order_relaxed);
        core_->forget_parked_locked(reg, it, session_end_reason::kicked);
        return {};
    }
    detail::connection_state::post(target, [code, why = std::string(reason.substr(0, 123))](
                                               detail::connection_state& c) { c.disconnect_by_host(code, why); });
    return {};
}

GATEHOUSE_DECL std::error_code gateway::call_client(std::string_view session_id, std::string payload,
                                                    client_call_handler done, client_call_options options) {
    if (options.timeout.count() < 1 || options.timeout > std::chrono::hours(24)) return server_errc::invalid_timeout;
    if (payload.size() > core_->options.max_message_size - protocol::request_header_size)
        return server_errc::payload_too_large;
    if (core_->stopping.load(std::memory_order_acquire)) return server_errc::not_running;
    std::shared_ptr<detail::connection_state> target;
    {
        const auto reg = core_->sessions.lock();
        const std::string sid(session_id);
        const auto it = reg->sessions.find(sid);
        if (it == reg->sessions.end())
            return reg->parked.count(sid) ? server_errc::session_parked : server_errc::session_not_found;
        target = it->second;
    }
    auto call = std::make_shared<detail::client_call>(std::move(done));
    detail::connection_state::post(target, [call = std::move(call), options, payload = std::move(payload)](
                                               detail::connection_state& c) mutable {
        c.start_client_call(std::move(call), options, std::move(payload));
    });
    return {};
}

GATEHOUSE_DECL void gateway::revoke_session(std::string_view session_id, std::function<void(std::error_code)> done) {
    const std::string sid(session_id);
    auto core = core_;
    core_->store->revoke(sid, [core, sid, done = std::move(done)](std::error_code ec) {
        // Close even when the store failed or already had it revoked: the
        // host asked for this session to be gone.
        core->kick([&](const detail::session_keys& k) { return k.session_id == sid; });
        core->bus_publish(cluster::message_kind::revoke_session, sid, {});
        if (done) done(ec);
    });
}

GATEHOUSE_DECL void gateway::revoke_account(std::string_view account_id,
                                           std::function<void(std::error_code, std::size_t)> done) {
    const std::string account(account_id);
    auto core = core_;
    core_->store->revoke_account(account, [core, account, done = std::move(done)](std::error_code ec, std::size_t n) {
        core->kick([&](const detail::session_keys& k) { return k.account_id == account; });
        core->bus_publish(cluster::message_kind::revoke_account, account, {});
        if (done) done(ec, n);
    });
}

GATEHOUSE_DECL void gateway::watch_revocations(std::shared_ptr<auth::revocation_list> list) {
    auth::revocation_subscription subscription;
    if (list) {
        std::weak_ptr<detail::gateway_core> weak = core_;
        subscription = list->subscribe([weak](const auth::revocation& entry) {
            auto core = weak.lock();
            if (!core || entry.value.empty()) return;
            core->kick([&](const detail::session_keys& k) {
                switch (entry.scope) {
                case auth::revocation_scope::token: return k.token_id == entry.value;
                case auth::revocation_scope::session:
                    return k.session_key == entry.value || k.session_id == entry.value;
                case auth::revocation_scope::account: return k.account_id == entry.value;
                }
                return false;
            });
        });
    }
    // The old subscription ends outside the lock: ending it waits for a
    // running listener, which takes the lock.
    {
        const auto reg = core_->sessions.lock();
        std::swap(reg->revocation_watch, subscription);
    }
    subscription.reset();
}

GATEHOUSE_DECL gateway_stats gateway::stats() const { return core_->snapshot(); }

GATEHOUSE_DECL bool gateway::metrics_exposition(std::string& out) const { return core_->render_metrics(out); }

GATEHOUSE_DECL const gateway_options& gateway::options() const noexcept { return core_->options; }

}  // namespace gatehouse::server
