/*  zfed_sha256 - SHA-256 over libcrypto's EVP interface.  */
#include "zfed/zfed_sha256.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>

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
