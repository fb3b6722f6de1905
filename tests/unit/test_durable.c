/*  test_durable - files written whole or not at all (core/zfed_durable),
    streamed in chunks: readers see the old file until commit, abort and
    failures leave no temporary file, and zfed_write_file_durable (the
    one-buffer case) still behaves.  The queue: groups land in the order
    they were handed over, files in the order added; wait and destroy
    drain it; a failure names the file and step, sticks, and nothing after
    it lands.
*/
#include "core/zfed_durable.h"
#include "zfed/zfed_util.h"
#include "zfed_test.h"

#include <dirent.h>
#include <stdbool.h>
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

//  A staged file: path's temporary holds text, added to the open group.
static void s_stage(zfed_durable_queue_t *queue, const char *path, const char *text)
{
    zfed_durable_t *file = zfed_durable_open(path);
    REQUIRE(file != NULL);
    CHECK(zfed_durable_write(file, text, strlen(text)) == 0);
    zfed_durable_queue_add(queue, &file);
    CHECK(file == NULL);
}

static bool s_holds(const char *path, const char *text)
{
    size_t size = 0;
    char *seen = s_read(path, &size);
    bool same = seen && size == strlen(text) && memcmp(seen, text, size) == 0;
    free(seen);
    return same;
}

//  Many groups for the same files, handed over without waiting: each file
//  ends as the last group wrote it (FIFO, never an older group's content
//  over a newer one's), and nothing is renamed before its group is handed.
static void test_queue_order_and_drain(void)
{
    char first[128], second[128];
    snprintf(first, sizeof first, "%s/round.json", s_dir);
    snprintf(second, sizeof second, "%s/summary.json", s_dir);
    zfed_durable_queue_t *queue = zfed_durable_queue_new();
    REQUIRE(queue != NULL);
    char reason[256] = "";
    CHECK(zfed_durable_queue_wait(queue, reason, sizeof reason) == 0); //  nothing handed
    s_stage(queue, first, "staged");
    usleep(20 * 1000);
    CHECK(access(first, F_OK) != 0); //  not handed over: not renamed
    CHECK(s_entries() == 1);         //  its temporary
    zfed_durable_queue_abandon(queue);
    CHECK(s_entries() == 0);
    for (int group = 0; group < 50; group++) {
        char text[32];
        snprintf(text, sizeof text, "group %d", group);
        s_stage(queue, first, text);
        zfed_durable_queue_barrier(queue);
        zfed_durable_queue_barrier(queue); //  a second in a row is one
        s_stage(queue, second, text);
        zfed_durable_queue_submit(queue);
    }
    CHECK(zfed_durable_queue_wait(queue, reason, sizeof reason) == 0);
    CHECK(!zfed_durable_queue_busy(queue));
    CHECK(s_holds(first, "group 49"));
    CHECK(s_holds(second, "group 49"));
    CHECK(s_entries() == 2); //  no temporary left
    //  Destroy hands the open group over and waits for it.
    s_stage(queue, first, "last");
    zfed_durable_queue_destroy(&queue);
    CHECK(queue == NULL);
    CHECK(s_holds(first, "last"));
    zfed_durable_queue_destroy(&queue); //  idempotent
    unlink(first);
    unlink(second);
}

//  A rename that fails (the target is a folder): the wait after says which
//  file and why, the files after it in its group and in every later group
//  are removed, never renamed, and every later wait fails the same way.
static void test_queue_failure(void)
{
    char before[128], folder[128], inside[160], after[128], later[128];
    snprintf(before, sizeof before, "%s/before.json", s_dir);
    snprintf(folder, sizeof folder, "%s/taken", s_dir);
    snprintf(inside, sizeof inside, "%s/keep", folder);
    snprintf(after, sizeof after, "%s/after.json", s_dir);
    snprintf(later, sizeof later, "%s/later.json", s_dir);
    REQUIRE(zfed_mkdir_p(folder) == 0);
    CHECK(zfed_write_file_durable(inside, "x", 1) == 0);
    zfed_durable_queue_t *queue = zfed_durable_queue_new();
    REQUIRE(queue != NULL);
    s_stage(queue, before, "lands");
    zfed_durable_queue_barrier(queue);
    s_stage(queue, folder, "cannot land");
    s_stage(queue, after, "must not land");
    zfed_durable_queue_submit(queue);
    s_stage(queue, later, "must not land either");
    zfed_durable_queue_submit(queue);
    char reason[512] = "";
    errno = 0;
    CHECK(zfed_durable_queue_wait(queue, reason, sizeof reason) == -1);
    CHECK(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST);
    CHECK(strstr(reason, folder) != NULL);
    CHECK(strstr(reason, ": rename: ") != NULL);
    CHECK(strstr(reason, strerror(errno)) != NULL);
    CHECK(s_holds(before, "lands"));
    CHECK(access(after, F_OK) != 0);
    CHECK(access(later, F_OK) != 0);
    CHECK(s_entries() == 2); //  before.json and the folder: no temporary left
    s_stage(queue, later, "after the failure");
    zfed_durable_queue_submit(queue);
    char again[512] = "";
    CHECK(zfed_durable_queue_wait(queue, again, sizeof again) == -1);
    CHECK(strcmp(again, reason) == 0); //  the first failure sticks
    zfed_durable_queue_destroy(&queue);
    CHECK(access(later, F_OK) != 0);
    CHECK(s_entries() == 2);
    unlink(before);
    unlink(inside);
    rmdir(folder);
}

//  Deferred files (zfed_durable_deferred): nothing on disk until the
//  thread writes them, several in one segment land whole and in order, a
//  temporary that cannot be made fails with the step "create", and an
//  abandoned one leaves nothing.
static char *s_copy(const char *text)
{
    char *copy = strdup(text);
    REQUIRE(copy != NULL);
    return copy;
}

static void test_queue_deferred(void)
{
    char paths[5][128], missing[160];
    zfed_durable_queue_t *queue = zfed_durable_queue_new();
    REQUIRE(queue != NULL);
    for (int index = 0; index < 5; index++) {
        snprintf(paths[index], sizeof paths[index], "%s/round-%d.json", s_dir, index);
        zfed_durable_t *file =
            zfed_durable_deferred(paths[index], s_copy(paths[index]), strlen(paths[index]));
        REQUIRE(file != NULL);
        zfed_durable_queue_add(queue, &file);
    }
    CHECK(s_entries() == 0); //  not even a temporary before the hand-over
    zfed_durable_queue_submit(queue);
    char reason[512] = "";
    CHECK(zfed_durable_queue_wait(queue, reason, sizeof reason) == 0);
    for (int index = 0; index < 5; index++)
        CHECK(s_holds(paths[index], paths[index]));
    CHECK(s_entries() == 5);
    zfed_durable_t *dropped = zfed_durable_deferred(paths[0], s_copy("dropped"), 7);
    REQUIRE(dropped != NULL);
    zfed_durable_queue_add(queue, &dropped);
    zfed_durable_queue_abandon(queue);
    CHECK(s_holds(paths[0], paths[0]));
    CHECK(s_entries() == 5);
    snprintf(missing, sizeof missing, "%s/no-such-folder/round.json", s_dir);
    zfed_durable_t *lost = zfed_durable_deferred(missing, s_copy("lost"), 4);
    zfed_durable_t *after = zfed_durable_deferred(paths[1], s_copy("must not land"), 13);
    REQUIRE(lost != NULL && after != NULL);
    zfed_durable_queue_add(queue, &lost);
    zfed_durable_queue_add(queue, &after);
    zfed_durable_queue_submit(queue);
    errno = 0;
    CHECK(zfed_durable_queue_wait(queue, reason, sizeof reason) == -1 && errno == ENOENT);
    CHECK(strstr(reason, missing) != NULL && strstr(reason, ": create: ") != NULL);
    CHECK(s_holds(paths[1], paths[1]));
    CHECK(s_entries() == 5);
    zfed_durable_queue_destroy(&queue);
    for (int index = 0; index < 5; index++)
        unlink(paths[index]);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/zfed-test-durable-XXXXXX");
    if (!mkdtemp(s_dir))
        return 1;
    test_stream_and_commit();
    test_abort_and_failure();
    test_two_writers_and_sweep();
    test_queue_order_and_drain();
    test_queue_failure();
    test_queue_deferred();
    rmdir(s_dir);
    ZFED_TEST_END();
}
