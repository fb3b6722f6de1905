/*  test_sha256 - FIPS 180-4 test vectors, one-shot and streamed in every
    split, and the hex form.
*/
#include "zfed/zfed_sha256.h"
#include "zfed_test.h"

#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    test_vectors();
    ZFED_TEST_END();
}
