/*  test_sha256 - FIPS 180-4 test vectors, one-shot and streamed in every
    split, the hex form, and files: whole (empty, one byte, across the
    read chunk), a range of one, and the errors.
*/
#include "zfed/zfed_sha256.h"
#include "zfed_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *s_hex_of(const void *data, size_t size)
{
    static char hex[ZFED_SHA256_HEX_SIZE];
    uint8_t digest[ZFED_SHA256_SIZE];
    CHECK(zfed_sha256(data, size, digest) == 0);
    return zfed_sha256_hex(digest, hex);
}

static void test_vectors(void)
{
    CHECK_STR(s_hex_of("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_STR(s_hex_of("abc", 3),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK_STR(s_hex_of(two_blocks, strlen(two_blocks)),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    size_t million = 1000000;
    char *as = malloc(million);
    memset(as, 'a', million);
    CHECK_STR(s_hex_of(as, million),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    //  Streamed in uneven pieces: the same digest.
    zfed_sha256_t *hash = zfed_sha256_new();
    CHECK(hash != NULL);
    size_t done = 0, piece = 1;
    while (done < million) {
        size_t take = million - done < piece ? million - done : piece;
        CHECK(zfed_sha256_update(hash, as + done, take) == 0);
        done += take;
        piece = piece * 3 + 1;
    }
    uint8_t digest[ZFED_SHA256_SIZE];
    char hex[ZFED_SHA256_HEX_SIZE];
    CHECK(zfed_sha256_final(hash, digest) == 0);
    CHECK_STR(zfed_sha256_hex(digest, hex),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    //  final starts over: the next digest is of what comes after.
    CHECK(zfed_sha256_update(hash, "abc", 3) == 0);
    CHECK(zfed_sha256_update(hash, NULL, 0) == 0);
    CHECK(zfed_sha256_final(hash, digest) == 0);
    CHECK_STR(zfed_sha256_hex(digest, hex),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    zfed_sha256_destroy(&hash);
    zfed_sha256_destroy(&hash);
    CHECK(hash == NULL);
    free(as);
}

//  Writes size bytes of data to path.
static void s_write(const char *path, const void *data, size_t size)
{
    FILE *file = fopen(path, "wb");
    CHECK(file != NULL);
    CHECK(fwrite(data, 1, size, file) == size);
    CHECK(fclose(file) == 0);
}

static const char *s_file_hex(const char *path, uint64_t *size)
{
    static char hex[ZFED_SHA256_HEX_SIZE];
    uint8_t digest[ZFED_SHA256_SIZE];
    CHECK(zfed_sha256_file(path, digest, size) == 0);
    return zfed_sha256_hex(digest, hex);
}

static void test_files(void)
{
    char dir[] = "/tmp/zfed-test-sha256-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/file", dir);
    uint64_t size = 99;
    s_write(path, "", 0);
    CHECK_STR(s_file_hex(path, &size),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(size == 0);
    s_write(path, "abc", 3);
    CHECK_STR(s_file_hex(path, &size),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(size == 3);
    CHECK_STR(s_file_hex(path, NULL),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    //  A million and one bytes: more than one read chunk, and a part one;
    //  the file and the buffer hash the same.
    size_t big = 1000001;
    char *as = malloc(big);
    CHECK(as != NULL);
    memset(as, 'a', big);
    as[big - 1] = 'b';
    s_write(path, as, big);
    char expected[ZFED_SHA256_HEX_SIZE];
    snprintf(expected, sizeof expected, "%s", s_hex_of(as, big));
    CHECK_STR(s_file_hex(path, &size), expected);
    CHECK(size == big);
    //  A range: "abc" at offset 1000 of "xxx...abcyyy".
    uint8_t digest[ZFED_SHA256_SIZE];
    char hex[ZFED_SHA256_HEX_SIZE];
    memset(as, 'x', 1000);
    memcpy(as + 1000, "abcyyy", 6);
    s_write(path, as, 1006);
    CHECK(zfed_sha256_file_range(path, 1000, 3, digest) == 0);
    CHECK_STR(zfed_sha256_hex(digest, hex),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(zfed_sha256_file_range(path, 1006, 0, digest) == 0);
    CHECK_STR(zfed_sha256_hex(digest, hex),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    //  A range past the end: EIO, as a file that shrank.
    errno = 0;
    CHECK(zfed_sha256_file_range(path, 1000, 7, digest) == -1);
    CHECK(errno == EIO);
    //  No such file, and a folder: the open's or the read's errno.
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK(zfed_sha256_file(path, digest, &size) == -1);
    CHECK(errno == ENOENT);
    CHECK(zfed_sha256_file(dir, digest, &size) == -1);
    CHECK(errno == EISDIR);
    snprintf(path, sizeof path, "%s/file", dir);
    CHECK(unlink(path) == 0);
    CHECK(rmdir(dir) == 0);
    free(as);
}

//  from_hex reads back what hex writes, and nothing else.
static void test_from_hex(void)
{
    const char *abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    uint8_t digest[ZFED_SHA256_SIZE];
    char hex[ZFED_SHA256_HEX_SIZE];
    CHECK(zfed_sha256_from_hex(abc, strlen(abc), digest) == 0);
    CHECK_STR(zfed_sha256_hex(digest, hex), abc);
    CHECK_INT(digest[0], 0xba);
    CHECK_INT(digest[ZFED_SHA256_SIZE - 1], 0xad);
    char bad[ZFED_SHA256_HEX_SIZE];
    const char *flaws = "Agx -"; //  and the terminator, read as a digit
    for (size_t flaw = 0; flaw < strlen(flaws) + 1; flaw++)
        for (size_t at = 0; at < 2 * ZFED_SHA256_SIZE; at += 21) {
            memcpy(bad, abc, sizeof bad);
            bad[at] = flaws[flaw];
            CHECK(zfed_sha256_from_hex(bad, 2 * ZFED_SHA256_SIZE, digest) == -1);
        }
    CHECK(zfed_sha256_from_hex(abc, strlen(abc) - 1, digest) == -1);
    CHECK(zfed_sha256_from_hex(abc, strlen(abc) + 1, digest) == -1);
    CHECK(zfed_sha256_from_hex(NULL, 64, digest) == -1);
}

int main(void)
{
    test_vectors();
    test_files();
    test_from_hex();
    ZFED_TEST_END();
}
