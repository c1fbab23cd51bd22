// A host program that includes everything gatehouse offers, built against the
// installed package (in C++20 as well as C++17).
#include <gatehouse/gatehouse.hpp>

#include <cstdio>

int main() {
    namespace p = gatehouse::protocol;
    const auto g = gatehouse::routing::service_guid("6f9619ff-8b86-4d11-b42d-00c04fc964ff", "account:/account/get",
                                                     "bannou-dev-connect-salt-change-in-production");
    if (g.to_string() != "803ea199-83d4-a550-84ee-b5b17a869ef9") {
        std::fprintf(stderr, "unexpected salted GUID %s\n", g.to_string().c_str());
        return 1;
    }
    p::request_header h;
    h.service = g;
    std::uint8_t buf[p::request_header_size];
    p::encode_header(h, buf);
    p::frame_view f;
    if (p::decode_frame(p::bytes_view(buf, sizeof buf), f) || f.service != g) return 1;
    std::printf("consumer ok: C++ %ld\n", static_cast<long>(__cplusplus));
    return 0;
}
