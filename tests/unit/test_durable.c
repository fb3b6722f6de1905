/*  test_durable - files written whole or not at all (core/zfed_durable),
    streamed in chunks: readers see the old file until commit, abort and
    failures leave no temporary file, and zfed_write_file_durable (the
    one-buffer case) still behaves.
*/
#include "core/zfed_durable.h"
#include "zfed/zfed_util.h"
#include "zfed_test.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir[64];

static int s_entries(void)
{
    DIR *dir = opendir(s_dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)))
        if (entry->d_name[0] != '.')
            count++;
    closedir(dir);
    return count;
}

static char *s_read(const char *path, size_t *size)
{
    return zfed_read_file(path, 1 << 20, size);
}

static void test_stream_and_commit(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/model.bin", s_dir);
    CHECK(zfed_write_file_durable(path, "old", 3) == 0);
    zfed_durable_t *file = zfed_durable_open(path);
    CHECK(file != NULL);
    CHECK(zfed_durable_write(file, "new ", 4) == 0);
    CHECK(zfed_durable_write(file, "", 0) == 0);
    CHECK(zfed_durable_write(file, "content", 7) == 0);
    CHECK(zfed_durable_size(file) == 11);
    size_t size = 0;
    char *seen = s_read(path, &size);
    CHECK(seen && size == 3 && memcmp(seen, "old", 3) == 0); //  not yet
    free(seen);
    CHECK(s_entries() == 2); //  the file and its temporary
    CHECK(zfed_durable_commit(&file) == 0);
    CHECK(file == NULL);
    seen = s_read(path, &size);
    CHECK(seen && size == 11 && memcmp(seen, "new content", 11) == 0);
    free(seen);
    CHECK(s_entries() == 1);
    unlink(path);
}

static void test_abort_and_failure(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/aborted.bin", s_dir);
    zfed_durable_t *file = zfed_durable_open(path);
    CHECK(zfed_durable_write(file, "x", 1) == 0);
    zfed_durable_abort(&file);
    zfed_durable_abort(&file); //  idempotent
    CHECK(file == NULL);
    CHECK(access(path, F_OK) != 0);
    CHECK(s_entries() == 0);
    snprintf(path, sizeof path, "%s/no/such/folder/x.bin", s_dir);
    errno = 0;
    CHECK(zfed_durable_open(path) == NULL && errno == ENOENT);
    CHECK(zfed_write_file_durable(path, "x", 1) == -1);
    //  Committing over a folder fails, and cleans up.
    snprintf(path, sizeof path, "%s/folder", s_dir);
    CHECK(zfed_mkdir_p(path) == 0);
    char inside[160];
    snprintf(inside, sizeof inside, "%s/keep", path);
    CHECK(zfed_write_file_durable(inside, "x", 1) == 0);
    file = zfed_durable_open(path);
    CHECK(file != NULL);
    CHECK(zfed_durable_commit(&file) == -1);
    CHECK(file == NULL);
    CHECK(s_entries() == 1); //  only the folder
    unlink(inside);
    rmdir(path);
}

//  Two writers of one path each get a temporary of their own: the second
//  open neither truncates nor takes over the first one's bytes, and the
//  last commit wins whole.  The sweep removes only temporaries.
static void test_two_writers_and_sweep(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/summary.json", s_dir);
    zfed_durable_t *first = zfed_durable_open(path);
    zfed_durable_t *second = zfed_durable_open(path);
    REQUIRE(first != NULL && second != NULL);
    CHECK(zfed_durable_write(first, "first, longer", 13) == 0);
    CHECK(zfed_durable_write(second, "second", 6) == 0);
    CHECK(s_entries() == 2);
    CHECK(zfed_durable_commit(&first) == 0);
    CHECK(zfed_durable_commit(&second) == 0);
    size_t size = 0;
    char *seen = s_read(path, &size);
    CHECK(seen && size == 6 && memcmp(seen, "second", 6) == 0);
    free(seen);
    CHECK(s_entries() == 1);
    //  A crashed writer's temporary is swept; the file itself stays.
    zfed_durable_t *crashed = zfed_durable_open(path);
    REQUIRE(crashed != NULL);
    CHECK(zfed_durable_write(crashed, "half", 4) == 0);
    CHECK(s_entries() == 2);
    CHECK(zfed_durable_sweep(s_dir) == 1);
    CHECK(s_entries() == 1);
    zfed_durable_abort(&crashed); //  its file is gone already: no harm
    CHECK(zfed_durable_sweep(s_dir) == 0);
    errno = 0;
    CHECK(zfed_durable_sweep("/no/such/folder") == -1 && errno == ENOENT);
    unlink(path);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/zfed-test-durable-XXXXXX");
    if (!mkdtemp(s_dir))
        return 1;
    test_stream_and_commit();
    test_abort_and_failure();
    test_two_writers_and_sweep();
    rmdir(s_dir);
    ZFED_TEST_END();
}
