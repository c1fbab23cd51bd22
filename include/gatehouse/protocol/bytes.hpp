// A non-owning view of bytes, for C++17 code that has no std::span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace gatehouse::protocol {

/// A read-only, non-owning view of contiguous bytes. Cheap to copy. Built from
/// a pointer and a size, a `std::string_view`, or any contiguous container of
/// one-byte elements (`std::vector<std::uint8_t>`, `std::string`,
/// `std::array<unsigned char, N>`, `std::span<const std::byte>` in C++20, ...).
class bytes_view {
public:
    constexpr bytes_view() noexcept = default;
    constexpr bytes_view(const std::uint8_t* data, std::size_t size) noexcept
        : data_(data), size_(size) {}
    bytes_view(const void* data, std::size_t size) noexcept
        : data_(static_cast<const std::uint8_t*>(data)), size_(size) {}
    bytes_view(std::string_view text) noexcept
        : data_(reinterpret_cast<const std::uint8_t*>(text.data())), size_(text.size()) {}

    template <class Container,
              class Element = std::remove_cv_t<std::remove_pointer_t<
                  decltype(std::declval<const Container&>().data())>>,
              class = std::enable_if_t<sizeof(Element) == 1 && !std::is_same_v<Container, bytes_view>>,
              class = decltype(std::declval<const Container&>().size())>
    bytes_view(const Container& c) noexcept
        : data_(reinterpret_cast<const std::uint8_t*>(c.data())), size_(c.size()) {}

    constexpr const std::uint8_t* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::uint8_t* begin() const noexcept { return data_; }
    constexpr const std::uint8_t* end() const noexcept { return data_ + size_; }
    constexpr std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }

    /// Bytes [offset, offset + count), clamped to the view.
    constexpr bytes_view subview(std::size_t offset, std::size_t count = ~std::size_t{0}) const noexcept {
        if (offset > size_) offset = size_;
        const std::size_t rest = size_ - offset;
        return bytes_view(data_ + offset, count < rest ? count : rest);
    }

    /// The bytes as characters (a JSON payload, say), without copying.
    std::string_view as_chars() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(data_), size_);
    }

private:
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

/// A writable, non-owning view of bytes: where an encoder puts its output.
class mutable_bytes {
public:
    constexpr mutable_bytes() noexcept = default;
    constexpr mutable_bytes(std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}
    mutable_bytes(void* data, std::size_t size) noexcept
        : data_(static_cast<std::uint8_t*>(data)), size_(size) {}

    template <class Container,
              class Element = std::remove_pointer_t<decltype(std::declval<Container&>().data())>,
              class = std::enable_if_t<sizeof(Element) == 1 && !std::is_const_v<Element> &&
                                       !std::is_same_v<Container, mutable_bytes>>>
    mutable_bytes(Container& c) noexcept
        : data_(reinterpret_cast<std::uint8_t*>(c.data())), size_(c.size()) {}

    constexpr std::uint8_t* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }

private:
    std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace gatehouse::protocol
