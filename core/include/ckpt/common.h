/*
 * ckpt/common.h — what every public header shares.
 *
 * CKPT_API marks a declaration as part of libckpt's API. The library is
 * built with -fvisibility=hidden, so only what is marked here is exported by
 * libckpt.so; everything else stays internal and can change freely.
 * (tests/abi/exports.sh checks that the exports and the headers agree.)
 */
#ifndef CKPT_COMMON_H
#define CKPT_COMMON_H

#if defined(__GNUC__)
#define CKPT_API __attribute__((visibility("default")))
#else
#define CKPT_API
#endif

#endif
