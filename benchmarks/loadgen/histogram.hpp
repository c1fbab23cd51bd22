// A log-linear latency histogram (HdrHistogram-like, 2 significant digits):
// fixed memory, O(1) record, percentiles within 1% of the true value.
#pragma once

#include <array>
#include <cstdint>

namespace gatehouse::loadgen {

class latency_histogram {
public:
    /// Records a latency in nanoseconds.
    void record(std::uint64_t ns) noexcept {
        ++counts_[bucket(ns)];
        ++total_;
        if (ns > max_) max_ = ns;
    }

    void merge(const latency_histogram& o) noexcept {
        for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
        total_ += o.total_;
        if (o.max_ > max_) max_ = o.max_;
    }

    std::uint64_t count() const noexcept { return total_; }
    std::uint64_t max() const noexcept { return max_; }

    /// The latency below which a fraction `q` (0..1) of the samples lie
    /// (the upper edge of the bucket holding the q-quantile).
    std::uint64_t percentile(double q) const noexcept {
        if (total_ == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) {
                const auto edge = upper_edge(i);
                return edge < max_ ? edge : max_;
            }
        }
        return max_;
    }

private:
    // Values below 128 ns get one bucket each; above, each power of two is
    // split into 64 sub-buckets (relative error <= 1/64).
    static constexpr unsigned sub_bits = 6;
    static constexpr std::size_t sub_count = std::size_t{1} << sub_bits;

    static std::size_t bucket(std::uint64_t v) noexcept {
        if (v < 2 * sub_count) return static_cast<std::size_t>(v);
        const unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(v));
        const unsigned shift = msb - sub_bits;
        const std::size_t sub = static_cast<std::size_t>((v >> shift) & (sub_count - 1));
        return 2 * sub_count + (msb - sub_bits - 1) * sub_count + sub;
    }

    static std::uint64_t upper_edge(std::size_t b) noexcept {
        if (b < 2 * sub_count) return b;
        const std::size_t k = b - 2 * sub_count;
        const unsigned msb = static_cast<unsigned>(k / sub_count) + sub_bits + 1;
        const std::uint64_t sub = k % sub_count;
        const unsigned shift = msb - sub_bits;
        return ((std::uint64_t{1} << msb) | (sub << shift)) + ((std::uint64_t{1} << shift) - 1);
    }

    std::array<std::uint64_t, 2 * sub_count + (64 - sub_bits) * sub_count> counts_{};
    std::uint64_t total_ = 0;
    std::uint64_t max_ = 0;
};

}  // namespace gatehouse::loadgen
