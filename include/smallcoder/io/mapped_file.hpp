// Read-only access to files: a whole file or a byte range of it mapped into memory (POSIX
// mmap), and positioned reads for the small parts of a container that a reader parses.
// Weight readers hand out pointers into mappings instead of copying tensors, so the kernel
// pages them in on first use and shares them between processes; a range mapping leaves the
// rest of the file (a checkpoint's optimizer state, say) outside the address space.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smallcoder/error.hpp"

namespace smallcoder {

class ReadOnlyFile;

// Move-only owner of one mapping; unmapped in the destructor. An empty file (or range) has
// size 0 and data nullptr (mmap cannot map zero bytes). Pointers into the mapping stay
// valid while the object lives; readers keep it alive through shared_ptr.
// Truncating the file on disk while it is mapped makes later reads fault (SIGBUS):
// that is mmap's contract and no check here can prevent it.
class MappedFile {
 public:
  // Maps the whole file at `path`.
  static std::shared_ptr<const MappedFile> open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept { take(other); }
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      unmap();
      take(other);
    }
    return *this;
  }
  ~MappedFile() { unmap(); }

  const std::byte* data() const { return data_; }  // the first byte of the file or range
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  friend class ReadOnlyFile;

  explicit MappedFile(std::string path) : path_(std::move(path)) {}

  void take(MappedFile& other) {
    path_ = std::move(other.path_);
    base_ = other.base_;
    mapped_bytes_ = other.mapped_bytes_;
    data_ = other.data_;
    size_ = other.size_;
    other.base_ = other.data_ = nullptr;
    other.mapped_bytes_ = other.size_ = 0;
  }

  void unmap() {
    if (base_ != nullptr) ::munmap(const_cast<std::byte*>(base_), mapped_bytes_);
    base_ = data_ = nullptr;
    mapped_bytes_ = size_ = 0;
  }

  std::string path_;
  const std::byte* base_ = nullptr;  // the mapping starts on a page boundary at or before data_
  std::size_t mapped_bytes_ = 0;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// An open regular file: its size, positioned reads and mappings of byte ranges. Every
// range is checked against the size the file had when it was opened.
class ReadOnlyFile {
 public:
  static std::shared_ptr<const ReadOnlyFile> open(const std::string& path) {
    // O_NONBLOCK: opening a FIFO read-only would otherwise wait for a writer forever;
    // it has no effect on regular files, and anything else is rejected below.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(path, "cannot open: " + std::generic_category().message(errno));
    std::shared_ptr<ReadOnlyFile> file(new ReadOnlyFile(path, fd));
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail(path, "cannot stat: " + std::generic_category().message(errno));
    if (S_ISDIR(st.st_mode)) fail(path, "is a directory");
    if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
    file->size_ = static_cast<std::uint64_t>(st.st_size);
    return file;
  }

  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;
  ~ReadOnlyFile() { ::close(fd_); }

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }

  // Bytes [offset, offset + n) as a string; Error when the range leaves the file or a read fails.
  std::string read(std::uint64_t offset, std::size_t n) const {
    check_range(offset, n);
    std::string out(n, '\0');
    for (std::size_t done = 0; done < n;) {
      const ssize_t got = ::pread(fd_, &out[done], n - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail(path_, "cannot read: " + std::generic_category().message(errno));
      if (got == 0) fail(path_, "the file ended at byte " + std::to_string(offset + done) + " while being read");
      done += static_cast<std::size_t>(got);
    }
    return out;
  }

  // Maps bytes [offset, offset + n); the mapping outlives this object. The pages are
  // faulted in now (MAP_POPULATE, as llama.cpp maps): a model's first forward pass
  // otherwise takes a page fault per 4 KiB of weights (the benchmark's first prompt on
  // Tiny Q8_0 took 52-78 ms, 37 ms with the pages populated; model.hpp's warm_up does the
  // rest). The pages are the file's page cache, shared and not copied, as before.
  std::shared_ptr<const MappedFile> map(std::uint64_t offset, std::size_t n) const {
    check_range(offset, n);
    std::shared_ptr<MappedFile> mapped(new MappedFile(path_));
    if (n == 0) return mapped;
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t start = offset / page * page;
    const std::size_t lead = static_cast<std::size_t>(offset - start);
#ifdef MAP_POPULATE
    constexpr int kFlags = MAP_PRIVATE | MAP_POPULATE;
#else
    constexpr int kFlags = MAP_PRIVATE;
#endif
    void* addr = ::mmap(nullptr, lead + n, PROT_READ, kFlags, fd_, static_cast<off_t>(start));
    if (addr == MAP_FAILED) fail(path_, "cannot map: " + std::generic_category().message(errno));
    mapped->base_ = static_cast<const std::byte*>(addr);
    mapped->mapped_bytes_ = lead + n;
    mapped->data_ = mapped->base_ + lead;
    mapped->size_ = n;
    return mapped;
  }

 private:
  ReadOnlyFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  void check_range(std::uint64_t offset, std::size_t n) const {
    if (offset > size_ || n > size_ - offset) {
      fail(path_, std::to_string(n) + " bytes at offset " + std::to_string(offset) + " run past the end of the file (" +
                      std::to_string(size_) + " bytes)");
    }
  }

  std::string path_;
  int fd_;
  std::uint64_t size_ = 0;
};

inline std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  const std::shared_ptr<const ReadOnlyFile> file = ReadOnlyFile::open(path);
  if (file->size() > std::numeric_limits<std::size_t>::max()) fail(path, "is too large to map");
  return file->map(0, static_cast<std::size_t>(file->size()));
}

}  // namespace smallcoder
