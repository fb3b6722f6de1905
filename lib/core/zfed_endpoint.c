/*  zfed_endpoint - endpoint syntax, checked before any socket sees it.

    Self-contained (libc only), so the bare-libzmq benchmark baseline can
    check its endpoints with the same rules without linking libzfed.
*/
#include "zfed/zfed_endpoint.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

//  Longest Unix socket path: sun_path less its terminating NUL.
#define IPC_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
//  Longest host name (RFC 1035) or bracketed IPv6 literal with a zone.
#define HOST_MAX 255

static int s_fail(char *reason, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *reason, size_t size, const char *format, ...)
{
    if (reason && size) {
        va_list args;
        va_start(args, format);
        vsnprintf(reason, size, format, args);
        va_end(args);
    }
    return -1;
}

//  A host: a name or IPv4 address (letters, digits, '.', '-', '_'), an
//  interface name (the same characters), or "[IPv6]".
static bool s_host_valid(const char *host, size_t length)
{
    if (length == 0 || length > HOST_MAX)
        return false;
    if (host[0] == '[') {
        if (length < 3 || host[length - 1] != ']')
            return false;
        //  Hex digits and ':' (with '.' for an embedded IPv4 address),
        //  then an optional "%zone".
        for (size_t index = 1; index + 1 < length; index++)
            if (!isalnum((unsigned char)host[index]) && !strchr(":.%", host[index]))
                return false;
        return true;
    }
    for (size_t index = 0; index < length; index++)
        if (!isalnum((unsigned char)host[index]) && !strchr(".-_", host[index]))
            return false;
    return true;
}

//  1 to 65535 in plain decimal: no sign, no leading zero, nothing after.
static bool s_port_valid(const char *port)
{
    size_t length = strlen(port);
    if (length == 0 || length > 5 || port[0] == '0')
        return false;
    unsigned long number = 0;
    for (size_t index = 0; index < length; index++) {
        if (!isdigit((unsigned char)port[index]))
            return false;
        number = number * 10 + (unsigned long)(port[index] - '0');
    }
    return number <= 65535;
}

static int s_check_tcp(const char *address, zfed_endpoint_use_t use, char *reason, size_t size)
{
    //  "SOURCE;HOST:PORT" connects from a given address; the part that
    //  must be reachable is after the ';'.
    const char *semicolon = strchr(address, ';');
    if (semicolon && use == ZFED_ENDPOINT_CONNECT)
        address = semicolon + 1;
    const char *colon = strrchr(address, ':');
    if (!colon || (address[0] == '[' && colon < strchr(address, ']')))
        return s_fail(reason, size, "no port");
    size_t host_length = (size_t)(colon - address);
    const char *port = colon + 1;
    bool wildcard_host = host_length == 1 && address[0] == '*';
    if (host_length == 0)
        return s_fail(reason, size, "no host");
    if (wildcard_host && use == ZFED_ENDPOINT_CONNECT)
        return s_fail(reason, size, "'*' is for binding; connect to a host name or address");
    if (!wildcard_host && !s_host_valid(address, host_length))
        return s_fail(reason, size, "'%.*s' is not a host name or address", (int)host_length,
                      address);
    if (strcmp(port, "*") == 0 || strcmp(port, "0") == 0) {
        if (use == ZFED_ENDPOINT_CONNECT)
            return s_fail(reason, size,
                          "port '%s' is for binding; connect to a port from 1 to 65535", port);
        return 0;
    }
    if (!s_port_valid(port))
        return s_fail(reason, size, "port '%s' is not 1 to 65535%s", port,
                      use == ZFED_ENDPOINT_BIND ? " (or * for a free one)" : "");
    return 0;
}

int zfed_endpoint_check(const char *endpoint, zfed_endpoint_use_t use, char *reason,
                        size_t reason_size)
{
    if (!endpoint || !*endpoint)
        return s_fail(reason, reason_size, "empty");
    const char *separator = strstr(endpoint, "://");
    if (!separator)
        return s_fail(reason, reason_size, "no transport");
    size_t transport = (size_t)(separator - endpoint);
    const char *address = separator + 3;
    if (transport == 3 && strncmp(endpoint, "tcp", 3) == 0)
        return s_check_tcp(address, use, reason, reason_size);
    if (transport == 3 && strncmp(endpoint, "ipc", 3) == 0) {
        if (!*address)
            return s_fail(reason, reason_size, "no path");
        if (strlen(address) > IPC_PATH_MAX)
            return s_fail(reason, reason_size, "path longer than %zu bytes", IPC_PATH_MAX);
        return 0;
    }
    if (transport == 6 && strncmp(endpoint, "inproc", 6) == 0)
        return *address ? 0 : s_fail(reason, reason_size, "no name");
    return s_fail(reason, reason_size, "transport '%.*s' is not one zfed speaks", (int)transport,
                  endpoint);
}
