// libFuzzer target for the frame decoder and the GUID text parser: whatever
// the bytes, decoding never crashes, never reads outside the input, and a
// decoded header re-encodes to exactly the bytes it came from.
#include <gatehouse/protocol.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace p = gatehouse::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    p::frame_view f;
    const p::bytes_view in(data, size);
    if (!p::decode_frame(in, f)) {
        const std::size_t header = f.is_response() ? p::response_header_size : p::request_header_size;
        if (f.payload.data() != data + header || f.payload.size() != size - header) std::abort();
        std::uint8_t out[p::request_header_size];
        if (f.is_response()) p::encode_header(f.response(), out);
        else p::encode_header(f.request(), out);
        if (std::memcmp(out, data, header) != 0) std::abort();

        p::request_header rh;
        p::response_header sh;
        p::bytes_view payload;
        const bool as_request = !p::decode_request(in, rh, payload);
        const bool as_response = !p::decode_response(in, sh, payload);
        if (as_request == as_response) std::abort();  // exactly one of them accepts
    }

    p::guid g;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (!p::parse_guid(text, g)) {
        p::guid again;
        if (p::parse_guid(g.to_string(), again) || again != g) std::abort();
    }
    return 0;
}
