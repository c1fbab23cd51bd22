#include <gatehouse/protocol.hpp>

#include <cstdio>

int main() {
    namespace p = gatehouse::protocol;
    static_assert(p::request_header_size == 31 && p::response_header_size == 16, "header sizes");
    const p::response_header r{p::message_flags::response, 1, 2, 3, p::response_code::service_not_found};
    std::uint8_t buf[p::response_header_size];
    p::encode_header(r, buf);
    p::frame_view f;
    if (p::decode_frame(p::bytes_view(buf, sizeof buf), f) || f.response() != r) return 1;
    std::printf("protocol-only consumer ok: C++ %ld\n", static_cast<long>(__cplusplus));
    return 0;
}
