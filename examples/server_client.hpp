// Whether an HTTP client is still there. cpp-httplib 0.11 (Debian 12) tells a handler
// neither its socket nor whether the peer has closed it (later versions have
// Request::is_connection_closed), so the server finds the connection's socket by the
// peer address httplib reports and peeks at it: a read of 0 bytes means the client has
// closed its side (an editor aborting the previous request on a keystroke does that).
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace server {

class ClientSocket {
 public:
  // The socket of this process connected to addr:port (as httplib's remote_addr and
  // remote_port give them); -1 when none is found, and then the client counts as present.
  ClientSocket(const std::string& addr, int port) : fd_(find(addr, port)) {}

  bool gone() const {
    if (fd_ < 0) return false;
    char byte;
    const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;  // orderly shutdown by the peer
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  }

 private:
  static int find(const std::string& addr, int port) {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return -1;
    int found = -1;
    while (const dirent* entry = ::readdir(dir)) {
      const int fd = std::atoi(entry->d_name);
      if (entry->d_name[0] < '0' || entry->d_name[0] > '9' || fd == ::dirfd(dir)) continue;
      sockaddr_storage peer{};
      socklen_t length = sizeof peer;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) continue;
      char host[INET6_ADDRSTRLEN] = {};
      int peer_port = -1;
      if (peer.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&peer);
        ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        peer_port = ntohs(in->sin_port);
      } else if (peer.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        peer_port = ntohs(in6->sin6_port);
      }
      if (peer_port == port && addr == host) {
        found = fd;
        break;
      }
    }
    ::closedir(dir);
    return found;
  }

  int fd_;
};

}  // namespace server
