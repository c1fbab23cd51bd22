// Reconnection with queued events, server-to-client requests and peer
// routing over real sockets (websocketpp transport), driven by a client we
// did not write: Python `websockets` (Debian's python3-websockets, run with
// /usr/bin/python3) speaking the protocol from ws_push_peers.py.
//
// Test-only endpoints let the Python side trigger the host calls:
//   /test/push {to, name}        gateway::push_to_session
//   /test/push-group {room, name} gateway::push_to_group
//   /test/join {room}            gateway::join_group (the caller)
//   /test/bounce {code}          gateway::disconnect (the caller)
//   /test/ask {payload, timeout_ms, binary}  gateway::call_client (the
//       caller); the outcome is pushed as `test.asked` to the caller and to
//       the group "observers" (which sees it after the caller is gone)
//   /test/stats                  gateway_stats as JSON
#include "../support/run_command.hpp"
#include "harness.hpp"

#include <gatehouse/server/gateway.hpp>

#include <array>
#include <cstdio>
#include <fstream>
#include <thread>

using namespace gatehouse::test;

namespace {

struct live {
    explicit live(s::gateway_options options, std::size_t io_threads) {
        options.port = 0;
        options.listen_address = "127.0.0.1";
        options.io_threads = io_threads;
        gw = std::make_unique<s::gateway>(std::move(options), std::make_shared<scripted_validator>(),
                                          std::make_shared<session::memory_session_store>());
        add_endpoints(*gw);
        REQUIRE_FALSE(gw->listen());
        thread = std::thread([this] { gw->run(); });
    }
    ~live() {
        gw->stop();
        thread.join();
    }
    live(const live&) = delete;
    live& operator=(const live&) = delete;

    static nlohmann::json body_of(const r::request& req) {
        auto body = nlohmann::json::parse(req.payload.as_chars(), nullptr, false);
        return body.is_object() ? body : nlohmann::json::object();
    }

    static void add_endpoints(s::gateway& gw) {
        gw.add_endpoint(ep("test", "/echo"),
                        [](const r::request& req, r::responder answer) { answer.reply(req.payload.as_chars()); });
        gw.add_endpoint(ep("test", "/test/push"), [&gw](const r::request& req, r::responder answer) {
            const auto body = body_of(req);
            const auto ec = gw.push_to_session(body.value("to", ""), body.value("name", ""));
            answer.reply(nlohmann::json{{"error", ec ? ec.message() : ""}}.dump());
        });
        gw.add_endpoint(ep("test", "/test/push-group"), [&gw](const r::request& req, r::responder answer) {
            const auto body = body_of(req);
            const auto n = gw.push_to_group(body.value("room", ""), body.value("name", ""));
            answer.reply(nlohmann::json{{"targets", n}}.dump());
        });
        gw.add_endpoint(ep("test", "/test/join"), [&gw](const r::request& req, r::responder answer) {
            const auto ec = gw.join_group(req.session->session_id, body_of(req).value("room", ""));
            answer.reply(nlohmann::json{{"error", ec ? ec.message() : ""}}.dump());
        });
        gw.add_endpoint(ep("test", "/test/bounce"), [&gw](const r::request& req, r::responder answer) {
            answer.reply("{}");
            gw.disconnect(req.session->session_id, static_cast<std::uint16_t>(body_of(req).value("code", 1001)),
                          "come back later");
        });
        gw.add_endpoint(ep("test", "/test/ask"), [&gw](const r::request& req, r::responder answer) {
            const auto body = body_of(req);
            s::client_call_options options;
            options.timeout = std::chrono::milliseconds(body.value("timeout_ms", 3000));
            options.binary = body.value("binary", false);
            options.channel = 42;
            const std::string sid = req.session->session_id;
            const auto ec = gw.call_client(
                sid, body.value("payload", ""),
                [&gw, sid](std::error_code e, s::client_reply reply) {
                    const nlohmann::json outcome = {{"session", sid},
                                                    {"error", e ? e.message() : ""},
                                                    {"code", static_cast<int>(reply.code)},
                                                    {"binary", reply.binary},
                                                    {"payload", reply.payload}};
                    gw.push_to_session(sid, "test.asked", outcome);
                    gw.push_to_group("observers", "test.asked", outcome);
                },
                options);
            answer.reply(nlohmann::json{{"error", ec ? ec.message() : ""}}.dump());
        });
        gw.add_endpoint(ep("test", "/test/stats"), [&gw](const r::request&, r::responder answer) {
            const auto st = gw.stats();
            answer.reply(nlohmann::json{{"parked_sessions", st.parked_sessions},
                                        {"queued_events", st.queued_events},
                                        {"queued_events_delivered", st.queued_events_delivered},
                                        {"sessions_resumed", st.sessions_resumed},
                                        {"client_calls_pending", st.client_calls_pending},
                                        {"client_calls_timed_out", st.client_calls_timed_out},
                                        {"responses_unmatched", st.responses_unmatched},
                                        {"peer_messages_forwarded", st.peer_messages_forwarded}}
                             .dump());
        });
    }

    std::unique_ptr<s::gateway> gw;
    std::thread thread;
};

using gatehouse::test::run_command;

void run_scenarios(std::size_t io_threads) {
    auto options = default_options();
    options.reconnect_queue_max_bytes = 256 * 1024;  // the library's default
    options.peer_routing = true;
    options.peer_broadcast = true;
    options.ping_interval = std::chrono::milliseconds(0);
    live relayed(options, io_threads);

    auto external_options = default_options();
    live external(external_options, 1);

    const nlohmann::json config = {
        {"port", relayed.gw->local_port()},
        {"external_port", external.gw->local_port()},
        {"salt", salt},
        {"session_a", session_a},
        {"session_b", session_b},
        {"session_c", "8b9619ff-8b86-4d11-b42d-00c04fc964bb"},
        {"session_d", "9c9619ff-8b86-4d11-b42d-00c04fc964cc"},
        {"token_a", token("alice", session_a)},
        {"token_b", token("bob", session_b)},
        {"token_c", token("carol", "8b9619ff-8b86-4d11-b42d-00c04fc964bb")},
        {"token_d", token("dave", "9c9619ff-8b86-4d11-b42d-00c04fc964cc")},
    };
    const std::string config_path = "ws_push_peers_" + std::to_string(io_threads) + ".json";
    {
        std::ofstream out(config_path);
        out << config.dump();
    }
    int status = 0;
    const std::string script = std::string(GATEHOUSE_SOURCE_DIR) + "/tests/server/ws_push_peers.py";
    const auto output = run_command("/usr/bin/python3 " + script + " " + config_path + " 2>&1", status);
    std::remove(config_path.c_str());
    INFO(output);
    if (std::getenv("GATEHOUSE_TEST_VERBOSE")) MESSAGE(output);
    CHECK(status == 0);
    CHECK(output.find("ALL SCENARIOS PASSED") != std::string::npos);
}

}  // namespace

TEST_CASE("push, client requests, peers over real sockets: Python websockets client, one I/O thread") {
    run_scenarios(1);
}

TEST_CASE("push, client requests, peers over real sockets: Python websockets client, two I/O threads") {
    run_scenarios(2);
}
