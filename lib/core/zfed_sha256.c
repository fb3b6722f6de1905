/*  zfed_sha256 - SHA-256 over libcrypto's EVP interface.  */
#include "zfed/zfed_sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

//  A file is hashed this many bytes at a time: big enough that the read
//  calls cost nothing beside the hashing, small enough for any heap.
#define FILE_CHUNK (1u << 20)

struct _zfed_sha256_t {
    EVP_MD_CTX *context;
};

zfed_sha256_t *zfed_sha256_new(void)
{
    zfed_sha256_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->context = EVP_MD_CTX_new();
    if (!self->context || EVP_DigestInit_ex(self->context, EVP_sha256(), NULL) != 1)
        zfed_sha256_destroy(&self);
    return self;
}

void zfed_sha256_destroy(zfed_sha256_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    EVP_MD_CTX_free((*self_p)->context);
    free(*self_p);
    *self_p = NULL;
}

int zfed_sha256_update(zfed_sha256_t *self, const void *data, size_t size)
{
    return size == 0 || EVP_DigestUpdate(self->context, data, size) == 1 ? 0 : -1;
}

int zfed_sha256_final(zfed_sha256_t *self, uint8_t digest[ZFED_SHA256_SIZE])
{
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(self->context, digest, &length) != 1 || length != ZFED_SHA256_SIZE)
        return -1;
    return EVP_DigestInit_ex(self->context, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

int zfed_sha256(const void *data, size_t size, uint8_t digest[ZFED_SHA256_SIZE])
{
    unsigned int length = 0;
    return EVP_Digest(data, size, digest, &length, EVP_sha256(), NULL) == 1 &&
                   length == ZFED_SHA256_SIZE
               ? 0
               : -1;
}

//  Hashes length bytes of fd from offset (to the end when whole), counting
//  them into *done.  0, or -1 with errno.
static int s_hash_fd(int fd, uint64_t offset, uint64_t length, bool whole, zfed_sha256_t *hash,
                     uint64_t *done)
{
    uint8_t *chunk = malloc(FILE_CHUNK);
    if (!chunk) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    *done = 0;
    while (whole || *done < length) {
        size_t want = whole || length - *done > FILE_CHUNK ? FILE_CHUNK : (size_t)(length - *done);
        ssize_t got = pread(fd, chunk, want, (off_t)(offset + *done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0) {
            //  The end: where the caller wanted one, else too soon.
            if (!whole) {
                errno = EIO;
                rc = -1;
            }
            break;
        }
        if (zfed_sha256_update(hash, chunk, (size_t)got) != 0) {
            errno = ENOMEM;
            rc = -1;
            break;
        }
        *done += (uint64_t)got;
    }
    free(chunk);
    return rc;
}

static int s_hash_file(const char *path, uint64_t offset, uint64_t length, bool whole,
                       uint8_t digest[ZFED_SHA256_SIZE], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    zfed_sha256_t *hash = zfed_sha256_new();
    uint64_t done = 0;
    int rc = hash ? s_hash_fd(fd, offset, length, whole, hash, &done) : -1;
    if (!hash)
        errno = ENOMEM;
    int saved = errno;
    if (rc == 0 && zfed_sha256_final(hash, digest) != 0) {
        saved = ENOMEM;
        rc = -1;
    }
    zfed_sha256_destroy(&hash);
    close(fd);
    if (rc == 0 && size)
        *size = done;
    errno = saved;
    return rc;
}

int zfed_sha256_file(const char *path, uint8_t digest[ZFED_SHA256_SIZE], uint64_t *size)
{
    return s_hash_file(path, 0, 0, true, digest, size);
}

int zfed_sha256_file_range(const char *path, uint64_t offset, uint64_t length,
                           uint8_t digest[ZFED_SHA256_SIZE])
{
    return s_hash_file(path, offset, length, false, digest, NULL);
}

void zfed_sha256_thread_done(void)
{
    OPENSSL_thread_stop();
}

char *zfed_sha256_hex(const uint8_t digest[ZFED_SHA256_SIZE], char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (int index = 0; index < ZFED_SHA256_SIZE; index++) {
        hex[2 * index] = digits[digest[index] >> 4];
        hex[2 * index + 1] = digits[digest[index] & 0xf];
    }
    hex[2 * ZFED_SHA256_SIZE] = '\0';
    return hex;
}

//  A lower-case hex digit's value, or -1.
static int s_hex_digit(char digit)
{
    if (digit >= '0' && digit <= '9')
        return digit - '0';
    if (digit >= 'a' && digit <= 'f')
        return digit - 'a' + 10;
    return -1;
}

int zfed_sha256_from_hex(const char *text, size_t length, uint8_t digest[ZFED_SHA256_SIZE])
{
    if (!text || length != 2 * ZFED_SHA256_SIZE)
        return -1;
    for (size_t index = 0; index < ZFED_SHA256_SIZE; index++) {
        int high = s_hex_digit(text[2 * index]);
        int low = s_hex_digit(text[2 * index + 1]);
        if (high < 0 || low < 0)
            return -1;
        digest[index] = (uint8_t)(high << 4 | low);
    }
    return 0;
}
