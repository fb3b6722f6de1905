/*  zfed_fib_levels - fib's levels as the controller's flags give them
    (private header).

        --level N           {"fibonacci_level": N} for every task
        --levels A,B,...    one per task     (task_params)
        --schedule A,B,...  one per round    (round_params)

    Levels run from 1 to ZFED_FIB_MAX_LEVEL; a list has no empty items,
    so "10,,20" and "10,20," are mistakes, not two levels.
*/
#ifndef ZFED_FIB_LEVELS_H_INCLUDED
#define ZFED_FIB_LEVELS_H_INCLUDED

#include "zfed/zfed_error.h"

#include <jansson.h>

//  {"fibonacci_level": N} (new reference), or NULL with ZFED_E_INVALID.
json_t *zfed_fib_level_params(const char *text, zfed_error_t *error);

//  An array of {"fibonacci_level": n}, one per item (new reference), or
//  NULL with ZFED_E_INVALID naming the item at fault.
json_t *zfed_fib_level_list(const char *text, zfed_error_t *error);

#endif
