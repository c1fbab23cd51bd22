// libFuzzer target for the load generator's WebSocket frame parser and
// upgrade status check: never reads outside the input; a complete frame lies
// within it; a masked frame round-trips through the client framing.
#include "../../benchmarks/loadgen/ws_frame.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

namespace lg = gatehouse::loadgen;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)lg::upgrade_status(in);

    std::size_t pos = 0;
    while (pos < in.size()) {
        lg::ws_frame f;
        const auto r = lg::parse_server_frame(in.substr(pos), 1 << 20, f);
        if (r != lg::parse_result::complete) break;
        if (f.size == 0 || f.size > in.size() - pos) std::abort();
        if (f.payload.data() < in.data() + pos || f.payload.data() + f.payload.size() > in.data() + pos + f.size)
            std::abort();
        pos += f.size;
    }

    // Masking is an involution: unmasking what we framed gives the input back.
    std::string framed;
    lg::append_client_frame(framed, lg::ws_opcode::binary, in, 0x5a3c9e01u);
    const std::size_t header = framed.size() - in.size();
    const auto* mask = reinterpret_cast<const std::uint8_t*>(framed.data() + header - 4);
    for (std::size_t i = 0; i < in.size(); ++i)
        if (static_cast<char>(framed[header + i] ^ static_cast<char>(mask[i & 3])) != in[i]) std::abort();
    return 0;
}
