/*  zfed_test_fs - small file-system helpers for the unit tests that work in
    a temporary directory (test_util, test_store).
*/
#ifndef ZFED_TEST_FS_H_INCLUDED
#define ZFED_TEST_FS_H_INCLUDED

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Number of entries in directory path (without . and ..), or -1.
static inline int zfed_test_dir_entries(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir)
        return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL)
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
            count++;
    closedir(dir);
    return count;
}

//  Writes text to path, or aborts the test program: a test that cannot
//  prepare its input has nothing to check.
static inline void zfed_test_write_text(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    if (!file) {
        perror(path);
        abort();
    }
    fputs(text, file);
    fclose(file);
}

//  rm -r path.
static inline void zfed_test_remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) {
        unlink(path);
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char child[PATH_MAX];
        int length = snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
        if (length > 0 && (size_t)length < sizeof child)
            zfed_test_remove_tree(child);
    }
    closedir(dir);
    rmdir(path);
}

#endif
