/*  zfed_progress - the controller's terminal view.  */
#include "controller/zfed_progress.h"
#include "zfed/zfed_number.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

struct _zfed_progress_t {
    FILE *out;
    bool live; //  out is a terminal
    int64_t live_at_ms;
    bool live_shown;
};

zfed_progress_t *zfed_progress_new(FILE *out)
{
    zfed_progress_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->out = out;
    self->live = out && isatty(fileno(out));
    return self;
}

void zfed_progress_destroy(zfed_progress_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

bool zfed_progress_enabled(zfed_progress_t *self)
{
    return self->out != NULL;
}

bool zfed_progress_live(zfed_progress_t *self)
{
    return self->live;
}

static void s_vprint(zfed_progress_t *self, const char *format, va_list args)
{
    if (!self->out)
        return;
    vfprintf(self->out, format, args);
    fflush(self->out);
}

void zfed_progress_print(zfed_progress_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    s_vprint(self, format, args);
    va_end(args);
}

void zfed_progress_live_clear(zfed_progress_t *self)
{
    if (self->live_shown) {
        zfed_progress_print(self, "\r\033[K");
        self->live_shown = false;
    }
}

void zfed_progress_live_update(zfed_progress_t *self, const zfed_progress_round_t *round,
                               int64_t now_ms)
{
    if (!self->live || now_ms - self->live_at_ms < ZFED_PROGRESS_LIVE_MS)
        return;
    self->live_at_ms = now_ms;
    self->live_shown = true;
    zfed_progress_print(
        self, "\r\033[Kround %u (%u/%u): %u/%u results (quorum %u), %" PRIu64 " resent, %.1f s%s",
        round->number, round->number + 1, round->rounds, round->answered, round->tasks,
        round->quorum, round->resent, round->elapsed_ms / 1000.0,
        round->quorum_in ? ", quorum in, grace running" : "");
}

void zfed_progress_round_closed(zfed_progress_t *self, const zfed_progress_round_t *round,
                                const char *aggregate, int64_t duration_us)
{
    char notes[160] = "";
    size_t used = 0;
    uint64_t counts[] = {round->resent, round->duplicates, round->errors, round->refused};
    const char *names[] = {"resent", "duplicates", "errors", "refused"};
    for (int index = 0; index < 4; index++)
        if (counts[index] && used < sizeof notes)
            used += (size_t)snprintf(notes + used, sizeof notes - used, ", %" PRIu64 " %s",
                                     counts[index], names[index]);
    zfed_progress_live_clear(self);
    zfed_progress_print(self,
                        "round %u (%u/%u): %u/%u results (quorum %u), aggregate %s, %.1f ms%s\n",
                        round->number, round->number + 1, round->rounds, round->answered,
                        round->tasks, round->quorum, aggregate, duration_us / 1000.0, notes);
}

//  A model aggregate in one short line: its hash's head and its size.
static char *s_model_text(const char *sha256, json_int_t size)
{
    char *text = malloc(64);
    if (text)
        snprintf(text, 64, "sha256 %.16s... (%" JSON_INTEGER_FORMAT " bytes)", sha256, size);
    return text;
}

void zfed_progress_table(zfed_progress_t *self, const json_t *summaries, const uint64_t *late,
                         uint32_t tasks, int64_t best_round)
{
    if (!self->out || json_array_size(summaries) == 0)
        return;
    zfed_progress_print(self, "\n%5s  %9s  %4s  %4s  %6s  %9s  %s\n", "round", "results", "late",
                        "dup", "errors", "time (ms)", "aggregate");
    size_t index;
    json_t *summary;
    json_array_foreach(summaries, index, summary)
    {
        json_t *aggregate = json_object_get(summary, "aggregate");
        const char *sha256 = json_string_value(json_object_get(aggregate, "sha256"));
        char *text =
            json_is_string(aggregate)
                ? zfed_number_abbreviate(json_string_value(aggregate), ZFED_NUMBER_DISPLAY_MAX)
            : sha256 ? s_model_text(sha256, json_integer_value(json_object_get(aggregate, "size")))
                     : json_dumps(aggregate, JSON_ENCODE_ANY);
        uint32_t round = (uint32_t)json_integer_value(json_object_get(summary, "round"));
        char results[32];
        snprintf(results, sizeof results, "%" JSON_INTEGER_FORMAT "/%u",
                 json_integer_value(json_object_get(summary, "answered")), tasks);
        zfed_progress_print(self, "%5u  %9s  %4" PRIu64 "  %4lld  %6lld  %9lld  %s%s\n", round,
                            results, late[round],
                            (long long)json_integer_value(json_object_get(summary, "duplicates")),
                            (long long)json_integer_value(json_object_get(summary, "errors")),
                            (long long)json_integer_value(json_object_get(summary, "duration_ms")),
                            text ? text : "?", (int64_t)round == best_round ? "  <- best" : "");
        free(text);
    }
}
