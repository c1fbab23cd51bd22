// Implementation of gatehouse/server/gateway.hpp: upgrade decisions, session
// attachment, the dispatcher (PROTOCOL.md §8.2 and §18), push and groups.
// Nothing here knows websocketpp; the transport seam is
// gatehouse/server/transport.hpp.
#pragma once

#include <gatehouse/auth/authorization_header.hpp>
#include <gatehouse/protocol/close_code.hpp>
#include <gatehouse/protocol/header.hpp>
#include <gatehouse/protocol/meta.hpp>
#include <gatehouse/routing/event.hpp>
#include <gatehouse/routing/meta.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/session/session.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace gatehouse::server::detail {

class connection_state;

/// The connection whose executor the current thread is running, while the
/// gateway runs a handler; lets a responder completed inline skip the post.
inline thread_local const connection_state* current_connection = nullptr;

using steady = std::chrono::steady_clock;

/// A token bucket: `capacity` tokens, refilled at `per_second`.
struct token_bucket {
    double tokens = 0;
    steady::time_point last{};

    bool take(double capacity, double per_second, steady::time_point now) noexcept {
        if (last == steady::time_point{}) {
            tokens = capacity;
        } else {
            const double elapsed = std::chrono::duration<double>(now - last).count();
            tokens = std::min(capacity, tokens + elapsed * per_second);
        }
        last = now;
        if (tokens < 1.0) return false;
        tokens -= 1.0;
        return true;
    }
};

/// Connect-rate limit per source address. Upgrades are not the message
/// path: one mutex is fine here.
class connect_rate_limiter {
public:
    bool allow(std::string_view address, double capacity, double per_second) {
        const auto now = steady::now();
        std::lock_guard<std::mutex> lock(mutex_);
        if (buckets_.size() >= max_tracked_addresses) prune(capacity, per_second, now);
        return buckets_[std::string(address)].take(capacity, per_second, now);
    }

private:
    static constexpr std::size_t max_tracked_addresses = 65536;

    // Forget addresses whose bucket has refilled: they are indistinguishable
    // from new ones. If every bucket is busy (an attack from many
    // addresses), forget all: the limiter then errs on the side of accepting.
    void prune(double capacity, double per_second, steady::time_point now) {
        for (auto it = buckets_.begin(); it != buckets_.end();) {
            const double elapsed = std::chrono::duration<double>(now - it->second.last).count();
            if (it->second.tokens + elapsed * per_second >= capacity)
                it = buckets_.erase(it);
            else
                ++it;
        }
        if (buckets_.size() >= max_tracked_addresses) buckets_.clear();
    }

    std::mutex mutex_;
    std::unordered_map<std::string, token_bucket> buckets_;
};

/// The result of a validator that did not answer during the upgrade.
struct validation_slot {
    std::mutex mutex;
    bool done = false;
    std::error_code error;
    auth::identity who;
    std::weak_ptr<connection_state> waiting;
};

class gateway_core;

/// One request handed to a handler: the gateway's side of its responder.
class pending_call final : public routing::detail::call_completion,
                           public std::enable_shared_from_this<pending_call> {
public:
    pending_call(std::weak_ptr<connection_state> owner, const protocol::request_header& header,
                 steady::time_point deadline) noexcept
        : owner_(std::move(owner)), header_(header), deadline_(deadline) {}

    bool complete(protocol::response_code code, bool binary, protocol::bytes_view payload) noexcept override;

    /// Claims the answer for the gateway (timeout); false if already taken.
    bool claim() noexcept { return !answered_.exchange(true, std::memory_order_acq_rel); }
    bool answered() const noexcept { return answered_.load(std::memory_order_acquire); }

    const protocol::request_header& header() const noexcept { return header_; }
    steady::time_point deadline() const noexcept { return deadline_; }
    /// Connection executor only.
    bool delivered = false;

private:
    std::weak_ptr<connection_state> owner_;
    protocol::request_header header_;
    steady::time_point deadline_;
    std::atomic<bool> answered_{false};
};

class gateway_core final : public transport_events, public std::enable_shared_from_this<gateway_core> {
public:
    gateway_core(gateway_options opts, std::shared_ptr<auth::token_validator> v,
                 std::shared_ptr<session::session_store> s)
        : options(std::move(opts)), validator(std::move(v)), store(std::move(s)) {}

    upgrade_decision on_upgrade(const upgrade_request& request) override;
    void on_open(const std::shared_ptr<transport_connection>& connection) override;
    void on_message(const std::shared_ptr<transport_connection>& connection, frame_kind kind,
                    protocol::bytes_view bytes) override;
    void on_close(const std::shared_ptr<transport_connection>& connection, std::uint16_t code) override;

    void log(log_level level, std::string_view line) const {
        if (options.log) options.log(level, line);
    }

    /// Registers an attached session; returns the connection it replaces (if
    /// any) through `replaced`. False when the account is at its cap.
    bool register_session(const std::shared_ptr<connection_state>& connection,
                          std::shared_ptr<connection_state>& replaced);
    void unregister(const connection_state& connection);
    std::shared_ptr<connection_state> find_session(std::string_view session_id) const;
    std::size_t account_sessions(const std::string& account_id, const std::string& except_session) const;

    /// Posts `frame` to each connection; returns how many.
    std::size_t post_frame(const std::vector<std::shared_ptr<connection_state>>& targets,
                           std::shared_ptr<const std::string> frame);
    /// Posts a close to every open connection (shutdown).
    void close_all(std::uint16_t code, std::string_view reason);
    /// Posts 4002 "kicked" to every attached connection `matches` selects
    /// (called under the registry lock); returns how many.
    template <class Predicate>
    std::size_t kick(Predicate matches);

    /// Guarded by registry_mutex.
    auth::revocation_subscription revocation_watch;

    const gateway_options options;
    const std::shared_ptr<auth::token_validator> validator;
    const std::shared_ptr<session::session_store> store;
    routing::endpoint_registry registry;

    std::atomic<std::size_t> connections{0};
    std::atomic<std::uint64_t> upgrades_accepted{0};
    std::atomic<std::uint64_t> upgrades_refused{0};
    std::atomic<std::uint64_t> frames_dropped{0};
    std::atomic<std::uint64_t> next_connection_id{1};
    std::atomic<bool> stopping{false};

    mutable std::mutex registry_mutex;
    std::unordered_map<std::string, std::shared_ptr<connection_state>> sessions;
    std::unordered_map<std::string, std::unordered_set<std::string>> accounts;
    std::unordered_map<std::string, std::unordered_set<std::string>> groups;
    std::unordered_map<std::string, std::unordered_set<std::string>> session_groups;
    std::unordered_map<std::uint64_t, std::weak_ptr<connection_state>> open_connections;

private:
    connect_rate_limiter connect_limiter_;
};

/// Everything the gateway knows about one connection. All members are used
/// on the connection's executor only, except the few marked otherwise.
class connection_state final : public std::enable_shared_from_this<connection_state> {
public:
    enum class phase : std::uint8_t { validating, attaching, ready, closed };

    connection_state(std::shared_ptr<gateway_core> core, std::uint64_t id, std::string remote)
        : core_(std::move(core)), id_(id), remote_(std::move(remote)) {}

    // --- set during the upgrade, before the transport knows the connection ---
    auth::identity identity;
    bool identity_ready = false;
    std::shared_ptr<validation_slot> validation;
    std::string reconnect_token;  ///< secret; cleared once used

    /// Set in on_open, never changed: any thread may post through it once
    /// it got the connection from the session registry.
    std::shared_ptr<transport_connection> transport;

    std::uint64_t id() const noexcept { return id_; }
    const std::string& remote() const noexcept { return remote_; }
    /// Attached session id and account: written before registration, then
    /// immutable (readable by any thread that found the connection in the registry).
    std::string session_id;
    std::string account_id;

    void start();
    void validated();
    void on_frame(frame_kind kind, protocol::bytes_view bytes);
    void on_closed();
    void deliver(pending_call& call, protocol::response_code code, bool binary, protocol::bytes_view payload);
    void send_frame(protocol::bytes_view bytes);
    void close_with(std::uint16_t code, std::string_view reason);
    /// Sends `connect.disconnect-notification` (with a reconnection token
    /// when `reconnectable` and the store issues one), then closes.
    void notify_and_close(std::uint16_t code, std::string_view close_reason, std::string_view reason,
                          bool reconnectable);
    /// A refreshed credential for this session (/connect/refresh).
    void refreshed(auth::identity fresh);
    void change_permissions(std::vector<std::string> roles, std::vector<std::string> permissions,
                            const std::string& reason);

    /// Runs `fn(connection)` on the connection's executor.
    template <class F>
    static void post(const std::shared_ptr<connection_state>& connection, F fn) {
        auto* transport = connection->transport.get();
        transport->post([connection, fn = std::move(fn)]() mutable { fn(*connection); });
    }

private:
    struct queued_request {
        protocol::request_header header;
        const routing::endpoint* target = nullptr;
        std::string payload;
    };
    struct channel_state {
        std::deque<queued_request> waiting;
        bool busy = false;
        bool in_ready = false;
    };

    void attach();
    void attached(session::session_record record);
    void attach_failed(std::error_code error);
    void send_manifest(std::string_view reason);
    void reply_error(const protocol::frame_view& frame, protocol::response_code code);
    void send_text_refusal();
    void enqueue(const protocol::frame_view& frame, const routing::endpoint* target);
    void invoke(const routing::endpoint* target, const protocol::request_header& header, protocol::bytes_view payload);
    void pump();
    void finish_channel(std::uint16_t channel);
    void arm_sweep();
    void sweep();
    void schedule_ping();
    void schedule_expiry();
    void send_notification(std::string_view reason, const session::reconnect_token* token);

    std::shared_ptr<gateway_core> core_;
    const std::uint64_t id_;
    const std::string remote_;

    phase phase_ = phase::validating;
    bool closing_ = false;
    bool reconnecting_ = false;
    std::vector<std::string> roles_;
    std::vector<std::string> permissions_;
    std::shared_ptr<const routing::session_info> info_;
    routing::session_routes routes_;
    token_bucket message_bucket_;

    std::unordered_map<std::uint16_t, channel_state> channels_;
    std::deque<std::uint16_t> ready_;
    std::size_t in_flight_ = 0;
    std::size_t queued_ = 0;
    bool pumping_ = false;
    std::deque<std::shared_ptr<pending_call>> timed_calls_;
    bool sweep_armed_ = false;
    std::uint32_t text_sequence_ = 0;
    bool notifying_ = false;
    /// When the current credential expires (refresh moves it); zero: never.
    std::optional<std::chrono::system_clock::time_point> token_expiry_;
    std::uint64_t expiry_generation_ = 0;
    std::string reply_buffer_;
};

// ---------------------------------------------------------------------------
// pending_call

inline bool pending_call::complete(protocol::response_code code, bool binary, protocol::bytes_view payload) noexcept {
    if (answered_.exchange(true, std::memory_order_acq_rel)) return false;
    auto owner = owner_.lock();
    if (!owner) return false;
    if (current_connection == owner.get()) {
        owner->deliver(*this, code, binary, payload);
        return true;
    }
    try {
        connection_state::post(owner, [self = shared_from_this(), code, binary,
                                       data = std::string(payload.as_chars())](connection_state& c) {
            c.deliver(*self, code, binary, protocol::bytes_view(data));
        });
        return true;
    } catch (...) {
        return false;
    }
}

// ---------------------------------------------------------------------------
// helpers

inline std::string url_decode(std::string_view in, bool& ok) {
    std::string out;
    out.reserve(in.size());
    ok = true;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%') {
            if (i + 2 >= in.size()) {
                ok = false;
                return {};
            }
            const int hi = protocol::detail::hex_value(in[i + 1]);
            const int lo = protocol::detail::hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) {
                ok = false;
                return {};
            }
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

/// The value of query parameter `name` (first occurrence), url-decoded.
inline bool query_parameter(std::string_view query, std::string_view name, std::string& value) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) != name) continue;
        if (eq == std::string_view::npos) return false;
        bool ok = false;
        value = url_decode(pair.substr(eq + 1), ok);
        return ok;
    }
    return false;
}

/// The session id a credential's session key stands for: the key itself
/// when it is session-id text, else a GUID derived from it (so the same
/// token keeps reaching the same session, §2.3); empty when there is none.
inline std::string session_id_for(const auth::identity& who, std::string_view salt) {
    if (who.session_key.empty()) return {};
    std::string lower = who.session_key;
    for (auto& c : lower)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (session::is_session_id(lower)) return lower;
    std::string input = "session-key:";
    input.append(who.subject).append("|").append(who.session_key).append("|salt:").append(salt);
    return routing::derive_guid(input, routing::guid_kind::service).to_string();
}

inline session::time_point to_session_time(const std::optional<std::chrono::system_clock::time_point>& t) {
    if (!t) return {};
    return std::chrono::time_point_cast<std::chrono::milliseconds>(*t);
}

// ---------------------------------------------------------------------------
// gateway_core: upgrade

inline upgrade_decision gateway_core::on_upgrade(const upgrade_request& request) {
    const auto refuse = [this](int status, const char* body) {
        upgrades_refused.fetch_add(1, std::memory_order_relaxed);
        upgrade_decision d;
        d.status = status;
        d.body = body;
        return d;
    };
    if (stopping.load(std::memory_order_acquire)) return refuse(503, "Server shutting down");

    const std::string_view resource = request.resource();
    const auto question = resource.find('?');
    const std::string_view path = resource.substr(0, question);
    const std::string_view query = question == std::string_view::npos ? std::string_view{} : resource.substr(question + 1);
    if (path != options.path) return refuse(404, "Not found");

    if (!connect_limiter_.allow(request.remote_address(), static_cast<double>(options.connect_burst),
                                options.connects_per_second))
        return refuse(429, "Too many connection attempts");

    const std::string_view origin = request.header("Origin");
    if (!options.allowed_origins.empty() && !origin.empty() &&
        std::find(options.allowed_origins.begin(), options.allowed_origins.end(), origin) ==
            options.allowed_origins.end())
        return refuse(403, "Origin not allowed");

    // Credentials: the Authorization header first, then the opt-in browser forms.
    auth::credential credential;
    bool have_credential = false;
    std::string subprotocol;
    const std::string_view authorization = request.header("Authorization");
    if (!authorization.empty()) {
        auth::authorization_header_options parse_options;
        parse_options.accept_api_key = options.accept_api_keys;
        if (auth::parse_authorization_header(authorization, credential, parse_options))
            return refuse(401, "Invalid or missing credentials");
        have_credential = true;
    } else if (options.accept_query_token && !query.empty()) {
        std::string token;
        if (query_parameter(query, "token", token) && !token.empty() && token.size() <= 16 * 1024) {
            credential = {auth::credential_kind::bearer, std::move(token)};
            have_credential = true;
        }
    }
    if (!have_credential && options.accept_subprotocol_token) {
        const auto& offered = request.offered_subprotocols();
        for (std::size_t i = 0; i + 1 < offered.size(); ++i) {
            if (offered[i] == options.subprotocol_marker && !offered[i + 1].empty() &&
                offered[i + 1].size() <= 16 * 1024) {
                credential = {auth::credential_kind::bearer, offered[i + 1]};
                subprotocol = options.subprotocol_marker;
                have_credential = true;
                break;
            }
        }
    }
    if (!have_credential) return refuse(401, "Invalid or missing credentials");

    auto connection = std::make_shared<connection_state>(shared_from_this(),
                                                         next_connection_id.fetch_add(1, std::memory_order_relaxed),
                                                         std::string(request.remote_address()));
    if (credential.kind == auth::credential_kind::reconnect) {
        // Consuming a reconnection token is store I/O: it happens after the
        // upgrade (§18 "asynchronous checks"); only its shape is checked here.
        if (!session::is_reconnect_token(credential.value)) return refuse(401, "Invalid or missing credentials");
        connection->reconnect_token = std::move(credential.value);
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
            return refuse(500, "Internal error");
        }
        std::unique_lock<std::mutex> lock(slot->mutex);
        if (slot->done) {
            if (slot->error) return refuse(401, "Invalid or missing credentials");
            connection->identity = std::move(slot->who);
            connection->identity_ready = true;
        } else {
            // The validator needs I/O: decide after the 101 (closing 4001 on failure).
            connection->validation = std::move(slot);
        }
    }

    if (connection->identity_ready) {
        const auto sid = session_id_for(connection->identity, options.guid_salt);
        if (account_sessions(connection->identity.subject, sid) >= options.max_sessions_per_account)
            return refuse(503, "Too many sessions for this account");
    }

    if (connections.fetch_add(1, std::memory_order_acq_rel) >= options.max_connections) {
        connections.fetch_sub(1, std::memory_order_acq_rel);
        return refuse(503, "Server at capacity");
    }
    upgrades_accepted.fetch_add(1, std::memory_order_relaxed);
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
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        open_connections.emplace(connection->id(), connection);
    }
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

inline void gateway_core::on_close(const std::shared_ptr<transport_connection>& t, std::uint16_t) {
    auto* connection = static_cast<connection_state*>(t->context());
    if (!connection) return;
    connection->on_closed();
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        open_connections.erase(connection->id());
    }
    unregister(*connection);
    connections.fetch_sub(1, std::memory_order_acq_rel);
}

inline std::size_t gateway_core::account_sessions(const std::string& account_id, const std::string& except) const {
    std::lock_guard<std::mutex> lock(registry_mutex);
    const auto it = accounts.find(account_id);
    if (it == accounts.end()) return 0;
    return it->second.size() - (except.empty() ? 0 : it->second.count(except));
}

inline bool gateway_core::register_session(const std::shared_ptr<connection_state>& connection,
                                           std::shared_ptr<connection_state>& replaced) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto& account = accounts[connection->account_id];
    if (account.count(connection->session_id) == 0 && account.size() >= options.max_sessions_per_account) {
        if (account.empty()) accounts.erase(connection->account_id);
        return false;
    }
    auto& slot = sessions[connection->session_id];
    if (slot && slot != connection) replaced = std::move(slot);
    slot = connection;
    account.insert(connection->session_id);
    return true;
}

inline void gateway_core::unregister(const connection_state& connection) {
    if (connection.session_id.empty()) return;
    std::lock_guard<std::mutex> lock(registry_mutex);
    const auto it = sessions.find(connection.session_id);
    // A replaced connection leaves the session (and its groups) to its successor.
    if (it == sessions.end() || it->second.get() != &connection) return;
    sessions.erase(it);
    const auto account = accounts.find(connection.account_id);
    if (account != accounts.end()) {
        account->second.erase(connection.session_id);
        if (account->second.empty()) accounts.erase(account);
    }
    const auto memberships = session_groups.find(connection.session_id);
    if (memberships != session_groups.end()) {
        for (const auto& name : memberships->second) {
            const auto group = groups.find(name);
            if (group == groups.end()) continue;
            group->second.erase(connection.session_id);
            if (group->second.empty()) groups.erase(group);
        }
        session_groups.erase(memberships);
    }
}

inline std::shared_ptr<connection_state> gateway_core::find_session(std::string_view session_id) const {
    std::lock_guard<std::mutex> lock(registry_mutex);
    const auto it = sessions.find(std::string(session_id));
    return it == sessions.end() ? nullptr : it->second;
}

inline std::size_t gateway_core::post_frame(const std::vector<std::shared_ptr<connection_state>>& targets,
                                            std::shared_ptr<const std::string> frame) {
    for (const auto& target : targets)
        connection_state::post(target, [frame](connection_state& c) { c.send_frame(protocol::bytes_view(*frame)); });
    return targets.size();
}

inline void gateway_core::close_all(std::uint16_t code, std::string_view reason) {
    std::vector<std::shared_ptr<connection_state>> targets;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        for (const auto& entry : open_connections)
            if (auto c = entry.second.lock()) targets.push_back(std::move(c));
    }
    for (const auto& target : targets)
        connection_state::post(target, [code, why = std::string(reason)](connection_state& c) {
            c.notify_and_close(code, why, protocol::disconnect_reason::server_shutdown, code == 1001);
        });
}

template <class Predicate>
std::size_t gateway_core::kick(Predicate matches) {
    std::vector<std::shared_ptr<connection_state>> targets;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        for (const auto& entry : sessions)
            if (matches(*entry.second)) targets.push_back(entry.second);
    }
    for (const auto& target : targets)
        connection_state::post(target, [](connection_state& c) {
            c.notify_and_close(4002, "kicked", protocol::disconnect_reason::kicked, false);
        });
    return targets.size();
}

// ---------------------------------------------------------------------------
// connection_state: attach

inline void connection_state::schedule_ping() {
    const auto interval = core_->options.ping_interval.count();
    if (interval <= 0 || closing_) return;
    std::weak_ptr<connection_state> weak = weak_from_this();
    transport->post_after(static_cast<std::uint32_t>(interval), [weak] {
        auto self = weak.lock();
        if (!self || self->closing_) return;
        self->transport->ping(static_cast<std::uint32_t>(self->core_->options.pong_timeout.count()));
        self->schedule_ping();
    });
}

inline void connection_state::start() {
    schedule_ping();
    if (!reconnect_token.empty()) {
        reconnecting_ = true;
        phase_ = phase::attaching;
        attach();
        return;
    }
    if (identity_ready) {
        phase_ = phase::attaching;
        attach();
        return;
    }
    // The validator answers later; whoever comes second continues.
    bool done = false;
    {
        std::lock_guard<std::mutex> lock(validation->mutex);
        done = validation->done;
        if (!done) validation->waiting = weak_from_this();
    }
    if (done) validated();
}

inline void connection_state::validated() {
    if (phase_ != phase::validating || closing_) return;
    std::error_code error;
    {
        std::lock_guard<std::mutex> lock(validation->mutex);
        error = validation->error;
        identity = std::move(validation->who);
    }
    validation.reset();
    if (error) {
        close_with(4001, "invalid credentials");
        return;
    }
    identity_ready = true;
    phase_ = phase::attaching;
    attach();
}

inline void connection_state::attach() {
    auto& store = *core_->store;
    std::weak_ptr<connection_state> weak = weak_from_this();
    // Store completions may run inline or on any thread: come back to the
    // connection's executor before touching its state.
    auto finish = [weak](std::error_code ec, session::session_record record) {
        auto self = weak.lock();
        if (!self) return;
        connection_state::post(self, [ec, record = std::move(record)](connection_state& c) mutable {
            if (ec)
                c.attach_failed(ec);
            else
                c.attached(std::move(record));
        });
    };

    if (reconnecting_) {
        auto token = std::move(reconnect_token);
        reconnect_token.clear();
        store.consume_reconnect_token(token, std::move(finish));
        return;
    }

    session::session_record record;
    record.session_id = session_id_for(identity, core_->options.guid_salt);
    record.account_id = identity.subject;
    record.roles = identity.roles;
    record.permissions = identity.permissions;
    record.token_expires_at = to_session_time(identity.expires_at);
    record.node_id = core_->options.node_id;
    if (record.session_id.empty()) {
        store.create(std::move(record), std::move(finish));
        return;
    }
    // A session bound to the token: reuse it when it exists (same id after a
    // reconnect with the same token), else create it under that id.
    auto store_ptr = core_->store;
    const std::string id = record.session_id;
    store.load(id, [store_ptr, record = std::move(record), finish](std::error_code ec,
                                                                   session::session_record existing) mutable {
        if (ec == session::session_errc::not_found) {
            // Losing a creation race (already_exists) fails the attach: the
            // client reconnects and then finds, and checks, the winner's record.
            store_ptr->create(std::move(record), finish);
            return;
        }
        if (ec) {
            finish(ec, {});
            return;
        }
        if (existing.account_id != record.account_id) {
            finish(session::session_errc::invalid_account_id, {});
            return;
        }
        existing.roles = std::move(record.roles);
        existing.permissions = std::move(record.permissions);
        existing.token_expires_at = record.token_expires_at;
        existing.node_id = std::move(record.node_id);
        store_ptr->update(std::move(existing), finish);
    });
}

inline void connection_state::attach_failed(std::error_code error) {
    if (closing_) return;
    using session::session_errc;
    if (error == session_errc::revoked) {
        close_with(4002, "kicked");
    } else if (error == session_errc::not_found || error == session_errc::expired ||
               error == session_errc::token_invalid || error == session_errc::token_consumed ||
               error == session_errc::invalid_session_id || error == session_errc::invalid_account_id ||
               error == session_errc::already_exists) {
        close_with(4001, "session_expired");
    } else {
        core_->log(log_level::error, "session store failed while attaching a session: " + error.message());
        close_with(1011, "internal error");
    }
}

inline void connection_state::attached(session::session_record record) {
    if (closing_ || phase_ != phase::attaching) return;
    if (reconnecting_) {
        identity = auth::identity{};
        identity.subject = record.account_id;
        identity.session_key = record.session_id;
        identity.roles = record.roles;
        identity.permissions = record.permissions;
        if (record.token_expires_at != session::time_point{}) identity.expires_at = record.token_expires_at;
    }
    session_id = record.session_id;
    account_id = record.account_id;
    roles_ = std::move(record.roles);
    permissions_ = std::move(record.permissions);

    auto info = std::make_shared<routing::session_info>();
    info->session_id = session_id;
    info->account_id = account_id;
    info->identity = identity;
    info->remote_address = remote_;
    info->connection_id = id_;
    info_ = std::move(info);

    std::shared_ptr<connection_state> replaced;
    if (!core_->register_session(shared_from_this(), replaced)) {
        session_id.clear();  // not registered: nothing to unregister
        close_with(4008, "too many sessions for this account");
        return;
    }
    if (replaced)
        connection_state::post(replaced, [](connection_state& old) {
            old.notify_and_close(4002, "replaced by a new connection", protocol::disconnect_reason::kicked, false);
        });

    const auto& o = core_->options;
    routes_.rebuild(core_->registry, session_id, o.guid_salt, o.guid_order, roles_, permissions_);
    phase_ = phase::ready;
    token_expiry_ = identity.expires_at;
    schedule_expiry();
    const std::string reason(reconnecting_ ? routing::manifest_reason::session_reconnected
                                           : routing::manifest_reason::session_connected);
    std::weak_ptr<connection_state> weak = weak_from_this();
    transport->post_after(static_cast<std::uint32_t>(o.manifest_delay.count()), [weak, reason] {
        if (auto self = weak.lock()) self->send_manifest(reason);
    });
}

inline void connection_state::send_manifest(std::string_view reason) {
    if (closing_) return;
    send_frame(routing::event_frame(routing::manifest_json(session_id, routes_, reason)));
}

inline void connection_state::change_permissions(std::vector<std::string> roles, std::vector<std::string> permissions,
                                                 const std::string& reason) {
    if (closing_ || phase_ != phase::ready) return;
    roles_ = std::move(roles);
    permissions_ = std::move(permissions);
    const auto& o = core_->options;
    routes_.rebuild(core_->registry, session_id, o.guid_salt, o.guid_order, roles_, permissions_);
    send_manifest(reason);

    // Keep the store's copy in step (load-modify-update: update replaces attributes too).
    auto store = core_->store;
    auto core = core_;
    store->load(session_id, [store, core, roles = roles_, permissions = permissions_](
                                std::error_code ec, session::session_record record) mutable {
        if (ec) {
            core->log(log_level::warning, "could not store changed permissions: " + ec.message());
            return;
        }
        record.roles = std::move(roles);
        record.permissions = std::move(permissions);
        store->update(std::move(record), [core](std::error_code update_ec, session::session_record) {
            if (update_ec) core->log(log_level::warning, "could not store changed permissions: " + update_ec.message());
        });
    });
}

// ---------------------------------------------------------------------------
// connection_state: sending and closing

inline void connection_state::send_frame(protocol::bytes_view bytes) {
    if (closing_) return;
    if (transport->buffered_amount() + bytes.size() > core_->options.max_send_queue_bytes) {
        core_->log(log_level::warning, "send queue limit exceeded; closing slow consumer with 4005");
        close_with(4005, "slow consumer");
        return;
    }
    transport->send(frame_kind::binary, bytes);
}

inline void connection_state::close_with(std::uint16_t code, std::string_view reason) {
    if (closing_) return;
    closing_ = true;
    if (transport) transport->close(code, reason);
}

inline void connection_state::send_notification(std::string_view reason, const session::reconnect_token* token) {
    nlohmann::json body = {{"reason", reason}, {"reconnectable", token != nullptr}};
    if (token) {
        body["reconnectionToken"] = token->token;
        body["expiresAt"] = routing::iso8601_utc(token->expires_at);
    }
    send_frame(routing::event_frame(routing::event_json(protocol::event_names::disconnect_notification, body)));
}

inline void connection_state::notify_and_close(std::uint16_t code, std::string_view close_reason,
                                               std::string_view reason, bool reconnectable) {
    if (closing_ || notifying_) return;
    // Only an attached session can be told anything useful (§13.3, §18).
    if (phase_ != phase::ready) {
        close_with(code, close_reason);
        return;
    }
    if (!reconnectable) {
        send_notification(reason, nullptr);
        close_with(code, close_reason);
        return;
    }
    notifying_ = true;
    std::weak_ptr<connection_state> weak = weak_from_this();
    core_->store->issue_reconnect_token(
        session_id, core_->options.reconnect_window,
        [weak, code, close_reason = std::string(close_reason), reason = std::string(reason)](
            std::error_code ec, session::reconnect_token token) {
            auto self = weak.lock();
            if (!self) return;
            connection_state::post(self, [ec, code, close_reason, reason, token = std::move(token)](connection_state& c) {
                if (ec) c.core_->log(log_level::warning, "no reconnection token for a disconnect: " + ec.message());
                c.send_notification(reason, ec ? nullptr : &token);
                c.close_with(code, close_reason);
            });
        });
}

inline void connection_state::schedule_expiry() {
    if (!token_expiry_) return;
    const auto generation = ++expiry_generation_;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*token_expiry_ -
                                                                            std::chrono::system_clock::now());
    // post_after takes 32-bit milliseconds: re-arm in steps for far expiries.
    const auto step = std::min<std::int64_t>(std::max<std::int64_t>(left.count(), 0), 24LL * 3600 * 1000);
    std::weak_ptr<connection_state> weak = weak_from_this();
    transport->post_after(static_cast<std::uint32_t>(step), [weak, generation] {
        auto self = weak.lock();
        if (!self || self->closing_ || generation != self->expiry_generation_) return;
        if (self->token_expiry_ && *self->token_expiry_ > std::chrono::system_clock::now()) {
            self->schedule_expiry();
            return;
        }
        self->notify_and_close(4001, "session expired", protocol::disconnect_reason::session_expired, false);
    });
}

inline void connection_state::refreshed(auth::identity fresh) {
    if (closing_ || phase_ != phase::ready) return;
    token_expiry_ = fresh.expires_at;
    auto info = std::make_shared<routing::session_info>(*info_);
    info->identity = std::move(fresh);
    info_ = std::move(info);
    if (token_expiry_)
        schedule_expiry();
    else
        ++expiry_generation_;  // never expires now: cancel the pending check
}

inline void connection_state::on_closed() {
    closing_ = true;
    phase_ = phase::closed;
    channels_.clear();
    ready_.clear();
    timed_calls_.clear();
    in_flight_ = 0;
    queued_ = 0;
}

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
    send_frame(protocol::bytes_view(bytes, sizeof bytes));
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
    send_frame(protocol::bytes_view(bytes, sizeof bytes));
}

inline void connection_state::on_frame(frame_kind kind, protocol::bytes_view bytes) {
    using protocol::message_flags;
    using protocol::response_code;
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
    // 2. A response: would answer a server-to-client request. None is
    //    pending in this version, so nothing can match: dropped.
    if (frame.is_response()) {
        core_->frames_dropped.fetch_add(1, std::memory_order_relaxed);
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
        return message_bucket_.take(static_cast<double>(o.message_burst),
                                    static_cast<double>(o.messages_per_minute) / 60.0, now);
    };
    // 4. Empty payload without Event or Meta.
    if (frame.payload.empty() && !is_event && !is_meta) {
        reply_error(frame, response_code::request_error);
        return;
    }
    // 5./6. Broadcast and peer routing: client-to-client routing is not
    // enabled in this gateway (External mode): counted, then refused with 40.
    if (frame.service.is_broadcast() && !is_client) {
        reply_error(frame, response_code::request_error);
        return;
    }
    if (is_client) {
        reply_error(frame, rate_ok() ? response_code::broadcast_not_allowed : response_code::too_many_requests);
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
        reply_buffer_.clear();
        protocol::append_frame(reply_buffer_, header, protocol::bytes_view(body));
        send_frame(protocol::bytes_view(reply_buffer_));
        return;
    }
    // 9. Rate limit.
    if (!rate_ok()) {
        reply_error(frame, response_code::too_many_requests);
        return;
    }
    // 10. Route.
    enqueue(frame, target);
}

inline void connection_state::enqueue(const protocol::frame_view& frame, const routing::endpoint* target) {
    const auto& o = core_->options;
    auto& channel = channels_[frame.channel];
    if (!channel.busy && channel.waiting.empty() && in_flight_ < o.max_in_flight) {
        // Fast path: nothing ahead of it; the payload view stays valid for the call.
        channel.busy = true;
        ++in_flight_;
        const bool outer = !pumping_;
        pumping_ = true;
        invoke(target, frame.request(), frame.payload);
        if (outer) {
            pumping_ = false;
            pump();
        }
        return;
    }
    if (queued_ >= o.max_queued_requests) {
        if (!channel.busy && channel.waiting.empty() && !channel.in_ready) channels_.erase(frame.channel);
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
                                     protocol::bytes_view payload) {
    const auto deadline = steady::now() + core_->options.handler_timeout;
    auto call = std::make_shared<pending_call>(weak_from_this(), header, deadline);
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
    if (!call->delivered && !closing_) {
        timed_calls_.push_back(std::move(call));
        arm_sweep();
    }
}

inline void connection_state::deliver(pending_call& call, protocol::response_code code, bool binary,
                                      protocol::bytes_view payload) {
    if (call.delivered || phase_ == phase::closed) return;
    call.delivered = true;
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
        reply_buffer_.clear();
        protocol::append_frame(reply_buffer_, reply,
                               code == protocol::response_code::ok ? payload : protocol::bytes_view{});
        send_frame(protocol::bytes_view(reply_buffer_));
    }
    finish_channel(header.channel);
}

inline void connection_state::finish_channel(std::uint16_t channel_id) {
    if (phase_ == phase::closed) return;
    const auto it = channels_.find(channel_id);
    if (it != channels_.end()) {
        auto& channel = it->second;
        channel.busy = false;
        if (!channel.waiting.empty()) {
            if (!channel.in_ready) {
                channel.in_ready = true;
                ready_.push_back(channel_id);
            }
        } else if (!channel.in_ready) {
            channels_.erase(it);
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
        const std::uint16_t channel_id = ready_.front();
        ready_.pop_front();
        const auto it = channels_.find(channel_id);
        if (it == channels_.end()) continue;
        auto& channel = it->second;
        channel.in_ready = false;
        if (channel.busy || channel.waiting.empty()) continue;
        queued_request next = std::move(channel.waiting.front());
        channel.waiting.pop_front();
        --queued_;
        channel.busy = true;
        ++in_flight_;
        invoke(next.target, next.header, protocol::bytes_view(next.payload));
    }
    pumping_ = false;
}

inline void connection_state::arm_sweep() {
    if (sweep_armed_ || timed_calls_.empty()) return;
    sweep_armed_ = true;
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(timed_calls_.front()->deadline() -
                                                                            steady::now());
    const auto delay = static_cast<std::uint32_t>(std::max<std::int64_t>(1, wait.count() + 1));
    std::weak_ptr<connection_state> weak = weak_from_this();
    transport->post_after(delay, [weak] {
        if (auto self = weak.lock()) self->sweep();
    });
}

inline void connection_state::sweep() {
    sweep_armed_ = false;
    if (phase_ == phase::closed) return;
    const auto now = steady::now();
    // Deadlines grow with insertion order (one timeout for all calls).
    while (!timed_calls_.empty()) {
        auto& front = timed_calls_.front();
        if (front->delivered) {
            timed_calls_.pop_front();
            continue;
        }
        if (front->deadline() > now) break;
        auto call = std::move(front);
        timed_calls_.pop_front();
        if (call->claim()) {
            core_->log(log_level::warning, "handler timed out; answered 60");
            deliver(*call, protocol::response_code::backend_internal_error, false, {});
        }
    }
    arm_sweep();
}

}  // namespace gatehouse::server::detail

namespace gatehouse::server {

namespace detail {
inline void validate_options(const gateway_options& o) {
    const auto fail = [](const std::string& why) { throw std::invalid_argument("gatehouse gateway_options: " + why); };
    if (o.guid_salt.empty()) fail("guid_salt must not be empty (it salts every service GUID)");
    if (o.path.empty() || o.path.front() != '/') fail("path must start with '/'");
    if (o.path.find('?') != std::string::npos) fail("path must not contain a query");
    if (o.max_connections == 0) fail("max_connections must be at least 1");
    if (o.max_sessions_per_account == 0) fail("max_sessions_per_account must be at least 1");
    if (!(o.connects_per_second > 0)) fail("connects_per_second must be positive");
    if (o.connect_burst == 0) fail("connect_burst must be at least 1");
    if (o.manifest_delay.count() < 0) fail("manifest_delay must not be negative");
    if (o.max_message_size < protocol::request_header_size) fail("max_message_size must be at least 31 bytes");
    if (o.max_payload_size > o.max_message_size) fail("max_payload_size must not exceed max_message_size");
    if (o.messages_per_minute == 0) fail("messages_per_minute must be at least 1");
    if (o.message_burst == 0) fail("message_burst must be at least 1");
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
    core->registry.add(std::move(o), [weak](const routing::request& req, routing::responder answer) {
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
                auto connection = core ? core->find_session(session_id) : nullptr;
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
    core_ = std::make_shared<detail::gateway_core>(std::move(options), std::move(validator), std::move(store));
    if (core_->options.refresh_endpoint) detail::add_refresh_endpoint(core_);
}

GATEHOUSE_DECL gateway::~gateway() {
    if (network_) {
        network_->stop();
        network_.reset();
    }
    auth::revocation_subscription watch;
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        std::swap(watch, core_->revocation_watch);
    }
    watch.reset();
    // Connections hold the core; the registry holds connections. Break the
    // cycle for connections a transport never closed.
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    core_->sessions.clear();
    core_->accounts.clear();
    core_->groups.clear();
    core_->session_groups.clear();
    core_->open_connections.clear();
}

GATEHOUSE_DECL routing::endpoint_registry& gateway::endpoints() { return core_->registry; }

GATEHOUSE_DECL const routing::endpoint& gateway::add_endpoint(routing::endpoint_options options, routing::handler fn) {
    return core_->registry.add(std::move(options), std::move(fn));
}

GATEHOUSE_DECL void gateway::add_routed_service(std::vector<routing::endpoint_options> endpoints,
                                                std::shared_ptr<routing::router> target) {
    core_->registry.add_routed(std::move(endpoints), std::move(target));
}

GATEHOUSE_DECL std::error_code gateway::listen() {
    if (!network_) network_ = detail::make_websocket_transport(core_);
    return network_->listen();
}

GATEHOUSE_DECL std::uint16_t gateway::local_port() const { return network_ ? network_->local_port() : 0; }

GATEHOUSE_DECL void gateway::run() {
    if (network_) network_->run();
}

GATEHOUSE_DECL void gateway::stop() {
    core_->stopping.store(true, std::memory_order_release);
    if (network_)
        network_->stop();
    else
        core_->close_all(1001, "server shutdown");  // another transport: it drains itself
}

GATEHOUSE_DECL transport_events& gateway::transport_side() { return *core_; }

GATEHOUSE_DECL std::error_code gateway::push_to_session(std::string_view session_id, std::string_view event_name,
                                                        const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return ec;
    auto target = core_->find_session(session_id);
    if (!target) return server_errc::session_not_found;
    core_->post_frame({std::move(target)}, std::move(frame));
    return {};
}

GATEHOUSE_DECL std::size_t gateway::push_to_account(std::string_view account_id, std::string_view event_name,
                                                    const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    std::vector<std::shared_ptr<detail::connection_state>> targets;
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        const auto it = core_->accounts.find(std::string(account_id));
        if (it != core_->accounts.end())
            for (const auto& sid : it->second) {
                const auto s = core_->sessions.find(sid);
                if (s != core_->sessions.end()) targets.push_back(s->second);
            }
    }
    return core_->post_frame(targets, std::move(frame));
}

GATEHOUSE_DECL std::size_t gateway::push_to_group(std::string_view group, std::string_view event_name,
                                                  const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    std::vector<std::shared_ptr<detail::connection_state>> targets;
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        const auto it = core_->groups.find(std::string(group));
        if (it != core_->groups.end())
            for (const auto& sid : it->second) {
                const auto s = core_->sessions.find(sid);
                if (s != core_->sessions.end()) targets.push_back(s->second);
            }
    }
    return core_->post_frame(targets, std::move(frame));
}

GATEHOUSE_DECL std::size_t gateway::push_to_all(std::string_view event_name, const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    std::vector<std::shared_ptr<detail::connection_state>> targets;
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        targets.reserve(core_->sessions.size());
        for (const auto& entry : core_->sessions) targets.push_back(entry.second);
    }
    return core_->post_frame(targets, std::move(frame));
}

GATEHOUSE_DECL std::error_code gateway::join_group(std::string_view session_id, std::string_view group) {
    if (!detail::valid_group_name(group)) return server_errc::invalid_group_name;
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    const std::string sid(session_id);
    if (core_->sessions.count(sid) == 0) return server_errc::session_not_found;
    core_->groups[std::string(group)].insert(sid);
    core_->session_groups[sid].insert(std::string(group));
    return {};
}

GATEHOUSE_DECL std::error_code gateway::leave_group(std::string_view session_id, std::string_view group) {
    if (!detail::valid_group_name(group)) return server_errc::invalid_group_name;
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    const std::string sid(session_id);
    if (core_->sessions.count(sid) == 0) return server_errc::session_not_found;
    const std::string name(group);
    const auto it = core_->groups.find(name);
    if (it != core_->groups.end()) {
        it->second.erase(sid);
        if (it->second.empty()) core_->groups.erase(it);
    }
    const auto memberships = core_->session_groups.find(sid);
    if (memberships != core_->session_groups.end()) {
        memberships->second.erase(name);
        if (memberships->second.empty()) core_->session_groups.erase(memberships);
    }
    return {};
}

GATEHOUSE_DECL std::vector<std::string> gateway::group_members(std::string_view group) const {
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    const auto it = core_->groups.find(std::string(group));
    if (it == core_->groups.end()) return {};
    std::vector<std::string> members(it->second.begin(), it->second.end());
    std::sort(members.begin(), members.end());
    return members;
}

GATEHOUSE_DECL std::error_code gateway::set_permissions(std::string_view session_id, std::vector<std::string> roles,
                                                        std::vector<std::string> permissions, std::string_view reason) {
    auto target = core_->find_session(session_id);
    if (!target) return server_errc::session_not_found;
    detail::connection_state::post(target, [roles = std::move(roles), permissions = std::move(permissions),
                                            reason = std::string(reason)](detail::connection_state& c) mutable {
        c.change_permissions(std::move(roles), std::move(permissions), reason);
    });
    return {};
}

GATEHOUSE_DECL std::error_code gateway::disconnect(std::string_view session_id, std::uint16_t code,
                                                   std::string_view reason) {
    auto target = core_->find_session(session_id);
    if (!target) return server_errc::session_not_found;
    detail::connection_state::post(target, [code, why = std::string(reason)](detail::connection_state& c) {
        c.close_with(code, why);
    });
    return {};
}

GATEHOUSE_DECL void gateway::revoke_session(std::string_view session_id, std::function<void(std::error_code)> done) {
    const std::string sid(session_id);
    auto core = core_;
    core_->store->revoke(sid, [core, sid, done = std::move(done)](std::error_code ec) {
        // Close even when the store failed or already had it revoked: the
        // host asked for this session to be gone.
        core->kick([&](const detail::connection_state& c) { return c.session_id == sid; });
        if (done) done(ec);
    });
}

GATEHOUSE_DECL void gateway::revoke_account(std::string_view account_id,
                                           std::function<void(std::error_code, std::size_t)> done) {
    const std::string account(account_id);
    auto core = core_;
    core_->store->revoke_account(account, [core, account, done = std::move(done)](std::error_code ec, std::size_t n) {
        core->kick([&](const detail::connection_state& c) { return c.account_id == account; });
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
            core->kick([&](const detail::connection_state& c) {
                switch (entry.scope) {
                case auth::revocation_scope::token: return c.identity.token_id == entry.value;
                case auth::revocation_scope::session:
                    return c.identity.session_key == entry.value || c.session_id == entry.value;
                case auth::revocation_scope::account: return c.account_id == entry.value;
                }
                return false;
            });
        });
    }
    // The old subscription ends outside the lock: ending it waits for a
    // running listener, which takes the lock.
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        std::swap(core_->revocation_watch, subscription);
    }
    subscription.reset();
}

GATEHOUSE_DECL gateway_stats gateway::stats() const {
    gateway_stats s;
    s.connections = core_->connections.load(std::memory_order_acquire);
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        s.sessions = core_->sessions.size();
    }
    s.upgrades_accepted = core_->upgrades_accepted.load(std::memory_order_relaxed);
    s.upgrades_refused = core_->upgrades_refused.load(std::memory_order_relaxed);
    s.frames_dropped = core_->frames_dropped.load(std::memory_order_relaxed);
    return s;
}

GATEHOUSE_DECL const gateway_options& gateway::options() const noexcept { return core_->options; }

}  // namespace gatehouse::server
