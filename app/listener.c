/* listener.c -- the FastCGI listen socket nginx connects to
 *
 * The master opens the socket once, before forking, and every worker
 * inherits it. It is non-blocking: workers wait for it in epoll and the
 * ones that lose the race for a connection get EAGAIN instead of blocking
 * in accept(2).
 */

#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* How long a connect to an existing socket file may take before the file
 * is judged stale (left by a process that is gone). */
#define STALE_PROBE_MS 500

static int unix_addr(const struct config *cfg, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(cfg->fcgi_listen) >= sizeof(sa->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa->sun_path, cfg->fcgi_listen, strlen(cfg->fcgi_listen) + 1);
    return 0;
}

/* connect() with a timeout on a fresh non-blocking socket. Returns the
 * connected fd or -1 with errno set. */
static int connect_timeout(int family, const struct sockaddr *sa, socklen_t salen, int timeout_ms)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct pollfd pfd;
    int soerr = 0, saved;
    socklen_t len = sizeof(soerr);

    if (fd < 0) {
        return -1;
    }
    if (connect(fd, sa, salen) == 0) {
        return fd;
    }
    saved = errno;
    if (saved != EINPROGRESS && saved != EAGAIN) {
        goto fail;
    }
    pfd.fd = fd;
    pfd.events = POLLOUT;
    if (poll(&pfd, 1, timeout_ms) != 1) {
        saved = ETIMEDOUT;
        goto fail;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        saved = errno;
        goto fail;
    }
    if (soerr != 0) {
        saved = soerr;
        goto fail;
    }
    return fd;

fail:
    close(fd);
    errno = saved;
    return -1;
}

static int open_unix(const struct config *cfg, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat stbuf;
    int fd = -1, probe;

    if (unix_addr(cfg, &sa) != 0) {
        snprintf(err, errlen, "FCGI_LISTEN path too long");
        return -1;
    }
    if (lstat(cfg->fcgi_listen, &stbuf) == 0) {
        if (!S_ISSOCK(stbuf.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", cfg->fcgi_listen);
            return -1;
        }
        probe = connect_timeout(AF_UNIX, (struct sockaddr *)&sa, sizeof(sa), STALE_PROBE_MS);
        if (probe >= 0) {
            close(probe);
            snprintf(err, errlen, "%s is in use by a running process", cfg->fcgi_listen);
            return -1;
        }
        unlink(cfg->fcgi_listen); /* stale: its owner is gone */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "bind %s: %s", cfg->fcgi_listen, strerror(errno));
        goto fail;
    }
    if (chmod(cfg->fcgi_listen, (mode_t)cfg->fcgi_socket_mode) != 0) {
        snprintf(err, errlen, "chmod %s: %s", cfg->fcgi_listen, strerror(errno));
        goto fail;
    }
    if (listen(fd, cfg->fcgi_backlog) != 0) {
        snprintf(err, errlen, "listen %s: %s", cfg->fcgi_listen, strerror(errno));
        goto fail;
    }
    return fd;

fail:
    close(fd);
    return -1;
}

static int open_tcp(const struct config *cfg, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", cfg->fcgi_port);
    rc = getaddrinfo(cfg->fcgi_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "resolve %s: %s", cfg->fcgi_host, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto out;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, cfg->fcgi_backlog) != 0) {
        snprintf(err, errlen, "listen on %s: %s", cfg->fcgi_listen, strerror(errno));
        close(fd);
        fd = -1;
    }

out:
    freeaddrinfo(res);
    return fd;
}

int listener_open(const struct config *cfg, char *err, size_t errlen)
{
    return cfg->fcgi_unix ? open_unix(cfg, err, errlen) : open_tcp(cfg, err, errlen);
}

int listener_probe(const struct config *cfg, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_un sa;
    char port[8];
    int fd, rc;

    if (cfg->fcgi_unix) {
        if (unix_addr(cfg, &sa) != 0) {
            snprintf(err, errlen, "FCGI_LISTEN path too long");
            return -1;
        }
        fd = connect_timeout(AF_UNIX, (struct sockaddr *)&sa, sizeof(sa), timeout_ms);
    } else {
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof(port), "%d", cfg->fcgi_port);
        rc = getaddrinfo(cfg->fcgi_host, port, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "resolve %s: %s", cfg->fcgi_host, gai_strerror(rc));
            return -1;
        }
        fd = connect_timeout(res->ai_family, res->ai_addr, res->ai_addrlen, timeout_ms);
        freeaddrinfo(res);
    }
    if (fd < 0) {
        snprintf(err, errlen, "connect %s: %s", cfg->fcgi_listen, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

void listener_unlink(const struct config *cfg)
{
    if (cfg->fcgi_unix) {
        unlink(cfg->fcgi_listen);
    }
}
