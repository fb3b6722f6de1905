/*  zfed_gate - connections counted and bounded below the descriptor limit.  */
#include "broker/zfed_gate.h"
#include "zfed/zfed_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

//  TCP endpoints watched (zfed-broker binds at most 16).
#define LISTENERS_MAX 16
//  Descriptors held back for libzmq's accept when it fails for lack of
//  them (/dev/null opened read-only).
#define RESERVE_FDS 8
//  Open again below this share of the limit (percent).
#define REOPEN_PERCENT 90

typedef struct {
    int fd;
    uint16_t port;
} s_listener_t;

struct _zfed_gate_t {
    size_t limit;
    s_listener_t listeners[LISTENERS_MAX];
    size_t listener_count;
    int reserve[RESERVE_FDS];
    size_t reserve_held;
    bool closed;
    bool failing; //  an accept failed since the last tick
    uint64_t open;
    uint64_t refused;
    uint64_t closes;
};

static void s_take_reserve(zfed_gate_t *self)
{
    while (self->reserve_held < RESERVE_FDS) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return; //  none to spare yet: next tick
        self->reserve[self->reserve_held++] = fd;
    }
}

static void s_give_reserve(zfed_gate_t *self)
{
    while (self->reserve_held > 0)
        close(self->reserve[--self->reserve_held]);
}

zfed_gate_t *zfed_gate_new(size_t max_connections)
{
    zfed_gate_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->limit = max_connections;
    if (self->limit == 0) {
        struct rlimit limit;
        rlim_t soft = getrlimit(RLIMIT_NOFILE, &limit) == 0 ? limit.rlim_cur : 1024;
        if (soft == RLIM_INFINITY || soft > (rlim_t)SIZE_MAX)
            soft = (rlim_t)1 << 20;
        self->limit =
            soft > 2 * ZFED_GATE_HEADROOM ? (size_t)soft - ZFED_GATE_HEADROOM : (size_t)soft / 2;
    }
    s_take_reserve(self);
    return self;
}

void zfed_gate_destroy(zfed_gate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_give_reserve(*self_p);
    free(*self_p);
    *self_p = NULL;
}

static int s_local_port(int fd, uint16_t *port)
{
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0)
        return -1;
    if (address.ss_family == AF_INET)
        *port = ntohs(((struct sockaddr_in *)&address)->sin_port);
    else if (address.ss_family == AF_INET6)
        *port = ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
    else
        return -1;
    return 0;
}

int zfed_gate_listen(zfed_gate_t *self, const char *endpoint)
{
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return 0;
    const char *colon = strrchr(endpoint, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (port <= 0 || port > 65535 || self->listener_count == LISTENERS_MAX) {
        zfed_warn("%s: cannot watch its listener; connections to it are not bounded", endpoint);
        return -1;
    }
    //  libzmq's listening socket: the one of ours in LISTEN on that port.
    DIR *dir = opendir("/proc/self/fd");
    int found = -1;
    struct dirent *entry;
    while (dir && found < 0 && (entry = readdir(dir)) != NULL) {
        char *end = NULL;
        long fd = strtol(entry->d_name, &end, 10);
        int listening = 0;
        socklen_t size = sizeof listening;
        uint16_t local = 0;
        if (end == entry->d_name || *end || fd == dirfd(dir) ||
            getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening ||
            s_local_port((int)fd, &local) != 0 || local != port)
            continue;
        found = (int)fd;
    }
    if (dir)
        closedir(dir);
    if (found < 0) {
        zfed_warn("%s: its listening socket was not found; connections to it are not bounded",
                  endpoint);
        return -1;
    }
    self->listeners[self->listener_count++] = (s_listener_t){found, (uint16_t)port};
    return 0;
}

bool zfed_gate_owns(const zfed_gate_t *self, int fd)
{
    struct stat info;
    uint16_t port = 0;
    if (fd < 0 || fstat(fd, &info) != 0 || !S_ISSOCK(info.st_mode) || s_local_port(fd, &port) != 0)
        return false;
    int listening = 0;
    socklen_t size = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || listening)
        return false;
    for (size_t index = 0; index < self->listener_count; index++)
        if (self->listeners[index].port == port)
            return true;
    return false;
}

//  Drops (attach) or lets through (detach) every packet to the listeners.
static void s_filter(zfed_gate_t *self, bool drop)
{
    struct sock_filter program[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog filter = {1, program};
    int unused = 0;
    for (size_t index = 0; index < self->listener_count; index++) {
        int fd = self->listeners[index].fd;
        int rc = drop ? setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &filter, sizeof filter)
                      : setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused);
        if (rc != 0 && (drop || errno != ENOENT))
            zfed_warn("cannot %s the filter on listener %d (port %u): %s",
                      drop ? "attach" : "detach", fd, self->listeners[index].port, strerror(errno));
    }
}

static void s_close(zfed_gate_t *self, const char *why)
{
    if (self->closed)
        return;
    self->closed = true;
    self->closes++;
    s_filter(self, true);
    zfed_warn("not accepting new connections: %s (%llu open, limit %zu; see --max-connections); "
              "the connected peers are served as before",
              why, (unsigned long long)self->open, self->limit);
}

void zfed_gate_accepted(zfed_gate_t *self, int fd)
{
    self->open++;
    if (!self->closed && self->open >= self->limit)
        s_close(self, "the connection limit is reached");
    else if (self->closed && zfed_gate_owns(self, fd)) {
        //  Waited in the listen queue while we closed: shut it; libzmq
        //  sees the end of the stream, closes it and says DISCONNECTED.
        shutdown(fd, SHUT_RDWR);
        self->refused++;
    }
}

void zfed_gate_closed(zfed_gate_t *self, int fd)
{
    if (self->open > 0)
        self->open--;
}

void zfed_gate_accept_failed(zfed_gate_t *self, int error)
{
    if (error != EMFILE && error != ENFILE)
        return; //  a peer gave up mid-handshake and the like: nothing to do
    self->failing = true;
    //  The descriptors ran out before the limit did: what is open now is
    //  what this process can hold, so that becomes the limit.
    if (!self->closed && self->open < self->limit && self->open > 0) {
        zfed_warn("accept failed at %llu connections, under --max-connections %zu: the limit "
                  "is now %llu",
                  (unsigned long long)self->open, self->limit, (unsigned long long)self->open);
        self->limit = (size_t)self->open;
    }
    s_close(self, error == EMFILE ? "the process is out of descriptors (EMFILE)"
                                  : "the system is out of descriptors (ENFILE)");
    //  libzmq retries at once: let it accept what waits, to be shut.
    s_give_reserve(self);
}

void zfed_gate_tick(zfed_gate_t *self)
{
    if (!self->failing)
        s_take_reserve(self);
    self->failing = false;
    if (self->closed && self->reserve_held == RESERVE_FDS &&
        self->open * 100 < (uint64_t)self->limit * REOPEN_PERCENT) {
        self->closed = false;
        s_filter(self, false);
        zfed_info("accepting new connections again (%llu open, limit %zu)",
                  (unsigned long long)self->open, self->limit);
    }
}

void zfed_gate_stats(const zfed_gate_t *self, zfed_gate_stats_t *stats)
{
    *stats =
        (zfed_gate_stats_t){self->open, self->refused, self->closes, self->limit, self->closed};
}
