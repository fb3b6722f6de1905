/*  zfed_ml_error - error text for lib/ml.  */
#include "ml/zfed_ml_error.h"

#include <stdarg.h>
#include <stdio.h>

int zfed_ml_error(char *error, size_t error_size, const char *format, ...)
{
    if (error && error_size > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(error, error_size, format, args);
        va_end(args);
    }
    return -1;
}
