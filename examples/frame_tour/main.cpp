// A tour of the codec: encode a request as a client would, decode it as the
// gateway does, answer it, and print every step. This is what the README's
// demo command runs until the game gateway example exists.
#include <gatehouse/gatehouse.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace p = gatehouse::protocol;
namespace r = gatehouse::routing;

namespace {
void dump(const char* title, const std::vector<std::uint8_t>& bytes, std::size_t header) {
    std::printf("%s (%zu bytes):\n  header ", title, bytes.size());
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i == header) std::printf("\n  payload ");
        std::printf("%02x", bytes[i]);
    }
    std::printf("\n");
}
}  // namespace

int main() {
    const std::string session_id = "6f9619ff-8b86-4d11-b42d-00c04fc964ff";
    const std::string salt = "bannou-dev-connect-salt-change-in-production";

    // 1. The gateway derives this session's GUID for endpoint /account/get.
    const p::guid endpoint = r::service_guid(session_id, "account:/account/get", salt);
    std::printf("session %s\nendpoint account:/account/get -> salted GUID %s\n\n", session_id.c_str(),
                endpoint.to_string().c_str());

    // 2. A client calls it: 31-byte request header + JSON.
    p::request_header request;
    request.channel = 0;
    request.sequence = 0;
    request.service = endpoint;
    request.message_id = p::make_message_id(1703001234567, 5);
    std::vector<std::uint8_t> wire;
    p::append_frame(wire, request, std::string_view(R"({"accountId":"user123"})"));
    dump("request", wire, p::request_header_size);

    // 3. The gateway decodes it without copying the payload.
    p::frame_view frame;
    if (auto ec = p::decode_frame(wire, frame)) {
        std::printf("decode failed: %s\n", ec.message().c_str());
        return 1;
    }
    std::printf("decoded: flags=0x%02x channel=%u sequence=%u guid=%s message_id=%llu payload=%.*s\n\n",
                p::to_byte(frame.flags), frame.channel, frame.sequence, frame.service.to_string().c_str(),
                static_cast<unsigned long long>(frame.message_id), static_cast<int>(frame.payload.size()),
                reinterpret_cast<const char*>(frame.payload.data()));

    // 4. It answers with a 16-byte response header echoing channel, sequence, id.
    p::response_header reply{p::message_flags::response, frame.channel, frame.sequence, frame.message_id,
                             p::response_code::ok};
    std::vector<std::uint8_t> answer;
    p::append_frame(answer, reply, std::string_view(R"({"id":"user123","level":42})"));
    dump("response", answer, p::response_header_size);

    // 5. A truncated frame gets a precise error, never a crash.
    p::frame_view broken;
    const auto ec = p::decode_frame(p::bytes_view(wire.data(), 20), broken);
    std::printf("\n20-byte frame -> %s (%s)\n", ec.message().c_str(), ec.category().name());

    // 6. An unknown GUID is answered with 30.
    const auto code = p::response_code::service_not_found;
    std::printf("unknown GUID -> response code %d %s (HTTP %d)\n", p::to_byte(code),
                std::string(p::response_code_name(code)).c_str(), p::to_http_status(code));
    return 0;
}
