/* banned.h - libc calls we do not use (git's banned.h is the model).
 * Included last by every .c file via the compiler flag -include. Use the
 * bounded replacements: cu_snprintf, cu_buf_*, cu_parse_i64. */
#ifndef CU_BASE_BANNED_H
#define CU_BASE_BANNED_H

#define CU_BANNED(func) sorry_##func##_is_banned_use_the_bounded_helper

#undef strcpy
#define strcpy(x, y) CU_BANNED(strcpy)
#undef strcat
#define strcat(x, y) CU_BANNED(strcat)
#undef sprintf
#define sprintf(...) CU_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) CU_BANNED(vsprintf)
#undef atoi
#define atoi(x) CU_BANNED(atoi)
#undef atol
#define atol(x) CU_BANNED(atol)
#undef strtok
#define strtok(x, y) CU_BANNED(strtok)
#undef gets
#define gets(x) CU_BANNED(gets)

#endif
