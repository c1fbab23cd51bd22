// The native client over real sockets on loopback, against a scripted
// protocol server built on websocketpp: every client behaviour, including the
// ones a well-behaved gateway rarely shows (refusals, silence, kicks).
#include <gatehouse/client/client.hpp>
#include <gatehouse/client/client_impl.hpp>

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace c = gatehouse::client;
namespace p = gatehouse::protocol;
using namespace std::chrono_literals;

namespace {

const p::guid echo_guid = p::guid_from_string("11111111-1111-4111-8111-111111111111");
const p::guid silent_guid = p::guid_from_string("22222222-2222-4222-8222-222222222222");
const p::guid kick_guid = p::guid_from_string("33333333-3333-4333-8333-333333333333");
const p::guid ask_guid = p::guid_from_string("44444444-4444-4444-8444-444444444444");
const p::guid refresh_guid = p::guid_from_string("55555555-5555-4555-8555-555555555555");
const char* session_text = "6f9619ff-8b86-4d11-b42d-00c04fc964ff";

std::string event_frame(const nlohmann::json& body) {
    std::string frame;
    p::append_frame(frame, p::request_header{p::message_flags::event, 0, 0, p::guid::nil(), 42}, body.dump());
    return frame;
}

nlohmann::json manifest(bool with_silent) {
    nlohmann::json apis = nlohmann::json::array();
    apis.push_back({{"serviceId", echo_guid.to_string()}, {"endpoint", "/echo"}, {"service", "test"}});
    if (with_silent) apis.push_back({{"serviceId", silent_guid.to_string()}, {"endpoint", "/silent"}, {"service", "test"}});
    apis.push_back({{"serviceId", kick_guid.to_string()}, {"endpoint", "/kick"}, {"service", "test"}});
    apis.push_back({{"serviceId", ask_guid.to_string()}, {"endpoint", "/ask"}, {"service", "test"}});
    apis.push_back({{"serviceId", refresh_guid.to_string()}, {"endpoint", "/connect/refresh"}, {"service", "connect"}});
    return {{"eventName", "connect.capability-manifest"}, {"sessionId", session_text}, {"availableApis", apis},
            {"reason", "session_connected"}};
}

/// A protocol server whose behaviour each test scripts through the
/// Authorization header it sends.
class scripted_server {
public:
    using server_type = websocketpp::server<websocketpp::config::asio>;

    scripted_server() {
        server_.clear_access_channels(websocketpp::log::alevel::all);
        server_.clear_error_channels(websocketpp::log::elevel::all);
        server_.init_asio(&io_);
        server_.set_reuse_addr(true);
        server_.set_validate_handler([this](websocketpp::connection_hdl h) {
            auto con = server_.get_con_from_hdl(h);
            const auto auth = con->get_request_header("Authorization");
            record_auth(auth);
            if (auth == "Bearer bad") {
                con->set_status(websocketpp::http::status_code::unauthorized);
                con->set_body("Invalid or expired JWT token");
                return false;
            }
            if (auth == "Bearer busy") {
                con->set_status(websocketpp::http::status_code::service_unavailable);
                return false;
            }
            return true;
        });
        server_.set_close_handler([this](websocketpp::connection_hdl h) { open_.erase(h); });
        server_.set_open_handler([this](websocketpp::connection_hdl h) {
            open_.insert(h);
            auto con = server_.get_con_from_hdl(h);
            if (con->get_request_header("Authorization") == "Bearer silent") return;
            // The manifest in its own write, a little after the 101 (§7.3).
            auto timer = std::make_shared<asio::steady_timer>(io_, 20ms);
            timer->async_wait([this, h, timer](std::error_code) {
                send(h, event_frame(manifest(true)));
                send(h, event_frame({{"eventName", "system.notification"}, {"message", "welcome"}}));
            });
        });
        server_.set_message_handler([this](websocketpp::connection_hdl h, server_type::message_ptr msg) {
            on_frame(h, msg->get_payload());
        });
        server_.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        server_.start_accept();
        asio::error_code ec;
        port_ = server_.get_local_endpoint(ec).port();
        thread_ = std::thread([this] { io_.run(); });
    }

    ~scripted_server() {
        asio::steady_timer deadline(io_, 3s);  // a stuck close handshake must not hang the test
        deadline.async_wait([this](std::error_code ec) {
            if (!ec) io_.stop();
        });
        asio::post(io_, [this, &deadline] {
            server_.set_close_handler([this, &deadline](websocketpp::connection_hdl h) {
                open_.erase(h);
                if (open_.empty()) deadline.cancel();
            });
            websocketpp::lib::error_code ec;
            server_.stop_listening(ec);
            const auto open = open_;
            for (auto& h : open) server_.close(h, websocketpp::close::status::going_away, "test over", ec);
            if (open.empty()) deadline.cancel();
        });
        thread_.join();  // returns once every connection is gone
    }

    std::string url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/connect"; }
    std::vector<std::string> auth_headers() {
        std::lock_guard<std::mutex> lock(mutex_);
        return auth_;
    }
    /// The next response frame a client sent (to a server-to-client request).
    std::string wait_client_response() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait_for(lock, 5s, [this] { return !client_responses_.empty(); });
        if (client_responses_.empty()) return {};
        auto r = client_responses_.front();
        client_responses_.erase(client_responses_.begin());
        return r;
    }
    int events_received() const { return events_received_.load(); }

private:
    void record_auth(const std::string& auth) {
        std::lock_guard<std::mutex> lock(mutex_);
        auth_.push_back(auth);
    }

    void send(websocketpp::connection_hdl h, const std::string& frame) {
        websocketpp::lib::error_code ec;
        server_.send(h, frame, websocketpp::frame::opcode::binary, ec);
    }

    void reply(websocketpp::connection_hdl h, const p::frame_view& f, p::response_code code, std::string_view body) {
        std::string frame;
        p::append_frame(frame, p::response_header{p::message_flags::response, f.channel, f.sequence, f.message_id, code},
                        code == p::response_code::ok ? body : std::string_view());
        send(h, frame);
    }

    void on_frame(websocketpp::connection_hdl h, const std::string& bytes) {
        p::frame_view f;
        if (p::decode_frame(bytes, f)) return;
        if (f.is_response()) {
            std::lock_guard<std::mutex> lock(mutex_);
            client_responses_.push_back(bytes);
            cv_.notify_all();
            return;
        }
        if (f.has(p::message_flags::event)) {
            ++events_received_;
            return;
        }
        if (f.service == echo_guid) {
            reply(h, f, p::response_code::ok, f.payload.as_chars());
        } else if (f.service == silent_guid) {
            // never answers
        } else if (f.service == kick_guid) {
            const std::string how(f.payload.as_chars());
            if (how == "shutdown") {
                send(h, event_frame({{"eventName", "connect.disconnect-notification"}, {"reason", "server_shutdown"},
                                     {"reconnectable", true}, {"reconnectionToken", "tok-1"},
                                     {"expiresAt", "2030-01-01T00:00:00Z"}}));
                server_.close(h, websocketpp::close::status::going_away, "Server shutdown");
            } else {
                server_.close(h, 4002, "kicked");
            }
        } else if (f.service == ask_guid) {
            reply(h, f, p::response_code::ok, "{}");
            std::string frame;  // a server-to-client request (§12.3): Binary, no Event bit
            p::append_frame(frame, p::request_header{p::message_flags::binary, 9, 0, ask_guid, 0xabcdef},
                            std::string_view("question"));
            send(h, frame);
            // and a manifest update: /silent removed
            send(h, event_frame(manifest(false)));
        } else if (f.service == refresh_guid) {
            const auto body = nlohmann::json::parse(f.payload.as_chars(), nullptr, false);
            const bool ok = body.is_object() && body.value("accessToken", "") == "fresh";
            reply(h, f, ok ? p::response_code::ok : p::response_code::backend_unauthorized, "{}");
        } else {
            reply(h, f, p::response_code::service_not_found, {});
        }
    }

    asio::io_context io_;
    server_type server_;
    std::uint16_t port_ = 0;
    std::thread thread_;
    std::set<websocketpp::connection_hdl, std::owner_less<websocketpp::connection_hdl>> open_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::string> auth_;
    std::vector<std::string> client_responses_;
    std::atomic<int> events_received_{0};
};

/// The client's io_context on its own thread.
struct client_loop {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
    std::thread thread{[this] { io.run(); }};
    ~client_loop() {
        work.reset();
        thread.join();
    }
};

c::client_options options_for(const scripted_server& s, std::string token) {
    c::client_options o;
    o.url = s.url();
    o.credential = std::move(token);
    o.manifest_timeout = 2s;
    o.connect_timeout = 2s;
    return o;
}

template <class T>
T get(std::future<T>& f) {
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    return f.get();
}

}  // namespace

TEST_CASE("client: connect, manifest, calls and their outcomes") {
    scripted_server server;
    client_loop loop;
    auto cl = c::client::create(loop.io, options_for(server, "good"));
    std::promise<std::string> welcome;
    cl->on_event("system.notification", [&](const c::event& e) { welcome.set_value(e.payload); });

    auto connected = cl->connect();
    REQUIRE(connected.wait_for(5s) == std::future_status::ready);
    connected.get();
    CHECK(cl->connected());
    CHECK(cl->session_id()->to_string() == session_text);
    CHECK(server.auth_headers() == std::vector<std::string>{"Bearer good"});

    auto r = cl->call("/echo", R"({"hello":"world"})");
    const auto echoed = get(r);
    CHECK(echoed.ok());
    CHECK(echoed.payload == R"({"hello":"world"})");
    CHECK_FALSE(echoed.binary());

    auto unknown = cl->call("/nope", "{}");
    CHECK_THROWS_WITH_AS(get(unknown), doctest::Contains("not in the current capability manifest"), std::system_error);

    std::promise<std::error_code> timed_out;
    cl->async_call("/silent", "{}", {0, 100ms, false}, [&](std::error_code ec, c::response) { timed_out.set_value(ec); });
    auto tf = timed_out.get_future();
    CHECK(get(tf) == c::client_errc::call_timeout);

    auto wf = welcome.get_future();
    CHECK(get(wf).find("welcome") != std::string::npos);

    std::promise<std::error_code> sent;
    cl->send_event("/echo", "{}", 0, [&](std::error_code ec) { sent.set_value(ec); });
    auto sf = sent.get_future();
    CHECK_FALSE(get(sf));
    for (int i = 0; i < 100 && server.events_received() == 0; ++i) std::this_thread::sleep_for(10ms);
    CHECK(server.events_received() == 1);

    // A pending call fails with call_cancelled when the client closes.
    std::promise<std::error_code> cancelled;
    cl->async_call("/silent", "{}", {}, [&](std::error_code ec, c::response) { cancelled.set_value(ec); });
    cl->close();
    auto cf = cancelled.get_future();
    CHECK(get(cf) == c::client_errc::call_cancelled);
    for (int i = 0; i < 100 && cl->connected(); ++i) std::this_thread::sleep_for(10ms);
    CHECK_FALSE(cl->connected());
    auto after = cl->call("/echo", "{}");
    CHECK_THROWS_AS(get(after), std::system_error);
}

TEST_CASE("client: refused upgrades and unreachable servers") {
    scripted_server server;
    client_loop loop;
    {
        auto cl = c::client::create(loop.io, options_for(server, "bad"));
        auto f = cl->connect();
        REQUIRE(f.wait_for(5s) == std::future_status::ready);
        try {
            f.get();
            FAIL("connect should fail");
        } catch (const std::system_error& e) {
            CHECK(e.code() == c::client_errc::upgrade_unauthorized);
            CHECK_FALSE(c::is_retryable(e.code()));
        }
        CHECK(cl->last_http_status() == 401);
    }
    {
        auto cl = c::client::create(loop.io, options_for(server, "busy"));
        auto f = cl->connect();
        REQUIRE(f.wait_for(5s) == std::future_status::ready);
        CHECK_THROWS_AS(f.get(), std::system_error);
        CHECK(cl->last_http_status() == 503);
    }
    {
        // Nothing listens on the port of a server that is gone.
        c::client_options o;
        {
            scripted_server gone;
            o = options_for(gone, "good");
        }
        auto cl = c::client::create(loop.io, o);
        std::promise<std::error_code> done;
        cl->async_connect([&](std::error_code ec) { done.set_value(ec); });
        auto f = done.get_future();
        CHECK(get(f) == c::client_errc::connect_failed);
    }
    {
        auto o = options_for(server, "silent");
        o.manifest_timeout = 200ms;
        auto cl = c::client::create(loop.io, o);
        std::promise<std::error_code> done;
        cl->async_connect([&](std::error_code ec) { done.set_value(ec); });
        auto f = done.get_future();
        CHECK(get(f) == c::client_errc::manifest_timeout);
    }
    CHECK_THROWS_AS(c::client::create(loop.io, [] {
        c::client_options o;
        o.url = "http://127.0.0.1:1/connect";
        return o;
    }()), std::invalid_argument);
}

TEST_CASE("client: server requests, manifest updates and token refresh") {
    scripted_server server;
    client_loop loop;
    auto cl = c::client::create(loop.io, options_for(server, "good"));
    std::promise<c::capability_diff> update;
    std::atomic<int> diffs{0};
    cl->on_capabilities([&](const c::capability_diff& d) {
        if (++diffs == 2) update.set_value(d);  // the first is the initial manifest
    });
    cl->on_request([](const c::incoming_request& req, c::client::reply_function reply) {
        CHECK(req.payload == "question");
        CHECK_FALSE(req.peer());
        reply(p::response_code::ok, "answer", true);
    });
    auto connected = cl->connect();
    REQUIRE(connected.wait_for(5s) == std::future_status::ready);
    connected.get();

    auto r = cl->call("/ask", "{}");
    CHECK(get(r).ok());
    const auto bytes = server.wait_client_response();
    p::frame_view f;
    REQUIRE_FALSE(p::decode_frame(bytes, f));
    CHECK(f.is_response());
    CHECK(f.message_id == 0xabcdef);  // correlated by message id
    CHECK(f.channel == 9);
    CHECK(f.has(p::message_flags::binary));
    CHECK(f.payload.as_chars() == "answer");

    auto uf = update.get_future();
    const auto diff = get(uf);
    REQUIRE(diff.removed.size() == 1);
    CHECK(diff.removed[0].endpoint == "/silent");
    CHECK(diff.added.empty());
    auto gone = cl->call("/silent", "{}");
    CHECK_THROWS_AS(get(gone), std::system_error);

    std::promise<c::response> refused;
    cl->async_refresh("stale", [&](std::error_code, c::response resp) { refused.set_value(resp); });
    auto rf = refused.get_future();
    CHECK(get(rf).code == p::response_code::backend_unauthorized);
    std::promise<c::response> refreshed;
    cl->async_refresh("fresh", [&](std::error_code, c::response resp) { refreshed.set_value(resp); });
    auto ff = refreshed.get_future();
    CHECK(get(ff).ok());
    cl->close();
}

TEST_CASE("client: a kick is final, a shutdown with a token reconnects with it") {
    scripted_server server;
    client_loop loop;
    auto o = options_for(server, "good");
    o.auto_reconnect = true;
    o.backoff = {20ms, 100ms, 2.0, 1.0, 5};
    auto cl = c::client::create(loop.io, o);

    std::mutex m;
    std::vector<c::disconnect_info> disconnects;
    std::atomic<int> connections{0};
    cl->on_disconnect([&](const c::disconnect_info& d) {
        std::lock_guard<std::mutex> lock(m);
        disconnects.push_back(d);
    });
    cl->on_connected([&] { ++connections; });
    auto connected = cl->connect();
    REQUIRE(connected.wait_for(5s) == std::future_status::ready);
    connected.get();
    CHECK(connections == 1);

    // Shutdown with a disconnect notification: reconnect with the token.
    std::promise<std::error_code> first_call;
    cl->async_call("/kick", "shutdown", {}, [&](std::error_code ec, c::response) { first_call.set_value(ec); });
    for (int i = 0; i < 300 && connections < 2; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(connections == 2);
    {
        std::lock_guard<std::mutex> lock(m);
        REQUIRE(disconnects.size() == 1);
        CHECK(disconnects[0].reason == p::disconnect_reason::server_shutdown);
        CHECK(disconnects[0].can_reconnect);
        CHECK(disconnects[0].reconnection_token == "tok-1");
    }
    CHECK(server.auth_headers() == std::vector<std::string>{"Bearer good", "Reconnect tok-1"});
    auto fc = first_call.get_future();
    CHECK(get(fc) == c::client_errc::call_cancelled);  // the server closed instead of answering
    auto r = cl->call("/echo", "1");
    CHECK(get(r).payload == "1");

    // Kicked (4002) without a notification: terminal, no reconnection.
    cl->async_call("/kick", "kick", {}, [](std::error_code, c::response) {});
    for (int i = 0; i < 300 && cl->connected(); ++i) std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(200ms);  // longer than any backoff delay
    {
        std::lock_guard<std::mutex> lock(m);
        REQUIRE(disconnects.size() == 2);
        CHECK(disconnects[1].reason == p::disconnect_reason::kicked);
        CHECK_FALSE(disconnects[1].can_reconnect);
    }
    CHECK(connections == 2);
    CHECK(server.auth_headers().size() == 2);
    CHECK_FALSE(cl->connected());
}
