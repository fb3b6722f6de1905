/*  zfed_util - small helpers shared by every module: clocks, strict number
    parsing, and durable file writes.
*/
#ifndef ZFED_UTIL_H_INCLUDED
#define ZFED_UTIL_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Milliseconds / microseconds on a monotonic clock (for deadlines and
//  durations), and milliseconds since the Unix epoch (for records).
int64_t zfed_clock_ms(void);
int64_t zfed_clock_us(void);
int64_t zfed_wall_ms(void);

//  Strict decimal parsing: the whole string must be a number in
//  [min, max]; no sign for unsigned, no leading or trailing junk, no empty
//  string.  Return 0 on success, -1 otherwise (out untouched).
int zfed_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);
int zfed_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out);
//  A finite decimal number in [min, max] ("2.5", "0.6", "10").
int zfed_parse_double(const char *text, double min, double max, double *out);

//  Writes a file so that readers see either the old or the new content,
//  never a torn one, and so that it survives a crash once this returns:
//  write "path.tmp", fsync, rename over path, fsync the directory.
//  Returns 0, or -1 with errno set and no temporary file left behind.
int zfed_write_file_durable(const char *path, const void *data, size_t size);

//  Reads a whole regular file (at most max_size bytes) into a NUL-terminated
//  buffer the caller frees.  Returns NULL with errno set (EFBIG past max).
char *zfed_read_file(const char *path, size_t max_size, size_t *size);

//  mkdir -p with mode 0755.  Returns 0 or -1 with errno set.
int zfed_mkdir_p(const char *path);

//  True when name is 1..max_len characters of [A-Za-z0-9._-] and does not
//  start with '.', i.e. safe as a single path component and on the wire.
bool zfed_is_safe_name(const char *name, size_t max_len);
//  The same rule for length bytes that need not end in a NUL (a NUL among
//  them fails it).
bool zfed_is_safe_name_bytes(const char *name, size_t length, size_t max_len);

//  True when text is 1..max_len printable ASCII characters without spaces
//  (worker names, error fields).
bool zfed_is_token(const char *text, size_t max_len);

#ifdef __cplusplus
}
#endif

#endif
