// The gateway side of benchmarks/run.sh: a gateway with one echo endpoint
// (/bench/echo), an in-memory session store and HS256 tokens, configured so
// that only the transport and the gateway's own work are measured: limits
// that a load test would trip (message rate, connect rate, caps) are raised.
//   gateway_echo --tokens N --token-file F [--port 0] [--threads 1]
// Writes N tokens (distinct accounts and sessions) to F, one per line, then
// prints "port P" and serves until SIGINT/SIGTERM.
#include <gatehouse/auth/jwt_signer.hpp>
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/server/gateway_impl.hpp>  // the C++17 TU with the websocketpp transport
#include <gatehouse/session/memory_session_store.hpp>

#include <nlohmann/json.hpp>

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

namespace auth = gatehouse::auth;
namespace s = gatehouse::server;

namespace {
constexpr const char* bench_secret = "gatehouse-benchmark-secret-not-for-production-use";

std::string arg(int argc, char** argv, const std::string& flag, std::string fallback) {
    for (int i = 1; i + 1 < argc; ++i)
        if (argv[i] == flag) return argv[i + 1];
    return fallback;
}
}  // namespace

int main(int argc, char** argv) try {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const auto tokens = std::stoul(arg(argc, argv, "--tokens", "100"));
    const auto token_file = arg(argc, argv, "--token-file", "");
    if (token_file.empty()) throw std::runtime_error("--token-file is required");

    s::gateway_options o;
    o.port = static_cast<std::uint16_t>(std::stoul(arg(argc, argv, "--port", "0")));
    o.io_threads = std::stoul(arg(argc, argv, "--threads", "1"));
    o.guid_salt = "benchmark-salt";
    o.max_connections = 200000;
    o.max_sessions_per_account = 1000;
    o.connects_per_second = 1e9;
    o.connect_burst = 1000000;
    o.messages_per_minute = 4000000000u;
    o.message_burst = 4000000000u;
    o.account_messages_per_minute = o.messages_per_minute;
    o.account_message_burst = o.message_burst;
    o.max_send_queue_bytes = 64 * 1024 * 1024;
    o.manifest_delay = std::chrono::milliseconds(0);

    auth::key_ptr key;
    auth::key_set keys;
    if (auth::make_hmac_key(bench_secret, "", {}, key) || keys.add(key)) throw std::runtime_error("bad key");
    s::gateway gw(o, std::make_shared<auth::jwt_validator>(auth::jwt_options{}, std::move(keys)),
                  std::make_shared<gatehouse::session::memory_session_store>());
    gatehouse::routing::endpoint_options echo;
    echo.service = "bench";
    echo.path = "/bench/echo";
    gw.add_endpoint(echo, [](const gatehouse::routing::request& req, gatehouse::routing::responder answer) {
        answer.reply(req.payload.as_chars());
    });

    auth::signing_key_ptr signing;
    if (auth::make_hmac_signing_key(bench_secret, "", signing)) throw std::runtime_error("bad signing key");
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    std::ofstream out(token_file);
    for (unsigned long i = 0; i < tokens; ++i) {
        std::string token;
        const nlohmann::json claims = {{"sub", "bench-" + std::to_string(i)},
                                       {"session_key", gatehouse::session::random_session_id()},
                                       {"iat", now},
                                       {"exp", now + 7200}};
        if (auth::sign_jwt(claims, *signing, auth::jwt_algorithm::hs256, token)) throw std::runtime_error("sign");
        out << token << '\n';
    }
    out.close();

    if (auto ec = gw.listen()) throw std::runtime_error("listen: " + ec.message());
    std::printf("port %u\n", gw.local_port());
    std::fflush(stdout);
    std::thread waiter([&gw, signals] {
        int received = 0;
        sigwait(&signals, &received);
        gw.stop();
    });
    gw.run();
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    return 0;
} catch (const std::exception& e) {
    std::cerr << "gateway_echo: " << e.what() << '\n';
    return 1;
}
