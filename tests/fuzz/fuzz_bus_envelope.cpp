// libFuzzer target for the event bus envelope decoder and the receiving path
// every bus shares: whatever the bytes, decoding never crashes, never reads
// outside the input, every rejection is a cluster_errc, and an accepted
// envelope re-encodes to exactly the bytes it came from. The receiving path
// (decode, own-echo check, interest check, duplicate window) delivers an
// envelope at most once.
#include <gatehouse/cluster/detail/inbound.hpp>
#include <gatehouse/cluster/envelope.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace c = gatehouse::cluster;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    c::envelope_view e;
    if (const auto ec = c::decode_envelope(bytes, e)) {
        if (ec.category() != c::cluster_category()) std::abort();
    } else {
        if (e.origin.data() < bytes.data() || e.payload.data() + e.payload.size() > bytes.data() + bytes.size())
            std::abort();
        std::string again;
        if (c::encode_envelope(e, again)) std::abort();  // what decodes, encodes
        if (again != bytes) std::abort();
    }

    // Twice through one node's receiving path: at most one delivery.
    static c::detail::atomic_stats stats;
    c::detail::inbound node("fuzz-node", 16, c::max_payload_size, stats);
    node.interests().add(c::interest_kind::session, "s");
    node.interests().add(c::interest_kind::group, "g");
    node.interests().add(c::interest_kind::account, "a");
    int delivered = 0;
    const c::event_bus::message_handler handler = [&](const c::bus_message& m) {
        if (m.origin == "fuzz-node") std::abort();  // own messages are never delivered
        ++delivered;
    };
    node.receive(bytes, handler);
    node.receive(bytes, handler);
    if (delivered > 1) std::abort();
    return 0;
}
