// A strict reader of zip archives whose entries are stored uncompressed (what torch.save
// writes), so that an entry's bytes can be mapped in place. It reads the end-of-central-
// directory record (and its zip64 form), then the central directory, checking every offset
// and size against the file before anything uses it; an entry's local header is read only
// when the entry itself is asked for, so entries nobody asks for are never touched.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "smallcoder/error.hpp"
#include "smallcoder/io/mapped_file.hpp"

namespace smallcoder {

struct ZipEntry {
  std::string name;
  std::uint64_t local_header_offset = 0;
  std::uint64_t size = 0;  // stored: the same compressed and uncompressed
};

namespace detail {

// Little-endian fields of a record held in a string, bounds-checked by the caller.
inline std::uint64_t zip_le(std::string_view bytes, std::size_t at, int width) {
  std::uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = v << 8 | static_cast<std::uint8_t>(bytes[at + static_cast<std::size_t>(i)]);
  return v;
}

constexpr std::uint32_t zip_local_signature = 0x04034b50;
constexpr std::uint32_t zip_central_signature = 0x02014b50;
constexpr std::uint32_t zip_end_signature = 0x06054b50;
constexpr std::uint32_t zip64_end_signature = 0x06064b50;
constexpr std::uint32_t zip64_locator_signature = 0x07064b50;
constexpr std::size_t zip_local_bytes = 30, zip_central_bytes = 46, zip_end_bytes = 22;
constexpr std::size_t zip64_end_bytes = 56, zip64_locator_bytes = 20;
constexpr std::size_t zip_max_comment = 65535;

inline const char* zip_method_name(std::uint64_t method) {
  switch (method) {
    case 8:
      return "deflate";
    case 9:
      return "deflate64";
    case 12:
      return "bzip2";
    case 14:
      return "lzma";
    case 93:
      return "zstd";
    default:
      return "compression";
  }
}

}  // namespace detail

class ZipArchive {
 public:
  // About 100 bytes per entry: a checkpoint's directory is kilobytes.
  static constexpr std::uint64_t max_directory_bytes = std::uint64_t{64} << 20;

  static ZipArchive open(const std::string& path) { return ZipArchive(ReadOnlyFile::open(path)); }

  explicit ZipArchive(std::shared_ptr<const ReadOnlyFile> file) : file_(std::move(file)) {
    const Directory dir = find_directory();
    read_directory(dir);
  }

  const std::vector<ZipEntry>& entries() const { return entries_; }  // central-directory order

  const ZipEntry* find(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &entries_[it->second];
  }

  const ZipEntry& get(std::string_view name) const {
    const ZipEntry* entry = find(name);
    if (entry == nullptr) fail(path(), "the archive has no entry " + quote_untrusted(name));
    return *entry;
  }

  // The file offset of the entry's first byte, from its local header (which must agree
  // with the central directory); the bytes lie before the central directory.
  std::uint64_t data_offset(const ZipEntry& entry) const {
    const std::string where = path() + ": entry " + quote_untrusted(entry.name);
    const std::string head = file_->read(entry.local_header_offset, detail::zip_local_bytes);
    if (detail::zip_le(head, 0, 4) != detail::zip_local_signature) {
      fail(where, "no local header at offset " + std::to_string(entry.local_header_offset));
    }
    if (detail::zip_le(head, 8, 2) != 0) fail(where, "the local header says the entry is compressed");
    const std::uint64_t name_bytes = detail::zip_le(head, 26, 2), extra_bytes = detail::zip_le(head, 28, 2);
    const std::uint64_t name_at = entry.local_header_offset + detail::zip_local_bytes;
    if (name_bytes != entry.name.size() || file_->read(name_at, entry.name.size()) != entry.name) {
      fail(where, "the local header names another entry");
    }
    const std::uint64_t begin = name_at + name_bytes + extra_bytes;
    if (begin > directory_offset_ || entry.size > directory_offset_ - begin) {
      fail(where, std::to_string(entry.size) + " bytes at offset " + std::to_string(begin) +
                      " run into the central directory (at " + std::to_string(directory_offset_) + ")");
    }
    return begin;
  }

  // The entry's bytes, copied (for small entries: a pickle, a version string).
  std::string read(const ZipEntry& entry) const {
    return file_->read(data_offset(entry), static_cast<std::size_t>(entry.size));
  }

  // Bytes [begin, begin + n) of the entry, mapped in place.
  std::shared_ptr<const MappedFile> map(const ZipEntry& entry, std::uint64_t begin, std::size_t n) const {
    if (begin > entry.size || n > entry.size - begin) {
      fail(path() + ": entry " + quote_untrusted(entry.name), std::to_string(n) + " bytes at offset " +
                                                                  std::to_string(begin) + " lie past its end (" +
                                                                  std::to_string(entry.size) + " bytes)");
    }
    return file_->map(data_offset(entry) + begin, n);
  }

  const std::string& path() const { return file_->path(); }

 private:
  struct Directory {
    std::uint64_t offset = 0, bytes = 0, entries = 0;
    std::uint64_t end = 0;  // where the records after the directory start
  };

  // The end-of-central-directory record: the last 22 bytes plus a comment of up to 64 KiB,
  // so the signature is searched backwards from the end; the comment must reach the end
  // exactly. Archives of more than 65535 entries or 4 GiB add the zip64 records before it.
  Directory find_directory() const {
    const std::uint64_t size = file_->size();
    if (size < detail::zip_end_bytes) {
      fail(path(), "not a zip archive: " + std::to_string(size) + " bytes, less than an end-of-directory record");
    }
    const std::uint64_t tail_bytes = std::min<std::uint64_t>(size, detail::zip_end_bytes + detail::zip_max_comment);
    const std::string tail = file_->read(size - tail_bytes, static_cast<std::size_t>(tail_bytes));
    std::size_t at = tail.size() - detail::zip_end_bytes;
    for (;; --at) {
      if (detail::zip_le(tail, at, 4) == detail::zip_end_signature &&
          detail::zip_le(tail, at + 20, 2) == tail.size() - at - detail::zip_end_bytes) {
        break;
      }
      if (at == 0) {
        fail(path(),
             "not a zip archive (no end-of-central-directory record): truncated, or not a torch.save file "
             "of torch 1.6 or later");
      }
    }
    const std::uint64_t end_offset = size - tail_bytes + at;
    if (detail::zip_le(tail, at + 4, 2) != 0 || detail::zip_le(tail, at + 6, 2) != 0) {
      fail(path(), "multi-disk (split) zip archives are not supported");
    }
    Directory dir;
    dir.entries = detail::zip_le(tail, at + 10, 2);
    dir.bytes = detail::zip_le(tail, at + 12, 4);
    dir.offset = detail::zip_le(tail, at + 16, 4);
    dir.end = end_offset;
    if (detail::zip_le(tail, at + 8, 2) != dir.entries) fail(path(), "the directory's entry counts disagree");
    const bool has_locator = end_offset >= detail::zip64_locator_bytes &&
                             detail::zip_le(file_->read(end_offset - detail::zip64_locator_bytes, 4), 0, 4) ==
                                 detail::zip64_locator_signature;
    if (has_locator) {
      read_zip64_directory(end_offset - detail::zip64_locator_bytes, dir);
    } else if (dir.entries == 0xffff || dir.bytes == 0xffffffff || dir.offset == 0xffffffff) {
      fail(path(), "the end-of-directory record needs zip64 records, and there are none");
    }
    if (dir.offset > dir.end || dir.bytes > dir.end - dir.offset) {
      fail(path(), "the central directory (" + std::to_string(dir.bytes) + " bytes at offset " +
                       std::to_string(dir.offset) + ") runs past its end record at " + std::to_string(dir.end) +
                       " (truncated archive?)");
    }
    if (dir.entries > dir.bytes / detail::zip_central_bytes) {
      fail(path(), std::to_string(dir.entries) + " entries cannot fit in a central directory of " +
                       std::to_string(dir.bytes) + " bytes");
    }
    return dir;
  }

  void read_zip64_directory(std::uint64_t locator_offset, Directory& dir) const {
    const std::string locator = file_->read(locator_offset, detail::zip64_locator_bytes);
    if (detail::zip_le(locator, 4, 4) != 0 || detail::zip_le(locator, 16, 4) > 1) {
      fail(path(), "multi-disk (split) zip archives are not supported");
    }
    const std::uint64_t record_offset = detail::zip_le(locator, 8, 8);
    if (record_offset > locator_offset || locator_offset - record_offset < detail::zip64_end_bytes) {
      fail(path(), "the zip64 end-of-directory record at offset " + std::to_string(record_offset) +
                       " does not lie before its locator at " + std::to_string(locator_offset));
    }
    const std::string record = file_->read(record_offset, detail::zip64_end_bytes);
    if (detail::zip_le(record, 0, 4) != detail::zip64_end_signature) {
      fail(path(), "no zip64 end-of-directory record at offset " + std::to_string(record_offset));
    }
    if (detail::zip_le(record, 16, 4) != 0 || detail::zip_le(record, 20, 4) != 0) {
      fail(path(), "multi-disk (split) zip archives are not supported");
    }
    dir.entries = detail::zip_le(record, 32, 8);
    if (detail::zip_le(record, 24, 8) != dir.entries) fail(path(), "the zip64 directory's entry counts disagree");
    dir.bytes = detail::zip_le(record, 40, 8);
    dir.offset = detail::zip_le(record, 48, 8);
    dir.end = record_offset;
  }

  void read_directory(const Directory& dir) {
    if (dir.bytes > max_directory_bytes) {
      fail(path(), "the central directory is " + std::to_string(dir.bytes) + " bytes, more than the " +
                       std::to_string(max_directory_bytes) + " this reader accepts");
    }
    const std::string bytes = file_->read(dir.offset, static_cast<std::size_t>(dir.bytes));
    directory_offset_ = dir.offset;
    entries_.reserve(static_cast<std::size_t>(dir.entries));
    std::size_t at = 0;
    for (std::uint64_t i = 0; i < dir.entries; ++i) {
      const std::string where = path() + ": central directory entry " + std::to_string(i);
      if (bytes.size() - at < detail::zip_central_bytes) fail(where, "runs past the end of the directory");
      if (detail::zip_le(bytes, at, 4) != detail::zip_central_signature) fail(where, "has no entry signature");
      const std::size_t name_bytes = detail::zip_le(bytes, at + 28, 2), extra_bytes = detail::zip_le(bytes, at + 30, 2);
      const std::size_t comment_bytes = detail::zip_le(bytes, at + 32, 2);
      const std::size_t record_bytes = detail::zip_central_bytes + name_bytes + extra_bytes + comment_bytes;
      if (bytes.size() - at < record_bytes) fail(where, "runs past the end of the directory");
      ZipEntry entry;
      entry.name = bytes.substr(at + detail::zip_central_bytes, name_bytes);
      const std::string named = path() + ": entry " + quote_untrusted(entry.name);
      if (entry.name.empty() || entry.name.find('\0') != std::string::npos) fail(where, "has an empty or invalid name");
      if ((detail::zip_le(bytes, at + 8, 2) & 1) != 0) fail(named, "is encrypted");
      const std::uint64_t method = detail::zip_le(bytes, at + 10, 2);
      if (method != 0) {
        fail(named, std::string("is compressed (method ") + std::to_string(method) + ", " +
                        detail::zip_method_name(method) +
                        "); only stored entries can be mapped in place (torch.save never compresses)");
      }
      std::uint64_t compressed = detail::zip_le(bytes, at + 20, 4), size = detail::zip_le(bytes, at + 24, 4);
      std::uint64_t disk = detail::zip_le(bytes, at + 34, 2), offset = detail::zip_le(bytes, at + 42, 4);
      read_zip64_extra(std::string_view(bytes).substr(at + detail::zip_central_bytes + name_bytes, extra_bytes), size,
                       compressed, offset, disk, named);
      if (disk != 0) fail(named, "lies on another disk of a split archive");
      if (compressed != size) fail(named, "is stored, yet its compressed and uncompressed sizes differ");
      // The entry (its fixed local header, its name and its bytes) must lie before the directory.
      const std::uint64_t fixed = detail::zip_local_bytes + entry.name.size();
      if (offset > dir.offset || fixed > dir.offset - offset || size > dir.offset - offset - fixed) {
        fail(named, std::to_string(size) + " bytes at local header offset " + std::to_string(offset) +
                        " run past the start of the central directory (" + std::to_string(dir.offset) + ")");
      }
      entry.local_header_offset = offset;
      entry.size = size;
      if (!index_.emplace(entry.name, entries_.size()).second) fail(named, "appears twice in the archive");
      entries_.push_back(std::move(entry));
      at += record_bytes;
    }
  }

  // The zip64 extended-information field holds, in this order, the sizes and the offset
  // whose 32-bit fields are saturated (and the disk, when its 16-bit field is).
  static void read_zip64_extra(std::string_view extra, std::uint64_t& size, std::uint64_t& compressed,
                               std::uint64_t& offset, std::uint64_t& disk, const std::string& where) {
    for (std::size_t at = 0; at < extra.size();) {
      if (extra.size() - at < 4) fail(where, "has a truncated extra field");
      const std::uint64_t id = detail::zip_le(extra, at, 2);
      const std::size_t length = detail::zip_le(extra, at + 2, 2);
      if (extra.size() - at - 4 < length) fail(where, "has an extra field that runs past its end");
      if (id == 1) {
        std::string_view field = extra.substr(at + 4, length);
        auto take = [&](std::uint64_t& value, std::uint64_t saturated, int width) {
          if (value != saturated) return;
          if (field.size() < static_cast<std::size_t>(width)) fail(where, "has a zip64 field too short for its values");
          value = detail::zip_le(field, 0, width);
          field.remove_prefix(static_cast<std::size_t>(width));
        };
        take(size, 0xffffffff, 8);
        take(compressed, 0xffffffff, 8);
        take(offset, 0xffffffff, 8);
        take(disk, 0xffff, 4);
      }
      at += 4 + length;
    }
  }

  std::shared_ptr<const ReadOnlyFile> file_;
  std::uint64_t directory_offset_ = 0;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;  // name -> index into entries_
};

}  // namespace smallcoder
