/*  zfed_fib - the Fibonacci task kernel.

    The worker really generates the sequence term by term (that is the job
    being distributed), so no closed form or fast-doubling shortcut here:
    one mpz addition per term, summing as we go.  Terms are only kept for
    short levels, where they travel in the result; all terms of the top
    level would take over 400 MB (F(99999) alone is 20,899 digits).
*/
#include "zfed/zfed_fib.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECIMAL_BASE 10

//  mpz_sizeinbase may overshoot by one, plus the terminating NUL.
#define DIGITS_SLACK 2

//  Longest "... N more rows (level L)" line: two 10-digit numbers and the
//  fixed words, with room to spare.
#define PYRAMID_TAIL_MAX 64

struct _zfed_fib_t {
    uint32_t terms;
    mpz_t sum;
    mpz_t last;
    //  terms entries when kept, else NULL; sequence_ready counts the entries
    //  already mpz_init'ed so destroy can undo a half-built object.
    mpz_t *sequence;
    uint32_t sequence_ready;
};

//  Walks F(0)..F(terms-1) once, summing and (if kept) storing each term.
static void s_generate(zfed_fib_t *self)
{
    //  current = F(index), next = F(index + 1).
    mpz_t current, next;
    mpz_init_set_ui(current, 0);
    mpz_init_set_ui(next, 1);
    for (uint32_t index = 0; index < self->terms; index++) {
        mpz_add(self->sum, self->sum, current);
        if (self->sequence)
            mpz_set(self->sequence[index], current);
        if (index + 1 == self->terms)
            break; //  F(terms) is never needed: skip its addition
        mpz_add(current, current, next);
        mpz_swap(current, next);
    }
    mpz_swap(self->last, current);
    mpz_clears(current, next, NULL);
}

int zfed_fib_small(uint32_t level, uint64_t *terms, uint64_t *sum)
{
    if (level == 0 || level > ZFED_FIB_SMALL_MAX)
        return -1;
    //  Same walk as s_generate, in machine words: most tasks are small and
    //  GMP's allocations would dominate their cost.
    uint64_t current = 0, next = 1, total = 0;
    for (uint32_t index = 0; index < level; index++) {
        terms[index] = current;
        total += current;
        uint64_t after = current + next;
        current = next;
        next = after;
    }
    *sum = total;
    return 0;
}

zfed_fib_t *zfed_fib_new(uint32_t level)
{
    if (level == 0 || level > ZFED_FIB_MAX_LEVEL)
        return NULL;

    zfed_fib_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->terms = level;
    mpz_init(self->sum);
    mpz_init(self->last);

    if (level <= ZFED_FIB_SEQUENCE_MAX) {
        self->sequence = calloc(level, sizeof(mpz_t));
        if (!self->sequence)
            goto err;
        for (; self->sequence_ready < level; self->sequence_ready++)
            mpz_init(self->sequence[self->sequence_ready]);
    }

    s_generate(self);
    return self;

err:
    zfed_fib_destroy(&self);
    return NULL;
}

void zfed_fib_destroy(zfed_fib_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_fib_t *self = *self_p;
    for (uint32_t index = 0; index < self->sequence_ready; index++)
        mpz_clear(self->sequence[index]);
    free(self->sequence);
    mpz_clears(self->sum, self->last, NULL);
    free(self);
    *self_p = NULL;
}

uint32_t zfed_fib_terms(const zfed_fib_t *self)
{
    return self ? self->terms : 0;
}

const mpz_t *zfed_fib_sum(const zfed_fib_t *self)
{
    return self ? &self->sum : NULL;
}

const mpz_t *zfed_fib_last(const zfed_fib_t *self)
{
    return self ? &self->last : NULL;
}

const mpz_t *zfed_fib_term(const zfed_fib_t *self, uint32_t index)
{
    if (!self || !self->sequence || index >= self->terms)
        return NULL;
    //  The cast only adds const; ISO C before C23 wants it spelled out for
    //  pointers to arrays such as mpz_t.
    return (const mpz_t *)&self->sequence[index];
}

int zfed_fib_has_sequence(const zfed_fib_t *self)
{
    return self && self->sequence != NULL;
}

//  The first count terms as malloc'd decimal strings in text[0..count).
//  Computed afresh because long levels do not keep their sequence.
static int s_first_terms_text(char **text, uint32_t count)
{
    int rc = -1;
    mpz_t current, next;
    mpz_init_set_ui(current, 0);
    mpz_init_set_ui(next, 1);
    for (uint32_t index = 0; index < count; index++) {
        text[index] = malloc(mpz_sizeinbase(current, DECIMAL_BASE) + DIGITS_SLACK);
        if (!text[index])
            goto done;
        mpz_get_str(text[index], DECIMAL_BASE, current);
        mpz_add(current, current, next);
        mpz_swap(current, next);
    }
    rc = 0;
done:
    mpz_clears(current, next, NULL);
    return rc;
}

char *zfed_fib_pyramid(const zfed_fib_t *self)
{
    if (!self)
        return NULL;

    char *terms[ZFED_FIB_PYRAMID_MAX_ROWS] = {NULL};
    char *pyramid = NULL;
    uint32_t rows =
        self->terms < ZFED_FIB_PYRAMID_MAX_ROWS ? self->terms : ZFED_FIB_PYRAMID_MAX_ROWS;
    if (s_first_terms_text(terms, rows) != 0)
        goto done;

    //  Row k is row k-1 plus a space and one more term, so widths only
    //  grow: the rows that fit the cap are a prefix, and the last of them
    //  is the widest, which every row is centred against.
    size_t lengths[ZFED_FIB_PYRAMID_MAX_ROWS];
    size_t widths[ZFED_FIB_PYRAMID_MAX_ROWS];
    uint32_t shown = 0;
    for (uint32_t row = 0; row < rows; row++) {
        lengths[row] = strlen(terms[row]);
        widths[row] = row == 0 ? lengths[row] : widths[row - 1] + 1 + lengths[row];
        if (widths[row] > ZFED_FIB_PYRAMID_MAX_WIDTH)
            break;
        shown = row + 1;
    }
    size_t widest = shown > 0 ? widths[shown - 1] : 0;

    char tail[PYRAMID_TAIL_MAX] = "";
    if (self->terms > shown) {
        uint32_t left_out = self->terms - shown;
        snprintf(tail, sizeof(tail), "... %" PRIu32 " more row%s (level %" PRIu32 ")\n", left_out,
                 left_out == 1 ? "" : "s", self->terms);
    }

    //  Each row: left padding, its text, a newline; then the tail and NUL.
    size_t size = strlen(tail) + 1;
    for (uint32_t row = 0; row < shown; row++)
        size += (widest - widths[row]) / 2 + widths[row] + 1;
    pyramid = malloc(size);
    if (!pyramid)
        goto done;

    char *out = pyramid;
    for (uint32_t row = 0; row < shown; row++) {
        size_t padding = (widest - widths[row]) / 2;
        memset(out, ' ', padding);
        out += padding;
        for (uint32_t term = 0; term <= row; term++) {
            if (term > 0)
                *out++ = ' ';
            memcpy(out, terms[term], lengths[term]);
            out += lengths[term];
        }
        *out++ = '\n';
    }
    strcpy(out, tail);

done:
    for (uint32_t row = 0; row < rows; row++)
        free(terms[row]);
    return pyramid;
}
