// The gateway on real sockets (websocketpp transport) against a WebSocket
// client we did not write: Python `websockets` (Debian's python3-websockets,
// run with /usr/bin/python3) speaking the protocol from ws_scenarios.py.
//
// The gateway uses the real authentication layer (HS256 JWTs, API keys) and
// the in-memory session store. A few test-only endpoints let the client
// trigger host actions (push, groups, permission changes, reconnection tokens).
#include <gatehouse/auth/api_key_validator.hpp>
#include <gatehouse/auth/jwt_signer.hpp>
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/auth/validator_chain.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/session/memory_session_store.hpp>

#include "../support/run_command.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace auth = gatehouse::auth;
namespace r = gatehouse::routing;
namespace s = gatehouse::server;
namespace session = gatehouse::session;

namespace {

const std::string hs256_secret = "integration-test-secret-0123456789abcdef";
const std::string guid_salt = "integration-salt";

std::string mint(const std::string& subject, const std::string& session_key, const nlohmann::json& permissions) {
    auth::signing_key_ptr key;
    REQUIRE_FALSE(auth::make_hmac_signing_key(hs256_secret, "", key));
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    nlohmann::json claims = {{"sub", subject},       {"session_key", session_key}, {"permissions", permissions},
                             {"roles", {"player"}}, {"iat", now},                 {"exp", now + 600}};
    std::string token;
    REQUIRE_FALSE(auth::sign_jwt(claims, *key, auth::jwt_algorithm::hs256, token));
    return token;
}

std::shared_ptr<auth::token_validator> make_validator() {
    auth::key_ptr key;
    REQUIRE_FALSE(auth::make_hmac_key(hs256_secret, "", {}, key));
    auth::key_set keys;
    REQUIRE_FALSE(keys.add(key));
    // No leeway: the expiry scenarios (ws_scenarios.py) expect the close at
    // "exp" itself; since issue 13 the gateway ends a session at exp + leeway.
    auth::jwt_options jwt_options;
    jwt_options.leeway = std::chrono::seconds(0);
    auto jwt = std::make_shared<auth::jwt_validator>(jwt_options, std::move(keys));
    auto api_keys = std::make_shared<auth::api_key_validator>();
    auth::identity bot;
    bot.subject = "bot-account";
    bot.session_key = "0b0b0b0b-0000-4000-8000-000000000001";
    REQUIRE_FALSE(api_keys->add("integration-api-key-0001", bot));
    auto chain = std::make_shared<auth::validator_chain>();
    chain->set_validator(auth::credential_kind::bearer, jwt);
    chain->set_validator(auth::credential_kind::api_key, api_keys);
    return chain;
}

r::endpoint_options endpoint(std::string service, std::string path, std::string description = {}) {
    r::endpoint_options o;
    o.service = std::move(service);
    o.path = std::move(path);
    o.description = std::move(description);
    return o;
}

/// A gateway listening on an ephemeral port, run on its own threads, with
/// the revocation list it watches and the host threads test endpoints start.
struct running_gateway {
    running_gateway(s::gateway_options options, std::size_t io_threads)
        : store(std::make_shared<session::memory_session_store>()),
          revocations(std::make_shared<auth::memory_revocation_list>()) {
        options.io_threads = io_threads;
        options.port = 0;
        gw = std::make_unique<s::gateway>(std::move(options), make_validator(), store);
        gw->watch_revocations(revocations);
    }
    void start() {
        REQUIRE_FALSE(gw->listen());
        REQUIRE(gw->local_port() != 0);
        thread = std::thread([this] { gw->run(); });
    }
    /// Runs `body` on a host thread (not an I/O thread), joined before the
    /// gateway stops; `body` should return soon once `stopping` is set.
    void spawn(std::function<void()> body) {
        std::lock_guard<std::mutex> lock(host_threads_mutex);
        host_threads.emplace_back(std::move(body));
    }
    ~running_gateway() {
        stopping = true;
        {
            std::lock_guard<std::mutex> lock(host_threads_mutex);
            for (auto& t : host_threads) t.join();
        }
        gw->stop();
        if (thread.joinable()) thread.join();
    }
    std::shared_ptr<session::memory_session_store> store;
    std::shared_ptr<auth::memory_revocation_list> revocations;
    std::unique_ptr<s::gateway> gw;
    std::thread thread;
    std::atomic<bool> stopping{false};
    std::mutex host_threads_mutex;
    std::vector<std::thread> host_threads;
};

/// The JSON object of a request body, or a discarded value (is_object() false).
nlohmann::json body_of(const r::request& req) { return nlohmann::json::parse(req.payload.as_chars(), nullptr, false); }

void add_endpoints(running_gateway& host) {
    s::gateway& gw = *host.gw;
    const auto& store = host.store;
    auto echo = endpoint("demo", "/demo/echo", "Echoes the request body");
    echo.request_schema = {{"type", "object"}};
    gw.add_endpoint(echo, [](const r::request& req, r::responder answer) { answer.reply(req.payload.as_chars()); });
    auto secret = endpoint("demo", "/demo/secret");
    secret.required_permission = "secret:read";
    gw.add_endpoint(secret, [](const r::request&, r::responder answer) { answer.reply(R"({"secret":42})"); });
    gw.add_endpoint(endpoint("demo", "/demo/binary"), [](const r::request&, r::responder answer) {
        answer.reply_binary(gatehouse::protocol::bytes_view(std::string_view("\x01\x02\x03", 3)));
    });
    gw.add_endpoint(endpoint("demo", "/demo/missing"),
                    [](const r::request&, r::responder answer) { answer.reply_http(404, ""); });
    gw.add_endpoint(endpoint("demo", "/demo/drop"), [](const r::request&, r::responder) {});
    // Completed later from another thread.
    gw.add_endpoint(endpoint("demo", "/demo/later"), [](const r::request& req, r::responder answer) {
        std::thread([answer = std::move(answer), body = std::string(req.payload.as_chars())]() mutable {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            answer.reply(body);
        }).detach();
    });
    // Host actions, for the test client.
    gw.add_endpoint(endpoint("test", "/test/push-self"), [&gw](const r::request& req, r::responder answer) {
        gw.push_to_session(req.session->session_id, "test.pushed", {{"to", req.session->session_id}});
        answer.reply("{}");
    });
    gw.add_endpoint(endpoint("chat", "/chat/join"), [&gw](const r::request& req, r::responder answer) {
        const auto body = body_of(req);
        if (!body.is_object() || !body.contains("room") || !body["room"].is_string()) return (void)answer.fail(gatehouse::protocol::response_code::backend_bad_request);
        answer.reply_http(gw.join_group(req.session->session_id, "room:" + body["room"].get<std::string>()) ? 400 : 200, "{}");
    });
    gw.add_endpoint(endpoint("chat", "/chat/leave"), [&gw](const r::request& req, r::responder answer) {
        const auto body = body_of(req);
        if (!body.is_object() || !body.contains("room") || !body["room"].is_string()) return (void)answer.fail(gatehouse::protocol::response_code::backend_bad_request);
        answer.reply_http(gw.leave_group(req.session->session_id, "room:" + body["room"].get<std::string>()) ? 400 : 200, "{}");
    });
    gw.add_endpoint(endpoint("chat", "/chat/say"), [&gw](const r::request& req, r::responder answer) {
        const auto body = body_of(req);
        if (!body.is_object() || !body.contains("room") || !body["room"].is_string()) return (void)answer.fail(gatehouse::protocol::response_code::backend_bad_request);
        const auto n = gw.push_to_group("room:" + body["room"].get<std::string>(), "chat.message",
                                        {{"from", req.session->account_id}, {"text", body.value("text", "")}});
        answer.reply(nlohmann::json{{"delivered", n}}.dump());
    });
    gw.add_endpoint(endpoint("test", "/test/grant"), [&gw](const r::request& req, r::responder answer) {
        gw.set_permissions(req.session->session_id, {"player"}, {"secret:read"}, "role_changed");
        answer.reply("{}");
    });
    gw.add_endpoint(endpoint("test", "/test/shutdown"), [&gw](const r::request&, r::responder answer) {
        answer.reply("{}");
        gw.stop();
    });
    gw.add_endpoint(endpoint("test", "/test/reconnect-token"), [store](const r::request& req, r::responder answer) {
        auto shared = std::make_shared<r::responder>(std::move(answer));
        store->issue_reconnect_token(req.session->session_id, std::chrono::seconds(60),
                                     [shared](std::error_code ec, session::reconnect_token t) {
                                         if (ec) return (void)shared->fail(gatehouse::protocol::response_code::backend_internal_error);
                                         shared->reply(nlohmann::json{{"token", t.token}}.dump());
                                     });
    });
    // Revocation by a host call: {"session": id}.
    gw.add_endpoint(endpoint("test", "/test/revoke-session"), [&gw](const r::request& req, r::responder answer) {
        const auto body = body_of(req);
        if (!body.is_object() || !body.contains("session") || !body["session"].is_string())
            return (void)answer.fail(gatehouse::protocol::response_code::backend_bad_request);
        auto shared = std::make_shared<r::responder>(std::move(answer));
        gw.revoke_session(body["session"].get<std::string>(), [shared](std::error_code ec) {
            if (ec) return (void)shared->reply_http(500, nlohmann::json{{"error", ec.message()}}.dump());
            shared->reply("{}");
        });
    });
    // Revocation through the watched revocation list: {"account": id}.
    gw.add_endpoint(endpoint("test", "/test/revoke-account"), [&host](const r::request& req, r::responder answer) {
        const auto body = body_of(req);
        if (!body.is_object() || !body.contains("account") || !body["account"].is_string())
            return (void)answer.fail(gatehouse::protocol::response_code::backend_bad_request);
        auth::revocation entry;
        entry.scope = auth::revocation_scope::account;
        entry.value = body["account"].get<std::string>();
        entry.until = std::chrono::system_clock::now() + std::chrono::hours(1);
        if (auto ec = host.revocations->revoke(entry)) return (void)answer.reply_http(500, ec.message());
        answer.reply("{}");
    });
    // Pushes `count` events of `size` bytes to the caller from a host thread,
    // one every `interval_us`: {"count", "size", "interval_us"}. Answers at
    // once; the pushes follow.
    gw.add_endpoint(endpoint("test", "/test/flood"), [&host](const r::request& req, r::responder answer) {
        const auto body = body_of(req);
        if (!body.is_object()) return (void)answer.fail(gatehouse::protocol::response_code::backend_bad_request);
        const auto count = body.value("count", 0);
        const auto size = body.value("size", 0);
        const auto interval = std::chrono::microseconds(body.value("interval_us", 1000));
        if (count <= 0 || count > 100000 || size <= 0 || size > 1 << 20)
            return (void)answer.fail(gatehouse::protocol::response_code::backend_bad_request);
        answer.reply("{}");
        host.spawn([&host, session_id = req.session->session_id, count, size, interval] {
            const nlohmann::json event = {{"pad", std::string(static_cast<std::size_t>(size), 'f')}};
            auto next = std::chrono::steady_clock::now();
            for (int i = 0; i < count && !host.stopping; ++i) {
                if (host.gw->push_to_session(session_id, "test.flood", event)) return;
                next += interval;
                std::this_thread::sleep_until(next);
            }
        });
    });
}

using gatehouse::test::run_command;

void run_scenarios(std::size_t io_threads, bool tls = false) {
    s::gateway_options options;
    std::string tls_dir;
    if (tls) {
        char pattern[] = "/tmp/gatehouse-tls-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        tls_dir = pattern;
        int status = 0;
        const auto output = run_command("/usr/bin/python3 " + std::string(GATEHOUSE_SOURCE_DIR) +
                                            "/tests/server/make_test_cert.py " + tls_dir + " 2>&1",
                                        status);
        INFO(output);
        REQUIRE(status == 0);
        options.tls_certificate_file = tls_dir + "/cert.pem";
        options.tls_private_key_file = tls_dir + "/key.pem";
    }
    options.guid_salt = guid_salt;
    options.accept_api_keys = true;
    options.accept_query_token = true;
    options.accept_subprotocol_token = true;
    options.allowed_origins = {"https://game.example"};
    options.max_message_size = 4096;
    options.max_payload_size = 1024;
    options.message_burst = 200;
    options.messages_per_minute = 60;
    options.connect_burst = 60;
    options.connects_per_second = 0.5;
    options.ping_interval = std::chrono::milliseconds(100);
    options.handshake_timeout = std::chrono::milliseconds(1000);
    options.max_send_queue_bytes = 1 << 20;
    options.metrics = std::make_shared<s::prometheus_metrics>();
    running_gateway main(options, io_threads);
    add_endpoints(main);
    main.start();

    // A second gateway for the connection caps.
    auto capped_options = options;
    capped_options.max_connections = 2;
    capped_options.max_sessions_per_account = 1;
    // A pong timeout longer than the ping interval: each ping's deadline
    // must still run out (websocketpp cancels it when the next ping goes).
    capped_options.ping_interval = std::chrono::milliseconds(100);
    capped_options.pong_timeout = std::chrono::milliseconds(300);
    running_gateway capped(capped_options, 1);
    add_endpoints(capped);
    capped.start();

    nlohmann::json config = {
        {"port", main.gw->local_port()},
        {"capped_port", capped.gw->local_port()},
        {"salt", guid_salt},
        {"session_a", "6f9619ff-8b86-4d11-b42d-00c04fc964ff"},
        {"session_b", "7a9619ff-8b86-4d11-b42d-00c04fc964aa"},
        {"session_c", "8b9619ff-8b86-4d11-b42d-00c04fc964bb"},
        {"token_a", mint("alice", "6f9619ff-8b86-4d11-b42d-00c04fc964ff", nlohmann::json::array())},
        {"token_b", mint("bob", "7a9619ff-8b86-4d11-b42d-00c04fc964aa", nlohmann::json::array())},
        {"token_c", mint("carol", "8b9619ff-8b86-4d11-b42d-00c04fc964bb", nlohmann::json::array({"secret:read"}))},
        {"token_a2", mint("alice", "9c9619ff-8b86-4d11-b42d-00c04fc964cc", nlohmann::json::array())},
        {"api_key", "integration-api-key-0001"},
        {"api_key_session", "0b0b0b0b-0000-4000-8000-000000000001"},
        {"max_payload", 1024},
        {"max_message", 4096},
        {"burst", 200},
        {"hs256_secret", hs256_secret},
        {"max_send_queue", 1 << 20},
    };
    if (tls) config["tls_ca"] = tls_dir + "/cert.pem";
    const std::string config_path =
        "ws_scenarios_" + std::to_string(io_threads) + (tls ? "_tls" : "") + ".json";
    {
        std::ofstream out(config_path);
        out << config.dump();
    }
    int status = 0;
    const std::string script = std::string(GATEHOUSE_SOURCE_DIR) + "/tests/server/ws_scenarios.py";
    const auto output = run_command("/usr/bin/python3 " + script + " " + config_path + " 2>&1", status);
    std::remove(config_path.c_str());
    if (tls) {
        std::remove((tls_dir + "/cert.pem").c_str());
        std::remove((tls_dir + "/key.pem").c_str());
        ::rmdir(tls_dir.c_str());
    }
    INFO(output);
    if (std::getenv("GATEHOUSE_TEST_VERBOSE")) MESSAGE(output);
    CHECK(status == 0);
    CHECK(output.find("ALL SCENARIOS PASSED") != std::string::npos);
}

}  // namespace

TEST_CASE("websocket transport: Python websockets client, one I/O thread") { run_scenarios(1); }

TEST_CASE("websocket transport: Python websockets client, two I/O threads") { run_scenarios(2); }

TEST_CASE("websocket transport: wss:// with a certificate file, TLS 1.2 minimum") { run_scenarios(1, true); }

TEST_CASE("websocket transport: wss:// with two I/O threads") { run_scenarios(2, true); }

TEST_CASE("websocket transport: listen errors are reported, stop before run is safe") {
    s::gateway_options options;
    options.guid_salt = guid_salt;
    options.listen_address = "not-an-address";
    s::gateway bad(options, make_validator(), std::make_shared<session::memory_session_store>());
    CHECK(bad.listen() == s::server_errc::listen_failed);

    options.listen_address = "127.0.0.1";
    options.port = 0;
    options.tls_certificate_file = "/nonexistent/cert.pem";
    options.tls_private_key_file = "/nonexistent/key.pem";
    s::gateway tls(options, make_validator(), std::make_shared<session::memory_session_store>());
    CHECK(tls.listen() == s::server_errc::tls_setup_failed);

    options.tls_certificate_file.clear();
    options.tls_private_key_file.clear();
    s::gateway idle(options, make_validator(), std::make_shared<session::memory_session_store>());
    REQUIRE_FALSE(idle.listen());
    idle.stop();
    idle.run();  // returns at once: stopped before it ran
}
