/*  zfed_util - clocks, strict parsing, durable writes.  */
#include "zfed/zfed_util.h"
#include "core/zfed_durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t zfed_clock_ms(void)
{
    return zfed_clock_us() / 1000;
}

int64_t zfed_clock_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

int64_t zfed_wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int zfed_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1; //  strtoull accepts "-1", " 1" and "+1": we do not
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return -1;
    *out = (uint64_t)value;
    return 0;
}

int zfed_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t value;
    if (zfed_parse_u64(text, min, max, &value) != 0)
        return -1;
    *out = (uint32_t)value;
    return 0;
}

int zfed_parse_double(const char *text, double min, double max, double *out)
{
    if (!text || !((*text >= '0' && *text <= '9') || *text == '.' || *text == '-'))
        return -1;
    //  strtod also reads hex ("0x1p-1"), infinities and NaN: decimal only.
    if (text[strspn(text, "0123456789.eE+-")] != '\0')
        return -1;
    errno = 0;
    char *end = NULL;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(value) || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

int zfed_write_file_durable(const char *path, const void *data, size_t size)
{
    zfed_durable_t *file = zfed_durable_open(path);
    if (!file)
        return -1;
    if (zfed_durable_write(file, data, size) != 0) {
        int saved = errno;
        zfed_durable_abort(&file);
        errno = saved;
        return -1;
    }
    return zfed_durable_commit(&file);
}

char *zfed_read_file(const char *path, size_t max_size, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    if (!S_ISREG(info.st_mode) || (size_t)info.st_size > max_size) {
        close(fd);
        errno = S_ISREG(info.st_mode) ? EFBIG : EINVAL;
        return NULL;
    }
    size_t capacity = (size_t)info.st_size;
    char *buffer = malloc(capacity + 1);
    if (!buffer) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    size_t filled = 0;
    while (filled < capacity) {
        ssize_t got = read(fd, buffer + filled, capacity - filled);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int saved = errno;
            free(buffer);
            close(fd);
            errno = saved;
            return NULL;
        }
        if (got == 0)
            break; //  file shrank while we read it: keep what is there
        filled += (size_t)got;
    }
    close(fd);
    buffer[filled] = '\0';
    if (size)
        *size = filled;
    return buffer;
}

int zfed_mkdir_p(const char *path)
{
    if (!path || !*path) {
        errno = ENOENT;
        return -1;
    }
    char partial[PATH_MAX];
    if (snprintf(partial, sizeof partial, "%s", path) >= (int)sizeof partial) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *cursor = partial + 1; *cursor; cursor++) {
        if (*cursor != '/')
            continue;
        *cursor = '\0';
        if (mkdir(partial, 0755) != 0 && errno != EEXIST)
            return -1;
        *cursor = '/';
    }
    if (mkdir(partial, 0755) != 0 && errno != EEXIST)
        return -1;
    struct stat info;
    if (stat(partial, &info) != 0)
        return -1;
    if (!S_ISDIR(info.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

bool zfed_is_safe_name(const char *name, size_t max_len)
{
    return name && zfed_is_safe_name_bytes(
                       name, strnlen(name, max_len < SIZE_MAX ? max_len + 1 : max_len), max_len);
}

bool zfed_is_safe_name_bytes(const char *name, size_t length, size_t max_len)
{
    if (length == 0 || length > max_len || name[0] == '.')
        return false;
    for (size_t index = 0; index < length; index++) {
        char c = name[index];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false; //  a NUL among them too
    }
    return true;
}

bool zfed_is_token(const char *text, size_t max_len)
{
    if (!text || !*text || strlen(text) > max_len)
        return false;
    for (const char *cursor = text; *cursor; cursor++)
        if (*cursor < 0x21 || *cursor > 0x7e)
            return false;
    return true;
}
