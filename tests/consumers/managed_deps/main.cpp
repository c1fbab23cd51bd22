// A host built against gatehouse with its dependencies from a package
// manager's configs (stand-ins, see CMakeLists.txt): encodes and decodes a
// frame, runs a gateway on the in-memory transport through one call, and
// makes a Redis session store (hiredis linked; nothing listens, nothing is
// sent).
#include <gatehouse/adapters/redis/redis_session_store.hpp>
#include <gatehouse/gatehouse.hpp>
#include <gatehouse/server/memory_transport.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

namespace {
int fail(const char* what) {
    std::fprintf(stderr, "consumer: %s\n", what);
    return 1;
}
}  // namespace

int main() {
    namespace p = gatehouse::protocol;
    namespace s = gatehouse::server;
    if (std::string_view(GATEHOUSE_PACKAGE_VERSION) != gatehouse::version_string)
        return fail("the package's version is not the headers' (gatehouse/version.hpp)");

    // The codec.
    p::request_header h;
    h.flags = p::message_flags::binary;
    h.channel = 7;
    h.sequence = 42;
    h.message_id = 0x0102030405060708ull;
    std::string frame(p::request_header_size, '\0');
    p::encode_header(h, reinterpret_cast<std::uint8_t*>(frame.data()));
    frame += "payload";
    p::frame_view view;
    if (p::decode_frame(p::bytes_view(frame), view) || view.sequence != 42 || view.channel != 7 ||
        view.message_id != h.message_id || view.payload.as_chars() != "payload")
        return fail("frame round trip");

    // A gateway on the in-memory transport: an API key, one endpoint.
    auto keys = std::make_shared<gatehouse::auth::api_key_validator>();
    gatehouse::auth::identity who;
    who.subject = "consumer";
    if (keys->add("consumer-key-0123456789", who)) return fail("api key");
    s::gateway_options options;
    options.guid_salt = "consumer-salt";
    options.manifest_delay = std::chrono::milliseconds(1);
    options.accept_api_keys = true;
    s::gateway gw(options, keys, std::make_shared<gatehouse::session::memory_session_store>());
    gatehouse::routing::endpoint_options echo;
    echo.service = "demo";
    echo.path = "/demo/echo";
    gw.add_endpoint(echo, [](const gatehouse::routing::request& req, gatehouse::routing::responder answer) {
        answer.reply(req.payload.as_chars());
    });
    asio::io_context io;
    {
        s::memory_transport transport(io, gw.transport_side());
        s::memory_upgrade up;
        up.headers.push_back({"Authorization", "ApiKey consumer-key-0123456789"});
        auto client = transport.connect(up);
        io.run_for(std::chrono::milliseconds(300));
        if (client->status() != 101) {
            std::fprintf(stderr, "consumer: upgrade answered %d\n", client->status());
            return fail("upgrade refused");
        }
        if (gw.stats().sessions != 1) return fail("no session");
        client->close();
        io.restart();
        io.run_for(std::chrono::milliseconds(200));
    }

    // The Redis adapters link against hiredis.
    gatehouse::adapters::redis::redis_session_store_options ro;
    ro.host = "127.0.0.1";
    ro.port = 1;
    gatehouse::adapters::redis::redis_session_store store(io.get_executor(), ro);
    std::puts("consumer: ok");
    return 0;
}
