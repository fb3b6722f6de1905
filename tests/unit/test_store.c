/*  test_store - a job's work folder (zfed_store), on a real file system in a
    fresh temporary directory.

    A new job gets its folder and rounds/; a folder that holds a job is
    refused without resume (the reason names --resume) and needed with it;
    files are written whole (no temporary file left behind) and read back
    equal; a missing record is ENOENT, a corrupt or foreign one EBADMSG with
    a reason naming the file.  An open store holds the folder: a second
    open is refused naming the holder's pid, and a crashed writer's
    temporaries are swept.
*/
#include "zfed/zfed_error.h"
#include "zfed/zfed_store.h"
#include "zfed/zfed_util.h"
#include "zfed_test.h"
#include "zfed_test_fs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_root[] = "/tmp/zfed-test-store-XXXXXX";

static void s_test_new_job_and_resume(void)
{
    char error[512] = "";
    zfed_error_t failure;
    zfed_store_t *store = zfed_store_open(s_root, "job-1", false, &failure);
    REQUIRE(store != NULL);
    char expected[PATH_MAX];
    snprintf(expected, sizeof expected, "%s/job-1", s_root);
    CHECK_STR(zfed_store_path(store), expected);
    char rounds[PATH_MAX + 16];
    snprintf(rounds, sizeof rounds, "%s/rounds", expected);
    struct stat info;
    CHECK(stat(rounds, &info) == 0 && S_ISDIR(info.st_mode));

    //  While the store is open the folder is ours: a second open (even in
    //  this process: flock is per open file) is refused, naming our pid.
    char running[128];
    snprintf(running, sizeof running, "job job-1 is running (pid %ld)", (long)getpid());
    for (int resume = 0; resume <= 1; resume++) {
        zfed_store_t *second = zfed_store_open(s_root, "job-1", resume, &failure);
        CHECK(second == NULL);
        CHECK_INT(failure.code, ZFED_E_BUSY);
        CHECK(strstr(failure.message, running) != NULL);
    }

    json_t *job = json_pack("{s:s, s:i}", "service", "fib", "rounds", 3);
    REQUIRE(job != NULL);
    CHECK_INT(zfed_store_write(store, ZFED_STORE_JOB, job), 0);
    zfed_store_destroy(&store);
    CHECK(store == NULL);
    zfed_store_destroy(&store); //  idempotent

    zfed_store_t *again = zfed_store_open(s_root, "job-1", false, &failure);
    CHECK(again == NULL);
    CHECK_INT(failure.code, ZFED_E_EXISTS);
    CHECK(strstr(failure.message, "already holds job job-1") != NULL);
    CHECK(strstr(failure.message, "--resume job-1") != NULL);
    again = zfed_store_open(s_root, "job-1", true, &failure);
    REQUIRE(again != NULL);
    json_t *back = zfed_store_read(again, ZFED_STORE_JOB, error, sizeof error);
    CHECK(back != NULL && json_equal(back, job));
    json_decref(back);
    json_decref(job);
    zfed_store_destroy(&again);
}

static void s_test_resume_needs_a_job(void)
{
    zfed_error_t failure;
    //  No folder, or a folder without job.json, holds no job to resume.
    zfed_store_t *store = zfed_store_open(s_root, "job-none", true, &failure);
    CHECK(store == NULL);
    CHECK_INT(failure.code, ZFED_E_NO_JOB);
    CHECK_STR(failure.field, "job_id");
    CHECK(strstr(failure.message, "holds no job to resume") != NULL);
    store = zfed_store_open(s_root, "job-none", false, &failure);
    REQUIRE(store != NULL);
    zfed_store_destroy(&store);
    store = zfed_store_open(s_root, "job-none", true, &failure);
    CHECK(store == NULL);
    CHECK_INT(failure.code, ZFED_E_NO_JOB);
}

//  A crashed writer's temporaries are swept when the folder is taken; the
//  lock file holds the pid of the holder.
static void s_test_sweep_and_pid(void)
{
    zfed_error_t failure;
    zfed_store_t *store = zfed_store_open(s_root, "job-3", false, &failure);
    REQUIRE(store != NULL);
    json_t *job = json_pack("{s:s}", "service", "fib");
    REQUIRE(job != NULL);
    CHECK_INT(zfed_store_write(store, ZFED_STORE_JOB, job), 0);
    json_decref(job);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/summary.json.tmp.a1B2c3", zfed_store_path(store));
    zfed_test_write_text(path, "{\"half");
    snprintf(path, sizeof path, "%s/rounds/round-000001.json.tmp.Zz9yY8", zfed_store_path(store));
    zfed_test_write_text(path, "{");
    snprintf(path, sizeof path, "%s/notes.tmp.keep-me", zfed_store_path(store));
    zfed_test_write_text(path, "not ours");
    snprintf(path, sizeof path, "%s/%s", zfed_store_path(store), ZFED_STORE_LOCK);
    size_t size = 0;
    char *pid = zfed_read_file(path, 64, &size);
    char expected[32];
    snprintf(expected, sizeof expected, "%ld\n", (long)getpid());
    CHECK(pid && strcmp(pid, expected) == 0);
    free(pid);
    zfed_store_destroy(&store);
    store = zfed_store_open(s_root, "job-3", true, &failure);
    REQUIRE(store != NULL);
    snprintf(path, sizeof path, "%s/summary.json.tmp.a1B2c3", zfed_store_path(store));
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/rounds", zfed_store_path(store));
    CHECK_INT(zfed_test_dir_entries(path), 0);
    snprintf(path, sizeof path, "%s/notes.tmp.keep-me", zfed_store_path(store));
    CHECK(access(path, F_OK) == 0);
    zfed_store_destroy(&store);
}

static void s_test_rounds(void)
{
    char error[512] = "";
    zfed_error_t failure;
    zfed_store_t *store = zfed_store_open(s_root, "job-2", false, &failure);
    REQUIRE(store != NULL);
    json_t *record = json_pack("{s:i, s:{s:i, s:s}, s:[]}", "round", 7, "global_out", "round", 7,
                               "value", "88", "results");
    REQUIRE(record != NULL);
    CHECK_INT(zfed_store_write_round(store, 7, record), 0);
    //  Written whole: the round file and nothing else (no temporary left).
    char rounds[PATH_MAX + 16];
    snprintf(rounds, sizeof rounds, "%s/rounds", zfed_store_path(store));
    CHECK_INT(zfed_test_dir_entries(rounds), 1);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/round-000007.json", rounds);
    CHECK(access(path, R_OK) == 0);

    json_t *back = zfed_store_read_round(store, 7, error, sizeof error);
    CHECK(back != NULL && json_equal(back, record));
    json_decref(back);
    //  Rewriting replaces it whole.
    json_object_set_new(record, "late", json_integer(2));
    CHECK_INT(zfed_store_write_round(store, 7, record), 0);
    back = zfed_store_read_round(store, 7, error, sizeof error);
    CHECK(back != NULL && json_integer_value(json_object_get(back, "late")) == 2);
    json_decref(back);
    CHECK_INT(zfed_test_dir_entries(rounds), 1);

    //  Missing: ENOENT.
    errno = 0;
    CHECK(zfed_store_read_round(store, 8, error, sizeof error) == NULL);
    CHECK_INT(errno, ENOENT);
    CHECK(strstr(error, "round-000008.json") != NULL);

    //  Corrupt: EBADMSG, the file named.
    snprintf(path, sizeof path, "%s/round-000009.json", rounds);
    zfed_test_write_text(path, "{\"round\": 9, \"global_out\": {");
    errno = 0;
    CHECK(zfed_store_read_round(store, 9, error, sizeof error) == NULL);
    CHECK_INT(errno, EBADMSG);
    CHECK(strstr(error, "round-000009.json is corrupt") != NULL);

    //  Valid JSON, but another round's record, or half a record: EBADMSG.
    snprintf(path, sizeof path, "%s/round-000010.json", rounds);
    zfed_test_write_text(path, "{\"round\": 11, \"global_out\": {}}");
    errno = 0;
    CHECK(zfed_store_read_round(store, 10, error, sizeof error) == NULL);
    CHECK_INT(errno, EBADMSG);
    CHECK(strstr(error, "not the complete record of round 10") != NULL);
    snprintf(path, sizeof path, "%s/round-000012.json", rounds);
    zfed_test_write_text(path, "{\"round\": 12}");
    CHECK(zfed_store_read_round(store, 12, error, sizeof error) == NULL);
    CHECK_INT(errno, EBADMSG);
    //  Duplicate keys are refused, not silently merged.
    snprintf(path, sizeof path, "%s/round-000013.json", rounds);
    zfed_test_write_text(path, "{\"round\": 13, \"round\": 13, \"global_out\": {}}");
    CHECK(zfed_store_read_round(store, 13, error, sizeof error) == NULL);
    CHECK_INT(errno, EBADMSG);
    json_decref(record);
    zfed_store_destroy(&store);
}

static void s_test_bad_places(void)
{
    zfed_error_t error;
    //  A work folder under a regular file cannot be made.
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/not-a-dir", s_root);
    zfed_test_write_text(file, "x");
    CHECK(zfed_store_open(file, "job", false, &error) == NULL);
    CHECK_INT(error.code, ZFED_E_IO);
    CHECK(strstr(error.message, "cannot create") != NULL);
    //  A path that does not fit is refused, not cut.
    char *deep = malloc(PATH_MAX + 1);
    REQUIRE(deep != NULL);
    memset(deep, 'd', PATH_MAX);
    deep[PATH_MAX] = '\0';
    CHECK(zfed_store_open(s_root, deep, false, &error) == NULL);
    CHECK_INT(error.code, ZFED_E_INVALID);
    CHECK(strstr(error.message, "too long") != NULL);
    free(deep);
}

int main(void)
{
    REQUIRE(mkdtemp(s_root) != NULL);
    ZFED_TEST_RUN(s_test_new_job_and_resume);
    ZFED_TEST_RUN(s_test_resume_needs_a_job);
    ZFED_TEST_RUN(s_test_sweep_and_pid);
    ZFED_TEST_RUN(s_test_rounds);
    ZFED_TEST_RUN(s_test_bad_places);
    zfed_test_remove_tree(s_root);
    ZFED_TEST_END();
}
