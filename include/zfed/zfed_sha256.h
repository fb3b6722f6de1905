/*  zfed_sha256 - SHA-256 (FIPS 180-4), streaming and one-shot.

    Over OpenSSL's libcrypto (EVP), which uses the CPU's SHA extensions
    where there are any: about 1.5 GB/s on one core with SHA-NI, several
    times what portable C does.  The content hash of a model is the
    SHA-256 of its data bytes.
*/
#ifndef ZFED_SHA256_H_INCLUDED
#define ZFED_SHA256_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_SHA256_SIZE 32
//  Hex digits and the terminating NUL.
#define ZFED_SHA256_HEX_SIZE (2 * ZFED_SHA256_SIZE + 1)

typedef struct _zfed_sha256_t zfed_sha256_t;

//  A hash in progress over no bytes yet; NULL when memory runs out.
zfed_sha256_t *zfed_sha256_new(void);
void zfed_sha256_destroy(zfed_sha256_t **self_p);
//  Adds size bytes.  0, or -1 (libcrypto failed: never seen in practice).
int zfed_sha256_update(zfed_sha256_t *self, const void *data, size_t size);
//  Writes the digest of everything added and starts over on no bytes.
int zfed_sha256_final(zfed_sha256_t *self, uint8_t digest[ZFED_SHA256_SIZE]);

//  Digest of one buffer.  0 or -1.
int zfed_sha256(const void *data, size_t size, uint8_t digest[ZFED_SHA256_SIZE]);

//  Digest of a whole file, read in chunks (never held whole), and its
//  size in bytes when size is not NULL.  0, or -1 with errno set (the
//  open's or the read's).
int zfed_sha256_file(const char *path, uint8_t digest[ZFED_SHA256_SIZE], uint64_t *size);
//  Digest of length bytes of a file from offset (a safetensors file's data
//  section): -1 with errno EIO when the file ends before them.
int zfed_sha256_file_range(const char *path, uint64_t offset, uint64_t length,
                           uint8_t digest[ZFED_SHA256_SIZE]);

//  Frees what libcrypto keeps for the calling thread; call it last in a
//  thread that hashed and may not be joined (a czmq actor).
void zfed_sha256_thread_done(void);

//  Lower-case hex of a digest into hex (ZFED_SHA256_HEX_SIZE bytes); returns hex.
char *zfed_sha256_hex(const uint8_t digest[ZFED_SHA256_SIZE], char *hex);
//  The digest whose lower-case hex is text (length bytes, no terminator
//  needed): exactly 2 x ZFED_SHA256_SIZE digits 0-9a-f, nothing else.
//  0, or -1 (digest untouched past the first bad digit) for NULL or any
//  other text.
int zfed_sha256_from_hex(const char *text, size_t length, uint8_t digest[ZFED_SHA256_SIZE]);

#ifdef __cplusplus
}
#endif

#endif
