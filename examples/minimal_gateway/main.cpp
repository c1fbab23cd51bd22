// The smallest useful gateway: HS256 tokens, one echo endpoint, ws://127.0.0.1:9000/connect.
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/server/gateway_impl.hpp>  // compiles the WebSocket transport (this file is C++17)
#include <gatehouse/session/memory_session_store.hpp>

#include <cstdlib>
#include <iostream>

int main() {
    namespace auth = gatehouse::auth;
    const char* secret = std::getenv("GATEHOUSE_HS256_SECRET");
    if (!secret) {
        std::cerr << "set GATEHOUSE_HS256_SECRET (at least 32 bytes) to the secret your tokens are signed with\n";
        return 1;
    }
    auth::key_ptr key;
    auth::key_set keys;
    if (auth::make_hmac_key(secret, "", {}, key) || keys.add(key)) {
        std::cerr << "unusable secret (at least 32 bytes)\n";
        return 1;
    }

    gatehouse::server::gateway_options options;
    options.guid_salt = "change-me";
    gatehouse::server::gateway gw(options, std::make_shared<auth::jwt_validator>(auth::jwt_options{}, keys),
                                  std::make_shared<gatehouse::session::memory_session_store>());

    gatehouse::routing::endpoint_options echo;
    echo.service = "demo";
    echo.path = "/demo/echo";
    gw.add_endpoint(echo, [](const gatehouse::routing::request& req, gatehouse::routing::responder answer) {
        answer.reply(req.payload.as_chars());
    });

    if (auto ec = gw.listen()) {
        std::cerr << "listen: " << ec.message() << '\n';
        return 1;
    }
    std::cout << "listening on ws://127.0.0.1:" << gw.local_port() << "/connect\n";
    gw.run();
}
