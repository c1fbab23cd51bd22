// One node of the cluster demo (examples/cluster/run.sh starts three): a
// gateway whose sessions live in Redis (redis_session_store) and which
// reaches the other nodes' connections through Redis (redis_event_bus).
// Tokens are HS256 JWTs signed with the demo secret below (demo.py mints
// them). Endpoints:
//   demo:/demo/echo            echoes its body
//   chat:/chat/join            {"room": name}: join a room (members on every node)
//   chat:/chat/say             {"room": name, "text": words}: chat.message to the room
//   admin:/admin/revoke        {"account": id}: revokes the account on every
//                              node (needs permission admin:revoke)
//
// Usage: cluster_node --node-id a --port 9101 --redis-port 6379
// Prints "node <id> listening on <url>"; stops on SIGINT/SIGTERM.
#include <gatehouse/adapters/redis/redis_event_bus.hpp>
#include <gatehouse/adapters/redis/redis_session_store.hpp>
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/server/gateway.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

namespace auth = gatehouse::auth;
namespace r = gatehouse::routing;
namespace s = gatehouse::server;
namespace redis = gatehouse::adapters::redis;

namespace {

// A demo secret: anyone who reads this file can mint tokens. Never reuse it.
constexpr const char* demo_secret = "gatehouse-cluster-demo-secret-do-not-use";

std::string setting(int argc, char** argv, const std::string& flag, std::string fallback) {
    for (int i = 1; i + 1 < argc; ++i)
        if (argv[i] == flag) return argv[i + 1];
    return fallback;
}

std::shared_ptr<auth::token_validator> demo_validator() {
    auth::key_ptr key;
    auth::key_set keys;
    if (auth::make_hmac_key(demo_secret, "", {}, key) || keys.add(key))
        throw std::runtime_error("could not load the demo key");
    return std::make_shared<auth::jwt_validator>(auth::jwt_options{}, std::move(keys));
}

r::endpoint_options endpoint(const char* service, const char* path, const char* description,
                             const char* permission = "") {
    r::endpoint_options o;
    o.service = service;
    o.path = path;
    o.description = description;
    o.required_permission = permission;
    return o;
}

/// A string member of a JSON request body, or empty.
std::string member(const r::request& req, const char* name) {
    const auto body = nlohmann::json::parse(req.payload.as_chars(), nullptr, false);
    if (!body.is_object() || !body.contains(name) || !body[name].is_string()) return {};
    return body[name].get<std::string>();
}

void add_endpoints(s::gateway& gw, const std::string& node_id) {
    gw.add_endpoint(endpoint("demo", "/demo/echo", "Echoes the request body"),
                    [](const r::request& req, r::responder answer) { answer.reply(req.payload.as_chars()); });
    gw.add_endpoint(endpoint("chat", "/chat/join", "Join a chat room: {\"room\": name}"),
                    [&gw, node_id](const r::request& req, r::responder answer) {
                        const auto room = member(req, "room");
                        if (room.empty() || gw.join_group(req.session->session_id, "chat:" + room))
                            return (void)answer.reply_http(400, "");
                        answer.reply(nlohmann::json{{"room", room}, {"node", node_id}}.dump());
                    });
    gw.add_endpoint(endpoint("chat", "/chat/say", "Say something: {\"room\": name, \"text\": words}"),
                    [&gw, node_id](const r::request& req, r::responder answer) {
                        const auto room = member(req, "room");
                        const auto text = member(req, "text");
                        if (room.empty()) return (void)answer.reply_http(400, "");
                        gw.push_to_group("chat:" + room, "chat.message",
                                         {{"room", room}, {"from", req.session->account_id}, {"text", text},
                                          {"viaNode", node_id}});
                        answer.reply("{}");
                    });
    gw.add_endpoint(endpoint("chat", "/chat/whisper", "To one session, wherever it is: {\"session\": id, \"text\": words}"),
                    [&gw, node_id](const r::request& req, r::responder answer) {
                        const auto session = member(req, "session");
                        if (session.empty()) return (void)answer.reply_http(400, "");
                        // Held in Redis when the session is parked, or when the
                        // node that held it died: delivered when it comes back.
                        const auto ec = gw.push_to_session(session, "chat.whisper",
                                                           {{"from", req.session->account_id},
                                                            {"text", member(req, "text")}, {"viaNode", node_id}});
                        if (ec) return (void)answer.reply_http(404, "");
                        answer.reply("{}");
                    });
    gw.add_endpoint(endpoint("admin", "/admin/revoke", "Revoke an account on every node: {\"account\": id}",
                             "admin:revoke"),
                    [&gw](const r::request& req, r::responder answer) {
                        const auto account = member(req, "account");
                        if (account.empty()) return (void)answer.reply_http(400, "");
                        auto shared = std::make_shared<r::responder>(std::move(answer));
                        gw.revoke_account(account, [shared](std::error_code ec, std::size_t n) {
                            if (ec) return (void)shared->reply_http(503, "");
                            shared->reply(nlohmann::json{{"revoked", n}}.dump());
                        });
                    });
}

}  // namespace

int main(int argc, char** argv) try {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const auto node_id = setting(argc, argv, "--node-id", "a");
    const auto redis_port = std::stoi(setting(argc, argv, "--redis-port", "6379"));

    // Redis clients run on their own thread: the gateway's I/O threads
    // never wait for Redis.
    asio::io_context redis_io;
    auto work = asio::make_work_guard(redis_io);
    std::thread redis_thread([&redis_io] { redis_io.run(); });

    redis::redis_session_store_options store_options;
    store_options.port = redis_port;
    auto store = std::make_shared<redis::redis_session_store>(redis_io.get_executor(), store_options);
    redis::redis_event_bus_options bus_options;
    bus_options.node_id = node_id;
    bus_options.port = redis_port;
    // A node that dies is known dead (and its sessions' events are queued
    // in Redis by whoever pushes them) within a second.
    bus_options.heartbeat_interval = std::chrono::milliseconds(250);
    bus_options.heartbeat_ttl = std::chrono::milliseconds(1000);
    auto bus = std::make_shared<redis::redis_event_bus>(redis_io.get_executor(), bus_options);

    s::gateway_options options;
    options.listen_address = "127.0.0.1";
    options.port = static_cast<std::uint16_t>(std::stoi(setting(argc, argv, "--port", "0")));
    options.guid_salt = "gatehouse-cluster-demo-salt";
    options.event_bus = bus;
    // Parked sessions' events wait in Redis, not in this process.
    options.event_queue_store = store;
    options.log = [node_id](s::log_level level, std::string_view line) {
        if (level >= s::log_level::warning) std::cerr << "node " << node_id << ": " << line << '\n';
    };
    int status = 0;
    {
        s::gateway gw(options, demo_validator(), store);
        add_endpoints(gw, node_id);
        if (auto ec = gw.listen()) {
            std::cerr << "cluster_node: cannot listen: " << ec.message() << '\n';
            status = 1;
        } else {
            std::cout << "node " << node_id << " listening on ws://127.0.0.1:" << gw.local_port() << "/connect"
                      << std::endl;
            std::thread signal_waiter([&gw, signals] {
                int received = 0;
                sigwait(&signals, &received);
                gw.stop();
            });
            gw.run();
            pthread_kill(signal_waiter.native_handle(), SIGTERM);
            signal_waiter.join();
        }
    }
    // Leave the cluster (the bus withdraws this node's declarations) and give
    // the Redis clients a moment to say so before their thread ends.
    bus->close();
    store->close();
    work.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    redis_io.stop();
    redis_thread.join();
    return status;
} catch (const std::exception& e) {
    std::cerr << "cluster_node: " << e.what() << '\n';
    return 1;
}
