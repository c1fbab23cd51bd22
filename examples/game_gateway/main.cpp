// The README's demo: a gateway with an in-memory session store, HS256 tokens
// signed with a demo secret, and endpoints that show the features:
//   demo:/demo/echo        echoes its body (anyone)
//   profile:/profile/get   needs permission profile:read (the demo token has it)
//   chat:/chat/join        {"room": "lobby"}: join a room; members get chat.joined
//   chat:/chat/leave       {"room": "lobby"}
//   chat:/chat/say         {"room": "lobby", "text": "hi"}: chat.message to the room
//   admin:/admin/announce  needs admin:broadcast, which the demo token lacks, so
//                          it is missing from the demo session's manifest
//
// Usage: game_gateway [--host 127.0.0.1] [--port 9000] [--threads 1]
//        (or GATEHOUSE_HOST / GATEHOUSE_PORT / GATEHOUSE_THREADS)
// Stops cleanly on SIGINT/SIGTERM: every connection is closed with 1001.
//
// Players are shown as they come and go, through the gateway's lifecycle
// hooks (server/session_observer.hpp): a line when a player joins, drops,
// comes back and leaves, with the reason.
#include <gatehouse/auth/jwt_signer.hpp>
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/session/memory_session_store.hpp>

#include <nlohmann/json.hpp>

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

namespace auth = gatehouse::auth;
namespace r = gatehouse::routing;
namespace s = gatehouse::server;

namespace {

// A demo secret: anyone who reads this file can mint tokens. Never reuse it.
constexpr const char* demo_secret = "gatehouse-demo-secret-do-not-use-in-production";

std::string setting(int argc, char** argv, const std::string& flag, const char* env, std::string fallback) {
    for (int i = 1; i + 1 < argc; ++i)
        if (argv[i] == flag) return argv[i + 1];
    if (const char* value = std::getenv(env)) return value;
    return fallback;
}

std::string mint_demo_token(const std::string& session_key) {
    auth::signing_key_ptr key;
    std::string token;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const nlohmann::json claims = {{"sub", "demo-player"},
                                   {"session_key", session_key},
                                   {"roles", {"player"}},
                                   {"permissions", {"profile:read"}},
                                   {"iat", now},
                                   {"exp", now + 3600}};
    if (auth::make_hmac_signing_key(demo_secret, "", key) ||
        auth::sign_jwt(claims, *key, auth::jwt_algorithm::hs256, token))
        throw std::runtime_error("could not sign the demo token");
    return token;
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

/// The "room" member of a JSON body, or empty.
std::string room_of(const r::request& req) {
    const auto body = nlohmann::json::parse(req.payload.as_chars(), nullptr, false);
    if (!body.is_object() || !body.contains("room") || !body["room"].is_string()) return {};
    return body["room"].get<std::string>();
}

void add_demo_endpoints(s::gateway& gw) {
    gw.add_endpoint(endpoint("demo", "/demo/echo", "Echoes the request body"),
                    [](const r::request& req, r::responder answer) { answer.reply(req.payload.as_chars()); });

    gw.add_endpoint(endpoint("profile", "/profile/get", "The caller's account, roles and permissions", "profile:read"),
                    [](const r::request& req, r::responder answer) {
                        const auto& who = req.session->identity;
                        answer.reply(nlohmann::json{{"accountId", req.session->account_id},
                                                    {"sessionId", req.session->session_id},
                                                    {"roles", who.roles},
                                                    {"permissions", who.permissions}}
                                         .dump());
                    });

    gw.add_endpoint(endpoint("chat", "/chat/join", "Join a chat room: {\"room\": name}"),
                    [&gw](const r::request& req, r::responder answer) {
                        const auto room = room_of(req);
                        if (room.empty() || gw.join_group(req.session->session_id, "chat:" + room))
                            return (void)answer.reply_http(400, "");
                        gw.push_to_group("chat:" + room, "chat.joined",
                                         {{"room", room}, {"accountId", req.session->account_id}});
                        answer.reply(nlohmann::json{{"room", room}, {"members", gw.group_members("chat:" + room).size()}}
                                         .dump());
                    });

    gw.add_endpoint(endpoint("chat", "/chat/leave", "Leave a chat room: {\"room\": name}"),
                    [&gw](const r::request& req, r::responder answer) {
                        const auto room = room_of(req);
                        if (room.empty() || gw.leave_group(req.session->session_id, "chat:" + room))
                            return (void)answer.reply_http(400, "");
                        answer.reply("{}");
                    });

    gw.add_endpoint(endpoint("chat", "/chat/say", "Say something: {\"room\": name, \"text\": words}"),
                    [&gw](const r::request& req, r::responder answer) {
                        const auto body = nlohmann::json::parse(req.payload.as_chars(), nullptr, false);
                        const auto room = room_of(req);
                        if (room.empty() || !body.contains("text") || !body["text"].is_string())
                            return (void)answer.reply_http(400, "");
                        const auto delivered = gw.push_to_group(
                            "chat:" + room, "chat.message",
                            {{"room", room}, {"from", req.session->account_id}, {"text", body["text"]}});
                        answer.reply(nlohmann::json{{"delivered", delivered}}.dump());
                    });

    gw.add_endpoint(endpoint("admin", "/admin/announce", "Announce to everyone (needs admin:broadcast)",
                             "admin:broadcast"),
                    [&gw](const r::request& req, r::responder answer) {
                        gw.push_to_all("system.notification", {{"message", std::string(req.payload.as_chars())}});
                        answer.reply("{}");
                    });
}

/// One line per lifecycle event on stdout. Hooks run on the gateway's
/// observer thread, never on an I/O thread; the lock keeps lines whole.
class player_log final : public s::session_observer {
public:
    void on_opened(const s::session_event& e) override {
        line(e, "joined", std::string("from ") + std::string(e.remote_address));
    }
    void on_parked(const s::session_event& e) override {
        const auto left = std::chrono::duration_cast<std::chrono::seconds>(e.parked_until -
                                                                           std::chrono::system_clock::now());
        line(e, "dropped", std::string(s::session_end_reason_name(e.reason)) + ", close " +
                               std::to_string(e.close_code) + "; seat kept " + std::to_string(left.count()) + " s");
    }
    void on_resumed(const s::session_event& e) override {
        line(e, "resumed", std::string(s::session_resume_kind_name(e.resumed)) + " from " +
                               std::string(e.remote_address));
    }
    void on_moved(const s::session_event& e) override { line(e, "moved", "to another node"); }
    void on_closed(const s::session_event& e) override {
        line(e, "left", std::string(s::session_end_reason_name(e.reason)) +
                            (e.close_code ? ", close " + std::to_string(e.close_code) : std::string()));
    }

private:
    void line(const s::session_event& e, const char* what, const std::string& detail) {
        const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
        char stamp[16];
        std::tm parts{};
        localtime_r(&now, &parts);
        std::strftime(stamp, sizeof stamp, "%H:%M:%S", &parts);
        std::lock_guard<std::mutex> lock(mutex_);
        std::cout << stamp << " player " << e.account_id << " (session " << e.session_id.substr(0, 8) << ") " << what
                  << ": " << detail << '\n'
                  << std::flush;
    }
    std::mutex mutex_;
};

}  // namespace

int main(int argc, char** argv) try {
    // SIGINT/SIGTERM are taken by a dedicated thread (blocked everywhere else).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    s::gateway_options options;
    options.listen_address = setting(argc, argv, "--host", "GATEHOUSE_HOST", "127.0.0.1");
    options.port = static_cast<std::uint16_t>(std::stoi(setting(argc, argv, "--port", "GATEHOUSE_PORT", "9000")));
    options.io_threads = static_cast<std::size_t>(std::stoi(setting(argc, argv, "--threads", "GATEHOUSE_THREADS", "1")));
    options.guid_salt = "gatehouse-demo-salt";
    options.log = [](s::log_level level, std::string_view line) {
        if (level >= s::log_level::warning) std::cerr << "gatehouse: " << line << '\n';
    };
    options.observer = std::make_shared<player_log>();
    // Everything clients relied on before the per-account rate limit
    // existed still holds: an account's 16 sessions may each use their own
    // per-connection budget.
    options.account_messages_per_minute = options.messages_per_minute * 16;
    options.account_message_burst = options.message_burst * 16;

    s::gateway gw(options, demo_validator(), std::make_shared<gatehouse::session::memory_session_store>());
    add_demo_endpoints(gw);
    if (auto ec = gw.listen()) {
        std::cerr << "game_gateway: cannot listen on " << options.listen_address << ":" << options.port << ": "
                  << ec.message() << '\n';
        return 1;
    }

    const auto session_key = gatehouse::session::random_session_id();
    const auto token = mint_demo_token(session_key);
    const std::string url = "ws://" + options.listen_address + ":" + std::to_string(gw.local_port()) + "/connect";
    std::cout << "gatehouse demo gateway listening on " << url << "\n\n"
              << "Demo token (HS256, 1 hour, account demo-player, permission profile:read):\n"
              << token << "\n\n"
              << "Connect with the demo client (Python websockets):\n"
              << "  /usr/bin/python3 examples/game_gateway/demo_client.py --url " << url << " --token " << token
              << "\n\nStop with Ctrl-C.\n"
              << std::flush;

    std::thread signal_waiter([&gw, signals] {
        int received = 0;
        sigwait(&signals, &received);
        std::cout << "\nstopping (closing connections with 1001)\n" << std::flush;
        gw.stop();
    });
    gw.run();
    // run() also returns if the I/O threads ended on their own: release the waiter.
    pthread_kill(signal_waiter.native_handle(), SIGTERM);
    signal_waiter.join();
    return 0;
} catch (const std::exception& e) {
    std::cerr << "game_gateway: " << e.what() << '\n';
    return 1;
}
