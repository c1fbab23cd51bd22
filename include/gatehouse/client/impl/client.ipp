// Implementation of gatehouse/client/client.hpp: the client's state machine.
// Transport-independent; the websocketpp transport is in client_websocket.ipp.
#pragma once

#include <gatehouse/client/client.hpp>

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace gatehouse::client::detail {

class client_core final : public client_transport_events, public std::enable_shared_from_this<client_core> {
public:
    enum class state { idle, opening, awaiting_manifest, connected, waiting_to_reconnect, closed };

    client_core(asio::io_context& io, client_options options, std::shared_ptr<client_transport> transport)
        : strand_(asio::make_strand(io)),
          options_(std::move(options)),
          transport_(std::move(transport)),
          calls_(options_.max_pending_calls),
          call_timer_(strand_),
          manifest_timer_(strand_),
          reconnect_timer_(strand_),
          backoff_(options_.backoff) {}

    // --- public operations, entered through the strand -------------------

    void connect(client::connect_handler done) {
        run([this, done = std::move(done)]() mutable {
            if (state_ != state::idle && state_ != state::closed) {
                complete_later(std::move(done), client_errc::already_connecting);
                return;
            }
            user_closed_ = false;
            connect_done_ = std::move(done);
            open_connection();
        });
    }

    void call(std::string endpoint, std::string payload, call_options o, client::call_handler done) {
        run([this, endpoint = std::move(endpoint), payload = std::move(payload), o,
             done = std::move(done)]() mutable {
            if (state_ != state::connected) return fail_call(std::move(done), client_errc::not_connected);
            const auto guid = capabilities_.find(endpoint);
            if (!guid) return fail_call(std::move(done), client_errc::unknown_endpoint);
            auto flags = o.binary ? protocol::message_flags::binary : protocol::message_flags::none;
            send_request(flags, o.channel, *guid, std::move(payload), o.timeout, std::move(done));
        });
    }

    void send_event(std::string endpoint, std::string payload, std::uint16_t channel,
                    client::connect_handler done) {
        run([this, endpoint = std::move(endpoint), payload = std::move(payload), channel,
             done = std::move(done)]() mutable {
            std::error_code ec;
            if (state_ != state::connected) {
                ec = client_errc::not_connected;
            } else if (const auto guid = capabilities_.find(endpoint)) {
                const protocol::request_header h{protocol::message_flags::event, channel,
                                                 sequencer_.next_sequence(channel), *guid,
                                                 sequencer_.next_message_id()};
                send_frame(h, payload);
            } else {
                ec = client_errc::unknown_endpoint;
            }
            if (done) done(ec);
        });
    }

    void send_peer(protocol::guid peer, std::string payload, bool event, client::call_handler done) {
        run([this, peer, payload = std::move(payload), event, done = std::move(done)]() mutable {
            if (state_ != state::connected) return fail_call(std::move(done), client_errc::not_connected);
            auto flags = protocol::message_flags::client;
            if (event) {
                flags |= protocol::message_flags::event;
                const protocol::request_header h{flags, 0, sequencer_.next_sequence(0), peer,
                                                 sequencer_.next_message_id()};
                send_frame(h, payload);
                if (done) done({}, response{});
                return;
            }
            send_request(flags, 0, peer, std::move(payload), std::chrono::milliseconds(0), std::move(done));
        });
    }

    void refresh(std::string token, client::call_handler done) {
        const std::string body = nlohmann::json{{"accessToken", token}}.dump();
        auto self = shared_from_this();
        call("/connect/refresh", body, {},
             [self, token = std::move(token), done = std::move(done)](std::error_code ec, response r) mutable {
                 // Runs on the strand.
                 if (!ec && r.ok()) self->credential_ = std::move(token);
                 if (done) done(ec, std::move(r));
             });
    }

    void close(std::uint16_t code, std::string reason) {
        run([this, code, reason = std::move(reason)] {
            user_closed_ = true;
            reconnect_timer_.cancel();
            switch (state_) {
            case state::opening:
            case state::awaiting_manifest:
            case state::connected: transport_->close(code, reason); break;
            case state::waiting_to_reconnect: set_state(state::closed); break;
            case state::idle:
            case state::closed: break;
            }
        });
    }

    template <class Fn>
    void set_handler(Fn fn) {
        run(std::move(fn));
    }

    // Handlers (strand only).
    std::unordered_map<std::string, client::event_handler> event_handlers_;
    client::capabilities_handler capabilities_handler_;
    client::disconnect_handler disconnect_handler_;
    client::request_handler request_handler_;
    std::function<void()> connected_handler_;

    // Snapshot for other threads.
    mutable std::mutex snapshot_mutex_;
    bool snapshot_connected_ = false;
    std::optional<protocol::guid> snapshot_session_;
    std::optional<protocol::guid> snapshot_peer_;
    std::vector<std::string> snapshot_endpoints_;
    int snapshot_http_status_ = 0;

    // --- transport events (any thread) ---------------------------------------

    void transport_open() override {
        run([this] {
            if (state_ != state::opening) return;
            set_state(state::awaiting_manifest);
            manifest_timer_.expires_after(options_.manifest_timeout);
            manifest_timer_.async_wait([self = shared_from_this(), generation = generation_](std::error_code ec) {
                if (ec || generation != self->generation_ || self->state_ != state::awaiting_manifest) return;
                self->finish_connect(client_errc::manifest_timeout);
                self->transport_->close(1000, "no capability manifest");
            });
        });
    }

    void transport_message(std::string payload, bool binary) override {
        run([this, payload = std::move(payload), binary]() mutable {
            // Text frames carry nothing for a client (the server answers our
            // text with 14, and sends none of its own).
            if (binary) handle_frame(std::move(payload));
        });
    }

    void transport_closed(std::uint16_t code, std::string /*reason*/) override {
        run([this, code] { connection_lost(code); });
    }

    void transport_failed(std::error_code, int http_status) override {
        run([this, http_status] {
            if (state_ != state::opening && state_ != state::awaiting_manifest) return;
            {
                std::lock_guard<std::mutex> lock(snapshot_mutex_);
                snapshot_http_status_ = http_status;
            }
            const std::error_code ec = http_status > 0 ? make_error_code(upgrade_error_for_status(http_status))
                                                       : make_error_code(client_errc::connect_failed);
            ++generation_;
            manifest_timer_.cancel();
            if (connect_done_) {
                set_state(state::closed);
                finish_connect(ec);
                return;
            }
            // A reconnection attempt failed.
            if (!user_closed_ && is_retryable(ec) && backoff_.can_retry()) {
                schedule_reconnect();
                return;
            }
            set_state(state::closed);
            if (disconnect_handler_) disconnect_handler_(disconnect_info{last_reason_, false, {}});
        });
    }

private:
    template <class Fn>
    void run(Fn fn) {
        asio::dispatch(strand_, [self = shared_from_this(), fn = std::move(fn)]() mutable { fn(); });
    }

    void complete_later(client::connect_handler done, std::error_code ec) {
        if (done) asio::post(strand_, [done = std::move(done), ec] { done(ec); });
    }

    static void fail_call(client::call_handler done, std::error_code ec) {
        if (done) done(ec, response{});
    }

    void set_state(state s) {
        state_ = s;
        std::lock_guard<std::mutex> lock(snapshot_mutex_);
        snapshot_connected_ = s == state::connected;
    }

    void open_connection() {
        set_state(state::opening);
        ++generation_;
        std::vector<std::pair<std::string, std::string>> headers = options_.headers;
        if (!reconnect_token_.empty()) {
            headers.emplace_back("Authorization", "Reconnect " + reconnect_token_);
            reconnect_token_.clear();  // single use
        } else if (!credential_.empty()) {
            static constexpr const char* schemes[] = {"Bearer ", "ApiKey ", "Reconnect "};
            headers.emplace_back("Authorization", schemes[static_cast<int>(options_.scheme)] + credential_);
        }
        transport_->open(options_.url, headers, weak_from_this());
    }

    void finish_connect(std::error_code ec) {
        if (auto done = std::move(connect_done_)) {
            connect_done_ = nullptr;
            done(ec);
        }
    }

    void send_request(protocol::message_flags flags, std::uint16_t channel, protocol::guid target,
                      std::string payload, std::chrono::milliseconds timeout, client::call_handler done) {
        const protocol::request_header h{flags, channel, sequencer_.next_sequence(channel), target,
                                         sequencer_.next_message_id()};
        const auto deadline =
            std::chrono::steady_clock::now() + (timeout.count() > 0 ? timeout : options_.call_timeout);
        if (auto ec = calls_.add(h.message_id, deadline, std::move(done))) {
            // `done` was not taken: it is still ours to complete.
            return fail_call(std::move(done), ec);
        }
        send_frame(h, payload);
        arm_call_timer();
    }

    void send_frame(const protocol::request_header& h, std::string_view payload) {
        std::string frame;
        frame.reserve(protocol::request_header_size + payload.size());
        protocol::append_frame(frame, h, payload);
        transport_->send(std::move(frame), true);
    }

    void arm_call_timer() {
        const auto next = calls_.next_deadline();
        if (!next || (armed_deadline_ && *armed_deadline_ <= *next)) return;
        armed_deadline_ = *next;
        call_timer_.expires_at(*next);
        call_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
            if (ec) return;  // re-armed or cancelled
            self->armed_deadline_.reset();
            for (auto& [id, done] : self->calls_.take_expired(std::chrono::steady_clock::now()))
                fail_call(std::move(done), client_errc::call_timeout);
            self->arm_call_timer();
        });
    }

    void handle_frame(std::string bytes) {
        protocol::frame_view f;
        if (protocol::decode_frame(bytes, f)) return;  // the reference client drops what it cannot parse
        if (f.is_response()) {
            auto done = calls_.take(f.message_id);
            if (!done) return;  // late, duplicate or foreign
            response r;
            r.code = f.code;
            r.flags = f.flags;
            r.channel = f.channel;
            r.sequence = f.sequence;
            r.message_id = f.message_id;
            if (r.ok()) r.payload.assign(f.payload.as_chars());
            if (*done) (*done)({}, std::move(r));
            return;
        }
        if (f.has(protocol::message_flags::event) && !f.has(protocol::message_flags::client)) {
            handle_event(f.payload.as_chars());
            return;
        }
        if (!request_handler_) return;  // as the reference client: ignored
        incoming_request req{f.request(), std::string(f.payload.as_chars())};
        const bool wants_reply = !f.has(protocol::message_flags::event);
        auto self = shared_from_this();
        const auto header = f.request();
        request_handler_(req, [self, header, wants_reply](protocol::response_code code, std::string payload,
                                                          bool binary) {
            if (!wants_reply) return;
            self->run([self, header, code, payload = std::move(payload), binary] {
                if (self->state_ != state::connected) return;
                auto flags = protocol::message_flags::response;
                if (binary) flags |= protocol::message_flags::binary;
                const protocol::response_header r{flags, header.channel, header.sequence, header.message_id, code};
                std::string frame;
                protocol::append_frame(frame, r,
                                       code == protocol::response_code::ok ? std::string_view(payload)
                                                                           : std::string_view());
                self->transport_->send(std::move(frame), true);
            });
        });
    }

    void handle_event(std::string_view json) {
        // Events are JSON objects naming themselves (§9.2); anything else is
        // ignored, as the reference client does. Compressed (Brotli) payloads
        // are not decoded by this client: a server must not compress for it.
        const auto doc = nlohmann::json::parse(json, nullptr, false);
        if (!doc.is_object()) return;
        const auto name_it = doc.find("eventName");
        if (name_it == doc.end() || !name_it->is_string()) return;
        const std::string name = name_it->get<std::string>();

        if (name == protocol::event_names::capability_manifest) {
            manifest m;
            if (auto ec = read_manifest(doc, m)) {
                if (state_ == state::awaiting_manifest) {
                    finish_connect(ec);
                    transport_->close(1000, "bad capability manifest");
                }
                return;
            }
            apply_manifest(m);
        } else if (name == protocol::event_names::disconnect_notification) {
            notice_ = parse_disconnect_notification(json);
        }
        const auto it = event_handlers_.find(name);
        if (it != event_handlers_.end() && it->second) it->second(event{name, std::string(json)});
    }

    void apply_manifest(const manifest& m) {
        const auto diff = capabilities_.apply(m);
        {
            std::lock_guard<std::mutex> lock(snapshot_mutex_);
            snapshot_session_ = m.session_id;
            snapshot_peer_ = m.peer_guid;
            snapshot_endpoints_.clear();
            for (const auto& e : m.apis) snapshot_endpoints_.push_back(e.endpoint);
        }
        if (capabilities_handler_ && (!diff.added.empty() || !diff.removed.empty())) capabilities_handler_(diff);
        if (state_ == state::awaiting_manifest) {
            manifest_timer_.cancel();
            set_state(state::connected);
            backoff_.reset();
            if (connected_handler_) connected_handler_();
            finish_connect({});
        }
    }

    void connection_lost(std::uint16_t code) {
        const bool was_connecting = state_ == state::opening || state_ == state::awaiting_manifest;
        if (state_ == state::idle || state_ == state::closed || state_ == state::waiting_to_reconnect) return;
        ++generation_;
        manifest_timer_.cancel();
        call_timer_.cancel();
        armed_deadline_.reset();
        for (auto& [id, done] : calls_.take_all()) fail_call(std::move(done), client_errc::call_cancelled);
        capabilities_.clear();
        set_state(state::closed);

        const auto info = classify_disconnect(code, notice_);
        notice_.reset();
        last_reason_ = info.reason;
        if (was_connecting) finish_connect(client_errc::connection_closed);
        if (disconnect_handler_) disconnect_handler_(info);
        if (options_.auto_reconnect && !user_closed_ && info.can_reconnect && backoff_.can_retry()) {
            reconnect_token_ = info.reconnection_token;
            schedule_reconnect();
        }
    }

    void schedule_reconnect() {
        set_state(state::waiting_to_reconnect);
        reconnect_timer_.expires_after(backoff_.next());
        reconnect_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
            if (ec || self->state_ != state::waiting_to_reconnect || self->user_closed_) return;
            self->open_connection();
        });
    }

    asio::strand<asio::io_context::executor_type> strand_;
    client_options options_;
    std::shared_ptr<client_transport> transport_;

public:
    // Read by the public facade on the strand.
    std::string credential_ = options_.credential;

private:
    state state_ = state::idle;
    std::uint64_t generation_ = 0;
    bool user_closed_ = false;
    client::connect_handler connect_done_;
    capability_table capabilities_;
    pending_calls<client::call_handler> calls_;
    message_sequencer sequencer_;
    asio::steady_timer call_timer_;
    std::optional<std::chrono::steady_clock::time_point> armed_deadline_;
    asio::steady_timer manifest_timer_;
    asio::steady_timer reconnect_timer_;
    reconnect_backoff backoff_;
    std::optional<disconnect_notification> notice_;
    std::string reconnect_token_;
    std::string_view last_reason_ = protocol::disconnect_reason::server_close;
};

inline void validate(const client_options& o) {
    const bool ws = o.url.rfind("ws://", 0) == 0, wss = o.url.rfind("wss://", 0) == 0;
    if (!ws && !wss) throw std::invalid_argument("client: url must start with ws:// or wss://");
    if (o.connect_timeout.count() <= 0 || o.manifest_timeout.count() <= 0 || o.call_timeout.count() <= 0)
        throw std::invalid_argument("client: timeouts must be positive");
    if (o.max_pending_calls == 0) throw std::invalid_argument("client: max_pending_calls must be positive");
    if (o.max_message_size < protocol::request_header_size)
        throw std::invalid_argument("client: max_message_size is smaller than a frame header");
    reconnect_backoff check(o.backoff);  // throws for invalid backoff options
    (void)check;
}

}  // namespace gatehouse::client::detail

namespace gatehouse::client {

GATEHOUSE_DECL std::shared_ptr<client> client::create(asio::io_context& io, client_options options) {
    detail::validate(options);
    auto transport = detail::make_websocket_client_transport(io, options);
    return create(io, std::move(options), std::move(transport));
}

GATEHOUSE_DECL std::shared_ptr<client> client::create(asio::io_context& io, client_options options,
                                                      std::shared_ptr<detail::client_transport> transport) {
    detail::validate(options);
    if (!transport) throw std::invalid_argument("client: transport is null");
    auto core = std::make_shared<detail::client_core>(io, std::move(options), std::move(transport));
    return std::shared_ptr<client>(new client(std::move(core)));
}

GATEHOUSE_DECL client::~client() { core_->close(1000, "Client disconnecting"); }

GATEHOUSE_DECL void client::async_connect(connect_handler done) { core_->connect(std::move(done)); }

GATEHOUSE_DECL std::future<void> client::connect() {
    auto promise = std::make_shared<std::promise<void>>();
    auto future = promise->get_future();
    core_->connect([promise](std::error_code ec) {
        if (ec) promise->set_exception(std::make_exception_ptr(std::system_error(ec)));
        else promise->set_value();
    });
    return future;
}

GATEHOUSE_DECL void client::async_call(std::string endpoint, std::string payload, call_options options,
                                       call_handler done) {
    core_->call(std::move(endpoint), std::move(payload), options, std::move(done));
}

GATEHOUSE_DECL std::future<response> client::call(std::string endpoint, std::string payload, call_options options) {
    auto promise = std::make_shared<std::promise<response>>();
    auto future = promise->get_future();
    core_->call(std::move(endpoint), std::move(payload), options, [promise](std::error_code ec, response r) {
        if (ec) promise->set_exception(std::make_exception_ptr(std::system_error(ec)));
        else promise->set_value(std::move(r));
    });
    return future;
}

GATEHOUSE_DECL void client::send_event(std::string endpoint, std::string payload, std::uint16_t channel,
                                       connect_handler done) {
    core_->send_event(std::move(endpoint), std::move(payload), channel, std::move(done));
}

GATEHOUSE_DECL void client::async_send_peer(protocol::guid peer, std::string payload, bool event, call_handler done) {
    core_->send_peer(peer, std::move(payload), event, std::move(done));
}

GATEHOUSE_DECL void client::async_refresh(std::string access_token, call_handler done) {
    core_->refresh(std::move(access_token), std::move(done));
}

GATEHOUSE_DECL void client::on_event(std::string name, event_handler handler) {
    auto* core = core_.get();
    core_->set_handler([core, name = std::move(name), handler = std::move(handler)]() mutable {
        core->event_handlers_[std::move(name)] = std::move(handler);
    });
}

GATEHOUSE_DECL void client::on_capabilities(capabilities_handler handler) {
    auto* core = core_.get();
    core_->set_handler([core, handler = std::move(handler)]() mutable { core->capabilities_handler_ = std::move(handler); });
}

GATEHOUSE_DECL void client::on_disconnect(disconnect_handler handler) {
    auto* core = core_.get();
    core_->set_handler([core, handler = std::move(handler)]() mutable { core->disconnect_handler_ = std::move(handler); });
}

GATEHOUSE_DECL void client::on_request(request_handler handler) {
    auto* core = core_.get();
    core_->set_handler([core, handler = std::move(handler)]() mutable { core->request_handler_ = std::move(handler); });
}

GATEHOUSE_DECL void client::on_connected(std::function<void()> handler) {
    auto* core = core_.get();
    core_->set_handler([core, handler = std::move(handler)]() mutable { core->connected_handler_ = std::move(handler); });
}

GATEHOUSE_DECL void client::close(std::uint16_t code, std::string reason) { core_->close(code, std::move(reason)); }

GATEHOUSE_DECL bool client::connected() const {
    std::lock_guard<std::mutex> lock(core_->snapshot_mutex_);
    return core_->snapshot_connected_;
}

GATEHOUSE_DECL std::optional<protocol::guid> client::session_id() const {
    std::lock_guard<std::mutex> lock(core_->snapshot_mutex_);
    return core_->snapshot_session_;
}

GATEHOUSE_DECL std::optional<protocol::guid> client::peer_guid() const {
    std::lock_guard<std::mutex> lock(core_->snapshot_mutex_);
    return core_->snapshot_peer_;
}

GATEHOUSE_DECL std::vector<std::string> client::endpoints() const {
    std::lock_guard<std::mutex> lock(core_->snapshot_mutex_);
    return core_->snapshot_endpoints_;
}

GATEHOUSE_DECL int client::last_http_status() const {
    std::lock_guard<std::mutex> lock(core_->snapshot_mutex_);
    return core_->snapshot_http_status_;
}

}  // namespace gatehouse::client
