// A whole file mapped read-only into memory (POSIX mmap). Weight readers hand out
// pointers into the mapping instead of copying tensors, so the kernel pages them in
// on first use and shares them between processes.
#pragma once

#include <cerrno>
#include <cstddef>
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

// Move-only owner of one mapping; unmapped in the destructor. An empty file has
// size 0 and data nullptr (mmap cannot map zero bytes). Pointers into the mapping
// stay valid while the object lives; readers keep it alive through shared_ptr.
// Truncating the file on disk while it is mapped makes later reads fault (SIGBUS):
// that is mmap's contract and no check here can prevent it.
class MappedFile {
 public:
  static std::shared_ptr<const MappedFile> open(const std::string& path) {
    // O_NONBLOCK: opening a FIFO read-only would otherwise wait for a writer forever;
    // it has no effect on regular files, and anything else is rejected below.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(path, "cannot open: " + std::generic_category().message(errno));
    const FileDescriptor guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail(path, "cannot stat: " + std::generic_category().message(errno));
    if (S_ISDIR(st.st_mode)) fail(path, "is a directory");
    if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");

    std::shared_ptr<MappedFile> file(new MappedFile(path));
    file->size_ = static_cast<std::size_t>(st.st_size);
    if (file->size_ == 0) return file;
    void* addr = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) fail(path, "cannot map: " + std::generic_category().message(errno));
    file->data_ = static_cast<const std::byte*>(addr);
    return file;
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept
      : path_(std::move(other.path_)), data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      unmap();
      path_ = std::move(other.path_);
      data_ = other.data_;
      size_ = other.size_;
      other.data_ = nullptr;
      other.size_ = 0;
    }
    return *this;
  }
  ~MappedFile() { unmap(); }

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  // Closes the descriptor on every exit path; the mapping does not need it open.
  struct FileDescriptor {
    int fd;
    ~FileDescriptor() { ::close(fd); }
  };

  explicit MappedFile(std::string path) : path_(std::move(path)) {}

  void unmap() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace smallcoder
