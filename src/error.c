#include "icasweep/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int icas_fail(icas_err *err, const char *fmt, ...)
{
    if (err) {
        err->sys_errno = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int icas_fail_errno(icas_err *err, int e, const char *fmt, ...)
{
    if (err) {
        err->sys_errno = e;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int icas_wrap(icas_err *err, const char *fmt, ...)
{
    if (err) {
        char prefix[512];
        char old[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        size_t plen = strlen(prefix);
        memcpy(old, err->msg, sizeof old);
        if (plen >= sizeof err->msg)
            plen = sizeof err->msg - 1;
        memcpy(err->msg, prefix, plen);
        size_t rest = sizeof err->msg - 1 - plen;
        size_t olen = strnlen(old, sizeof old);
        if (olen > rest)
            olen = rest;
        memcpy(err->msg + plen, old, olen);
        err->msg[plen + olen] = '\0';
    }
    return -1;
}
