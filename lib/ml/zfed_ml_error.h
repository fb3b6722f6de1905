/*  zfed_ml_error - the "FIELD: reason" error text of lib/ml (private header).  */
#ifndef ZFED_ML_ERROR_H_INCLUDED
#define ZFED_ML_ERROR_H_INCLUDED

#include <stddef.h>

//  snprintf into error (when it is not NULL and error_size > 0); returns -1
//  so that a failing path can "return zfed_ml_error (...)".
int zfed_ml_error(char *error, size_t error_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
