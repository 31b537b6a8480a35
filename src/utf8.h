/* UTF-8 validation, shared by the CSV encoder and the file scan. */
#ifndef CSVUP_UTF8_H
#define CSVUP_UTF8_H

#include <stddef.h>

/* The length of the valid multibyte sequence at s (of left bytes), or 0. */
size_t utf8_sequence(const unsigned char *s, size_t left);

/* The length of the longest valid UTF-8 prefix of s (n when all of s is valid).
 * Overlong forms, surrogates and code points above U+10FFFF are invalid. */
size_t utf8_valid_prefix(const unsigned char *s, size_t n);

/* The same for text: a NUL byte ends it too (every reader of a CSV refuses one). */
size_t utf8_text_prefix(const unsigned char *s, size_t n);

#endif
