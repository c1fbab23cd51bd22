// A host program built against the installed package, in C++20 as well as
// C++17: a gateway with an echo endpoint and a native client that calls it,
// over loopback. The websocketpp parts are compiled by transport.cpp, which
// CMakeLists.txt builds as C++17.
#include <gatehouse/gatehouse.hpp>

#include <cstdio>
#include <string_view>
#include <thread>

namespace {
constexpr const char* secret = "consumer-test-secret-of-at-least-32-bytes";

int fail(const char* what) {
    std::fprintf(stderr, "consumer: %s\n", what);
    return 1;
}
}  // namespace

int main() {
    namespace auth = gatehouse::auth;
    namespace p = gatehouse::protocol;

    if (std::string_view(GATEHOUSE_PACKAGE_VERSION) != gatehouse::version_string)
        return fail("the package's version is not the headers' (gatehouse/version.hpp)");

    const auto g = gatehouse::routing::service_guid("6f9619ff-8b86-4d11-b42d-00c04fc964ff", "account:/account/get",
                                                     "bannou-dev-connect-salt-change-in-production");
    if (g.to_string() != "803ea199-83d4-a550-84ee-b5b17a869ef9") return fail("unexpected salted GUID");

    auth::key_ptr key;
    auth::key_set keys;
    if (auth::make_hmac_key(secret, "", {}, key) || keys.add(key)) return fail("hmac key");
    gatehouse::server::gateway_options options;
    options.port = 0;
    options.guid_salt = "consumer-salt";
    options.manifest_delay = std::chrono::milliseconds(1);
    gatehouse::server::gateway gw(options, std::make_shared<auth::jwt_validator>(auth::jwt_options{}, keys),
                                  std::make_shared<gatehouse::session::memory_session_store>());
    gatehouse::routing::endpoint_options echo;
    echo.service = "demo";
    echo.path = "/demo/echo";
    gw.add_endpoint(echo, [](const gatehouse::routing::request& req, gatehouse::routing::responder answer) {
        answer.reply(req.payload.as_chars());
    });
    if (gw.listen()) return fail("listen");
    std::thread server([&gw] { gw.run(); });

    auth::signing_key_ptr signer;
    std::string token;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    if (auth::make_hmac_signing_key(secret, "", signer) ||
        auth::sign_jwt({{"sub", "consumer"}, {"session_key", gatehouse::session::random_session_id()}, {"exp", now + 60}},
                       *signer, auth::jwt_algorithm::hs256, token))
        return fail("sign");

    int status = 0;
    {
        asio::io_context io;
        auto work = asio::make_work_guard(io);
        std::thread client_thread([&io] { io.run(); });
        gatehouse::client::client_options co;
        co.url = "ws://127.0.0.1:" + std::to_string(gw.local_port()) + "/connect";
        co.credential = token;
        auto cl = gatehouse::client::client::create(io, co);
        try {
            cl->connect().get();
            const auto r = cl->call("/demo/echo", R"({"ping":1})").get();
            if (!r.ok() || r.payload != R"({"ping":1})") status = fail("echo answered wrongly");
        } catch (const std::exception& e) {
            std::fprintf(stderr, "consumer: %s\n", e.what());
            status = 1;
        }
        cl->close();
        work.reset();
        gw.stop();
        client_thread.join();
    }
    server.join();
    if (status == 0) std::printf("consumer ok: C++ %ld, gateway and client over loopback\n", static_cast<long>(__cplusplus));
    return status;
}
