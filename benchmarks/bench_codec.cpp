// Encode and decode of both frame headers, beside a memcpy of the same bytes
// measured in the same run. Prints ns per frame, the ratio to memcpy, and heap
// allocations per frame (expected: 0).
//   build/benchmarks/bench_codec [--benchmark_min_time=0.5]
#include "alloc_counter.hpp"

#include <gatehouse/protocol.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace p = gatehouse::protocol;
using gatehouse::bench::allocation_count;

namespace {

// A few distinct frames so the branch predictor and the optimizer cannot
// treat the input as a constant.
constexpr std::size_t frame_count = 64;

std::vector<std::array<std::uint8_t, 64>> make_request_frames() {
    std::vector<std::array<std::uint8_t, 64>> frames(frame_count);
    for (std::size_t i = 0; i < frame_count; ++i) {
        p::request_header h{p::message_flags::none, static_cast<std::uint16_t>(i), static_cast<std::uint32_t>(i * 7),
                            p::guid::broadcast(), 0x0123456789abcdefull + i};
        h.service.bytes[3] = static_cast<std::uint8_t>(i);
        p::encode_header(h, frames[i].data());
    }
    return frames;
}

std::vector<std::array<std::uint8_t, 64>> make_response_frames() {
    std::vector<std::array<std::uint8_t, 64>> frames(frame_count);
    for (std::size_t i = 0; i < frame_count; ++i) {
        p::response_header h{p::message_flags::response, static_cast<std::uint16_t>(i),
                             static_cast<std::uint32_t>(i * 7), 0x0123456789abcdefull + i, p::response_code::ok};
        p::encode_header(h, frames[i].data());
    }
    return frames;
}

void report_allocations(benchmark::State& state, std::size_t before) {
    state.counters["allocs/frame"] = benchmark::Counter(
        static_cast<double>(allocation_count.load() - before) / static_cast<double>(state.iterations()));
}

void BM_memcpy_31(benchmark::State& state) {
    const auto frames = make_request_frames();
    std::array<std::uint8_t, 64> out{};
    std::size_t i = 0;
    for (auto _ : state) {
        const auto* src = frames[i++ % frame_count].data();
        benchmark::DoNotOptimize(src);
        std::memcpy(out.data(), src, p::request_header_size);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
}

// Decodes frames of `length` bytes (header and payload) round-robin.
void decode_frames(benchmark::State& state, const std::vector<std::array<std::uint8_t, 64>>& frames,
                   std::size_t length) {
    p::frame_view f;
    std::size_t i = 0;
    const std::size_t before = allocation_count.load();
    for (auto _ : state) {
        const auto* src = frames[i++ % frame_count].data();
        benchmark::DoNotOptimize(src);
        auto ec = p::decode_frame(p::bytes_view(src, length), f);
        benchmark::DoNotOptimize(ec);
        benchmark::DoNotOptimize(f);
        benchmark::ClobberMemory();
    }
    report_allocations(state, before);
}

void BM_decode_request(benchmark::State& state) { decode_frames(state, make_request_frames(), 40); }

// Encodes `headers` (request or response) round-robin into one buffer.
template <class Header>
void encode_headers(benchmark::State& state, const std::vector<Header>& headers) {
    std::array<std::uint8_t, 64> out{};
    std::size_t i = 0;
    const std::size_t before = allocation_count.load();
    for (auto _ : state) {
        const auto& h = headers[i++ % frame_count];
        benchmark::DoNotOptimize(&h);
        p::encode_header(h, out.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    report_allocations(state, before);
}

void BM_encode_request(benchmark::State& state) {
    std::vector<p::request_header> headers;
    for (const auto& fr : make_request_frames()) {
        p::frame_view f;
        p::decode_frame(p::bytes_view(fr.data(), 40), f);
        headers.push_back(f.request());
    }
    encode_headers(state, headers);
}

void BM_decode_response(benchmark::State& state) { decode_frames(state, make_response_frames(), 20); }

void BM_encode_response(benchmark::State& state) {
    std::vector<p::response_header> headers;
    for (std::size_t i = 0; i < frame_count; ++i)
        headers.push_back({p::message_flags::response, static_cast<std::uint16_t>(i), static_cast<std::uint32_t>(i),
                           i * 31, p::response_code::ok});
    encode_headers(state, headers);
}

BENCHMARK(BM_memcpy_31);
BENCHMARK(BM_decode_request);
BENCHMARK(BM_encode_request);
BENCHMARK(BM_decode_response);
BENCHMARK(BM_encode_response);

// Collects each run's ns/iteration so the ratio to memcpy can be printed last.
class ratio_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) ns_[r.benchmark_name()] = r.GetAdjustedRealTime();
    }
    void Finalize() override {
        ConsoleReporter::Finalize();
        const auto base = ns_.find("BM_memcpy_31");
        if (base == ns_.end() || base->second <= 0) return;
        std::printf("\nratio to memcpy of 31 bytes (%.2f ns) in this run:\n", base->second);
        for (const auto& [name, ns] : ns_)
            if (name != base->first) std::printf("  %-22s %6.2f ns  %5.2fx\n", name.c_str(), ns, ns / base->second);
        std::printf("goal: decode within 3x of memcpy, 0 allocs/frame\n");
    }

private:
    std::map<std::string, double> ns_;
};

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}
