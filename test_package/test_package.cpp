// Conan's test_package: decodes a frame, starts a gateway on a loopback port
// and stops it; with the Redis adapters, makes a store (nothing is sent).
#include <gatehouse/gatehouse.hpp>
#include <gatehouse/server/gateway_impl.hpp>
#ifdef GATEHOUSE_TEST_REDIS
#include <gatehouse/adapters/redis/redis_session_store.hpp>
#endif

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

int main() {
    namespace p = gatehouse::protocol;
    namespace s = gatehouse::server;

    p::request_header h;
    h.flags = p::message_flags::binary;
    h.sequence = 7;
    std::string frame(p::request_header_size, '\0');
    p::encode_header(h, reinterpret_cast<std::uint8_t*>(frame.data()));
    frame += "hello";
    p::frame_view view;
    if (p::decode_frame(p::bytes_view(frame), view) || view.sequence != 7 || view.payload.as_chars() != "hello") {
        std::fprintf(stderr, "test_package: frame round trip failed\n");
        return 1;
    }

    s::gateway_options options;
    options.port = 0;
    options.listen_address = "127.0.0.1";
    options.guid_salt = "test-package-salt";
    s::gateway gw(options, std::make_shared<gatehouse::auth::api_key_validator>(),
                  std::make_shared<gatehouse::session::memory_session_store>());
    if (const auto ec = gw.listen()) {
        std::fprintf(stderr, "test_package: listen: %s\n", ec.message().c_str());
        return 1;
    }
    std::thread server([&gw] { gw.run(); });
    const auto port = gw.local_port();
    gw.stop();
    server.join();
    if (port == 0) {
        std::fprintf(stderr, "test_package: no port\n");
        return 1;
    }
#ifdef GATEHOUSE_TEST_REDIS
    asio::io_context io;
    gatehouse::adapters::redis::redis_session_store_options ro;
    ro.port = 1;
    gatehouse::adapters::redis::redis_session_store store(io.get_executor(), ro);
#endif
    std::printf("test_package: gatehouse %s: frame decoded, gateway listened on 127.0.0.1:%u and stopped\n",
                gatehouse::version_string, static_cast<unsigned>(port));
    return 0;
}
