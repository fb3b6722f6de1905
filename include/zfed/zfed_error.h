/*  zfed_error - what went wrong in a library call: a code the caller
    branches on, the setting at fault, and a sentence for people.

    The code decides what happens next (a usage error is exit status 2, a
    job folder that already holds a job is a usage error, an unreadable
    record is a failure); the text is only ever shown, so rewording a
    message never changes behaviour.  field names the setting as job files
    spell it ("quorum", "round_timeout") or a task parameter
    ("fibonacci_level"); round and task say which task's parameters, or
    are -1.
*/
#ifndef ZFED_ERROR_H_INCLUDED
#define ZFED_ERROR_H_INCLUDED

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZFED_OK = 0,
    ZFED_E_INVALID,   //  a setting, argument or file content is not acceptable
    ZFED_E_EXISTS,    //  the job folder already holds a job
    ZFED_E_NO_JOB,    //  no such job to resume
    ZFED_E_CORRUPT,   //  a record cannot be trusted
    ZFED_E_IO,        //  a file cannot be read or written
    ZFED_E_NOMEM,     //  out of memory
    ZFED_E_TRANSPORT, //  a socket cannot be set up (bad key file, endpoint refused)
    ZFED_E_BUSY       //  another controller holds the job folder
} zfed_error_code_t;

#define ZFED_ERROR_KEY_MAX    64
#define ZFED_ERROR_REASON_MAX 768

typedef struct {
    zfed_error_code_t code;
    char field[ZFED_ERROR_KEY_MAX]; //  "" when no one setting is at fault
    int64_t round;                  //  -1 unless about one task's parameters
    int64_t task;
    char text[ZFED_ERROR_REASON_MAX]; //  the reason, without the field
    //  "field (round R, task T): text", or as much of it as applies.
    char message[ZFED_ERROR_KEY_MAX + ZFED_ERROR_REASON_MAX + 48];
} zfed_error_t;

//  Fills error (which may be NULL) and returns -1, so a failing path can
//  end with "return zfed_error_set (...)".
int zfed_error_set(zfed_error_t *error, zfed_error_code_t code, const char *field,
                   const char *format, ...) __attribute__((format(printf, 4, 5)));

//  Says which task's parameters the error is about (updates message).
void zfed_error_locate(zfed_error_t *error, int64_t round, int64_t task);

//  Back to ZFED_OK with empty texts.
void zfed_error_clear(zfed_error_t *error);

//  "invalid", "exists", ...: for logs and tests.
const char *zfed_error_code_name(zfed_error_code_t code);

#ifdef __cplusplus
}
#endif

#endif
